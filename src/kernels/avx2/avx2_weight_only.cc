// AVX2 + FMA + F16C weight-only kernels: each 32-weight block is decoded in registers into four
// vectors of 8 fp32 values, then multiplied with exact fp32 activations (gemv) or stored (dequant).
// Scalar definition: ref/ref_kernels.cc. Layouts: kernel_types.h.
#include <immintrin.h>

#include "formats/nf4.h"  // only the constant level table is used here
#include "kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

// A decoder turns one block into v[0..3] = weights 8i .. 8i+7 before scaling:
// (code - zero) for integer grids, the level / E4M3 value for nf4 / fp8, the value for f16 / bf16.
struct Q8 {
  static constexpr int64_t kBytes = 32;
  static constexpr bool kScaled = true;
  static constexpr float kScaleFactor = 1.0f;  // true value = decoded value * kScaleFactor
  static void decode(const uint8_t* p, __m256 zero, __m256 v[4]) {
    for (int i = 0; i < 4; ++i) {
      const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * i)));
      v[i] = _mm256_sub_ps(_mm256_cvtepi32_ps(c), zero);
    }
  }
};

// Nibble codes 0..31 of a kQ4/kNF4 block as int32: c[i] = codes 8i .. 8i+7.
inline void nibbles(const uint8_t* p, __m256i c[4]) {
  const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  const __m256i hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8)));
  const __m256i mask = _mm256_set1_epi32(0xf);
  c[0] = _mm256_and_si256(lo, mask);
  c[1] = _mm256_and_si256(hi, mask);
  c[2] = _mm256_srli_epi32(lo, 4);
  c[3] = _mm256_srli_epi32(hi, 4);
}

struct Q4 {
  static constexpr float kScaleFactor = 1.0f;
  static constexpr int64_t kBytes = 16;
  static constexpr bool kScaled = true;
  static void decode(const uint8_t* p, __m256 zero, __m256 v[4]) {
    __m256i c[4];
    nibbles(p, c);
    for (int i = 0; i < 4; ++i) v[i] = _mm256_sub_ps(_mm256_cvtepi32_ps(c[i]), zero);
  }
};

// Two-bit fields of a kQ2 block (also the low bits of kQ3): c[i] = codes 8i .. 8i+7.
inline void crumbs(const uint8_t* p, __m256i c[4]) {
  const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  const __m256i mask = _mm256_set1_epi32(3);
  for (int i = 0; i < 4; ++i) c[i] = _mm256_and_si256(_mm256_srli_epi32(b, 2 * i), mask);
}

struct Q2 {
  static constexpr float kScaleFactor = 1.0f;
  static constexpr int64_t kBytes = 8;
  static constexpr bool kScaled = true;
  static void decode(const uint8_t* p, __m256 zero, __m256 v[4]) {
    __m256i c[4];
    crumbs(p, c);
    for (int i = 0; i < 4; ++i) v[i] = _mm256_sub_ps(_mm256_cvtepi32_ps(c[i]), zero);
  }
};

struct Q3 {
  static constexpr float kScaleFactor = 1.0f;
  static constexpr int64_t kBytes = 12;
  static constexpr bool kScaled = true;
  static void decode(const uint8_t* p, __m256 zero, __m256 v[4]) {
    __m256i c[4];
    crumbs(p, c);
    int plane;
    __builtin_memcpy(&plane, p + 8, 4);
    const __m256i bits = _mm256_set1_epi32(plane);
    const __m256i one = _mm256_set1_epi32(1);
    for (int i = 0; i < 4; ++i) {
      const __m256i shift = _mm256_setr_epi32(8 * i, 8 * i + 1, 8 * i + 2, 8 * i + 3, 8 * i + 4, 8 * i + 5,
                                              8 * i + 6, 8 * i + 7);
      const __m256i high = _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(bits, shift), one), 2);
      v[i] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_or_si256(c[i], high)), zero);
    }
  }
};

