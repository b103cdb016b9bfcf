// Asymmetric calibration (GPTAQ, Li et al. 2025): quantize a layer so that its output on the
// quantized model's inputs x̃ matches the *original* model's output on the original inputs x,
//     min over Q of  Σ_t ‖Q x̃_t − W x_t‖²,
// instead of GPTQ's Σ_t ‖(Q − W) x̃_t‖². Each layer can then undo part of the error that the
// layers quantized before it left in its input.
//
// The objective splits exactly. With H = 2/n Σ x̃ x̃ᵀ (quant/hessian.h) and the input shift
// D = 2/n Σ (x − x̃) x̃ᵀ, the unconstrained minimizer is the least-squares target
//     W* = W (H + D) H⁻¹ = W + W D H⁻¹,
// and for any Q, Σ‖Q x̃ − W x‖² = Σ‖(Q − W*) x̃‖² + Σ‖W* x̃ − W x‖² (the residual of W* is
// orthogonal to the x̃). So GPTQ run on W* with the same H minimizes the asymmetric objective
// over the grid, and everything GPTQ does (groups, clipping, act-order) applies unchanged.
// H is dampened as GPTQ dampens it (λ = percdamp · mean diag H), which shrinks the correction
// toward W where an input direction was rarely seen.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"

namespace lowbit {

// Accumulates D = 2/n Σ_t (x_t − x̃_t) x̃_tᵀ [dim, dim] (full, not symmetric) in fp64, token by
// token paired: row t of `reference` (x, the original model's input) with row t of `quantized`.
class InputShiftAccumulator {
 public:
  explicit InputShiftAccumulator(int64_t dim);

  int64_t dim() const { return dim_; }
  int64_t rows() const { return rows_; }
  // reference, quantized: [n, dim] row-major, the same tokens in the same order.
  void add(std::span<const float> reference, std::span<const float> quantized, int64_t n);
  // 2/n Σ (x − x̃) x̃ᵀ; all zeros before any row was added.
  std::vector<double> shift() const;
  int64_t bytes() const {
    return int64_t((sum_.size() + diff_.capacity() + batch_.capacity()) * sizeof(double));
  }

 private:
  int64_t dim_;
  int64_t rows_ = 0;
  std::vector<double> sum_;           // [dim, dim] Σ (x − x̃) x̃ᵀ
  std::vector<double> diff_, batch_;  // [slice, dim] fp64 copies of the current slice
};

// The correction of one input, shared by every layer that reads it (q/k/v, gate/up): the
// [cols, cols] matrix C = (H + λI)⁻¹ Dᵀ, so that W* = W + W Cᵀ, with λ = percdamp · mean diag H;
// hessian and shift [cols, cols] (H symmetric, only its upper triangle read). Like GPTQ, retries
// with 10× the dampening (damp_retries times) if H + λI does not factorize; fails when it never
// does. All zeros when the input has no energy (nothing to fit).
Result<std::vector<double>> asymmetric_correction(int64_t cols, std::span<const double> hessian,
                                                  std::span<const double> shift, double percdamp, int damp_retries);

// W* = W + W Cᵀ for weights [rows, cols] and a correction from asymmetric_correction, in fp64.
std::vector<float> apply_asymmetric_correction(std::span<const float> weights, int64_t rows, int64_t cols,
                                               std::span<const double> correction);

// Both steps for one layer: W* = W + W D (H + λI)⁻¹.
Result<std::vector<float>> asymmetric_target(std::span<const float> weights, int64_t rows, int64_t cols,
                                             std::span<const double> hessian, std::span<const double> shift,
                                             double percdamp, int damp_retries);

}  // namespace lowbit
