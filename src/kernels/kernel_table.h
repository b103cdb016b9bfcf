// The table of kernels one ISA provides, by contract (XNNPACK naming):
//
//   gemv_<weights>_f32      one token, fp32 activations, weights decoded in registers, fp32 out
//   dequant_<weights>_f32   rows of weights decoded to fp32 (prefill tiles fed to BLAS sgemm)
//   quantize_f32_qd8        one token of fp32 activations to dynamic symmetric int8 ("qd8"), one
//                           scale per 32 inputs
//   quantize_f32_qd8x2      the same token as two qd8 slices, x ~ s1 q1 + s2 q2 (weight-only
//                           products on the int8 kernels, packed_matmul.h)
//   gemm_qd8_<weights>_f32  n tokens of qd8 activations x integer weights, int32 dot products per
//                           group, fp32 out (n = 1 is the decode case)
//
// where <weights> is f16 | bf16 | q8g | q4g | q3g | q2g (integer grid, per group; per channel is
// one group spanning the row) | nf4g | fp8c (E4M3, one scale per row) | q8p (int8 per channel in
// VNNI panels) | q4p (int4 per group in double VNNI panels) | q2p / q3p (int2 / int3 per group in
// quad VNNI panels); for these panel kinds only the qd8 gemm is fast, the other entries are the
// reference | q2l / q3l (int2 / int3 per group in lane panels for table-lookup gemv: their gemv and
// dequant are fast, no qd8 gemm). Layouts:
// kernel_types.h.
//
// Every kernel works on a row range [row_begin, row_end) and is single-threaded; the driver
// (packed_matmul.cc) splits rows across OpenMP threads. Pointers to unsupported entries are null.
// Included by per-ISA translation units: declarations and plain data only (see kernel_types.h).
#pragma once

#include <cstdint>

#include "kernels/kernel_types.h"

namespace lowbit::kernels {

enum class Isa : uint8_t { kRef, kAvx2, kAvx512 };

// y[r] = sum_k W[r, k] * x[k] for r in [row_begin, row_end); x has k_padded entries (zero tail).
using GemvF32Fn = void (*)(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const float* x,
                           float* y);
// out[(r - row_begin) * w.k_padded + k] = W[r, k], bit-identical to the scalar definition in
// kernel_types.h (and so to formats/ dequantize()): one fp32 multiply scale * (code - zero).
using DequantFn = void (*)(const PackedWeightView& w, int64_t row_begin, int64_t row_end, float* out);
// One token: x [k] -> q [k_padded] (zero beyond k), scales and block_sums [k_padded / kBlock]
// (kernel_types.h, "qd8").
using QuantizeQd8Fn = void (*)(const float* x, int64_t k, int64_t k_padded, int8_t* q, float* scales,
                               int32_t* block_sums);
// y[t * ldy + r] = sum_g scales[r, g] * sum_{blocks b of g} a.scales[t, b] * D[t, r, b] for every
// token t < a.tokens, with the exact integer D[t, r, b] = sum_{k in b} (code[r, k] - zero[r, g]) * q[t, k].
using GemmQd8Fn = void (*)(const PackedWeightView& w, int64_t row_begin, int64_t row_end,
                           const QuantizedActivationsView& a, float* y, int64_t ldy);

// The forward pass's element-wise work that calls exp (one token's SwiGLU and attention rows take
// ~11,000 exp per layer on TinyLlama, ~80 us with the C library's scalar expf):
//   out[i] = g[i] / (1 + exp(-g[i])) * u[i]     (SwiGLU: silu(gate) * up; out may be gate)
using SiluMulFn = void (*)(const float* gate, const float* up, int64_t n, float* out);
//   row[i] = exp(row[i] - max(row)) / sum_j exp(row[j] - max(row))   in place, n >= 1
using SoftmaxFn = void (*)(float* row, int64_t n);

struct KernelTable {
  Isa isa = Isa::kRef;
  const char* name = "ref";  // "ref", "avx2", "avx512", "avx512_vnni"

  // Weight-only (fp32 activations): decode.
  GemvF32Fn gemv_f16_f32 = nullptr;
  GemvF32Fn gemv_bf16_f32 = nullptr;
  GemvF32Fn gemv_q8g_f32 = nullptr;
  GemvF32Fn gemv_q4g_f32 = nullptr;
  GemvF32Fn gemv_q3g_f32 = nullptr;
  GemvF32Fn gemv_q2g_f32 = nullptr;
  GemvF32Fn gemv_nf4g_f32 = nullptr;
  GemvF32Fn gemv_fp8c_f32 = nullptr;
  GemvF32Fn gemv_q8p_f32 = nullptr;
  GemvF32Fn gemv_q4p_f32 = nullptr;
  GemvF32Fn gemv_q2p_f32 = nullptr;
  GemvF32Fn gemv_q3p_f32 = nullptr;
  GemvF32Fn gemv_q2l_f32 = nullptr;
  GemvF32Fn gemv_q3l_f32 = nullptr;