struct NF4 {
  static constexpr float kScaleFactor = 1.0f;
  static constexpr int64_t kBytes = 16;
  static constexpr bool kScaled = true;
  static void decode(const uint8_t* p, __m256, __m256 v[4]) {
    // 16 levels = two 8-entry permutes, chosen by bit 3 of the code (moved to the sign bit).
    const __m256 low = _mm256_loadu_ps(kNf4.levels), high = _mm256_loadu_ps(kNf4.levels + 8);
    __m256i c[4];
    nibbles(p, c);
    for (int i = 0; i < 4; ++i)
      v[i] = _mm256_blendv_ps(_mm256_permutevar8x32_ps(low, c[i]), _mm256_permutevar8x32_ps(high, c[i]),
                              _mm256_castsi256_ps(_mm256_slli_epi32(c[i], 28)));
  }
};

struct FP8 {
  static constexpr int64_t kBytes = 32;
  static constexpr bool kScaled = true;
  // Values come out 2^-8 times the E4M3 value; the caller folds 2^8 into the scale (exact).
  static constexpr float kScaleFactor = 256.0f;
  // E4M3 S.EEEE.MMM -> fp16 S.0EEEE.MMM0000000 is exact (fp16 has the wider exponent; E4M3
  // subnormals land on fp16 subnormals) and is 2^-8 times the E4M3 value (biases 7 and 15).
  // Sign-extending to 16 bits and shifting left 7 puts S in bit 15 and a copy in bit 14, which
  // the mask clears. vcvtph2ps then gives normal fp32 values: no subnormal fp32 operand ever
  // reaches the FMA units (those cost microcode assists). The NaN codes 0x7F/0xFF (never
  // produced by the encoder) would decode as +-480.
  static void decode(const uint8_t* p, __m256, __m256 v[4]) {
    const __m256i mask = _mm256_set1_epi16(int16_t(0xBFFF));
    for (int i = 0; i < 2; ++i) {
      const __m256i s = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i)));
      const __m256i h = _mm256_and_si256(_mm256_slli_epi16(s, 7), mask);
      v[2 * i] = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
      v[2 * i + 1] = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
    }
  }
};

struct F16 {
  static constexpr float kScaleFactor = 1.0f;
  static constexpr int64_t kBytes = 64;
  static constexpr bool kScaled = false;
  static void decode(const uint8_t* p, __m256, __m256 v[4]) {
    for (int i = 0; i < 4; ++i) v[i] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i)));
  }
};

struct BF16 {
  static constexpr float kScaleFactor = 1.0f;
  static constexpr int64_t kBytes = 64;
  static constexpr bool kScaled = false;
  static void decode(const uint8_t* p, __m256, __m256 v[4]) {
    for (int i = 0; i < 4; ++i) {
      const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i)));
      v[i] = _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
    }
  }
};

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// A float, not an int: a midrise grid's zero point lies halfway between two codes. float(code) - zero
// is exact either way (small integers and halves).
inline __m256 zero_point(const PackedWeightView& w, int64_t p) {
  return _mm256_set1_ps(w.zeros != nullptr ? w.zeros[p] : 0.0f);
}

// Prefetch distance within each row (see avx512/avx512_weight_only.cc).
constexpr int64_t kPrefetchBytes = 2048;

// MR rows (r0 + i * stride) at once, sharing each load of x. Per group: the decoded weights times
// x summed over its blocks, then one multiply by the group's scale.
template <class D, int MR>
void gemv_rows(const PackedWeightView& w, int64_t r0, int64_t stride, const float* x, float* y) {
  const int64_t blocks = w.k_padded / kBlock, per_group = w.group_size / kBlock;
  const uint8_t* row[MR];
  __m256 acc[MR];
  for (int i = 0; i < MR; ++i) {
    row[i] = w.codes + (r0 + i * stride) * w.row_bytes;
    acc[i] = _mm256_setzero_ps();
  }
  for (int64_t g = 0, b = 0; g < w.groups_per_row; ++g) {
    __m256 zero[MR];
    __m256 s0[MR], s1[MR];
    for (int i = 0; i < MR; ++i) {
      zero[i] = zero_point(w, (r0 + i * stride) * w.groups_per_row + g);
      s0[i] = s1[i] = _mm256_setzero_ps();
    }
    for (const int64_t end = b + per_group < blocks ? b + per_group : blocks; b < end; ++b) {
      const float* xb = x + b * kBlock;
      const bool new_line = (b * D::kBytes) % 64 < D::kBytes;  // once per 64-byte line of codes
      for (int i = 0; i < MR; ++i) {
        if (new_line) _mm_prefetch(reinterpret_cast<const char*>(row[i] + b * D::kBytes + kPrefetchBytes), _MM_HINT_T0);
        __m256 v[4];
        D::decode(row[i] + b * D::kBytes, zero[i], v);
        s0[i] = _mm256_fmadd_ps(v[0], _mm256_loadu_ps(xb), s0[i]);
        s1[i] = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(xb + 8), s1[i]);
        s0[i] = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(xb + 16), s0[i]);
        s1[i] = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(xb + 24), s1[i]);
      }
    }
    for (int i = 0; i < MR; ++i) {
      const __m256 sum = _mm256_add_ps(s0[i], s1[i]);
      // kScaleFactor is a power of two: folding it into the scale is exact.
      const int64_t p = (r0 + i * stride) * w.groups_per_row + g;
      const float scale = D::kScaled ? w.scales[p] * D::kScaleFactor : 1.0f;
      acc[i] = D::kScaled ? _mm256_fmadd_ps(sum, _mm256_set1_ps(scale), acc[i]) : _mm256_add_ps(acc[i], sum);
    }
  }
  for (int i = 0; i < MR; ++i) y[r0 + i * stride] = hsum(acc[i]);
}

