// The training loop shared by `lowbit train` (cross-entropy from random init) and `lowbit qat`
// (distillation through fake-quantized weights): learning-rate schedule, gradient clipping,
// AdamW, a progress line with loss / lr / tokens per second / ETA, periodic evaluation, and
// resumable state (parameters + optimizer moments + step) saved atomically every N steps.
//
// The loss itself is a callback, so the loop knows nothing about data or quantization.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"
#include "train/optimizer.h"
#include "train/param_layout.h"

namespace lowbit::train {

struct TrainLoopOptions {
  int64_t steps = 1000;
  LrSchedule lr;           // lr.total is set to steps by the loop
  AdamWOptions adamw;
  double grad_clip = 1.0;  // global L2 norm; <= 0 disables
  int64_t tokens_per_step = 0;  // for tokens/s in the progress line
  int64_t log_every = 0;        // a progress line on stdout every N steps (0: ~20 lines per run)
  int64_t eval_every = 0;       // 0: only at the end
  int64_t save_every = 0;       // 0: never (needs state_path)
  std::string state_path;       // resumable state file
  std::string label = "train";
};

// Parameters + optimizer state + the number of steps taken.
struct TrainState {
  std::vector<float> params;
  AdamWState adam;
  int64_t step = 0;
};

// A fingerprint of what is being trained (config, kind, data); a state file from another run
// is refused on resume.
uint64_t run_fingerprint(const ParamLayout& layout, const std::string& what);
// Binary state file: "LBTRAIN1", u64 fingerprint, u64 n, i64 step, i64 adam step, then params,
// m, v as n float32 each. Written atomically.
Status save_train_state(const std::string& path, uint64_t fingerprint, const TrainState& state);
Result<TrainState> load_train_state(const std::string& path, uint64_t fingerprint, size_t n_params);

// Computes the mean loss of step `step` at `params` and ADDS its gradient to `grads` (zeroed by
// the loop). May rewrite grads afterwards (e.g. masks) but must not touch params.
using LossAndGradFn = std::function<double(int64_t step, const std::vector<float>& params, std::vector<float>& grads)>;
// Returns a line of held-out figures for the log (called every eval_every steps and at the end).
using EvalFn = std::function<std::string(int64_t step, const std::vector<float>& params)>;

struct TrainLoopResult {
  double final_loss = 0;  // mean training loss over the last logging interval
  double seconds = 0;     // wall time of this run of the loop (not counting resumed work)
  double tokens_per_second = 0;
  std::string last_eval;
};

// Runs steps [state.step, options.steps). decay_mask from weight_decay_mask(layout).
Result<TrainLoopResult> run_train_loop(const ParamLayout& layout, const TrainLoopOptions& options,
                                       const std::vector<uint8_t>& decay_mask, uint64_t fingerprint,
                                       TrainState& state, const LossAndGradFn& loss_and_grad, const EvalFn& eval);

// A seed for step `step` of a run seeded with `seed` (splitmix64): batch sampling depends only on
// (seed, step), so a resumed run draws the same batches as an uninterrupted one.
uint64_t step_seed(uint64_t seed, int64_t step);

}  // namespace lowbit::train
