// AVX2 kernels for dynamic int8 activations (W8A8, W4A8, W3A8, W2A8): activation quantization with one scale
// per 32-input block and int8 x int8 -> int32 block dot products with vpmaddubsw / vpmaddwd, one
// 256-bit vector per block. Scalar definition: ref/ref_kernels.cc.
//
// vpmaddubsw multiplies unsigned by signed bytes and adds adjacent pairs into a SATURATING int16:
//   4/3/2-bit codes (0..15) x activations (-127..127): |pair| <= 2 * 15 * 127, safe as is.
//   8-bit codes (0..255) would not be (2 * 255 * 127 > 32767), so they are shifted to signed
//   w = code - 128 and the sign trick |w| x sign(a, w) keeps |pair| <= 2 * 128 * 127 = 32512.
// Per block, the raw int32 dot product (of code - offset, offset 128 for shifted 8-bit codes, 0 for
// the others) is converted to fp32 and scaled by the block's activation scale; the zero point enters
// once per group as (zero - offset) * group_correction.
#include <immintrin.h>

#include "kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// One 32-input block held in four vectors -> 32 int8 at q with round-half-even (the default MXCSR
// mode, as the reference nearbyint), their sum, and the block's scale (returned); `codes` gets the
// codes as int32, from which the second slice's residual is formed.
inline float quantize_block(const __m256 v[4], int8_t* q, int32_t* sum, __m256i codes[4]) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_andnot_ps(sign, v[0]);
  for (int j = 1; j < 4; ++j) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[j]));
  const float amax = hmax(m);
  // Same rule as the reference: below 1e-30 the reciprocal could overflow; quantize to zeros.
  const bool zero = amax < 1e-30f;
  const __m256 inv = _mm256_set1_ps(zero ? 0.0f : 127.0f / amax);
  for (int j = 0; j < 4; ++j) codes[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], inv));
  // packs work within 128-bit lanes; the final permute restores element order.
  const __m256i bytes =
      _mm256_packs_epi16(_mm256_packs_epi32(codes[0], codes[1]), _mm256_packs_epi32(codes[2], codes[3]));
  const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), ordered);
  *sum = hsum_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), ordered), _mm256_set1_epi16(1)));
  return zero ? 1.0f : amax / 127.0f;
}

// x [k] as `slices` (1 or 2) qd8 slices, one pass over the blocks: the second slice quantizes the
// residual x - s1 q1, formed in registers with one FMA per input (exact to one fp32 rounding, as
// the reference's std::fma).
template <int kSlices>
void quantize_slices(const float* x, int64_t k, int64_t k_padded, int8_t* q, float* scales, int32_t* block_sums) {
  const int64_t full = k / kBlock * kBlock, blocks = k_padded / kBlock;
  alignas(32) float tail[kBlock] = {};  // the last partial block, zero-padded
  for (int64_t i = full; i < k; ++i) tail[i - full] = x[i];
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t i = b * kBlock;
    if (i >= k) {  // whole padding blocks
      for (int s = 0; s < kSlices; ++s) {
        __builtin_memset(q + s * k_padded + i, 0, kBlock);
        scales[s * blocks + b] = 1.0f;
        block_sums[s * blocks + b] = 0;
      }
      continue;
    }
    const float* src = i < full ? x + i : tail;
    __m256 v[4];
    __m256i codes[4];
    for (int j = 0; j < 4; ++j) v[j] = _mm256_loadu_ps(src + 8 * j);
    scales[b] = quantize_block(v, q + i, block_sums + b, codes);
    if constexpr (kSlices == 2) {
      const __m256 s1 = _mm256_set1_ps(scales[b]);
      for (int j = 0; j < 4; ++j) v[j] = _mm256_fnmadd_ps(s1, _mm256_cvtepi32_ps(codes[j]), v[j]);
      scales[blocks + b] = quantize_block(v, q + k_padded + i, block_sums + blocks + b, codes);
    }
  }
}

// The low two bits of a kQ2/kQ3 block's 32 codes in element order: the 8 bytes of bit pairs in
// every 64-bit lane, lane i shifted right by 2 i (pair i of each byte = codes 8 i .. 8 i + 7).
inline __m256i crumbs(const uint8_t* p) {
  long long bytes;
  __builtin_memcpy(&bytes, p, 8);
  const __m256i shifted = _mm256_srlv_epi64(_mm256_set1_epi64x(bytes), _mm256_setr_epi64x(0, 2, 4, 6));
  return _mm256_and_si256(shifted, _mm256_set1_epi8(3));
}

