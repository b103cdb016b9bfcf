// AdamW (decoupled weight decay, Loshchilov & Hutter), global-norm gradient clipping and the
// learning-rate schedule (linear warm-up, then cosine decay to a floor), as in llm.c/nanoGPT.
#pragma once

#include <cstdint>
#include <vector>

#include "train/param_layout.h"

namespace lowbit::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;  // decoupled; never applied to norm weights
};

// Per-parameter optimizer state; `step` counts the updates taken (for bias correction).
struct AdamWState {
  std::vector<float> m, v;  // [layout.total]
  int64_t step = 0;
};

// decay_mask[i] = 1 where weight decay applies (every slot that is not a norm).
std::vector<uint8_t> weight_decay_mask(const ParamLayout& layout);

// One update of params with gradient g at learning rate lr:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;  m̂ = m/(1-b1^t);  v̂ = v/(1-b2^t)
//   p -= lr (m̂ / (sqrt(v̂) + eps) + wd·p·mask)
void adamw_step(std::vector<float>& params, const std::vector<float>& grads, const std::vector<uint8_t>& decay_mask,
                const AdamWOptions& options, double lr, AdamWState& state);

// Scales grads so that their global L2 norm is at most max_norm (<= 0: no clipping); returns the
// norm before clipping.
double clip_grad_norm(std::vector<float>& grads, double max_norm);

struct LrSchedule {
  double peak = 1e-3;
  double min_ratio = 0.1;  // floor = peak * min_ratio
  int64_t warmup = 0;
  int64_t total = 1;
  // Linear warm-up over steps [0, warmup), then cosine from peak to the floor at step total-1.
  double at(int64_t step) const;
};

}  // namespace lowbit::train
