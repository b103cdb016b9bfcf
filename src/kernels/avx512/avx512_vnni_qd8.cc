// AVX-512 VNNI kernels for dynamic int8 activations (W8A8, W4A8, W3A8, W2A8): vpdpbusd multiplies
// unsigned by signed bytes and adds groups of four straight into int32 lanes, with no int16
// saturation. Weight codes are already unsigned (0..255, 0..15, 0..7, 0..3) with a zero point,
// activations signed (-127..127), so neither operand needs the +128 shift. int8 rows (kQ8): one
// 64-byte vector covers two 32-input blocks: a vpdpbusd from zero leaves block b's partial sums in
// lanes 0..7 and block b+1's in lanes 8..15 (|lane| <= 4 * 255 * 127), which are converted to fp32
// and multiplied by the two blocks' activation scales in one FMA. 4/3/2-bit rows: four blocks per
// load of codes (see "4/3/2-bit group weights" below). int8 panels (kQ8P): at the end. The zero
// point enters once per group as zero * group_correction (kernel_types.h). Scalar definition:
// ref/ref_kernels.cc; compiled with -mavx512vnni, used only when the CPU reports it.
#include <immintrin.h>

#include <algorithm>
#include <bit>

#include "kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

// int8 codes of blocks b and b+1 (64 bytes in element order); `pair` false: block b only, upper
// half zero.
inline __m512i load_codes(const uint8_t* row, int64_t b, bool pair) {
  return _mm512_maskz_loadu_epi8(pair ? ~__mmask64(0) : __mmask64(0xffffffffu), row + b * kBlock);
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
template <bool kOneGroup, int MR, int NR>
void tile(const PackedWeightView& w, int64_t r0, int64_t t0, const QuantizedActivationsView& a, float* y,
          int64_t ldy) {
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
        _mm_prefetch(reinterpret_cast<const char*>(row[i] + b * kBlock + 2048), _MM_HINT_T0);
        codes[i] = load_codes(row[i], b, pair);
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

template <bool kOneGroup, int MR>
void rows(const PackedWeightView& w, int64_t r, const QuantizedActivationsView& a, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= a.tokens; t += 4) tile<kOneGroup, MR, 4>(w, r, t, a, y, ldy);
  switch (a.tokens - t) {
    case 3: tile<kOneGroup, MR, 3>(w, r, t, a, y, ldy); break;
    case 2: tile<kOneGroup, MR, 2>(w, r, t, a, y, ldy); break;
    case 1: tile<kOneGroup, MR, 1>(w, r, t, a, y, ldy); break;
    default: break;
  }
}

// Several rows at a time share each activation load: 4 x 4 tiles for per-channel prefill (16
// accumulators), 2 x 4 with groups (8 group + 8 row accumulators), 4 adjacent rows for one token
// (decode).
template <bool kOneGroup>
void gemm_rows(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
               float* y, int64_t ldy) {
  int64_t r = row_begin;
  if (a.tokens == 1 || kOneGroup)
    for (; r + 4 <= row_end; r += 4) rows<kOneGroup, 4>(w, r, a, y, ldy);
  for (; r + 2 <= row_end; r += 2) rows<kOneGroup, 2>(w, r, a, y, ldy);
  if (r < row_end) rows<kOneGroup, 1>(w, r, a, y, ldy);
}

void gemm_qd8_q8(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
                 float* y, int64_t ldy) {
  if (w.groups_per_row == 1) {
    gemm_rows<true>(w, row_begin, row_end, a, y, ldy);
  } else {
    gemm_rows<false>(w, row_begin, row_end, a, y, ldy);
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

// ---- 4/3/2-bit group weights: one load of codes per 128 weights (all of decode) ----
//
// A chunk is 4 blocks (128 weights) of one row. Its codes are unpacked with shifts and masks into
// two vectors of 64 bytes, one code per byte, in an order where every dword lane (the 4 bytes one
// vpdpbusd lane sums) lies in a single block; the token's 128 int8 activations are shuffled into
// the same order once per chunk (one or two shuffles, shared by all rows in flight). Two vpdpbusd
// from zero leave each block's partial sums in its 4 lanes; one conversion and one FMA with the
// lanes' activation scale x weight scale then add the chunk to the row's fp32 accumulator. That is
// one conversion per 128 weights and row (the per-block kernel above: one per 64), and no
// per-group epilogue. The zero point is one vector pass over the row's groups at the end,
// sum_g scale * zero * group_correction (kernel_types.h).
//
//   kQ4 (64 bytes, 16 per block): low nibbles -> A = [b0 c0..15 | b1 c0..15 | b2 c0..15 | b3
//        c0..15], high nibbles -> B (c16..31); lane L lies in block L / 4.
//   kQ2 (32 bytes, 8 per block) and the low bit pairs of kQ3: the 32 bytes in both halves, pair 0
//        of each byte in the lower half and pair 1 in the upper -> A = [b0 c0..7, b1 c0..7, b2
//        c0..7, b3 c0..7 | b0 c8..15, ..., b3 c8..15], pairs 2 and 3 -> B (c16..23 | c24..31);
//        lane L lies in block (L % 8) / 2. The upper half is masked in place (0x0c), not shifted:
//        its codes count 4x, and its lanes' scales are divided by 4 (a power of two: exact).
//   kQ3 (48 bytes, 12 per block): as kQ2, plus bit 2 of each code from its block's 32-bit plane:
//        vpshufb brings the plane byte holding it to the code's byte, vptestmb against the code's
//        bit turns those into a mask, and a masked add puts 4 (16 in the upper half) into the codes
//        whose bit is set.
// A chunk past the last whole one (k_padded not a multiple of 128) loads its 1-3 blocks with masks
// (zero codes, zero activations, zero scales for the rest): no tail code. Scalar definition:
// gemm_qd8_ref (ref/ref_kernels.cc).
constexpr int64_t kChunk = 128, kChunkBlocks = 4;
// Prefetch distance within each row stream: as the weight-only decode kernels (512-1024 bytes
// measured best for int4 there, avx512_weight_only.cc).
constexpr int64_t kChunkPrefetchBytes = 1024;

// The first n bytes / dwords / floats of a vector.
inline __mmask64 first_bytes(int64_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }
inline __mmask16 first_lanes(int64_t n) { return __mmask16((1u << n) - 1); }

// Activations of one chunk (natural order, x0 = inputs 0..63, x1 = 64..127) in the two orders of
// the kQ2/kQ3 codes (see above), by 8-byte pieces.
inline void crumb_order(__m512i x0, __m512i x1, __m512i x[2]) {
  x[0] = _mm512_permutex2var_epi64(x0, _mm512_setr_epi64(0, 4, 8, 12, 1, 5, 9, 13), x1);
  x[1] = _mm512_permutex2var_epi64(x0, _mm512_setr_epi64(2, 6, 10, 14, 3, 7, 11, 15), x1);
}

// The 32 bytes of bit pairs of 4 blocks (both halves of `both`) -> the codes' low 2 bits in the
// A and B orders: A = pairs 0 | 4 x pairs 1, B = the same of both >> 4 (pairs 2 | 4 x pairs 3).
inline void crumbs(__m512i both, __m512i c[2]) {
  const __m512i pairs = _mm512_inserti64x4(_mm512_set1_epi8(0x03), _mm256_set1_epi8(0x0c), 1);
  c[0] = _mm512_and_si512(both, pairs);
  c[1] = _mm512_and_si512(_mm512_srli_epi16(both, 4), pairs);
}

struct ChunkQ4 {
  static constexpr int64_t kBlockBytes = 16;
  static __m512i lane_blocks() { return _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3); }
  // Lane L's activation scale is multiplied by lane_factor()[L] (the codes' weight in that lane).
  static __m512 lane_factor() { return _mm512_set1_ps(1.0f); }
  static void codes(const uint8_t* p, int64_t blocks, __m512i c[2]) {
    const __m512i v = blocks == kChunkBlocks ? _mm512_loadu_si512(p)
                                              : _mm512_maskz_loadu_epi8(first_bytes(blocks * kBlockBytes), p);
    const __m512i low = _mm512_set1_epi8(0x0f);
    c[0] = _mm512_and_si512(v, low);
    c[1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
  }
  static void order(__m512i x0, __m512i x1, __m512i x[2]) {
    // 16-byte pieces: A = [x0.0, x0.2, x1.0, x1.2] (codes 0..15 of each block), B the others.
    x[0] = _mm512_shuffle_i64x2(x0, x1, _MM_SHUFFLE(2, 0, 2, 0));
    x[1] = _mm512_shuffle_i64x2(x0, x1, _MM_SHUFFLE(3, 1, 3, 1));
  }
};

struct ChunkQ2 {
  static constexpr int64_t kBlockBytes = 8;
  static __m512i lane_blocks() { return _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1, 2, 2, 3, 3); }
  static __m512 lane_factor() { return _mm512_insertf32x8(_mm512_set1_ps(1.0f), _mm256_set1_ps(0.25f), 1); }
  static void codes(const uint8_t* p, int64_t blocks, __m512i c[2]) {
    if (blocks == kChunkBlocks) {  // a broadcast load: no shuffle
      crumbs(_mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), c);
    } else {
      const __m256i v = _mm256_maskz_loadu_epi8(__mmask32(first_bytes(blocks * kBlockBytes)), p);
      crumbs(_mm512_inserti64x4(_mm512_castsi256_si512(v), v, 1), c);
    }
  }
  static void order(__m512i x0, __m512i x1, __m512i x[2]) { crumb_order(x0, x1, x); }
};

struct ChunkQ3 {
  static constexpr int64_t kBlockBytes = 12;
  static __m512i lane_blocks() { return ChunkQ2::lane_blocks(); }
  static __m512 lane_factor() { return ChunkQ2::lane_factor(); }
  static void codes(const uint8_t* p, int64_t blocks, __m512i c[2]) {
    // 12 dwords: per block 2 of bit pairs, then its plane.
    const __m512i raw = _mm512_maskz_loadu_epi32(first_lanes(3 * blocks), p);
    const __m512i pair_dwords = _mm512_setr_epi32(0, 1, 3, 4, 6, 7, 9, 10, 0, 1, 3, 4, 6, 7, 9, 10);
    const __m512i pairs = _mm512_permutexvar_epi32(pair_dwords, raw);
    crumbs(pairs, c);
    // Every 128-bit lane = the 4 planes; byte i of A wants bit (i % 8) of byte i / 32 of the
    // plane of block (i % 32) / 8 (code j = i % 8 + 8 (i / 32)); B the same 2 bytes further.
    const __m512i plane_dwords = _mm512_setr_epi32(2, 5, 8, 11, 2, 5, 8, 11, 2, 5, 8, 11, 2, 5, 8, 11);
    const __m512i planes = _mm512_permutexvar_epi32(plane_dwords, raw);
    const __m512i plane_byte_a = _mm512_set_epi64(0x0d0d0d0d0d0d0d0d, 0x0909090909090909, 0x0505050505050505,
                                                   0x0101010101010101, 0x0c0c0c0c0c0c0c0c, 0x0808080808080808,
                                                   0x0404040404040404, 0x0000000000000000);
    const __m512i plane_byte_b = _mm512_add_epi8(plane_byte_a, _mm512_set1_epi8(2));
    const __m512i bit = _mm512_set1_epi64(0x8040201008040201);
    const __m512i four = _mm512_inserti64x4(_mm512_set1_epi8(4), _mm256_set1_epi8(16), 1);  // 4 x bit 2
    const __mmask64 high_a = _mm512_test_epi8_mask(_mm512_shuffle_epi8(planes, plane_byte_a), bit);
    const __mmask64 high_b = _mm512_test_epi8_mask(_mm512_shuffle_epi8(planes, plane_byte_b), bit);
    c[0] = _mm512_mask_add_epi8(c[0], high_a, c[0], four);
    c[1] = _mm512_mask_add_epi8(c[1], high_b, c[1], four);
  }
  static void order(__m512i x0, __m512i x1, __m512i x[2]) { crumb_order(x0, x1, x); }
};

// Rows r0 + i * stride (i < MR) against tokens t0..t0+NT-1. kWide: every chunk lies in one weight
// group (group_size a multiple of 128, or one group per row), so the weight scale is a broadcast;
// otherwise each lane takes its block's group scale.
template <class C, bool kWide, int MR, int NT>
void chunk_tile(const PackedWeightView& w, int64_t r0, int64_t stride, int64_t t0, const QuantizedActivationsView& a,
                float* y, int64_t ldy) {
  constexpr int64_t kChunkBytes = kChunkBlocks * C::kBlockBytes;
  const int64_t blocks = w.k_padded / kBlock, chunks = (blocks + kChunkBlocks - 1) / kChunkBlocks;
  const int64_t per_group = w.group_size / kBlock;
  const int64_t chunks_per_group = w.groups_per_row == 1 ? INT64_MAX : w.group_size / kChunk;
  const __m512i lane_blocks = C::lane_blocks();
  const __m512 lane_factor = C::lane_factor();
  const uint8_t* row[MR];
  const float* row_scales[MR];
  __m512 acc[MR][NT];
  for (int i = 0; i < MR; ++i) {
    row[i] = w.codes + (r0 + i * stride) * w.row_bytes;
    row_scales[i] = w.scales + (r0 + i * stride) * w.groups_per_row;
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  int64_t g = 0, next_group = chunks_per_group;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b0 = c * kChunkBlocks, n = blocks - b0 < kChunkBlocks ? blocks - b0 : kChunkBlocks;
    __m512i x[NT][2];
    __m512 act_scale[NT];
    for (int j = 0; j < NT; ++j) {
      const int8_t* q = a.values + (t0 + j) * a.k_padded + c * kChunk;
      const __m512i x0 = _mm512_maskz_loadu_epi8(first_bytes(n * kBlock), q);
      const __m512i x1 = _mm512_maskz_loadu_epi8(first_bytes(n * kBlock - 64 > 0 ? n * kBlock - 64 : 0), q + 64);
      C::order(x0, x1, x[j]);
      const __m512 four = _mm512_maskz_loadu_ps(first_lanes(n), a.scales + (t0 + j) * blocks + b0);
      act_scale[j] = _mm512_mul_ps(_mm512_permutexvar_ps(lane_blocks, four), lane_factor);
    }
    if (kWide && c == next_group) {
      ++g;
      next_group += chunks_per_group;
    }
    int64_t lane_groups[kChunkBlocks] = {};
    if (!kWide)
      for (int64_t b = 0; b < kChunkBlocks; ++b) lane_groups[b] = (b0 + (b < n ? b : n - 1)) / per_group;
    for (int i = 0; i < MR; ++i) {
      const uint8_t* p = row[i] + c * kChunkBytes;
      // Each row is its own memory stream (rows in flight come from separate parts of the range).
      _mm_prefetch(reinterpret_cast<const char*>(p + kChunkPrefetchBytes), _MM_HINT_T0);
      __m512i codes[2];
      C::codes(p, n, codes);
      const float* s = row_scales[i];
      const __m512 weight_scale =
          kWide ? _mm512_set1_ps(s[g])
                : _mm512_permutexvar_ps(lane_blocks, _mm512_castps128_ps512(_mm_setr_ps(
                                                         s[lane_groups[0]], s[lane_groups[1]], s[lane_groups[2]],
                                                         s[lane_groups[3]])));
      for (int j = 0; j < NT; ++j) {
        const __m512i dot =
            _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), codes[0], x[j][0]), codes[1], x[j][1]);
        acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(act_scale[j], weight_scale), acc[i][j]);
      }
    }
  }
  // Zero points: sum over groups of scale * zero * group_correction, 16 groups at a time.
  for (int i = 0; i < MR; ++i) {
    const float* zeros = w.zeros + (r0 + i * stride) * w.groups_per_row;
    __m512 correction[NT];
    for (int j = 0; j < NT; ++j) correction[j] = _mm512_setzero_ps();
    for (int64_t g0 = 0; g0 < w.groups_per_row; g0 += 16) {
      const __mmask16 m = first_lanes(w.groups_per_row - g0 < 16 ? w.groups_per_row - g0 : 16);
      const __m512 scale_zero =
          _mm512_mul_ps(_mm512_maskz_loadu_ps(m, row_scales[i] + g0), _mm512_maskz_loadu_ps(m, zeros + g0));
      for (int j = 0; j < NT; ++j) {
        const __m512 group_corrections = _mm512_maskz_loadu_ps(m, a.group_corrections + (t0 + j) * a.groups + g0);
        correction[j] = _mm512_fmadd_ps(scale_zero, group_corrections, correction[j]);
      }
    }
    for (int j = 0; j < NT; ++j)
      y[(t0 + j) * ldy + r0 + i * stride] = _mm512_reduce_add_ps(_mm512_sub_ps(acc[i][j], correction[j]));
  }
}