// 32 codes of one block as bytes in element order (layouts: kernel_types.h).
template <int kBits>
inline __m256i load_block(const uint8_t* row, int64_t b) {
  if constexpr (kBits == 4) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + b * 16));
    const __m128i mask = _mm_set1_epi8(0xf);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), mask), _mm_and_si128(v, mask));
  } else if constexpr (kBits == 2) {
    return crumbs(row + b * 8);
  } else if constexpr (kBits == 3) {
    // Bit 2 of code j is bit j of the block's 32-bit plane: vpshufb brings plane byte j / 8 to
    // byte j, a compare against bit j % 8 turns it into 0 / 0xff, masked to 4.
    const uint8_t* p = row + b * 12;
    int plane;
    __builtin_memcpy(&plane, p + 8, 4);
    const __m256i byte_of_code = _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201);
    const __m256i bits = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(plane), byte_of_code), bit);
    const __m256i high = _mm256_and_si256(_mm256_cmpeq_epi8(bits, bit), _mm256_set1_epi8(4));
    return _mm256_or_si256(crumbs(p), high);
  } else {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + b * 32));
  }
}

// One weight row against NR tokens starting at t0.
template <int kBits, int NR>
void row_tile(const PackedWeightView& w, int64_t r, int64_t t0, const QuantizedActivationsView& a, float* y,
              int64_t ldy) {
  constexpr int kOffset = kBits == 8 ? 128 : 0;
  const int64_t blocks = w.k_padded / kBlock, per_group = w.group_size / kBlock;
  const uint8_t* row = w.codes + r * w.row_bytes;
  const int8_t* act[NR];
  const float* act_scales[NR];
  for (int j = 0; j < NR; ++j) {
    act[j] = a.values + (t0 + j) * a.k_padded;
    act_scales[j] = a.scales + (t0 + j) * blocks;
  }
  const __m256i ones16 = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(char(0x80));
  __m256 facc[NR];
  float correction[NR] = {};
  for (int j = 0; j < NR; ++j) facc[j] = _mm256_setzero_ps();
  for (int64_t g = 0, b = 0; g < w.groups_per_row; ++g) {
    const int64_t p = r * w.groups_per_row + g;
    __m256 gacc[NR];
    for (int j = 0; j < NR; ++j) gacc[j] = _mm256_setzero_ps();
    for (const int64_t end = b + per_group < blocks ? b + per_group : blocks; b < end; ++b) {
      const __m256i codes = load_block<kBits>(row, b);
      if constexpr (kBits != 8) {
        for (int j = 0; j < NR; ++j) {
          const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[j] + b * kBlock));
          const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(codes, av), ones16);
          gacc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_broadcast_ss(act_scales[j] + b), gacc[j]);
        }
      } else {
        const __m256i wv = _mm256_xor_si256(codes, flip);  // code - 128 as int8
        const __m256i wabs = _mm256_abs_epi8(wv);
        for (int j = 0; j < NR; ++j) {
          const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[j] + b * kBlock));
          const __m256i prod = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(av, wv));
          const __m256i dot = _mm256_madd_epi16(prod, ones16);
          gacc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_broadcast_ss(act_scales[j] + b), gacc[j]);
        }
      }
    }
    const float zero = w.zeros[p] - float(kOffset), scale = w.scales[p];
    for (int j = 0; j < NR; ++j) {
      facc[j] = _mm256_fmadd_ps(gacc[j], _mm256_set1_ps(scale), facc[j]);
      correction[j] += scale * (zero * a.group_corrections[(t0 + j) * a.groups + g]);
    }
  }
  for (int j = 0; j < NR; ++j) y[(t0 + j) * ldy + r] = hsum(facc[j]) - correction[j];
}

template <int kBits>
void gemm_qd8(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
              float* y, int64_t ldy) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    int64_t t = 0;
    for (; t + 4 <= a.tokens; t += 4) row_tile<kBits, 4>(w, r, t, a, y, ldy);
    for (; t < a.tokens; ++t) row_tile<kBits, 1>(w, r, t, a, y, ldy);
  }
}

}  // namespace

void fill_avx2_qd8_kernels(KernelTable& t) {
  t.quantize_f32_qd8 = quantize_slices<1>;
  t.quantize_f32_qd8x2 = quantize_slices<2>;
  t.gemm_qd8_q8g_f32 = gemm_qd8<8>;
  t.gemm_qd8_q4g_f32 = gemm_qd8<4>;
  t.gemm_qd8_q3g_f32 = gemm_qd8<3>;
  t.gemm_qd8_q2g_f32 = gemm_qd8<2>;
}

}  // namespace lowbit::kernels
