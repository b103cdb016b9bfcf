#include "train/optimizer.h"

#include <cmath>

namespace lowbit::train {

std::vector<uint8_t> weight_decay_mask(const ParamLayout& layout) {
  std::vector<uint8_t> mask(layout.total, 1);
  for (const TensorSlot& s : layout.slots)
    if (s.is_norm) std::fill(mask.begin() + std::ptrdiff_t(s.offset), mask.begin() + std::ptrdiff_t(s.offset + s.size), 0);
  return mask;
}

void adamw_step(std::vector<float>& params, const std::vector<float>& grads, const std::vector<uint8_t>& decay_mask,
                const AdamWOptions& o, double lr, AdamWState& state) {
  const size_t n = params.size();
  LOWBIT_CHECK(grads.size() == n && decay_mask.size() == n);
  if (state.m.size() != n) state.m.assign(n, 0.0f), state.v.assign(n, 0.0f);
  state.step += 1;
  const double c1 = 1.0 - std::pow(o.beta1, double(state.step));
  const double c2 = 1.0 - std::pow(o.beta2, double(state.step));
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; ++i) {
    const double g = grads[i];
    const double m = o.beta1 * state.m[i] + (1.0 - o.beta1) * g;
    const double v = o.beta2 * state.v[i] + (1.0 - o.beta2) * g * g;
    state.m[i] = float(m);
    state.v[i] = float(v);
    const double update = (m / c1) / (std::sqrt(v / c2) + o.eps) + (decay_mask[i] ? o.weight_decay * params[i] : 0.0);
    params[i] = float(double(params[i]) - lr * update);
  }
}

double clip_grad_norm(std::vector<float>& grads, double max_norm) {
  double ss = 0;
#pragma omp parallel for reduction(+ : ss) schedule(static) if (grads.size() > 65536)
  for (size_t i = 0; i < grads.size(); ++i) ss += double(grads[i]) * grads[i];
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float s = float(max_norm / norm);
    for (float& g : grads) g *= s;
  }
  return norm;
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup) return peak * double(step + 1) / double(warmup);
  const int64_t span = total - 1 - warmup;
  if (span <= 0) return peak;
  const double progress = std::min(1.0, double(step - warmup) / double(span));
  const double floor = peak * min_ratio;
  return floor + 0.5 * (peak - floor) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace lowbit::train
