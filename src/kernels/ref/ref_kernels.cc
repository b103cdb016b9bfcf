// Scalar reference kernels: the definition of every entry of the kernel table. Written for
// clarity, element by element, straight from the layout comments in kernel_types.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/half.h"
#include "formats/fp8.h"
#include "formats/nf4.h"
#include "kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

// Code of weight (r, k) (k < k_padded), undoing the layouts of kernel_types.h.
uint32_t code_at(const PackedWeightView& w, int64_t r, int64_t k) {
  if (w.kind == PackedKind::kQ8P)
    return w.codes[r / kPanelRows * kPanelRows * w.k_padded + k / 4 * 64 + r % kPanelRows * 4 + k % 4];
  if (w.kind == PackedKind::kQ4P) {
    const uint8_t byte = w.codes[r / 32 * 16 * w.k_padded + k / 4 * 64 + r % kPanelRows * 4 + k % 4];
    return r % 32 < kPanelRows ? byte & 0xfu : byte >> 4;
  }
  if (w.kind == PackedKind::kQ2P) {
    const uint8_t byte = w.codes[r / 64 * 16 * w.k_padded + k / 4 * 64 + r % kPanelRows * 4 + k % 4];
    return (byte >> (2 * (r % 64 / kPanelRows))) & 3u;
  }
  if (w.kind == PackedKind::kQ3P) {
    const int64_t q = r % 64 / kPanelRows, odd = k / 4 % 2;
    const uint8_t* piece = w.codes + r / 64 * 24 * w.k_padded + k / 8 * 192 + r % kPanelRows * 4 + k % 4;
    const uint32_t low = (piece[64 * odd] >> (2 * q)) & 3u;
    const uint32_t high = (piece[128] >> ((2 * q + 2) % 8 + odd)) & 1u;
    return low | high << 2;
  }
  if (w.kind == PackedKind::kQ2L) {
    const uint8_t* d = w.codes + r / kPanelRows * 4 * w.k_padded + k / 16 * 64 + r % kPanelRows * 4;
    return (d[k % 16 / 4] >> (2 * (k % 4))) & 3u;
  }
  if (w.kind == PackedKind::kQ3L) {
    const uint8_t* piece = w.codes + r / kPanelRows * 6 * w.k_padded + k / 32 * 192 + r % kPanelRows * 4;
    const uint32_t low = (piece[64 * (k % 32 / 16) + k % 16 / 4] >> (2 * (k % 4))) & 3u;
    const uint32_t high = (piece[128 + k % 32 / 8] >> (k % 8)) & 1u;
    return low | high << 2;
  }
  const PackedKind kind = w.kind;
  const uint8_t* row = w.codes + r * w.row_bytes;
  const int64_t block = k / kBlock;
  const int j = int(k % kBlock);
  switch (kind) {
    case PackedKind::kQ8:
    case PackedKind::kQ8P:
    case PackedKind::kQ4P:  // handled above
    case PackedKind::kQ2P:
    case PackedKind::kQ3P:
    case PackedKind::kQ2L:
    case PackedKind::kQ3L:
    case PackedKind::kFP8: return row[k];
    case PackedKind::kQ4:
    case PackedKind::kNF4: {
      const uint8_t byte = row[block * 16 + j % 16];
      return j < 16 ? byte & 0xfu : byte >> 4;
    }
    case PackedKind::kQ2: return (row[block * 8 + j % 8] >> (2 * (j / 8))) & 3u;
    case PackedKind::kQ3: {
      const uint8_t* b = row + block * 12;
      const uint32_t low = (b[j % 8] >> (2 * (j / 8))) & 3u;
      const uint32_t plane = uint32_t(b[8]) | uint32_t(b[9]) << 8 | uint32_t(b[10]) << 16 | uint32_t(b[11]) << 24;
      return low | ((plane >> j) & 1u) << 2;
    }
    case PackedKind::kF16:
    case PackedKind::kBF16: return uint32_t(row[2 * k]) | uint32_t(row[2 * k + 1]) << 8;
  }
  return 0;
}

// Value of weight (r, k): the one fp32 multiply of formats/ decode_value().
float weight_at(const PackedWeightView& w, int64_t r, int64_t k) {
  const uint32_t code = code_at(w, r, k);
  const int64_t p = param_index(w, r, k / w.group_size);
  switch (w.kind) {
    case PackedKind::kF16: return fp16_to_f32(uint16_t(code));
    case PackedKind::kBF16: return bf16_to_f32(uint16_t(code));
    case PackedKind::kNF4: return w.scales[p] * kNf4.levels[code];
    case PackedKind::kFP8: return w.scales[p] * fp8_e4m3_to_f32(uint8_t(code));
    default: return w.scales[p] * (float(code) - w.zeros[p]);
  }
}

void gemv_ref(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const float* x, float* y) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    float acc = 0.0f;
    for (int64_t k = 0; k < w.k_padded; ++k) acc += weight_at(w, r, k) * x[k];
    y[r] = acc;
  }
}

void dequant_ref(const PackedWeightView& w, int64_t row_begin, int64_t row_end, float* out) {
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t k = 0; k < w.k_padded; ++k) out[(r - row_begin) * w.k_padded + k] = weight_at(w, r, k);
}