template <class C, bool kWide, int MR>
void chunk_tokens(const PackedWeightView& w, int64_t r0, int64_t stride, const QuantizedActivationsView& a, float* y,
                  int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= a.tokens; t += 4) chunk_tile<C, kWide, MR, 4>(w, r0, stride, t, a, y, ldy);
  switch (a.tokens - t) {
    case 3: chunk_tile<C, kWide, MR, 3>(w, r0, stride, t, a, y, ldy); break;
    case 2: chunk_tile<C, kWide, MR, 2>(w, r0, stride, t, a, y, ldy); break;
    case 1: chunk_tile<C, kWide, MR, 1>(w, r0, stride, t, a, y, ldy); break;
    default: break;
  }
}

// One token (decode): the range splits into kStreams equal parts and pass p takes row p of each,
// so each row in flight walks its own contiguous part of the weight (kStreams sequential memory
// streams per core, as avx512_weight_only.cc's for_row_streams). More tokens: 4 adjacent rows x 4
// tokens share each load (16 fp32 accumulators; measured 1.3-1.9x the 2 x 4 tile per core on
// 512x2048 int4 g128 x 64 tokens, cache-resident).
constexpr int kStreams = 4;

template <class C, bool kWide>
void chunk_rows(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
                float* y, int64_t ldy) {
  int64_t r = row_begin;
  if (a.tokens == 1) {
    const int64_t part = (row_end - row_begin) / kStreams;
    for (; r < row_begin + part; ++r) chunk_tile<C, kWide, kStreams, 1>(w, r, part, 0, a, y, ldy);
    r = row_begin + kStreams * part;
  } else {
    for (; r + 4 <= row_end; r += 4) chunk_tokens<C, kWide, 4>(w, r, 1, a, y, ldy);
  }
  for (; r < row_end; ++r) chunk_tokens<C, kWide, 1>(w, r, 1, a, y, ldy);
}

