// AVX-512 VNNI kernels for dynamic int8 activations (W8A8, W4A8): vpdpbusd multiplies unsigned
// by signed bytes and adds groups of four straight into int32 lanes, with no int16 saturation.
// Weight codes are already unsigned (0..255, 0..15) with a zero point, activations signed
// (-127..127), so neither operand needs the +128 shift. One 64-byte vector covers two 32-input
// blocks: a vpdpbusd from zero leaves block b's partial sums in lanes 0..7 and block b+1's in
// lanes 8..15 (|lane| <= 4 * 255 * 127), which are converted to fp32 and multiplied by the two
// blocks' activation scales in one FMA. The zero point enters once per group as
// zero * group_correction (kernel_types.h). Scalar definition: ref/ref_kernels.cc; compiled with
// -mavx512vnni, used only when the CPU reports it.
#include <immintrin.h>

#include "kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

// Codes of blocks b and b+1 (64 bytes in element order); `pair` false: block b only, upper
// half zero.
template <bool kFourBit>
inline __m512i load_codes(const uint8_t* row, int64_t b, bool pair) {
  if constexpr (kFourBit) {
    const __m512i mask = _mm512_set1_epi8(0xf);
    if (pair) {
      // 32 bytes = low|high nibbles of block b (16 bytes), then of b+1. Stack [bytes, bytes >> 4],
      // mask, and reorder the 128-bit lanes to [b low, b high, b+1 low, b+1 high].
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + b * 16));
      const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1);
      const __m512i nib = _mm512_and_si512(both, mask);
      return _mm512_shuffle_i64x2(nib, nib, _MM_SHUFFLE(3, 1, 2, 0));
    }
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + b * 16));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    return _mm512_and_si512(_mm512_zextsi256_si512(both), mask);
  } else {
    return _mm512_maskz_loadu_epi8(pair ? ~__mmask64(0) : __mmask64(0xffffffffu), row + b * 32);
  }
}

// Activation scales of blocks b (lanes 0..7) and b+1 (lanes 8..15) of one token; `pair` false:
// block b only (the upper lanes multiply zero sums).
inline __m512 pair_scales(const float* scales, int64_t b, bool pair) {
  double both = 0.0;  // two floats, which are only 4-byte aligned: copied, not loaded as a double
  if (pair) __builtin_memcpy(&both, scales + b, 8);
  const __m128 two = pair ? _mm_castpd_ps(_mm_set_sd(both)) : _mm_load_ss(scales + b);
  const __m512i lanes = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  return _mm512_permutexvar_ps(lanes, _mm512_castps128_ps512(two));
}

// MR weight rows from r0 against NR tokens from t0. kOneGroup (per-channel weights): the weight
// scale is applied once at the end instead of once per group, which saves MR x NR registers.
template <bool kFourBit, bool kOneGroup, int MR, int NR>
void tile(const PackedWeightView& w, int64_t r0, int64_t t0, const QuantizedActivationsView& a, float* y,
          int64_t ldy) {
  constexpr int64_t kBlockBytes = kFourBit ? 16 : 32;
  const int64_t blocks = w.k_padded / kBlock, per_group = w.group_size / kBlock;
  const uint8_t* row[MR];
  for (int i = 0; i < MR; ++i) row[i] = w.codes + (r0 + i) * w.row_bytes;
  const int8_t* act[NR];
  const float* act_scales[NR];
  for (int j = 0; j < NR; ++j) {
    act[j] = a.values + (t0 + j) * a.k_padded;
    act_scales[j] = a.scales + (t0 + j) * blocks;
  }
  __m512 gacc[MR][NR], facc[MR][NR];
  float correction[MR][NR] = {};
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) facc[i][j] = _mm512_setzero_ps();
  for (int64_t g = 0, b = 0; g < w.groups_per_row; ++g) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) gacc[i][j] = _mm512_setzero_ps();
    for (const int64_t end = b + per_group < blocks ? b + per_group : blocks; b < end;) {
      const bool pair = b + 2 <= end;
      const __mmask64 lanes = pair ? ~__mmask64(0) : __mmask64(0xffffffffu);
      __m512i codes[MR];
      for (int i = 0; i < MR; ++i) {
        // Each row is a memory stream; prefetching ahead keeps several in flight (as in the gemv).
        _mm_prefetch(reinterpret_cast<const char*>(row[i] + b * kBlockBytes + 2048), _MM_HINT_T0);
        codes[i] = load_codes<kFourBit>(row[i], b, pair);
      }
      for (int j = 0; j < NR; ++j) {
        const __m512i av = _mm512_maskz_loadu_epi8(lanes, act[j] + b * kBlock);
        const __m512 sv = pair_scales(act_scales[j], b, pair);
        for (int i = 0; i < MR; ++i) {
          const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes[i], av);
          gacc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sv, gacc[i][j]);
        }
      }
      b += pair ? 2 : 1;
    }
    for (int i = 0; i < MR; ++i) {
      const int64_t p = (r0 + i) * w.groups_per_row + g;
      const float zero = w.zeros[p], scale = w.scales[p];
      for (int j = 0; j < NR; ++j) {
        correction[i][j] += scale * (zero * a.group_corrections[(t0 + j) * a.groups + g]);
        if constexpr (!kOneGroup) facc[i][j] = _mm512_fmadd_ps(gacc[i][j], _mm512_set1_ps(scale), facc[i][j]);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      const float dot = kOneGroup ? w.scales[r0 + i] * _mm512_reduce_add_ps(gacc[i][j]) : _mm512_reduce_add_ps(facc[i][j]);
      y[(t0 + j) * ldy + r0 + i] = dot - correction[i][j];
    }
}

