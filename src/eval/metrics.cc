#include "eval/metrics.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "model/forward.h"

namespace lowbit {

std::string EvalProtocol::describe() const {
  const int stride = windows.stride > 0 ? windows.stride : windows.length;
  return fmt::format(
      "windows of {} tokens (stride {}) from {}; each window evaluated from position 0 with no BOS added; "
      "positions {}..{} predict the next token and are scored",
      windows.length, stride, source, score_from, windows.length - 2);
}

void log_softmax(const float* logits, int n, std::vector<double>* out) {
  out->resize(size_t(n));
  double max_v = -INFINITY;
  for (int i = 0; i < n; ++i) max_v = std::max(max_v, double(logits[i]));
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - max_v);
  const double log_z = max_v + std::log(sum);
  for (int i = 0; i < n; ++i) (*out)[size_t(i)] = double(logits[i]) - log_z;
}

void MetricAccumulator::add(const float* logits, const float* reference_logits, int vocab, int target) {
  std::vector<double> lp;
  log_softmax(logits, vocab, &lp);
  nll_sum_ -= lp[size_t(target)];
  ++count_;
  if (reference_logits == nullptr) return;
  has_reference_ = true;
  std::vector<double> ref;
  log_softmax(reference_logits, vocab, &ref);
  ref_nll_sum_ -= ref[size_t(target)];
  double kl = 0;
  for (int i = 0; i < vocab; ++i) kl += std::exp(ref[size_t(i)]) * (ref[size_t(i)] - lp[size_t(i)]);
  kld_sum_ += kl;
  const auto argmax = [&](const float* l) { return std::max_element(l, l + vocab) - l; };
  agree_ += argmax(logits) == argmax(reference_logits);
}

void MetricAccumulator::merge(const MetricAccumulator& other) {
  nll_sum_ += other.nll_sum_;
  ref_nll_sum_ += other.ref_nll_sum_;
  kld_sum_ += other.kld_sum_;
  agree_ += other.agree_;
  count_ += other.count_;
  has_reference_ = has_reference_ || other.has_reference_;
}

EvalResult MetricAccumulator::result() const {
  EvalResult r;
  r.tokens_scored = count_;
  if (count_ == 0) return r;
  r.mean_nll = nll_sum_ / double(count_);
  r.perplexity = std::exp(r.mean_nll);
  r.has_reference = has_reference_;
  if (has_reference_) {
    r.kld = kld_sum_ / double(count_);
    r.top1 = double(agree_) / double(count_);
    r.reference_perplexity = std::exp(ref_nll_sum_ / double(count_));
  }
  return r;
}

Result<EvalResult> evaluate(std::shared_ptr<const Model> model, std::shared_ptr<const Model> reference,
                            const std::vector<int32_t>& tokens, const EvalProtocol& protocol,
                            const std::function<void(int64_t, int64_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const int vocab = model->config().vocab_size;
  if (reference && reference->config().vocab_size != vocab)
    return error(ErrorCode::kInvalidArgument, "the reference model's vocabulary ({}) differs from the model's ({})",
                 reference->config().vocab_size, vocab);
  const int len = protocol.windows.length;
  if (len > model->config().max_seq_len)
    return error(ErrorCode::kInvalidArgument, "window of {} tokens is longer than the model's context of {}", len,
                 model->config().max_seq_len);
  if (protocol.score_from < 0 || protocol.score_from > len - 2)
    return error(ErrorCode::kInvalidArgument, "--score-from {} must be in [0, {}]", protocol.score_from, len - 2);
  int64_t dropped = 0;
  LOWBIT_ASSIGN_OR_RETURN(auto starts, window_starts(int64_t(tokens.size()), protocol.windows, &dropped));
  for (int32_t t : tokens)
    if (t < 0 || t >= vocab)
      return error(ErrorCode::kInvalidArgument, "token {} is outside the vocabulary [0, {})", t, vocab);

  // Windows are independent: evaluate them in parallel, one Session per thread (BLAS and the
  // attention loop then run single-threaded inside). One coarse parallel loop degrades gracefully
  // when another process holds a core, where many small parallel regions stall at every barrier.
  // Each window has its own accumulator and they are merged in window order, so the figures do
  // not depend on the thread count.
  std::vector<MetricAccumulator> per_window(starts.size());
  std::vector<Status> failures(starts.size());
  int64_t done = 0;
#pragma omp parallel
  {
    Session session(model, len);
    std::unique_ptr<Session> ref_session = reference ? std::make_unique<Session>(reference, len) : nullptr;
    std::vector<float> logits, ref_logits;
#pragma omp for schedule(dynamic, 1)
    for (size_t w = 0; w < starts.size(); ++w) {
      std::span<const int> window(tokens.data() + starts[w], size_t(len));
      session.reset();
      Status s = session.forward(window, true, &logits);
      if (s.ok() && ref_session) {
        ref_session->reset();
        s = ref_session->forward(window, true, &ref_logits);
      }
      if (!s.ok()) {
        failures[w] = s;
        continue;
      }
      for (int p = protocol.score_from; p <= len - 2; ++p)
        per_window[w].add(&logits[size_t(p) * vocab], ref_session ? &ref_logits[size_t(p) * vocab] : nullptr, vocab,
                          window[size_t(p) + 1]);
#pragma omp critical(lowbit_eval_progress)
      {
        ++done;
        if (progress) progress(done, int64_t(starts.size()));
      }
    }
  }
  MetricAccumulator acc;
  for (size_t w = 0; w < starts.size(); ++w) {
    LOWBIT_RETURN_IF_ERROR(failures[w]);
    acc.merge(per_window[w]);
  }
  EvalResult r = acc.result();
  r.windows = int64_t(starts.size());
  r.dropped_tokens = dropped;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace lowbit
