// AVX-512 VNNI kernels for dynamic int8 activations (W8A8, W4A8): vpdpbusd multiplies unsigned
// by signed bytes and adds groups of four straight into int32 lanes, with no int16 saturation.
// Weight codes are already unsigned (0..255, 0..15) with a zero point, activations signed
// (-127..127), so neither operand needs the +128 shift: the zero point is applied once per group
// as the exact integer correction  D = sum code*q - zero * group_sum  (group_sum precomputed per
// token by the quantizer) instead of a per-row weight-sum correction. |sum code*q| <= 255 * 127 *
// 65536 < 2^31 for the k_padded <= 65536 that supports_qd8() admits. Scalar definition:
// ref/ref_kernels.cc; compiled with -mavx512vnni, used only when the CPU reports it.
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

// MR weight rows from r0 against NR tokens from t0.
template <bool kFourBit, int MR, int NR>
void tile(const PackedWeightView& w, int64_t r0, int64_t t0, const QuantizedActivationsView& a, float* y,
          int64_t ldy) {
  constexpr int64_t kBlockBytes = kFourBit ? 16 : 32;
  const int64_t blocks = w.k_padded / kBlock, per_group = w.group_size / kBlock;
  const uint8_t* row[MR];
  for (int i = 0; i < MR; ++i) row[i] = w.codes + (r0 + i) * w.row_bytes;
  const int8_t* act[NR];
  for (int j = 0; j < NR; ++j) act[j] = a.values + (t0 + j) * a.k_padded;
  __m512 facc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) facc[i][j] = _mm512_setzero_ps();
  for (int64_t g = 0, b = 0; g < w.groups_per_row; ++g) {
    __m512i iacc[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) iacc[i][j] = _mm512_setzero_si512();
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
        for (int i = 0; i < MR; ++i) iacc[i][j] = _mm512_dpbusd_epi32(iacc[i][j], codes[i], av);
      }
      b += pair ? 2 : 1;
    }
    for (int i = 0; i < MR; ++i) {
      const int64_t p = (r0 + i) * w.groups_per_row + g;
      const int32_t zero = int32_t(w.zeros[p]);
      const __m512 scale = _mm512_set1_ps(w.scales[p]);
      for (int j = 0; j < NR; ++j) {
        const int32_t correction = zero * a.group_sums[(t0 + j) * a.groups + g];
        const __m512i exact = _mm512_mask_sub_epi32(iacc[i][j], 1, iacc[i][j], _mm512_set1_epi32(correction));
        facc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), scale, facc[i][j]);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) y[(t0 + j) * ldy + r0 + i] = a.scales[t0 + j] * _mm512_reduce_add_ps(facc[i][j]);
}

template <bool kFourBit, int MR>
void rows(const PackedWeightView& w, int64_t r, const QuantizedActivationsView& a, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= a.tokens; t += 4) tile<kFourBit, MR, 4>(w, r, t, a, y, ldy);
  switch (a.tokens - t) {
    case 3: tile<kFourBit, MR, 3>(w, r, t, a, y, ldy); break;
    case 2: tile<kFourBit, MR, 2>(w, r, t, a, y, ldy); break;
    case 1: tile<kFourBit, MR, 1>(w, r, t, a, y, ldy); break;
    default: break;
  }
}

// Several rows at a time share each activation load: 2 x 4 tiles for prefill (16 accumulators),
// 4 rows for one token (decode; four memory streams in flight).
template <bool kFourBit>
void gemm_qd8(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
              float* y, int64_t ldy) {
  int64_t r = row_begin;
  if (a.tokens == 1)
    for (; r + 4 <= row_end; r += 4) rows<kFourBit, 4>(w, r, a, y, ldy);
  for (; r + 2 <= row_end; r += 2) rows<kFourBit, 2>(w, r, a, y, ldy);
  if (r < row_end) rows<kFourBit, 1>(w, r, a, y, ldy);
}

}  // namespace

void fill_avx512_vnni_kernels(KernelTable& t) {
  t.name = "avx512_vnni";
  t.gemm_qd8_q8g_f32 = gemm_qd8<false>;
  t.gemm_qd8_q4g_f32 = gemm_qd8<true>;
}

}  // namespace lowbit::kernels
