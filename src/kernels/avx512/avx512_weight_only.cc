// AVX-512 (F/BW/VL/DQ) weight-only kernels: each 32-weight block is decoded in registers into two
// vectors of 16 fp32 values, then multiplied with exact fp32 activations (gemv) or stored
// (dequant). Same layouts as avx2/avx2_weight_only.cc at twice the width, but codes of up to 4
// bits (int4/3/2, nf4) are decoded by one 16-entry vpermps. Scalar definition:
// ref/ref_kernels.cc. Layouts: kernel_types.h.
#include <immintrin.h>

#include "formats/nf4.h"  // only the constant level table is used here
#include "kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

inline __m512i load_bytes16(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// A decoder turns one block into v[0] = weights 0..15 and v[1] = weights 16..31 before scaling:
// (code - zero) for integer grids, the level / E4M3 value for nf4 / fp8, the value for f16 / bf16.
// param(w, p) is what it needs of parameter set p, computed once per group and row.
//
// Codes of at most 4 bits index a 16-entry fp32 table with one vpermps: for integer grids the
// table holds (i - zero) for i = 0..15 (exact small integers, so the result equals
// float(code - zero)); that replaces an integer subtract and a conversion per vector.
inline __m512 code_minus_zero_table(const PackedWeightView& w, int64_t p) {
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_sub_ps(iota, _mm512_set1_ps(w.zeros[p]));
}

struct Q8 {
  static constexpr float kScaleFactor = 1.0f;  // true value = decoded value * kScaleFactor
  static constexpr int64_t kBytes = 32;
  static constexpr bool kScaled = true;
  using Param = __m512i;
  static Param param(const PackedWeightView& w, int64_t p) { return _mm512_set1_epi32(int(w.zeros[p])); }
  static void decode(const uint8_t* p, Param zero, __m512 v[2]) {
    v[0] = _mm512_cvtepi32_ps(_mm512_sub_epi32(load_bytes16(p), zero));
    v[1] = _mm512_cvtepi32_ps(_mm512_sub_epi32(load_bytes16(p + 16), zero));
  }
};

struct Q4 {
  static constexpr float kScaleFactor = 1.0f;
  static constexpr int64_t kBytes = 16;
  static constexpr bool kScaled = true;
  using Param = __m512;
  static Param param(const PackedWeightView& w, int64_t p) { return code_minus_zero_table(w, p); }
  static void decode(const uint8_t* p, Param table, __m512 v[2]) {
    const __m512i b = load_bytes16(p);
    v[0] = _mm512_permutexvar_ps(_mm512_and_si512(b, _mm512_set1_epi32(0xf)), table);
    v[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table);
  }
};

// Two-bit fields of a kQ2 block (the low bits of kQ3): the 8 bytes are loaded twice into 16
// lanes and shifted per lane, c[0] = codes 0..15, c[1] = codes 16..31.
inline void crumbs(const uint8_t* p, __m512i c[2]) {
  long long bytes;
  __builtin_memcpy(&bytes, p, 8);
  const __m512i b = _mm512_cvtepu8_epi32(_mm_set1_epi64x(bytes));
  const __m512i mask = _mm512_set1_epi32(3);
  const __m512i shift_lo = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
  const __m512i shift_hi = _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6);
  c[0] = _mm512_and_si512(_mm512_srlv_epi32(b, shift_lo), mask);
  c[1] = _mm512_and_si512(_mm512_srlv_epi32(b, shift_hi), mask);
}

struct Q2 {
  static constexpr float kScaleFactor = 1.0f;
  static constexpr int64_t kBytes = 8;
  static constexpr bool kScaled = true;
  using Param = __m512;
  static Param param(const PackedWeightView& w, int64_t p) { return code_minus_zero_table(w, p); }
  static void decode(const uint8_t* p, Param table, __m512 v[2]) {
    __m512i c[2];
    crumbs(p, c);
    v[0] = _mm512_permutexvar_ps(c[0], table);
    v[1] = _mm512_permutexvar_ps(c[1], table);
  }
};

