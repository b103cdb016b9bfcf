// AMX-INT8 kernel for W8A8 prefill on kQ8P panels (kernel_types.h): the panel layout is exactly
// the "VNNI" layout AMX expects for its B operand (per 4 inputs, 16 rows x 4 bytes), so a block of
// 32 inputs of a panel is one 8 x 64-byte B tile read in place. Per block and 16 tokens:
//   C[token, row] = sum_{k in block} q[token, k] * code[row, k]   (tdpbsud: signed x unsigned,
//   exact int32), then, per token, one conversion and one FMA with that token's block scale.
// The block scales are why the dot products stop every 32 inputs (a tile could take 64). Used for
// 16 or more tokens; fewer go to the AVX-512 VNNI panel kernel. Scalar definition:
// ref/ref_kernels.cc. Compiled with -mamx-tile -mamx-int8, used only when cpuid reports AMX-INT8
// and the kernel grants the tile state (dispatch.cc).
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

constexpr int kTileTokens = 16;
constexpr int64_t kPanelBlockBytes = kBlock / 4 * 64;  // 8 steps of 4 inputs x 16 rows

struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Tile 0: C (16 tokens x 16 rows, int32); 2: A (16 tokens x 32 int8); 3: B (8 rows of 4 inputs x
// 16 rows x 4 bytes).
void configure_tiles() {
  TileConfig c;
  std::memset(&c, 0, sizeof(c));
  c.palette_id = 1;
  c.rows[0] = kTileTokens;
  c.colsb[0] = 64;
  c.rows[2] = kTileTokens;
  c.colsb[2] = kBlock;
  c.rows[3] = kBlock / 4;
  c.colsb[3] = 64;
  _tile_loadconfig(&c);
}

GemmQd8Fn small_batch_kernel = nullptr;  // the VNNI panel kernel this table had before

// One panel p against 16 tokens: act [16, act_stride] int8, scales [16, blocks], corrections
// [16]; rows beyond the real tokens are zeros with scale 0. The 16 accumulators (one zmm of 16
// rows per token) stay in registers: the loops over tokens have a constant trip count. Writes the
// first `tokens` tokens (from t0), rows in [row_begin, row_end).
void amx_panel(const PackedWeightView& w, int64_t p, const int8_t* act, int64_t act_stride, const float* scales,
               const float* corrections, int tokens, int64_t t0, float* y, int64_t ldy, int64_t row_begin,
               int64_t row_end) {
  const int64_t blocks = w.k_padded / kBlock;
  const uint8_t* panel = w.codes + p * kPanelRows * w.k_padded;
  __m512 facc[kTileTokens];
#pragma GCC unroll 16
  for (int m = 0; m < kTileTokens; ++m) facc[m] = _mm512_setzero_ps();
  alignas(64) int32_t c[kTileTokens][kPanelRows];
  for (int64_t b = 0; b < blocks; ++b) {
    _tile_zero(0);
    _tile_loadd(2, act + b * kBlock, act_stride);
    _tile_loadd(3, panel + b * kPanelBlockBytes, 64);
    _tile_dpbsud(0, 2, 3);
    _tile_stored(0, c, 64);
#pragma GCC unroll 16
    for (int m = 0; m < kTileTokens; ++m)
      facc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[m])), _mm512_set1_ps(scales[m * blocks + b]),
                                facc[m]);
  }
  const int64_t r0 = p * kPanelRows;
  uint32_t in_range = 0;
  for (int i = 0; i < kPanelRows; ++i) in_range |= uint32_t(r0 + i >= row_begin && r0 + i < row_end) << i;
  const __m512 scale = _mm512_loadu_ps(w.scales + r0), zero = _mm512_loadu_ps(w.zeros + r0);
#pragma GCC unroll 16
  for (int m = 0; m < kTileTokens; ++m) {
    if (m >= tokens) break;
    const __m512 out = _mm512_mul_ps(scale, _mm512_fnmadd_ps(zero, _mm512_set1_ps(corrections[m]), facc[m]));
    _mm512_mask_storeu_ps(y + (t0 + m) * ldy + r0, __mmask16(in_range), out);
  }
}

void gemm_qd8_q8p_amx(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
                      float* y, int64_t ldy) {
  if (a.tokens < kTileTokens) {
    small_batch_kernel(w, row_begin, row_end, a, y, ldy);
    return;
  }
  configure_tiles();
  const int64_t blocks = w.k_padded / kBlock;
  const int64_t p_begin = row_begin / kPanelRows, p_end = (row_end + kPanelRows - 1) / kPanelRows;
  // The last, partial group of tokens is copied into zero-padded rows (scale 0 beyond the real
  // tokens) so that every A tile has 16 rows.
  const int tail = int(a.tokens % kTileTokens);
  std::vector<int8_t> tail_act;
  std::vector<float> tail_scales, tail_corrections;
  if (tail > 0) {
    const int64_t t0 = a.tokens - tail;
    tail_act.assign(size_t(kTileTokens * a.k_padded), 0);
    tail_scales.assign(size_t(kTileTokens * blocks), 0.0f);
    tail_corrections.assign(kTileTokens, 0.0f);
    std::memcpy(tail_act.data(), a.values + t0 * a.k_padded, size_t(tail * a.k_padded));
    std::memcpy(tail_scales.data(), a.scales + t0 * blocks, size_t(tail * blocks) * sizeof(float));
    for (int m = 0; m < tail; ++m) tail_corrections[size_t(m)] = a.group_corrections[(t0 + m) * a.groups];
  }
  std::vector<float> corrections(kTileTokens);
  for (int64_t p = p_begin; p < p_end; ++p) {
    for (int64_t t0 = 0; t0 < a.tokens; t0 += kTileTokens) {
      const bool full = t0 + kTileTokens <= a.tokens;
      const int8_t* act = full ? a.values + t0 * a.k_padded : tail_act.data();
      const float* scales = full ? a.scales + t0 * blocks : tail_scales.data();
      if (full)
        for (int m = 0; m < kTileTokens; ++m) corrections[size_t(m)] = a.group_corrections[(t0 + m) * a.groups];
      const float* corr = full ? corrections.data() : tail_corrections.data();
      amx_panel(w, p, act, a.k_padded, scales, corr, full ? kTileTokens : tail, t0, y, ldy, row_begin, row_end);
    }
  }
  _tile_release();
}

}  // namespace

void fill_amx_kernels(KernelTable& t) {
  small_batch_kernel = t.gemm_qd8_q8p_f32;
  t.gemm_qd8_q8p_f32 = gemm_qd8_q8p_amx;
}

}  // namespace lowbit::kernels
