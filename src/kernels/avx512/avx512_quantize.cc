// AVX-512 quantizer of one token's fp32 activations to dynamic int8 ("qd8", one scale per 32-input
// block) as one or two slices; scalar definition: quantize_f32_qd8_ref / quantize_f32_qd8x2_ref
// (ref/ref_kernels.cc), which this matches exactly. It runs on decode's serial path (the main
// thread, before every product, while the other threads wait). The AVX2 version pays two scalar
// divisions and two horizontal reductions per block and slice; here sixteen blocks share one
// vdivps for their reciprocals, one for their scales, and one transpose-and-reduce tree each for
// their absolute maxima and their code sums. Two slices, caches warm (session 16, Zen 4): 2048
// inputs 1.02 -> 0.70 us, 5632 inputs 2.8 -> 1.9 us, i.e. ~1.8 us less per TinyLlama layer.
#include <immintrin.h>

#include <algorithm>

#include "kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

constexpr int kBlocksPerGroup = 16;

// r[b] = combine over the 16 lanes of m[b], for b < 16, by a tree of 15 combines and 30 shuffles:
// pairs of vectors interleave and combine within 128-bit lanes (unpack, then shuffle_ps) until each
// 128-bit lane holds one partial per block of four, then the four 128-bit lanes fold (shuffle_f32x4).
// Lane 4 j + k of the result is block 4 j + k.
template <class Combine>
inline __m512 reduce_lanes16(const __m512 m[kBlocksPerGroup], Combine combine) {
  __m512 u[8], v[4];
  for (int i = 0; i < 8; ++i)
    u[i] = combine(_mm512_unpacklo_ps(m[2 * i], m[2 * i + 1]), _mm512_unpackhi_ps(m[2 * i], m[2 * i + 1]));
  for (int j = 0; j < 4; ++j)
    v[j] = combine(_mm512_shuffle_ps(u[2 * j], u[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                   _mm512_shuffle_ps(u[2 * j], u[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  const auto fold = [&](__m512 a, __m512 b) {
    return combine(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                   _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
  };
  return fold(fold(v[0], v[1]), fold(v[2], v[3]));
}

// Blocks [b0, b0 + n) (n <= 16) of the values at src (block b at src + 32 (b - b0), zeros past
// `valid` inputs) -> codes at q (same offsets), scales[b], block_sums[b]. With `residual`, the
// block's x - scale * code (one fma, as the reference) is written there for the next slice.
inline void quantize_group(const float* src, int64_t valid, int n, int8_t* q, float* scales, int32_t* block_sums,
                           float* residual) {
  // Block b's two halves of 16 inputs, zeros past `valid`; whole groups (all of decode's, k a
  // multiple of 512) load without masks.
  const bool whole = n == kBlocksPerGroup && valid >= kBlocksPerGroup * 32;
  const auto load = [&](int b, int h) {
    const int64_t left = valid - (b * 32 + h * 16);
    const __mmask16 mask =
        whole || left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
    return _mm512_maskz_loadu_ps(mask, src + b * 32 + h * 16);
  };
  // Blocks past n are zeros for the reductions, which run over all sixteen. Both loops run to the
  // constant 16 (they unroll) and `sums` lives only in the second: looping to n, with both arrays
  // zeroed up front, took 0.86 us instead of 0.72 for 2048 inputs.
  __m512 m[kBlocksPerGroup];
  for (int b = 0; b < kBlocksPerGroup; ++b)
    m[b] = b < n ? _mm512_max_ps(_mm512_abs_ps(load(b, 0)), _mm512_abs_ps(load(b, 1))) : _mm512_setzero_ps();
  const __m512 amax = reduce_lanes16(m, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); });
  // The reference's rule: below 1e-30 the reciprocal could overflow; such a block is all zeros
  // with scale 1.
  const __mmask16 zero = _mm512_cmp_ps_mask(amax, _mm512_set1_ps(1e-30f), _CMP_LT_OQ);
  const __m512 c127 = _mm512_set1_ps(127.0f);
  alignas(64) float inv[kBlocksPerGroup], scale[kBlocksPerGroup];
  _mm512_store_ps(inv, _mm512_maskz_div_ps(~zero, c127, amax));
  _mm512_store_ps(scale, _mm512_mask_blend_ps(zero, _mm512_div_ps(amax, c127), _mm512_set1_ps(1.0f)));
  __m512 sums[kBlocksPerGroup];
  for (int b = 0; b < kBlocksPerGroup; ++b) {
    if (b >= n) {
      sums[b] = _mm512_setzero_ps();
      continue;
    }
    const __m512 x0 = load(b, 0), x1 = load(b, 1);
    const __m512 r = _mm512_set1_ps(inv[b]);
    // Round to nearest even (the default MXCSR mode, as the reference's nearbyint); |code| <= 127.
    const __m512i c0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, r)), c1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, r));
    // Two saturating packs put the 32 codes in 128-bit-lane order (lane j: codes 4 j..4 j+3 of
    // each half, interleaved); one permute restores element order.
    const __m512i words = _mm512_packs_epi32(c0, c1);
    const __m256i bytes = _mm512_castsi512_si256(_mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), _mm512_packs_epi16(words, words)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * 32), bytes);
    sums[b] = _mm512_castsi512_ps(_mm512_add_epi32(c0, c1));
    if (residual != nullptr) {
      const __m512 s = _mm512_set1_ps(scale[b]);
      _mm512_storeu_ps(residual + b * 32, _mm512_fnmadd_ps(s, _mm512_cvtepi32_ps(c0), x0));
      _mm512_storeu_ps(residual + b * 32 + 16, _mm512_fnmadd_ps(s, _mm512_cvtepi32_ps(c1), x1));
    }
  }
  // Integer sums are exact in any order; the shuffles only move bits.
  const __m512 total = reduce_lanes16(sums, [](__m512 a, __m512 b) {
    return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
  });
  const __mmask16 first = __mmask16((1u << n) - 1);
  _mm512_mask_storeu_ps(scales, first, _mm512_load_ps(scale));
  _mm512_mask_storeu_epi32(block_sums, first, _mm512_castps_si512(total));
}

// x [k] as `kSlices` (1 or 2) qd8 slices into q [kSlices, k_padded], scales and block_sums
// [kSlices, k_padded / 32]; padding blocks come out as the reference's: zero codes, scale 1.
template <int kSlices>
void quantize_slices(const float* x, int64_t k, int64_t k_padded, int8_t* q, float* scales, int32_t* block_sums) {
  const int64_t blocks = k_padded / kBlock;
  alignas(64) float residual[kBlocksPerGroup * kBlock];
  for (int64_t b0 = 0; b0 < blocks; b0 += kBlocksPerGroup) {
    const int n = int(std::min<int64_t>(kBlocksPerGroup, blocks - b0));
    const int64_t i = b0 * kBlock, valid = k - i;
    quantize_group(x + i, valid, n, q + i, scales + b0, block_sums + b0, kSlices == 2 ? residual : nullptr);
    if constexpr (kSlices == 2)
      quantize_group(residual, valid, n, q + k_padded + i, scales + blocks + b0, block_sums + blocks + b0, nullptr);
  }
}

}  // namespace

void fill_avx512_quantize_kernels(KernelTable& t) {
  t.quantize_f32_qd8 = quantize_slices<1>;
  t.quantize_f32_qd8x2 = quantize_slices<2>;
}

}  // namespace lowbit::kernels