template <class C>
void gemm_qd8_chunked(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
                      float* y, int64_t ldy) {
  if (w.groups_per_row == 1 || w.group_size % kChunk == 0) {
    chunk_rows<C, true>(w, row_begin, row_end, a, y, ldy);
  } else {
    chunk_rows<C, false>(w, row_begin, row_end, a, y, ldy);
  }
}

// ---- int4 / int3 / int2 in double / quad panels (kQ4P / kQ3P / kQ2P, kernel_types.h) ----

// The panel kernels (kQ8P above, these below) leave their streams to the hardware prefetcher: on
// the Zen 4 VM of session 8, prefetching every line 2-4 KiB ahead made the decode of 22 TinyLlama
// layers read less (layers-only harness, 8 interleaved rounds, median % of the probe with / without:
// W4A8 72 / 87 and 79 / 82, W8A8 85 / 91, W2A8 68 / 73 and 70 / 81), as it did the bandwidth probe;
// on the Emerald Rapids VM of sessions 5-6 no distance from none to 16 KiB made a difference.
// The exception: kQ2P as two slices, eight vpdpbusd per 64 bytes and the one kernel bound by its
// arithmetic per core, leaves too few lines in flight (session 16). Layers-only harness on the Zen 4
// VM, session 17, kernels swapped round by round in one process (20 rounds, median of the paired
// ratios): `prefetcht2` of every line 16 KiB ahead 1.04-1.11x none, 8 KiB 1.04, 24 KiB 1.05, 4 KiB
// 1.02; `prefetcht1` 16 KiB 1.04, `prefetcht0` 16 KiB 0.95. The same 16 KiB slowed the panels that
// are not bound by arithmetic: int3 and int4 as two slices 0.97 and 0.95, W4A8 0.92, W2A8 0.98.
// (Sessions 14-16 timed such prefetches one run against another and saw only the host's noise.)
// `lowbit bench tl-q2f`, 6 alternations with the binary before: slow-phase medians 78.5 -> 81%.
constexpr int64_t kSlicedPrefetchBytes = 16384;
// Rows per panel: 2 (kQ4P) or 4 (kQ2P, kQ3P) parts of 16 rows.
constexpr int low_bit_panel_parts(int bits) { return bits == 4 ? 2 : 4; }
//
// kBits = 4 (kQ4P, panels of 32 rows), 2 (kQ2P, 64 rows) or 3 (kQ3P, 64 rows): ND panels, d0 + i *
// stride for i < ND, against NT tokens from t0. One 64-byte load per panel and step of 4 inputs;
// part q of the panel (rows 16 q .. 16 q + 15) is v & (mask << kLowBits q), its codes times
// 2^(kLowBits q) with no shift; each part meets the token's 4 activations (broadcast) in one
// vpdpbusd. kQ3P adds one load of the high plane per two steps (the odd step's bits first shifted
// down by one) and puts each part's third bit beside its two low bits in the same byte before its
// one vpdpbusd: parts 0-2 OR it in where it lies (it counts 4 x 4^q), part 3 is shifted to a code
// of weight 1 (session 13: one vpdpbusd per part instead of two, half of int3's). Per 32-input
// block the int32 sums (|sum| <= 32 * 240 * 127, kQ4P's high part) are converted and scaled by the
// block's activation scale into a group accumulator; per weight group that is multiplied by the 16
// rows' scales (one load: panel kinds keep them as [rows / 16, groups, 16], kernel_types.h; part
// q's also by 2^-(the bits its codes sit above bit 0), exact) into the row accumulator. The zero
// points come last, as sum_g scale * zero * group_correction. kQ4P: 4 vector operations per 128
// weights (about 9 per 128 weights and row for kQ4 rows); kQ2P: 9 per 256 (about 10 per 128 for
// kQ2 rows); kQ3P: about 16 per 256, 4 of them vpdpbusd (about 17 per 128 for kQ3 rows). Rows
// outside [row_begin, row_end) are computed but not stored.
//
// kPrefetch (kQ2P's one stream of a token as two int8 slices): each 64-byte step prefetches the
// line kSlicedPrefetchBytes ahead, up to the end of the panels that hold [row_begin, row_end).
template <int kBits, int ND, int NT, bool kPrefetch = false>
void low_bit_panel_tile(const PackedWeightView& w, int64_t d0, int64_t stride, int64_t t0,
                        const QuantizedActivationsView& a, float* y, int64_t ldy, int64_t row_begin, int64_t row_end) {
  constexpr int kParts = low_bit_panel_parts(kBits), kLowBits = 8 / kParts, kRows = kParts * kPanelRows;
  constexpr bool kHighPlane = kBits == 3;
  const int64_t blocks = w.k_padded / kBlock, per_group = w.group_size / kBlock, groups = w.groups_per_row;
  const int64_t panel_bytes = kRows * w.k_padded * kBits / 8;
  const int64_t prefetch_end = (row_end + kRows - 1) / kRows * panel_bytes - kSlicedPrefetchBytes;  // offset
  __m512i mask[kParts];
  for (int h = 0; h < kParts; ++h) mask[h] = _mm512_set1_epi8(int8_t(((1 << kLowBits) - 1) << (kLowBits * h)));
  // The 16 rows of part h of panel d, group g: one vector at param_index(w, first_row[d] + 16 h, g).
  const auto part_params = [&](const float* params, int64_t part_row, int64_t g) {
    return _mm512_loadu_ps(params + param_index(w, part_row, g));
  };
  const uint8_t* panel[ND];
  int64_t first_row[ND];
  for (int d = 0; d < ND; ++d) {
    panel[d] = w.codes + (d0 + d * stride) * panel_bytes;
    first_row[d] = (d0 + d * stride) * kRows;
  }
  // Decode (NT <= 2) prefetches the next panel's scales and zeros (kParts x groups 64-byte lines
  // each) spread over this panel's steps: line j at step j << param_shift (pieces for kQ3P).
  // They sit in 4 KiB pages (each weight's are under 2 MiB), where the hardware prefetcher stops,
  // and are read once per group and part. Layers-only harness, session 17 (paired rounds, as for
  // kSlicedPrefetchBytes; two runs each): int2 as two slices 1.04-1.14x, W2A8 1.05, W4A8
  // 1.03-1.06, W3A8 1.02-1.04, int3 and int4 as two slices 0.98-1.05 and 0.99-1.01.
  const int64_t param_lines = kParts * groups, steps = w.k_padded / (kHighPlane ? 8 : 4);
  const int param_shift = std::bit_width(uint64_t(std::max<int64_t>(1, steps / param_lines))) - 1;
  const int64_t panels_end = (w.rows + kRows - 1) / kRows * kRows;  // rows
  // Where (at param_index) the line to prefetch at this step lies, or -1. The prefetches stay in the
  // loops: GCC 12 took a lambda that did them for a pure function and dropped every call to it.
  const auto next_params_line = [&](int d, int64_t step) -> int64_t {
    const int64_t line = step >> param_shift;
    if (NT > 2 || step != line << param_shift || line >= param_lines || first_row[d] + kRows >= panels_end) return -1;
    return param_index(w, first_row[d] + kRows, 0) + line * 16;
  };
  __m512 acc[ND][kParts][NT], group_acc[ND][kParts][NT];
  for (int d = 0; d < ND; ++d)
    for (int h = 0; h < kParts; ++h)
      for (int t = 0; t < NT; ++t) acc[d][h][t] = group_acc[d][h][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    __m512i sums[ND][kParts][NT];
    for (int d = 0; d < ND; ++d)
      for (int h = 0; h < kParts; ++h)
        for (int t = 0; t < NT; ++t) sums[d][h][t] = _mm512_setzero_si512();
    if constexpr (kHighPlane) {
      // Each part's 3-bit codes in one byte, so one vpdpbusd per part and token: parts 0-2 OR
      // their plane bit (at 2h + 2, just above the part's two low bits) into the masked low bits,
      // (code low + 4 high) x 4^h; part 3's low bits (6-7) and plane bit (0) are shifted to bits
      // 0-1 and 2 (vpsrlw / vpsllw within 16-bit words: the masks drop what crosses bytes), a
      // code of weight 1.
      __m512i high_mask[kParts];
      for (int h = 0; h < kParts; ++h) high_mask[h] = _mm512_set1_epi8(int8_t(1 << ((2 * h + 2) % 8)));
      const __m512i low_two = _mm512_set1_epi8(0x03), third = _mm512_set1_epi8(0x04);
      for (int64_t piece = b * (kBlock / 8); piece < (b + 1) * (kBlock / 8); ++piece) {  // 8 inputs, 192 bytes
        __m512i av[NT][2];
        for (int t = 0; t < NT; ++t)
          for (int o = 0; o < 2; ++o) {
            int32_t four;
            __builtin_memcpy(&four, a.values + (t0 + t) * a.k_padded + piece * 8 + 4 * o, 4);
            av[t][o] = _mm512_set1_epi32(four);
          }
        for (int d = 0; d < ND; ++d) {
          const uint8_t* at = panel[d] + piece * 192;
          if (const int64_t param_at = next_params_line(d, piece); param_at >= 0) {
            _mm_prefetch(reinterpret_cast<const char*>(w.scales + param_at), _MM_HINT_T2);
            _mm_prefetch(reinterpret_cast<const char*>(w.zeros + param_at), _MM_HINT_T2);
          }
          const __m512i high_even = _mm512_loadu_si512(at + 128);
          const __m512i low[2] = {_mm512_loadu_si512(at), _mm512_loadu_si512(at + 64)};
          const __m512i high[2] = {high_even, _mm512_srli_epi16(high_even, 1)};
          for (int o = 0; o < 2; ++o)
            for (int h = 0; h < kParts; ++h) {
              // 0xEA: (A & B) | C.
              const __m512i code =
                  h + 1 < kParts
                      ? _mm512_ternarylogic_epi32(low[o], mask[h], _mm512_and_si512(high[o], high_mask[h]), 0xEA)
                      : _mm512_ternarylogic_epi32(_mm512_srli_epi16(low[o], 6), low_two,
                                                  _mm512_and_si512(_mm512_slli_epi16(high[o], 2), third), 0xEA);
              for (int t = 0; t < NT; ++t) sums[d][h][t] = _mm512_dpbusd_epi32(sums[d][h][t], code, av[t][o]);
            }
        }
      }
    } else {
      for (int64_t step = b * (kBlock / 4); step < (b + 1) * (kBlock / 4); ++step) {
        __m512i part[ND][kParts];
        for (int d = 0; d < ND; ++d) {
          const __m512i v = _mm512_loadu_si512(panel[d] + step * 64);
          if (kPrefetch && panel[d] - w.codes + step * 64 < prefetch_end)
            _mm_prefetch(reinterpret_cast<const char*>(panel[d] + step * 64 + kSlicedPrefetchBytes), _MM_HINT_T2);
          if (const int64_t param_at = next_params_line(d, step); param_at >= 0) {
            _mm_prefetch(reinterpret_cast<const char*>(w.scales + param_at), _MM_HINT_T2);
            _mm_prefetch(reinterpret_cast<const char*>(w.zeros + param_at), _MM_HINT_T2);
          }
          for (int h = 0; h < kParts; ++h) part[d][h] = _mm512_and_si512(v, mask[h]);
        }
        for (int t = 0; t < NT; ++t) {
          int32_t four;
          __builtin_memcpy(&four, a.values + (t0 + t) * a.k_padded + step * 4, 4);
          const __m512i av = _mm512_set1_epi32(four);
          for (int d = 0; d < ND; ++d)
            for (int h = 0; h < kParts; ++h) sums[d][h][t] = _mm512_dpbusd_epi32(sums[d][h][t], part[d][h], av);
        }
      }
    }
    for (int t = 0; t < NT; ++t) {
      const __m512 scale = _mm512_set1_ps(a.scales[(t0 + t) * blocks + b]);
      for (int d = 0; d < ND; ++d)
        for (int h = 0; h < kParts; ++h)
          group_acc[d][h][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[d][h][t]), scale, group_acc[d][h][t]);
    }
    if ((b + 1) % per_group == 0 || b + 1 == blocks) {
      const int64_t g = b / per_group;
      for (int d = 0; d < ND; ++d)
        for (int h = 0; h < kParts; ++h) {
          __m512 s = part_params(w.scales, first_row[d] + h * kPanelRows, g);
          const int weight_bits = kHighPlane && h == kParts - 1 ? 0 : kLowBits * h;  // part h's codes count 2^this
          if (weight_bits > 0) s = _mm512_mul_ps(s, _mm512_set1_ps(1.0f / float(1 << weight_bits)));
          for (int t = 0; t < NT; ++t) {
            acc[d][h][t] = _mm512_fmadd_ps(group_acc[d][h][t], s, acc[d][h][t]);
            group_acc[d][h][t] = _mm512_setzero_ps();
          }
        }
    }
  }
  for (int d = 0; d < ND; ++d)
    for (int h = 0; h < kParts; ++h) {
      const int64_t r0 = first_row[d] + h * kPanelRows;
      uint32_t in_range = 0;
      for (int i = 0; i < kPanelRows; ++i) in_range |= uint32_t(r0 + i >= row_begin && r0 + i < row_end) << i;
      if (in_range == 0) continue;
      __m512 correction[NT];
      for (int t = 0; t < NT; ++t) correction[t] = _mm512_setzero_ps();
      for (int64_t g = 0; g < groups; ++g) {
        const __m512 scale_zero = _mm512_mul_ps(part_params(w.scales, r0, g), part_params(w.zeros, r0, g));
        for (int t = 0; t < NT; ++t)
          correction[t] =
              _mm512_fmadd_ps(scale_zero, _mm512_set1_ps(a.group_corrections[(t0 + t) * a.groups + g]), correction[t]);
      }
      for (int t = 0; t < NT; ++t)
        _mm512_mask_storeu_ps(y + (t0 + t) * ldy + r0, __mmask16(in_range), _mm512_sub_ps(acc[d][h][t], correction[t]));
    }
}