template <bool kFourBit, bool kOneGroup, int MR>
void rows(const PackedWeightView& w, int64_t r, const QuantizedActivationsView& a, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= a.tokens; t += 4) tile<kFourBit, kOneGroup, MR, 4>(w, r, t, a, y, ldy);
  switch (a.tokens - t) {
    case 3: tile<kFourBit, kOneGroup, MR, 3>(w, r, t, a, y, ldy); break;
    case 2: tile<kFourBit, kOneGroup, MR, 2>(w, r, t, a, y, ldy); break;
    case 1: tile<kFourBit, kOneGroup, MR, 1>(w, r, t, a, y, ldy); break;
    default: break;
  }
}

// Several rows at a time share each activation load: 4 x 4 tiles for per-channel prefill (16
// accumulators), 2 x 4 with groups (8 group + 8 row accumulators), 4 rows for one token
// (decode; four memory streams in flight).
template <bool kFourBit, bool kOneGroup>
void gemm_rows(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
               float* y, int64_t ldy) {
  int64_t r = row_begin;
  if (a.tokens == 1 || kOneGroup)
    for (; r + 4 <= row_end; r += 4) rows<kFourBit, kOneGroup, 4>(w, r, a, y, ldy);
  for (; r + 2 <= row_end; r += 2) rows<kFourBit, kOneGroup, 2>(w, r, a, y, ldy);
  if (r < row_end) rows<kFourBit, kOneGroup, 1>(w, r, a, y, ldy);
}

template <bool kFourBit>
void gemm_qd8(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
              float* y, int64_t ldy) {
  if (w.groups_per_row == 1) {
    gemm_rows<kFourBit, true>(w, row_begin, row_end, a, y, ldy);
  } else {
    gemm_rows<kFourBit, false>(w, row_begin, row_end, a, y, ldy);
  }
}

