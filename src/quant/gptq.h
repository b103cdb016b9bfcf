// GPTQ (Frantar et al. 2022, IST-DASLab gptq.py `fasterquant`) on plain matrices: a [rows, cols]
// fp32 weight and the Hessian H [cols, cols] of its inputs in, a QuantizedMatrix out. No model,
// no files: the layer-by-layer driver that collects H lives in calib/.
//
// The algorithm, in the order it runs:
//   1. Dead inputs (H[c, c] == 0: the input is always zero) get H[c, c] = 1 and W[:, c] = 0.
//   2. Act-order (optional): columns are processed by descending H[c, c], the loudest first.
//   3. Dampening: H += λ I with λ = percdamp · mean(diag H). If the Cholesky factorization still
//      fails, percdamp is multiplied by 10 and the factorization retried (damp_retries times)
//      before giving up with kInvalidArgument.
//   4. U = upper Cholesky factor of H⁻¹ (linalg::cholesky_inverse_upper, in fp64).
//   5. Column by column j (in processing order), with d = U[j, j]:
//        q = dequantize(quantize(w_j)) on the format's grid (fit_group/encode_value/decode_value,
//            the quantizer RTN uses, so with H = I the result equals RTN bit for bit)
//        e = (w_j − q) / d
//        w_k −= e · U[j, k] for every later column k       (error compensation)
//      Updates are lazy in blocks of `block_size` columns: inside a block they are applied at
//      once, to later blocks as one gemm when the block ends (the result does not depend on the
//      block size, up to fp rounding).
//   6. Group-wise formats refit a group's parameters when its first column is reached, from the
//      group's current (error-compensated) weights. Difference from gptq.py (*): there the fit
//      reads W, which lacks the updates made earlier inside the same block, so its result depends
//      on the block size when the group is smaller than the block; here a block is cut short
//      where a group would straddle its end, so every fit sees fully updated weights.
//      Static groups (optional) instead fit every group once up front from the original weights,
//      in the natural column order, so groups stay contiguous even with act-order.
//      With act-order and non-static groups, groups are formed in processing order and
//      QuantizedMatrix::g_idx records each input's group.
//   Per-channel and per-tensor formats are fit once, from the whole row / matrix, before step 5.
//   Double-quantized formats (_dq, formats/scale_grid.h) take the tensor's super-scale from the
//   weights before step 5 (dead inputs zeroed); every fit above then snaps its scale to that 8-bit
//   grid before choosing the zero point and codes, the clipping search included.
//
// Proxy loss = Σ (w − q)² / (2 d²) over all weights (gptq.py's printed "error"). It equals
// ½ tr(ΔW H ΔWᵀ) for the dampened H, so with H = 2/n XXᵀ (quant/hessian.h) and λ → 0 it is
// ‖(W − Q) X‖² / n: the mean over tokens of the squared output error, summed over output rows.
//
// Differences from gptq.py, marked (*) above, plus: dead columns are zeroed before the
// per-channel / per-tensor fit (gptq.py fits first), so a dead input cannot widen a row's range.
// Every output row is independent given U, so rows are processed in parallel chunks of fixed
// size; the thread count changes nothing but the blocking inside BLAS (the last bits of sums).
#pragma once

#include <cstdint>
#include <span>

#include "base/status.h"
#include "formats/quantized_matrix.h"
#include "quant/rtn.h"

namespace lowbit {

struct GptqOptions {
  int block_size = 128;     // columns per lazy batch update
  double percdamp = 0.01;   // λ = percdamp · mean(diag H)
  int damp_retries = 4;     // ×10 dampening retries after a failed Cholesky (0 = fail at once)
  bool act_order = false;   // process columns by descending diag H
  bool static_groups = false;  // fit all groups up front from the original weights
  ClipSearch clip;          // optional clipping search at every fit (rtn.h); steps 0 = min/max
  // The clipping search weighs each weight's squared error by diag H of its input (the energy of
  // that input, so the error that reaches the output), as RTN's column_importance does; false =
  // plain squared error, as the reference `mse` mode. With H = I both pick the same parameters.
  bool clip_hessian_weighted = true;
};

struct GptqResult {
  QuantizedMatrix matrix;
  double proxy_loss = 0;     // Σ (w − q)² / (2 d²)
  double percdamp_used = 0;  // the dampening that factorized (> options.percdamp after retries)
  int64_t dead_columns = 0;  // inputs with H[c, c] == 0
};

// weights: [rows, cols] row-major; hessian: [cols, cols], symmetric (only the upper triangle is
// read), finite, with a non-negative diagonal. Fails on a non-quantized spec, bad sizes,
// non-finite input, bad options, or a Hessian that no dampening makes positive definite.
Result<GptqResult> gptq_quantize(std::span<const float> weights, int64_t rows, int64_t cols, const FormatSpec& spec,
                                 std::span<const double> hessian, const GptqOptions& options = {});

}  // namespace lowbit