struct Q3 {
  static constexpr float kScaleFactor = 1.0f;
  static constexpr int64_t kBytes = 12;
  static constexpr bool kScaled = true;
  using Param = __m512;
  static Param param(const PackedWeightView& w, int64_t p) { return code_minus_zero_table(w, p); }
  static void decode(const uint8_t* p, Param table, __m512 v[2]) {
    __m512i c[2];
    crumbs(p, c);
    int plane;
    __builtin_memcpy(&plane, p + 8, 4);
    const __m512i bits = _mm512_set1_epi32(plane), one = _mm512_set1_epi32(1);
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i hi0 = _mm512_and_si512(_mm512_srlv_epi32(bits, lanes), one);
    const __m512i hi1 = _mm512_and_si512(_mm512_srlv_epi32(bits, _mm512_add_epi32(lanes, _mm512_set1_epi32(16))), one);
    v[0] = _mm512_permutexvar_ps(_mm512_or_si512(c[0], _mm512_slli_epi32(hi0, 2)), table);
    v[1] = _mm512_permutexvar_ps(_mm512_or_si512(c[1], _mm512_slli_epi32(hi1, 2)), table);
  }
};

struct NF4 {
  static constexpr float kScaleFactor = 1.0f;
  static constexpr int64_t kBytes = 16;
  static constexpr bool kScaled = true;
  using Param = __m512;
  static Param param(const PackedWeightView&, int64_t) { return _mm512_loadu_ps(kNf4.levels); }
  static void decode(const uint8_t* p, Param levels, __m512 v[2]) {
    const __m512i b = load_bytes16(p);
    v[0] = _mm512_permutexvar_ps(_mm512_and_si512(b, _mm512_set1_epi32(0xf)), levels);
    v[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), levels);
  }
};

struct FP8 {
  static constexpr int64_t kBytes = 32;
  static constexpr bool kScaled = true;
  // Via fp16, 2^-8 times the E4M3 value: see avx2/avx2_weight_only.cc.
  static constexpr float kScaleFactor = 256.0f;
  using Param = int;
  static Param param(const PackedWeightView&, int64_t) { return 0; }
  static void decode(const uint8_t* p, Param, __m512 v[2]) {
    const __m512i s = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    const __m512i h = _mm512_and_si512(_mm512_slli_epi16(s, 7), _mm512_set1_epi16(int16_t(0xBFFF)));
    v[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    v[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
  }
};

struct F16 {
  static constexpr float kScaleFactor = 1.0f;
  static constexpr int64_t kBytes = 64;
  static constexpr bool kScaled = false;
  using Param = int;
  static Param param(const PackedWeightView&, int64_t) { return 0; }
  static void decode(const uint8_t* p, Param, __m512 v[2]) {
    v[0] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    v[1] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)));
  }
};

struct BF16 {
  static constexpr float kScaleFactor = 1.0f;
  static constexpr int64_t kBytes = 64;
  static constexpr bool kScaled = false;
  using Param = int;
  static Param param(const PackedWeightView&, int64_t) { return 0; }
  static void decode(const uint8_t* p, Param, __m512 v[2]) {
    for (int i = 0; i < 2; ++i) {
      const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * i)));
      v[i] = _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
    }
  }
};

// Prefetch distance within each row: one sequential stream per core reaches only about 60% of
// the read bandwidth on the machines measured (docs/results.md); several rows in flight, each
// prefetched ahead, get close to all of it.
constexpr int64_t kPrefetchBytes = 2048;