  // Weight-only: tiles for prefill.
  DequantFn dequant_f16_f32 = nullptr;
  DequantFn dequant_bf16_f32 = nullptr;
  DequantFn dequant_q8g_f32 = nullptr;
  DequantFn dequant_q4g_f32 = nullptr;
  DequantFn dequant_q3g_f32 = nullptr;
  DequantFn dequant_q2g_f32 = nullptr;
  DequantFn dequant_nf4g_f32 = nullptr;
  DequantFn dequant_fp8c_f32 = nullptr;
  DequantFn dequant_q8p_f32 = nullptr;
  DequantFn dequant_q4p_f32 = nullptr;
  DequantFn dequant_q2p_f32 = nullptr;
  DequantFn dequant_q3p_f32 = nullptr;
  DequantFn dequant_q2l_f32 = nullptr;
  DequantFn dequant_q3l_f32 = nullptr;

  // Dynamic int8 activations: W8A8, W4A8, W3A8, W2A8.
  QuantizeQd8Fn quantize_f32_qd8 = nullptr;
  // Two slices: q [2, k_padded], scales and block_sums [2, k_padded / kBlock]; slice 1 is
  // quantize_f32_qd8 of x, slice 2 that of the residual x - s1 q1 formed with one fma per input.
  QuantizeQd8Fn quantize_f32_qd8x2 = nullptr;
  GemmQd8Fn gemm_qd8_q8g_f32 = nullptr;
  GemmQd8Fn gemm_qd8_q4g_f32 = nullptr;
  GemmQd8Fn gemm_qd8_q3g_f32 = nullptr;
  GemmQd8Fn gemm_qd8_q2g_f32 = nullptr;
  GemmQd8Fn gemm_qd8_q8p_f32 = nullptr;
  GemmQd8Fn gemm_qd8_q4p_f32 = nullptr;
  GemmQd8Fn gemm_qd8_q2p_f32 = nullptr;
  GemmQd8Fn gemm_qd8_q3p_f32 = nullptr;
  // Element-wise (exp in a vectorized polynomial on AVX2 / AVX-512; the reference uses std::exp).
  SiluMulFn silu_mul_f32 = nullptr;
  SoftmaxFn softmax_f32 = nullptr;

  // Whether int8 per-channel, int4, int3 and int2 weights of layers with dynamic int8 activations
  // should be packed as kQ8P / kQ4P / kQ3P / kQ2P (this table's gemm_qd8_q8p/q4p/q3p/q2p_f32 are
  // fast).
  bool prefers_panels = false;
  // Whether int2 and int3 weights of weight-only layers should be packed as kQ2L / kQ3L (this
  // table's gemv_q2l/q3l_f32 are fast), where weight_only_int8_slices does not take them.
  bool prefers_lut_panels = false;
  // Whether weight-only int4, int3 and int2 layers should run on the int8 panel kernels with each
  // token as two int8 slices (packed_matmul.h, matmul_qd8_slices; packed as for prefers_panels).
  // Set with the VNNI kernels; LOWBIT_EXACT_ACTIVATIONS=1 clears it, for the fp32 kernels.
  bool weight_only_int8_slices = false;
};

// Filled by each ISA's translation unit (only called when the CPU supports that ISA). The AVX2
// and AVX-512 fills start from the table they are given and replace the entries they speed up.
void fill_ref_kernels(KernelTable& table);
void fill_avx2_kernels(KernelTable& table);
void fill_avx512_kernels(KernelTable& table);
void fill_avx512_vnni_kernels(KernelTable& table);
// AMX-INT8 W8A8 prefill on kQ8P panels (16 tokens or more; fewer go to the entry it replaces).
void fill_amx_kernels(KernelTable& table);
// Parts of the fills above, one per translation unit.
void fill_avx2_qd8_kernels(KernelTable& table);
void fill_avx2_elementwise_kernels(KernelTable& table);
void fill_avx512_elementwise_kernels(KernelTable& table);
void fill_avx512_lut_kernels(KernelTable& table);
void fill_avx512_quantize_kernels(KernelTable& table);

}  // namespace lowbit::kernels