// Tokens in tiles of kTokens (kQ4P: 4, 24 accumulators; kQ2P, kQ3P: 2, as many).
template <int kBits, int ND>
void low_bit_panel_tokens(const PackedWeightView& w, int64_t d0, const QuantizedActivationsView& a, float* y,
                          int64_t ldy, int64_t row_begin, int64_t row_end) {
  constexpr int kTokens = kBits == 4 ? 4 : 2;
  int64_t t = 0;
  for (; t + kTokens <= a.tokens; t += kTokens)
    low_bit_panel_tile<kBits, ND, kTokens>(w, d0, 1, t, a, y, ldy, row_begin, row_end);
  if constexpr (kTokens == 4) {
    switch (a.tokens - t) {
      case 3: low_bit_panel_tile<kBits, ND, 3>(w, d0, 1, t, a, y, ldy, row_begin, row_end); return;
      case 2: low_bit_panel_tile<kBits, ND, 2>(w, d0, 1, t, a, y, ldy, row_begin, row_end); return;
      default: break;
    }
  }
  if (a.tokens - t == 1) low_bit_panel_tile<kBits, ND, 1>(w, d0, 1, t, a, y, ldy, row_begin, row_end);
}

// One token: kStreams panels at a time (kQ4P 4, kQ2P / kQ3P 2: 24 accumulators either way), taken
// from as many parts of the range, so that each is one long sequential memory stream, as the kQ4
// chunk kernels do. (A read-only loop over 4 adjacent 32 KiB streams ran at 21-25 GB/s on 2
// threads, over streams 700 KiB apart at 29-32; the kQ4P kernel itself read ~22 GB/s either way in
// a layers-only loop.) More tokens: one panel x kTokens tokens.
template <int kBits>
void gemm_qd8_low_bit_panels(const PackedWeightView& w, int64_t row_begin, int64_t row_end,
                             const QuantizedActivationsView& a, float* y, int64_t ldy) {
  constexpr int kRows = low_bit_panel_parts(kBits) * kPanelRows, kStreams = kBits == 4 ? 4 : 2;
  int64_t d = row_begin / kRows;
  const int64_t end = (row_end + kRows - 1) / kRows;
  if (a.tokens == 1) {
    const int64_t part = (end - d) / kStreams;
    for (int64_t i = 0; i < part; ++i)
      low_bit_panel_tile<kBits, kStreams, 1>(w, d + i, part, 0, a, y, ldy, row_begin, row_end);
    d += kStreams * part;
  } else if (a.tokens == 2) {
    // One token as two int8 slices (packed_matmul.h, weight-only decode): half the streams, as
    // many accumulators. kQ2P / kQ3P keep one stream; kQ2P's prefetches (low_bit_panel_tile).
    constexpr int kSlicedStreams = kStreams / 2;
    const int64_t part = (end - d) / kSlicedStreams;
    for (int64_t i = 0; i < part; ++i)
      low_bit_panel_tile<kBits, kSlicedStreams, 2, kBits == 2>(w, d + i, part, 0, a, y, ldy, row_begin, row_end);
    d += kSlicedStreams * part;
  }
  for (; d < end; ++d) low_bit_panel_tokens<kBits, 1>(w, d, a, y, ldy, row_begin, row_end);
}

}  // namespace

void fill_avx512_vnni_kernels(KernelTable& t) {
  t.name = "avx512_vnni";
  t.gemm_qd8_q8g_f32 = gemm_qd8_q8;
  t.gemm_qd8_q4g_f32 = gemm_qd8_chunked<ChunkQ4>;
  t.gemm_qd8_q3g_f32 = gemm_qd8_chunked<ChunkQ3>;
  t.gemm_qd8_q2g_f32 = gemm_qd8_chunked<ChunkQ2>;
  t.gemm_qd8_q8p_f32 = gemm_qd8_q8p;
  t.gemm_qd8_q4p_f32 = gemm_qd8_low_bit_panels<4>;
  t.gemm_qd8_q2p_f32 = gemm_qd8_low_bit_panels<2>;
  t.gemm_qd8_q3p_f32 = gemm_qd8_low_bit_panels<3>;
  t.prefers_panels = true;
  t.weight_only_int8_slices = true;
}

}  // namespace lowbit::kernels