void quantize_f32_qd8_ref(const float* x, int64_t k, int64_t k_padded, int8_t* q, float* scales,
                          int32_t* block_sums) {
  for (int64_t b = 0; b < k_padded / kBlock; ++b) {
    const int64_t begin = b * kBlock, end = begin + kBlock;
    float amax = 0.0f;
    for (int64_t i = begin; i < end && i < k; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    // Below 1e-30 the reciprocal 127 / amax could overflow; such a block quantizes to zeros.
    const bool zero = amax < 1e-30f;
    const float inv = zero ? 0.0f : 127.0f / amax;
    scales[b] = zero ? 1.0f : amax / 127.0f;
    int32_t sum = 0;
    for (int64_t i = begin; i < end; ++i) {
      q[i] = i < k ? int8_t(std::nearbyint(x[i] * inv)) : int8_t(0);
      sum += q[i];
    }
    block_sums[b] = sum;
  }
}

void quantize_f32_qd8x2_ref(const float* x, int64_t k, int64_t k_padded, int8_t* q, float* scales,
                            int32_t* block_sums) {
  quantize_f32_qd8_ref(x, k, k_padded, q, scales, block_sums);
  // The fma leaves the residual exact to one fp32 rounding (s1 q1 itself is not representable).
  std::vector<float> residual(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) residual[size_t(i)] = std::fma(-scales[i / kBlock], float(q[i]), x[i]);
  const int64_t blocks = k_padded / kBlock;
  quantize_f32_qd8_ref(residual.data(), k, k_padded, q + k_padded, scales + blocks, block_sums + blocks);
}

// Exact integer block dot products in int64, then the fp32 epilogue.
void gemm_qd8_ref(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
                  float* y, int64_t ldy) {
  const int64_t blocks = w.k_padded / kBlock;
  for (int64_t t = 0; t < a.tokens; ++t) {
    const int8_t* q = a.values + t * a.k_padded;
    const float* act_scales = a.scales + t * blocks;
    for (int64_t r = row_begin; r < row_end; ++r) {
      float acc = 0.0f;
      for (int64_t g = 0; g < w.groups_per_row; ++g) {
        const int64_t p = param_index(w, r, g);
        // Twice the zero point is an integer (midrise grids have zeros halfway between codes), so
        // the dot product is exact in units of 1/2; halving the float is exact.
        const int64_t zero2 = int64_t(2.0f * w.zeros[p]);
        float group = 0.0f;
        for (int64_t b = g * w.group_size / kBlock; b < blocks && b < (g + 1) * w.group_size / kBlock; ++b) {
          int64_t dot2 = 0;
          for (int64_t k = b * kBlock; k < (b + 1) * kBlock; ++k)
            dot2 += (2 * int64_t(code_at(w, r, k)) - zero2) * q[k];
          group += act_scales[b] * (float(dot2) * 0.5f);
        }
        acc += w.scales[p] * group;
      }
      y[t * ldy + r] = acc;
    }
  }
}

void silu_mul_ref(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void softmax_ref(float* row, int64_t n) {
  float max = row[0];
  for (int64_t i = 1; i < n; ++i) max = std::max(max, row[i]);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    row[i] = std::exp(row[i] - max);
    sum += row[i];
  }
  for (int64_t i = 0; i < n; ++i) row[i] /= sum;
}

}  // namespace

void fill_ref_kernels(KernelTable& t) {
  t.isa = Isa::kRef;
  t.name = "ref";
  t.gemv_f16_f32 = t.gemv_bf16_f32 = t.gemv_q8g_f32 = t.gemv_q4g_f32 = t.gemv_q3g_f32 = t.gemv_q2g_f32 =
      t.gemv_nf4g_f32 = t.gemv_fp8c_f32 = t.gemv_q8p_f32 = t.gemv_q4p_f32 = t.gemv_q2p_f32 =
      t.gemv_q3p_f32 = t.gemv_q2l_f32 = t.gemv_q3l_f32 = gemv_ref;
  t.dequant_f16_f32 = t.dequant_bf16_f32 = t.dequant_q8g_f32 = t.dequant_q4g_f32 = t.dequant_q3g_f32 =
      t.dequant_q2g_f32 = t.dequant_nf4g_f32 = t.dequant_fp8c_f32 = t.dequant_q8p_f32 = t.dequant_q4p_f32 =
      t.dequant_q2p_f32 = t.dequant_q3p_f32 = t.dequant_q2l_f32 = t.dequant_q3l_f32 = dequant_ref;
  t.quantize_f32_qd8 = quantize_f32_qd8_ref;
  t.quantize_f32_qd8x2 = quantize_f32_qd8x2_ref;
  t.gemm_qd8_q8g_f32 = t.gemm_qd8_q4g_f32 = t.gemm_qd8_q3g_f32 = t.gemm_qd8_q2g_f32 = t.gemm_qd8_q8p_f32 =
      t.gemm_qd8_q4p_f32 = t.gemm_qd8_q2p_f32 = t.gemm_qd8_q3p_f32 = gemm_qd8_ref;
  t.silu_mul_f32 = silu_mul_ref;
  t.softmax_f32 = softmax_ref;
}

}  // namespace lowbit::kernels
