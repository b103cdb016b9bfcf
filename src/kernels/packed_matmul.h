// y = x Wᵀ for a packed weight: the threaded driver around the kernel table. Kernels work on row
// ranges; this file pads activations to k_padded, quantizes them when asked, splits rows over
// OpenMP threads and, for prefill, feeds dequantized row tiles to BLAS.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/kernels.h"
#include "kernels/packed_weight.h"

namespace lowbit::kernels {

// Weight-only: exact fp32 activations x [n, cols] -> y [n, rows]. One token runs the gemv kernel
// (codes decoded in registers); more tokens dequantize tiles of rows into an L2-sized fp32 buffer
// and multiply them with BLAS sgemm, so the decode cost is shared by all tokens.
void matmul_f32(const PackedWeight& w, const float* x, int64_t n, float* y, const KernelTable& table = kernels());

// Dynamic int8 activations (W8A8 / W4A8 / W3A8 / W2A8, supports_qd8(w) must hold): each token of x is quantized
// to symmetric int8 with one scale per 32 inputs (from their absmax), then int8 x int8 -> int32
// block dot products.
void matmul_qd8(const PackedWeight& w, const float* x, int64_t n, float* y, const KernelTable& table = kernels());

// Weight-only products on int8 kernels: each token of x goes to the qd8 kernels as two int8
// slices, x ~ s1 q1 + s2 q2 per block of 32 inputs, where q1 is x's qd8 rounding and q2 that of
// the residual x - s1 q1 (kernel_types.h, "qd8"); y is the sum of the two slices' products, one
// pass over the weights (the kernels take the slices as two tokens). Each input is then carried
// to within max|x[block]| / 64516 (|residual| <= s1 / 2, so s2 <= s1 / 254 and the second
// rounding errs by at most s2 / 2): ~16 bits per block where int8 activations keep ~8, far below
// any 4-bit weight's error, and 2^-9 relative is bf16's. Its reason is speed: a vpdpbusd does 64
// multiply-adds, the fp32 FMA kernels 16 plus the decoding, and on the Zen 4 VM of session 10 the
// weight-only int4 / int3 / int2 products read 15-40 % faster this way (docs/results.md).
// supports_qd8(w) must hold; slices is 1 (dynamic int8 activations, as matmul_qd8) or 2.
void matmul_qd8_slices(const PackedWeight& w, const float* x, int64_t n, float* y, int slices,
                       const KernelTable& table = kernels());

// One product of a decode group (one token; weights that read the same input): a packed weight
// (weight-only kernels, or with int8_slices > 0 and supports_qd8 the int8 kernels), or a dense fp32
// weight [rows, cols] for BLAS.
struct GemvPart {
  const PackedWeight* packed = nullptr;
  // 0: fp32 activations (weight-only kernels); 1: dynamic int8 (W8A8 / W4A8 / W3A8 / W2A8); 2: the
  // token as two int8 slices (matmul_qd8_slices).
  int int8_slices = 0;
  const float* dense = nullptr;
  int64_t rows = 0, cols = 0;  // rows: the packed weight's, or fewer for its first rows only
  float* y = nullptr;  // [rows]
};

// y_i = W_i x for one token x [cols] and every part (all with the same cols), in one parallel
// region whose threads split the parts' rows as one range, balanced by bytes (each thread starts
// on its share and then helps the others with theirs, kernels/work_shares.h); x is quantized once
// for all qd8 parts. Products that share an input (q, k, v; gate, up) then cost one thread
// wake-up instead of three or two, and the small ones (k, v) no longer run alone: measured in
// decode, k and v alone read at 10-25% of the bandwidth probe, q 35%, the big products 65-80%.
void gemv_parts(std::span<const GemvPart> parts, const float* x, const KernelTable& table = kernels());

// One token's group_corrections (kernel_types.h) for weight groups of group_size inputs:
// corrections[g] = sum over the blocks b of group g of scales[b] * block_sums[b], in block order.
void qd8_group_corrections(const float* scales, const int32_t* block_sums, int64_t blocks, int64_t group_size,
                           float* corrections);

}  // namespace lowbit::kernels
