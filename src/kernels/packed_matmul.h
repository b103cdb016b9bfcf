// y = x Wᵀ for a packed weight: the threaded driver around the kernel table. Kernels work on row
// ranges; this file pads activations to k_padded, quantizes them when asked, splits rows over
// OpenMP threads and, for prefill, feeds dequantized row tiles to BLAS.
#pragma once

#include <cstdint>

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

// One token's group_corrections (kernel_types.h) for weight groups of group_size inputs:
// corrections[g] = sum over the blocks b of group g of scales[b] * block_sums[b], in block order.
void qd8_group_corrections(const float* scales, const int32_t* block_sums, int64_t blocks, int64_t group_size,
                           float* corrections);

}  // namespace lowbit::kernels
