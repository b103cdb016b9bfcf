// AVX2 element-wise kernels that need exp: SwiGLU's silu(gate) * up and softmax rows (the scalar
// definitions: ref/ref_kernels.cc). The exp is avx512_elementwise.cc's (same clamp, reduction and
// Cephes polynomial); 2^n is built in the exponent bits in two halves, 2^(n/2) 2^(n - n/2), so
// n in [-150, 129] (x in [-104, 89]) still gives inf, denormals and 0 where the true value does.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

inline __m256 pow2i(__m256i n) {  // 2^n for n in [-126, 127]
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(89.0f), _mm256_max_ps(_mm256_set1_ps(-104.0f), x));  // NaN: second operand
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n);  // NaN x: 0x80000000, the result stays NaN through y
  const __m256i half = _mm256_srai_epi32(ni, 1);
  return _mm256_mul_ps(_mm256_mul_ps(y, pow2i(half)), pow2i(_mm256_sub_epi32(ni, half)));
}

// Lanes [0, n) of a vector (n < 8): loads through a zeroed (or `fill`ed) buffer.
inline __m256 load_part(const float* p, int64_t n, float fill = 0.0f) {
  alignas(32) float buf[8];
  std::fill(buf, buf + 8, fill);
  std::copy(p, p + n, buf);
  return _mm256_load_ps(buf);
}
inline void store_part(float* p, int64_t n, __m256 v) {
  alignas(32) float buf[8];
  _mm256_store_ps(buf, v);
  std::copy(buf, buf + n, p);
}

inline __m256 silu_mul8(__m256 g, __m256 u) {
  const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, silu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) store_part(out + i, n - i, silu_mul8(load_part(gate + i, n - i), load_part(up + i, n - i)));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

void softmax(float* row, int64_t n) {
  float max = row[0];
  for (int64_t i = 1; i < n; ++i) max = std::max(max, row[i]);
  const __m256 mx = _mm256_set1_ps(max);
  __m256 sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(row + i), mx));
    sum = _mm256_add_ps(sum, e);
    _mm256_storeu_ps(row + i, e);
  }
  float total = hsum(sum);
  if (i < n) {
    const __m256 e = exp_ps(_mm256_sub_ps(load_part(row + i, n - i, -INFINITY), mx));  // exp(-inf) = 0
    total += hsum(e);
    store_part(row + i, n - i, e);
  }
  const __m256 t = _mm256_set1_ps(total);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(row + i, _mm256_div_ps(_mm256_loadu_ps(row + i), t));
  for (; i < n; ++i) row[i] /= total;
}

}  // namespace

void fill_avx2_elementwise_kernels(KernelTable& t) {
  t.silu_mul_f32 = silu_mul;
  t.softmax_f32 = softmax;
}

}  // namespace lowbit::kernels
