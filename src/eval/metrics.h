// Perplexity, KL divergence to a reference model, and top-1 agreement, on the same tokens.
//
// Protocol (printed beside every figure, docs/eval.md): the token stream is cut into windows;
// each window is evaluated on its own from position 0 (no BOS is added); position t predicts
// token t+1, and positions [score_from, length-2] are scored. With the default score_from = 0
// every position after the first of each window is a scored target (GPTQ-paper style).
// perplexity = exp(mean NLL); KLD = mean over scored positions of KL(P_ref ‖ P_model) in nats,
// over the full vocabulary; top-1 = share of scored positions where both argmaxes agree.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "eval/token_data.h"
#include "model/model.h"

namespace lowbit {

struct EvalProtocol {
  WindowSpec windows;
  int score_from = 0;  // first scored position within a window
  std::string source;  // the token file or text file
  std::string describe() const;
};

struct EvalResult {
  double perplexity = 0;
  double mean_nll = 0;
  double kld = 0;          // only with a reference model
  double top1 = 0;         // only with a reference model
  double reference_perplexity = 0;
  int64_t tokens_scored = 0;
  int64_t windows = 0;
  int64_t dropped_tokens = 0;
  bool has_reference = false;
  double seconds = 0;
};

// Per-position accumulation, exposed for tests: adds one position's logits.
class MetricAccumulator {
 public:
  void add(const float* logits, const float* reference_logits, int vocab, int target);
  void merge(const MetricAccumulator& other);
  EvalResult result() const;

 private:
  double nll_sum_ = 0, ref_nll_sum_ = 0, kld_sum_ = 0;
  int64_t agree_ = 0, count_ = 0;
  bool has_reference_ = false;
};

// Evaluates `model` (and compares with `reference` when non-null) on the windows of `tokens`.
// `progress(done, total)` is called after each window when given.
Result<EvalResult> evaluate(std::shared_ptr<const Model> model, std::shared_ptr<const Model> reference,
                            const std::vector<int32_t>& tokens, const EvalProtocol& protocol,
                            const std::function<void(int64_t, int64_t)>& progress = {});

// log-softmax of one row in double (numerically stable).
void log_softmax(const float* logits, int n, std::vector<double>* out);

}  // namespace lowbit
