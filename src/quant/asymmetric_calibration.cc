#include "quant/asymmetric_calibration.h"

#include <algorithm>

#include "linalg/linalg.h"

namespace lowbit {

InputShiftAccumulator::InputShiftAccumulator(int64_t dim) : dim_(dim), sum_(size_t(dim * dim), 0.0) {
  LOWBIT_CHECK(dim >= 0);
}

void InputShiftAccumulator::add(std::span<const float> reference, std::span<const float> quantized, int64_t n) {
  LOWBIT_CHECK(n >= 0 && reference.size() == size_t(n * dim_) && quantized.size() == size_t(n * dim_));
  constexpr int64_t kSliceRows = 512;  // bounded fp64 copies, as HessianAccumulator
  for (int64_t begin = 0; begin < n; begin += kSliceRows) {
    const int64_t slice = std::min(kSliceRows, n - begin);
    const size_t first = size_t(begin * dim_), count = size_t(slice * dim_);
    batch_.assign(quantized.begin() + first, quantized.begin() + first + count);
    diff_.resize(count);
    for (size_t i = 0; i < count; ++i) diff_[i] = double(reference[first + i]) - batch_[i];
    // sum [dim, dim] += diffᵀ [dim, slice] · batch [slice, dim]
    linalg::gemm_f64(true, false, dim_, dim_, slice, 1.0, diff_.data(), dim_, batch_.data(), dim_, 1.0, sum_.data(),
                     dim_);
  }
  rows_ += n;
}

std::vector<double> InputShiftAccumulator::shift() const {
  std::vector<double> d(sum_.size(), 0.0);
  if (rows_ == 0) return d;
  const double scale = 2.0 / double(rows_);
  for (size_t i = 0; i < d.size(); ++i) d[i] = scale * sum_[i];
  return d;
}

Result<std::vector<double>> asymmetric_correction(int64_t cols, std::span<const double> hessian,
                                                  std::span<const double> shift, double percdamp, int damp_retries) {
  if (cols < 0 || hessian.size() != size_t(cols * cols) || shift.size() != size_t(cols * cols))
    return error(ErrorCode::kInvalidArgument, "asymmetric calibration: sizes do not match {} inputs", cols);
  if (!(percdamp > 0)) return error(ErrorCode::kInvalidArgument, "asymmetric calibration: dampening must be > 0");
  double mean_diag = 0;
  for (int64_t c = 0; c < cols; ++c) mean_diag += hessian[size_t(c * cols + c)];
  mean_diag = cols > 0 ? mean_diag / double(cols) : 0.0;
  std::vector<double> x(size_t(cols * cols), 0.0);
  if (!(mean_diag > 0)) return x;  // no input: nothing to fit

  // C = (H + λI)⁻¹ Dᵀ, so that D (H + λI)⁻¹ = Cᵀ (H symmetric).
  double damp = percdamp;
  Status solved = Status::Ok();
  for (int attempt = 0; attempt <= damp_retries; ++attempt, damp *= 10) {
    std::vector<double> h(hessian.begin(), hessian.end());
    for (int64_t c = 0; c < cols; ++c) h[size_t(c * cols + c)] += damp * mean_diag;
    for (int64_t r = 0; r < cols; ++r)
      for (int64_t c = 0; c < cols; ++c) x[size_t(r * cols + c)] = shift[size_t(c * cols + r)];
    solved = linalg::solve_positive_definite(h, cols, x, cols);
    if (solved.ok()) return x;
  }
  return solved.with_context("asymmetric calibration: the dampened Hessian");
}

std::vector<float> apply_asymmetric_correction(std::span<const float> weights, int64_t rows, int64_t cols,
                                               std::span<const double> correction) {
  LOWBIT_CHECK(rows >= 0 && cols >= 0 && weights.size() == size_t(rows * cols) &&
               correction.size() == size_t(cols * cols));
  std::vector<double> w(weights.begin(), weights.end());
  std::vector<double> target = w;
  linalg::gemm_f64(false, true, rows, cols, cols, 1.0, w.data(), cols, correction.data(), cols, 1.0, target.data(),
                   cols);
  return std::vector<float>(target.begin(), target.end());
}

Result<std::vector<float>> asymmetric_target(std::span<const float> weights, int64_t rows, int64_t cols,
                                             std::span<const double> hessian, std::span<const double> shift,
                                             double percdamp, int damp_retries) {
  if (rows < 0 || cols < 0 || weights.size() != size_t(rows * cols))
    return error(ErrorCode::kInvalidArgument, "asymmetric calibration: sizes do not match a [{}, {}] weight", rows,
                 cols);
  LOWBIT_ASSIGN_OR_RETURN(const std::vector<double> correction,
                          asymmetric_correction(cols, hessian, shift, percdamp, damp_retries));
  return apply_asymmetric_correction(weights, rows, cols, correction);
}

}  // namespace lowbit
