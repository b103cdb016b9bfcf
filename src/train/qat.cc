#include "train/qat.h"

#include <algorithm>
#include <cmath>

#include "quant/fake_quant.h"
#include "quant/rtn.h"
#include "train/train_graph.h"

namespace lowbit::train {

namespace {

std::vector<const TensorSlot*> block_linears(const ParamLayout& layout) {
  std::vector<const TensorSlot*> out;
  for (const TensorSlot& s : layout.slots)
    if (s.is_block_linear) out.push_back(&s);
  return out;
}

}  // namespace

Status fake_quantize_params(const ParamLayout& layout, const FormatSpec& spec, const std::vector<float>& master,
                            std::vector<float>& effective) {
  LOWBIT_CHECK(master.size() == layout.total);
  effective = master;
  const auto slots = block_linears(layout);
  std::vector<Status> status(slots.size());
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < slots.size(); ++i) {
    const TensorSlot& s = *slots[i];
    status[i] = fake_quantize(std::span<const float>(master.data() + s.offset, s.size), s.shape[0], s.shape[1], spec,
                              std::span<float>(effective.data() + s.offset, s.size));
  }
  for (size_t i = 0; i < slots.size(); ++i)
    if (!status[i].ok()) return status[i].with_context(slots[i]->name);
  return Status::Ok();
}

Result<std::map<std::string, std::shared_ptr<const QuantizedMatrix>>> quantize_block_linears(
    const ParamLayout& layout, const FormatSpec& spec, const std::vector<float>& params) {
  std::map<std::string, std::shared_ptr<const QuantizedMatrix>> out;
  for (const TensorSlot* s : block_linears(layout)) {
    auto q = rtn_quantize(std::span<const float>(params.data() + s->offset, s->size), s->shape[0], s->shape[1], spec);
    if (!q.ok()) return q.status().with_context(s->name);
    out[s->name] = std::make_shared<const QuantizedMatrix>(std::move(q).value());
  }
  return out;
}

std::vector<float> teacher_log_probs(const ParamLayout& layout, const std::vector<float>& teacher_params,
                                     const std::vector<std::vector<int>>& windows, int seq) {
  const int V = layout.config.vocab_size;
  const int chunk = int(std::min<size_t>(windows.size(), 8));
  std::vector<float> out(windows.size() * size_t(seq) * V);
  TrainGraph<float> graph(layout, chunk, seq);
  std::vector<int32_t> tokens(size_t(chunk) * seq);
  for (size_t w0 = 0; w0 < windows.size(); w0 += size_t(chunk)) {
    const size_t n = std::min(windows.size() - w0, size_t(chunk));
    for (int b = 0; b < chunk; ++b) {
      const auto& win = windows[w0 + std::min(size_t(b), n - 1)];
      LOWBIT_CHECK(int(win.size()) >= seq);
      std::copy_n(win.begin(), seq, tokens.begin() + std::ptrdiff_t(b) * seq);
    }
    graph.forward(teacher_params.data(), tokens.data());
    const auto& logits = graph.logits();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < int64_t(n) * seq; ++r) {
      const float* x = logits.data() + size_t(r) * V;
      double m = -INFINITY, s = 0;
      for (int i = 0; i < V; ++i) m = std::max(m, double(x[i]));
      for (int i = 0; i < V; ++i) s += std::exp(double(x[i]) - m);
      const double lse = m + std::log(s);
      float* dst = out.data() + (w0 * seq + size_t(r)) * V;
      for (int i = 0; i < V; ++i) dst[i] = float(double(x[i]) - lse);
    }
  }
  return out;
}

double mean_kld(const ParamLayout& layout, const std::vector<float>& params,
                const std::vector<std::vector<int>>& windows, const std::vector<int>& window_ids,
                const std::vector<float>& teacher_lp, int seq) {
  if (window_ids.empty()) return 0;
  const int V = layout.config.vocab_size;
  const int chunk = int(std::min<size_t>(window_ids.size(), 8));
  TrainGraph<float> graph(layout, chunk, seq);
  std::vector<int32_t> tokens(size_t(chunk) * seq);
  std::vector<float> teacher(size_t(chunk) * seq * V);
  double sum = 0;
  int64_t rows = 0;
  for (size_t i0 = 0; i0 < window_ids.size(); i0 += size_t(chunk)) {
    const size_t n = std::min(window_ids.size() - i0, size_t(chunk));
    for (int b = 0; b < chunk; ++b) {
      const int w = window_ids[i0 + std::min(size_t(b), n - 1)];
      std::copy_n(windows[size_t(w)].begin(), seq, tokens.begin() + std::ptrdiff_t(b) * seq);
      std::copy_n(teacher_lp.begin() + std::ptrdiff_t(size_t(w) * seq * V), size_t(seq) * V,
                  teacher.begin() + std::ptrdiff_t(size_t(b) * seq * V));
    }
    graph.forward(params.data(), tokens.data());
    // distillation() averages over all chunk rows; padded rows repeat the last window, so weight
    // the chunk by its real windows only when it is full, and recompute otherwise.
    if (n == size_t(chunk)) {
      sum += graph.distillation(teacher.data()) * double(chunk) * seq;
      rows += int64_t(chunk) * seq;
    } else {
      const auto& logits = graph.logits();
      for (size_t r = 0; r < n * size_t(seq); ++r) {
        const float* x = logits.data() + r * V;
        const float* t = teacher.data() + r * V;
        double m = -INFINITY, s = 0;
        for (int i = 0; i < V; ++i) m = std::max(m, double(x[i]));
        for (int i = 0; i < V; ++i) s += std::exp(double(x[i]) - m);
        const double lse = m + std::log(s);
        for (int i = 0; i < V; ++i) sum += std::exp(double(t[i])) * (double(t[i]) - (double(x[i]) - lse));
      }
      rows += int64_t(n) * seq;
    }
  }
  return sum / double(rows);
}

}  // namespace lowbit::train
