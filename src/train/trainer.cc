#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "base/progress.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace lowbit::train {

namespace {

constexpr char kMagic[8] = {'L', 'B', 'T', 'R', 'A', 'I', 'N', '1'};

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::string format_duration(double s) {
  if (s < 0 || s > 1e7) return "?";
  const int64_t t = int64_t(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

}  // namespace

uint64_t step_seed(uint64_t seed, int64_t step) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * uint64_t(step + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t run_fingerprint(const ParamLayout& layout, const std::string& what) {
  uint64_t h = fnv1a(what.data(), what.size());
  for (const TensorSlot& s : layout.slots) {
    h = fnv1a(s.name.data(), s.name.size(), h);
    h = fnv1a(s.shape.data(), s.shape.size() * sizeof(int64_t), h);
  }
  return h;
}

Status save_train_state(const std::string& path, uint64_t fingerprint, const TrainState& state) {
  const uint64_t n = state.params.size();
  if (state.adam.m.size() != n || state.adam.v.size() != n)
    return error(ErrorCode::kInternal, "{}: optimizer state has the wrong size", path);
  LOWBIT_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::create(path));
  const int64_t step = state.step, adam_step = state.adam.step;
  LOWBIT_RETURN_IF_ERROR(f.write(kMagic, sizeof(kMagic)));
  LOWBIT_RETURN_IF_ERROR(f.write(&fingerprint, 8));
  LOWBIT_RETURN_IF_ERROR(f.write(&n, 8));
  LOWBIT_RETURN_IF_ERROR(f.write(&step, 8));
  LOWBIT_RETURN_IF_ERROR(f.write(&adam_step, 8));
  LOWBIT_RETURN_IF_ERROR(f.write(state.params.data(), n * 4));
  LOWBIT_RETURN_IF_ERROR(f.write(state.adam.m.data(), n * 4));
  LOWBIT_RETURN_IF_ERROR(f.write(state.adam.v.data(), n * 4));
  return f.commit();
}

Result<TrainState> load_train_state(const std::string& path, uint64_t fingerprint, size_t n_params) {
  LOWBIT_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  const uint8_t* p = file->data();
  const uint64_t size = file->size();
  constexpr uint64_t kHeader = 8 + 8 * 4;
  if (size < kHeader || std::memcmp(p, kMagic, 8) != 0)
    return error(ErrorCode::kFormat, "{}: not a lowbit training state file (bad magic or too short)", path);
  uint64_t fp, n;
  int64_t step, adam_step;
  std::memcpy(&fp, p + 8, 8);
  std::memcpy(&n, p + 16, 8);
  std::memcpy(&step, p + 24, 8);
  std::memcpy(&adam_step, p + 32, 8);
  if (fp != fingerprint)
    return error(ErrorCode::kInvalidArgument,
                 "{}: state belongs to a different run (model, format or data differ); remove it or drop --resume", path);
  if (n != n_params)
    return error(ErrorCode::kFormat, "{}: holds {} parameters, the model has {}", path, n, n_params);
  if (step < 0 || adam_step < 0) return error(ErrorCode::kFormat, "{}: negative step count", path);
  if (size != kHeader + 3 * n * 4)
    return error(ErrorCode::kFormat, "{}: {} bytes, expected {} for {} parameters", path, size, kHeader + 3 * n * 4, n);
  TrainState s;
  s.step = step;
  s.adam.step = adam_step;
  s.params.resize(n);
  s.adam.m.resize(n);
  s.adam.v.resize(n);
  std::memcpy(s.params.data(), p + kHeader, n * 4);
  std::memcpy(s.adam.m.data(), p + kHeader + n * 4, n * 4);
  std::memcpy(s.adam.v.data(), p + kHeader + 2 * n * 4, n * 4);
  return s;
}

Result<TrainLoopResult> run_train_loop(const ParamLayout& layout, const TrainLoopOptions& o,
                                       const std::vector<uint8_t>& decay_mask, uint64_t fingerprint,
                                       TrainState& state, const LossAndGradFn& loss_and_grad, const EvalFn& eval) {
  LOWBIT_CHECK(state.params.size() == layout.total);
  if (o.steps <= 0) return error(ErrorCode::kInvalidArgument, "--steps must be positive");
  LrSchedule sched = o.lr;
  sched.total = o.steps;
  const int64_t log_every = o.log_every > 0 ? o.log_every : std::max<int64_t>(1, o.steps / 20);
  std::vector<float> grads(layout.total);
  TrainLoopResult result;
  const int64_t first = state.step;
  ProgressBar bar(o.label, o.steps - first);
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  double interval_loss = 0;
  int64_t interval_steps = 0;
  std::string last_line;
  while (state.step < o.steps) {
    const int64_t step = state.step;
    std::fill(grads.begin(), grads.end(), 0.0f);
    const double loss = loss_and_grad(step, state.params, grads);
    if (!std::isfinite(loss))
      return error(ErrorCode::kInternal, "step {}: loss is {}; lower --lr or check the data", step, loss);
    const double gnorm = clip_grad_norm(grads, o.grad_clip);
    const double lr = sched.at(step);
    adamw_step(state.params, grads, decay_mask, o.adamw, lr, state.adam);
    state.step += 1;
    interval_loss += loss;
    interval_steps += 1;

    const double secs = elapsed();
    const double done = double(state.step - first);
    const double tps = secs > 0 ? done * double(o.tokens_per_step) / secs : 0;
    const double eta = done > 0 ? secs / done * double(o.steps - state.step) : 0;
    const std::string detail = fmt::format("loss {:.4f} lr {:.2e} {:.0f} tok/s", loss, lr, tps);
    bar.update(state.step - first, detail);
    const bool last = state.step == o.steps;
    if (state.step % log_every == 0 || last) {
      result.final_loss = interval_loss / double(interval_steps);
      last_line = fmt::format("{} step {}/{}  loss {:.4f}  lr {:.3e}  |g| {:.3f}  {:.0f} tok/s  elapsed {}  ETA {}",
                              o.label, state.step, o.steps, result.final_loss, lr, gnorm, tps, format_duration(secs),
                              format_duration(eta));
      interval_loss = 0;
      interval_steps = 0;
      std::printf("%s\n", last_line.c_str());
      std::fflush(stdout);
    }
    if (eval && ((o.eval_every > 0 && state.step % o.eval_every == 0) || last)) {
      result.last_eval = eval(state.step, state.params);
      std::printf("%s eval at step %lld: %s\n", o.label.c_str(), (long long)state.step, result.last_eval.c_str());
      std::fflush(stdout);
    }
    if (!o.state_path.empty() && ((o.save_every > 0 && state.step % o.save_every == 0) || last))
      LOWBIT_RETURN_IF_ERROR(save_train_state(o.state_path, fingerprint, state));
  }
  result.seconds = elapsed();
  result.tokens_per_second =
      result.seconds > 0 ? double(state.step - first) * double(o.tokens_per_step) / result.seconds : 0;
  return result;
}

}  // namespace lowbit::train