// kQ8P (kernel_types.h): NP panels of 16 rows from panel p0 against NT tokens from t0. Per
// 32-input block, 8 vpdpbusd steps (4 inputs of one token broadcast against 16 rows' codes)
// accumulate 16 row sums per (panel, token) in int32, |sum| <= 32 * 255 * 127; then one
// conversion and one FMA with the token's block scale. Rows outside [row_begin, row_end) are
// computed but not stored (a range may start or end inside a panel).
template <int NP, int NT>
void panel_tile(const PackedWeightView& w, int64_t p0, int64_t t0, const QuantizedActivationsView& a, float* y,
                int64_t ldy, int64_t row_begin, int64_t row_end) {
  const int64_t blocks = w.k_padded / kBlock, panel_bytes = kPanelRows * w.k_padded;
  const uint8_t* panel[NP];
  for (int p = 0; p < NP; ++p) panel[p] = w.codes + (p0 + p) * panel_bytes;
  const int8_t* act[NT];
  const float* act_scales[NT];
  for (int t = 0; t < NT; ++t) {
    act[t] = a.values + (t0 + t) * a.k_padded;
    act_scales[t] = a.scales + (t0 + t) * blocks;
  }
  __m512 facc[NP][NT];
  for (int p = 0; p < NP; ++p)
    for (int t = 0; t < NT; ++t) facc[p][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    __m512i iacc[NP][NT];
    for (int p = 0; p < NP; ++p)
      for (int t = 0; t < NT; ++t) iacc[p][t] = _mm512_setzero_si512();
    for (int64_t step = b * (kBlock / 4); step < (b + 1) * (kBlock / 4); ++step) {
      __m512i codes[NP];
      for (int p = 0; p < NP; ++p) {
        _mm_prefetch(reinterpret_cast<const char*>(panel[p] + step * 64 + 2048), _MM_HINT_T0);
        codes[p] = _mm512_loadu_si512(panel[p] + step * 64);
      }
      for (int t = 0; t < NT; ++t) {
        int32_t four;
        __builtin_memcpy(&four, act[t] + step * 4, 4);
        const __m512i av = _mm512_set1_epi32(four);
        for (int p = 0; p < NP; ++p) iacc[p][t] = _mm512_dpbusd_epi32(iacc[p][t], codes[p], av);
      }
    }
    for (int t = 0; t < NT; ++t) {
      const __m512 scale = _mm512_set1_ps(act_scales[t][b]);
      for (int p = 0; p < NP; ++p) facc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[p][t]), scale, facc[p][t]);
    }
  }
  for (int p = 0; p < NP; ++p) {
    const int64_t r0 = (p0 + p) * kPanelRows;
    uint32_t in_range = 0;
    for (int i = 0; i < kPanelRows; ++i) in_range |= uint32_t(r0 + i >= row_begin && r0 + i < row_end) << i;
    const __m512 scale = _mm512_loadu_ps(w.scales + r0), zero = _mm512_loadu_ps(w.zeros + r0);
    for (int t = 0; t < NT; ++t) {
      const __m512 correction = _mm512_set1_ps(a.group_corrections[(t0 + t) * a.groups]);
      const __m512 out = _mm512_mul_ps(scale, _mm512_fnmadd_ps(zero, correction, facc[p][t]));
      _mm512_mask_storeu_ps(y + (t0 + t) * ldy + r0, __mmask16(in_range), out);
    }
  }
}

template <int NP>
void panel_tokens(const PackedWeightView& w, int64_t p0, const QuantizedActivationsView& a, float* y, int64_t ldy,
                  int64_t row_begin, int64_t row_end) {
  int64_t t = 0;
  for (; t + 6 <= a.tokens; t += 6) panel_tile<NP, 6>(w, p0, t, a, y, ldy, row_begin, row_end);
  switch (a.tokens - t) {
    case 5: panel_tile<NP, 5>(w, p0, t, a, y, ldy, row_begin, row_end); break;
    case 4: panel_tile<NP, 4>(w, p0, t, a, y, ldy, row_begin, row_end); break;
    case 3: panel_tile<NP, 3>(w, p0, t, a, y, ldy, row_begin, row_end); break;
    case 2: panel_tile<NP, 2>(w, p0, t, a, y, ldy, row_begin, row_end); break;
    case 1: panel_tile<NP, 1>(w, p0, t, a, y, ldy, row_begin, row_end); break;
    default: break;
  }
}

// 2 panels x 6 tokens for prefill (12 int32 + 12 fp32 accumulators), 4 panels for one token
// (decode: four contiguous streams of 1 KiB per block step).
void gemm_qd8_q8p(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
                  float* y, int64_t ldy) {
  int64_t p = row_begin / kPanelRows;
  const int64_t end = (row_end + kPanelRows - 1) / kPanelRows;
  if (a.tokens == 1)
    for (; p + 4 <= end; p += 4) panel_tile<4, 1>(w, p, 0, a, y, ldy, row_begin, row_end);
  for (; p + 2 <= end; p += 2) panel_tokens<2>(w, p, a, y, ldy, row_begin, row_end);
  if (p < end) panel_tokens<1>(w, p, a, y, ldy, row_begin, row_end);
}

}  // namespace

void fill_avx512_vnni_kernels(KernelTable& t) {
  t.name = "avx512_vnni";
  t.gemm_qd8_q8g_f32 = gemm_qd8<false>;
  t.gemm_qd8_q4g_f32 = gemm_qd8<true>;
  t.gemm_qd8_q8p_f32 = gemm_qd8_q8p;
  t.prefers_q8_panels = true;
}

}  // namespace lowbit::kernels