template <class D>
void gemv(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const float* x, float* y) {
  // Rows in 2 streams from the two halves of the range (see for_row_streams in
  // avx512/avx512_weight_only.cc: adjacent rows would be one stream).
  const int64_t half = (row_end - row_begin) / 2;
  for (int64_t r = row_begin; r < row_begin + half; ++r) gemv_rows<D, 2>(w, r, half, x, y);
  for (int64_t r = row_begin + 2 * half; r < row_end; ++r) gemv_rows<D, 1>(w, r, 1, x, y);
}

template <class D>
void dequant(const PackedWeightView& w, int64_t row_begin, int64_t row_end, float* out) {
  const int64_t blocks = w.k_padded / kBlock, per_group = w.group_size / kBlock;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = w.codes + r * w.row_bytes;
    float* o = out + (r - row_begin) * w.k_padded;
    for (int64_t g = 0, b = 0; g < w.groups_per_row; ++g) {
      const int64_t p = r * w.groups_per_row + g;
      const __m256 param = zero_point(w, p);
      // One fp32 multiply per weight, as the reference; kScaleFactor (a power of two) is exact.
      const __m256 scale = _mm256_set1_ps(D::kScaled ? w.scales[p] * D::kScaleFactor : 1.0f);
      for (const int64_t end = b + per_group < blocks ? b + per_group : blocks; b < end; ++b) {
        __m256 v[4];
        D::decode(row + b * D::kBytes, param, v);
        for (int i = 0; i < 4; ++i)
          _mm256_storeu_ps(o + b * kBlock + 8 * i, D::kScaled ? _mm256_mul_ps(v[i], scale) : v[i]);
      }
    }
  }
}

}  // namespace

void fill_avx2_kernels(KernelTable& t) {
  t.isa = Isa::kAvx2;
  t.name = "avx2";
  t.gemv_f16_f32 = gemv<F16>;
  t.gemv_bf16_f32 = gemv<BF16>;
  t.gemv_q8g_f32 = gemv<Q8>;
  t.gemv_q4g_f32 = gemv<Q4>;
  t.gemv_q3g_f32 = gemv<Q3>;
  t.gemv_q2g_f32 = gemv<Q2>;
  t.gemv_nf4g_f32 = gemv<NF4>;
  t.gemv_fp8c_f32 = gemv<FP8>;
  t.dequant_f16_f32 = dequant<F16>;
  t.dequant_bf16_f32 = dequant<BF16>;
  t.dequant_q8g_f32 = dequant<Q8>;
  t.dequant_q4g_f32 = dequant<Q4>;
  t.dequant_q3g_f32 = dequant<Q3>;
  t.dequant_q2g_f32 = dequant<Q2>;
  t.dequant_nf4g_f32 = dequant<NF4>;
  t.dequant_fp8c_f32 = dequant<FP8>;
  fill_avx2_qd8_kernels(t);
  fill_avx2_elementwise_kernels(t);
}

}  // namespace lowbit::kernels