// MR rows at once: MR independent memory streams that share each load of x. Per group: the
// decoded weights times x summed over its blocks, then one multiply by the group's scale.
template <class D, int MR>
void gemv_rows(const PackedWeightView& w, int64_t r0, const float* x, float* y) {
  const int64_t blocks = w.k_padded / kBlock, per_group = w.group_size / kBlock;
  const uint8_t* row[MR];
  __m512 acc[MR];
  for (int i = 0; i < MR; ++i) {
    row[i] = w.codes + (r0 + i) * w.row_bytes;
    acc[i] = _mm512_setzero_ps();
  }
  for (int64_t g = 0, b = 0; g < w.groups_per_row; ++g) {
    typename D::Param param[MR];
    __m512 s0[MR], s1[MR];
    for (int i = 0; i < MR; ++i) {
      param[i] = D::param(w, (r0 + i) * w.groups_per_row + g);
      s0[i] = s1[i] = _mm512_setzero_ps();
    }
    for (const int64_t end = b + per_group < blocks ? b + per_group : blocks; b < end; ++b) {
      const __m512 x0 = _mm512_loadu_ps(x + b * kBlock), x1 = _mm512_loadu_ps(x + b * kBlock + 16);
      const bool new_line = (b * D::kBytes) % 64 < D::kBytes;  // once per 64-byte line of codes
      for (int i = 0; i < MR; ++i) {
        if (new_line) _mm_prefetch(reinterpret_cast<const char*>(row[i] + b * D::kBytes + kPrefetchBytes), _MM_HINT_T0);
        __m512 v[2];
        D::decode(row[i] + b * D::kBytes, param[i], v);
        s0[i] = _mm512_fmadd_ps(v[0], x0, s0[i]);
        s1[i] = _mm512_fmadd_ps(v[1], x1, s1[i]);
      }
    }
    for (int i = 0; i < MR; ++i) {
      const __m512 sum = _mm512_add_ps(s0[i], s1[i]);
      // kScaleFactor is a power of two: folding it into the scale is exact.
      const float scale = D::kScaled ? w.scales[(r0 + i) * w.groups_per_row + g] * D::kScaleFactor : 1.0f;
      acc[i] = D::kScaled ? _mm512_fmadd_ps(sum, _mm512_set1_ps(scale), acc[i]) : _mm512_add_ps(acc[i], sum);
    }
  }
  for (int i = 0; i < MR; ++i) y[r0 + i] = _mm512_reduce_add_ps(acc[i]);
}

template <class D>
void gemv(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const float* x, float* y) {
  int64_t r = row_begin;
  for (; r + 4 <= row_end; r += 4) gemv_rows<D, 4>(w, r, x, y);
  for (; r < row_end; ++r) gemv_rows<D, 1>(w, r, x, y);
}

template <class D>
void dequant(const PackedWeightView& w, int64_t row_begin, int64_t row_end, float* out) {
  const int64_t blocks = w.k_padded / kBlock, per_group = w.group_size / kBlock;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = w.codes + r * w.row_bytes;
    float* o = out + (r - row_begin) * w.k_padded;
    for (int64_t g = 0, b = 0; g < w.groups_per_row; ++g) {
      const int64_t p = r * w.groups_per_row + g;
      const typename D::Param param = D::param(w, p);
      // One fp32 multiply per weight, as the reference; kScaleFactor (a power of two) is exact.
      const __m512 scale = _mm512_set1_ps(D::kScaled ? w.scales[p] * D::kScaleFactor : 1.0f);
      for (const int64_t end = b + per_group < blocks ? b + per_group : blocks; b < end; ++b) {
        __m512 v[2];
        D::decode(row + b * D::kBytes, param, v);
        for (int i = 0; i < 2; ++i)
          _mm512_storeu_ps(o + b * kBlock + 16 * i, D::kScaled ? _mm512_mul_ps(v[i], scale) : v[i]);
      }
    }
  }
}

}  // namespace

void fill_avx512_kernels(KernelTable& t) {
  t.isa = Isa::kAvx512;
  t.name = "avx512";
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
  // Dynamic int8 kernels stay AVX2's unless AVX512-VNNI is present (fill_avx512_vnni_kernels).
}

}  // namespace lowbit::kernels
