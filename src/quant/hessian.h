// The GPTQ Hessian of a linear layer: H = 2/n Σ_t x_t x_tᵀ over the n rows (tokens) x_t of the
// layer's calibration inputs, [in_features, in_features].
//
// With this normalization the quadratic GPTQ minimizes, ½ tr(ΔW H ΔWᵀ), is the mean over tokens
// of the squared output error ‖ΔW x_t‖², so per-layer proxy losses read as output MSE sums.
// (gptq.py divides by the number of sequences instead of tokens; the scale of H changes neither
// the quantized result nor the relative dampening, only the proxy loss's unit.)
//
// Rows arrive in fp32 and are summed in fp64 with BLAS dsyrk, so a sum over tens of thousands of
// tokens keeps full precision regardless of the order the batches came in.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lowbit {

class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t dim);

  int64_t dim() const { return dim_; }
  int64_t rows() const { return rows_; }  // tokens seen so far
  // x: [n, dim] row-major.
  void add(std::span<const float> x, int64_t n);
  // 2/n Σ x xᵀ as a full symmetric [dim, dim] matrix; all zeros before any row was added.
  std::vector<double> hessian() const;
  // Bytes held (for memory accounting by callers).
  int64_t bytes() const { return int64_t(sum_.size() * sizeof(double) + batch_.capacity() * sizeof(double)); }

 private:
  int64_t dim_;
  int64_t rows_ = 0;
  std::vector<double> sum_;    // [dim, dim] upper triangle of Σ x xᵀ
  std::vector<double> batch_;  // [n, dim] fp64 copy of the current batch
};

}  // namespace lowbit
