// AVX-512 (F/BW/VL/DQ) weight-only kernels: each 32-weight block is decoded in registers into two
// vectors of 16 fp32 values, then multiplied with exact fp32 activations (gemv) or stored
// (dequant). Same layouts as avx2/avx2_weight_only.cc at twice the width, but codes of up to 4
// bits (int4/3/2, nf4) are decoded by one 16-entry vpermps. The decode (gemv) fast paths for
// int4/3/2 in groups of 128 decode 128 weights per load of codes, and int8 folds its zero point
// out (see "Decode fast paths" below). Scalar definition: ref/ref_kernels.cc. Layouts:
// kernel_types.h.
#include <immintrin.h>

#include <cstdint>

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
// table holds (i - zero) for i = 0..15 (exact: small integers, or halves for a midrise zero point,
// so the result equals float(code) - zero); that replaces a subtract and a conversion per vector.
inline __m512 code_minus_zero_table(const PackedWeightView& w, int64_t p) {
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_sub_ps(iota, _mm512_set1_ps(w.zeros[p]));
}

struct Q8 {
  static constexpr float kScaleFactor = 1.0f;  // true value = decoded value * kScaleFactor
  static constexpr int64_t kBytes = 32;
  static constexpr bool kScaled = true;
  using Param = __m512;  // float: a midrise zero point lies between two codes
  static Param param(const PackedWeightView& w, int64_t p) { return _mm512_set1_ps(w.zeros[p]); }
  static void decode(const uint8_t* p, Param zero, __m512 v[2]) {
    v[0] = _mm512_sub_ps(_mm512_cvtepi32_ps(load_bytes16(p)), zero);
    v[1] = _mm512_sub_ps(_mm512_cvtepi32_ps(load_bytes16(p + 16)), zero);
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

// Prefetch distance within each stream. One sequential stream per core reached only about 60% of
// the read bandwidth on the Intel VM (docs/results.md); the gemv kernels keep 4 rows in flight
// from 4 separate quarters of their row range (4 streams, each prefetched ahead). Measured on
// TinyLlama shapes at 2 threads there: 512-1024 bytes best for int4, 1024-4096 for int8, 2048+ and
// no prefetch worse. On the AMD EPYC (Zen 4) VM of session 8, 22 layers weight-only (layers-only
// harness, 6 interleaved rounds, median % of the probe at 1024 / 512 / 256 bytes): int4 72 / 80 /
// 80 and 73 / - / 81, int8 87 / 94 / 95 and 80 / - / 93; int2 (bound by decoding) unchanged.
// Set by fill_avx512_kernels, which runs only on CPUs with AVX-512: a dynamic initializer here
// would run at load time, in code built for AVX-512, on every CPU.
int64_t prefetch_bytes = 1024;

// Rows in MR streams: [row_begin, row_end) splits into MR equal parts and pass p takes row p of
// each part (rows r, r + part, r + 2 part, ...), so each row in flight walks its own contiguous
// part of the weight: MR sequential streams per core, as the bandwidth probe reads. (MR adjacent
// rows are one stream: with 1 KiB rows the prefetch ahead of row i lands in row i + 1, which is
// being read already; on TinyLlama shapes int8 decode went from 41% to 75-82% of the probed
// bandwidth with this order.) The rows left over go one at a time: many(r0, stride) does MR rows,
// one(r) a single row.
template <int MR, class Many, class One>
inline void for_row_streams(int64_t row_begin, int64_t row_end, Many many, One one) {
  const int64_t part = (row_end - row_begin) / MR;
  for (int64_t r = row_begin; r < row_begin + part; ++r) many(r, part);
  for (int64_t r = row_begin + MR * part; r < row_end; ++r) one(r);
}

// MR rows (r0 + i * stride) at once, sharing each load of x. Per group: the decoded weights times
// x summed over its blocks, then one multiply by the group's scale.
template <class D, int MR>
void gemv_rows(const PackedWeightView& w, int64_t r0, int64_t stride, const float* x, float* y) {
  const int64_t blocks = w.k_padded / kBlock, per_group = w.group_size / kBlock;
  const uint8_t* row[MR];
  __m512 acc[MR];
  for (int i = 0; i < MR; ++i) {
    row[i] = w.codes + (r0 + i * stride) * w.row_bytes;
    acc[i] = _mm512_setzero_ps();
  }
  for (int64_t g = 0, b = 0; g < w.groups_per_row; ++g) {
    typename D::Param param[MR];
    __m512 s0[MR], s1[MR];
    for (int i = 0; i < MR; ++i) {
      param[i] = D::param(w, (r0 + i * stride) * w.groups_per_row + g);
      s0[i] = s1[i] = _mm512_setzero_ps();
    }
    for (const int64_t end = b + per_group < blocks ? b + per_group : blocks; b < end; ++b) {
      const __m512 x0 = _mm512_loadu_ps(x + b * kBlock), x1 = _mm512_loadu_ps(x + b * kBlock + 16);
      const bool new_line = (b * D::kBytes) % 64 < D::kBytes;  // once per 64-byte line of codes
      for (int i = 0; i < MR; ++i) {
        if (new_line) _mm_prefetch(reinterpret_cast<const char*>(row[i] + b * D::kBytes + prefetch_bytes), _MM_HINT_T0);
        __m512 v[2];
        D::decode(row[i] + b * D::kBytes, param[i], v);
        s0[i] = _mm512_fmadd_ps(v[0], x0, s0[i]);
        s1[i] = _mm512_fmadd_ps(v[1], x1, s1[i]);
      }
    }
    for (int i = 0; i < MR; ++i) {
      const __m512 sum = _mm512_add_ps(s0[i], s1[i]);
      // kScaleFactor is a power of two: folding it into the scale is exact.
      const int64_t p = (r0 + i * stride) * w.groups_per_row + g;
      const float scale = D::kScaled ? w.scales[p] * D::kScaleFactor : 1.0f;
      acc[i] = D::kScaled ? _mm512_fmadd_ps(sum, _mm512_set1_ps(scale), acc[i]) : _mm512_add_ps(acc[i], sum);
    }
  }
  for (int i = 0; i < MR; ++i) y[r0 + i * stride] = _mm512_reduce_add_ps(acc[i]);
}

template <class D>
void gemv(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const float* x, float* y) {
  for_row_streams<4>(
      row_begin, row_end, [&](int64_t r, int64_t stride) { gemv_rows<D, 4>(w, r, stride, x, y); },
      [&](int64_t r) { gemv_rows<D, 1>(w, r, 1, x, y); });
}

// ---- Decode fast paths: one load of codes per 128 weights, decoded in strided lanes ----
//
// The per-block kernel above spends a vpmovzxbd (a shuffle) per 16 bytes of codes and a mask or
// shift per 16 codes before its vpermps. These kernels instead load the codes of 4 blocks (128 weights, one group of 128) and
// decode them in place: a dword lane holds 4 bytes of codes, and shifting the whole vector by a
// constant brings the next code of every lane to its low bits. vpermps reads only bits 0..3 of
// each index, so no mask is needed when the table repeats itself every 2^bits entries
// (table[i] = value(i mod 2^bits)). The lanes then hold weights in a strided order; the
// activations are permuted once per call into the same order (xp), so each decoded vector meets
// its activations with one plain load.
//
// The table holds scale * (i - zero), computed as the reference does (kernel_types.h): the
// looked-up values are the reference weights bit for bit, and the FMA uses them directly (no
// per-group epilogue). A chunk of 128 weights must lie in one group: group_size a multiple of
// 128, or one group per row; other layouts take the per-block kernel. Blocks after the last whole
// chunk (k_padded not a multiple of 128) take the per-block decoder with the same table.
//
// Order of lane L of decoded vector j (0..7) within a chunk, as an index into the 128 weights:
//   kQ4: byte t = j / 2, nibble h = j % 2 of dword L: code 4 (L % 4) + t + 16 h of block L / 4.
//   kQ2, kQ3: the 32 bytes of low bit pairs (kQ3: gathered from its 4 blocks) fill both halves of
//        the vector; lanes 8..15 are pre-shifted by 2 so that vector j reads bit pair
//        s = 4 j + 2 (L / 8) of dword d = L % 8: byte t = s / 8, pair h = (s % 8) / 2, i.e.
//        code 4 (d % 2) + t + 8 h of block d / 2.
constexpr int64_t kChunk = 128;                  // weights per chunk: 4 blocks
constexpr int64_t kPanelChunks = 64;             // chunks of activations permuted at once (32 KiB)
// Rows decoded together (independent memory streams sharing each load of activations) and
// accumulators per row (FMA chains): measured best of 2/4/6/8 rows x 1/2/4 chains.
constexpr int kChunkRows = 4, kChunkAccumulators = 4;

constexpr int chunk_lane_index_q4(int j, int lane) { return 32 * (lane / 4) + 4 * (lane % 4) + j / 2 + 16 * (j % 2); }
constexpr int chunk_lane_index_q2(int j, int lane) {
  const int d = lane % 8, s = 4 * j + 2 * (lane / 8);
  return 32 * (d / 2) + 4 * (d % 2) + s / 8 + 8 * ((s % 8) / 2);
}

// Index i of a chunk's permuted activations holds x[chunk start + index[i]] (plain data: no
// templates from the standard library in this translation unit, see kernel_types.h).
struct LaneOrder {
  int index[kChunk];
};
template <class C>
constexpr LaneOrder lane_order() {
  LaneOrder o{};
  for (int j = 0; j < 8; ++j)
    for (int lane = 0; lane < 16; ++lane) o.index[16 * j + lane] = C::lane_index(j, lane);
  return o;
}

// i mod 2^bits for i = 0..15.
alignas(64) constexpr float kRepeatingCodes[5][16] = {
    {}, {}, {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};

// table[i] = scale * ((i mod 2^bits) - zero), the reference weight value of that code.
template <int kBits>
inline __m512 repeating_table(const PackedWeightView& w, int64_t p) {
  return _mm512_mul_ps(_mm512_sub_ps(_mm512_load_ps(kRepeatingCodes[kBits]), _mm512_set1_ps(w.zeros[p])),
                       _mm512_set1_ps(w.scales[p]));
}

struct ChunkQ4 {
  static constexpr int64_t kChunkBytes = 64;
  static constexpr int kBits = 4;
  using Block = Q4;
  static constexpr int lane_index(int j, int lane) { return chunk_lane_index_q4(j, lane); }
  struct Codes {
    __m512i v;
  };
  static Codes load(const uint8_t* p) { return {_mm512_loadu_si512(p)}; }
  template <int J>
  static __m512i index(const Codes& c) {
    return J == 0 ? c.v : _mm512_srli_epi32(c.v, 4 * J);
  }
};

struct ChunkQ2 {
  static constexpr int64_t kChunkBytes = 32;
  static constexpr int kBits = 2;
  using Block = Q2;
  static constexpr int lane_index(int j, int lane) { return chunk_lane_index_q2(j, lane); }
  struct Codes {
    __m512i v;
  };
  static Codes load(const uint8_t* p) {
    const __m512i both = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return {_mm512_srlv_epi32(both, _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2))};
  }
  template <int J>
  static __m512i index(const Codes& c) {
    return J == 0 ? c.v : _mm512_srli_epi32(c.v, 4 * J);
  }
};

// kQ3: merged once per chunk into 4 bits per code, so that each vector then decodes like kQ4 (one
// shift): the low bit pairs as kQ2, masked to bits 4J, 4J + 1 of each lane, and bit 2 of code J of
// lane L put at bit 4J + 2. That bit is bit (4 (L % 2) + 8 (L / 8) + J / 2 + 16 (J % 2)) mod 32 of
// the plane of the lane's block (d = L % 8, block d / 2): one vpshufb brings the plane byte holding
// it to byte J / 2 of the lane, vptestmb turns the bits into a mask, and a masked OR sets bit 2
// (J even) or 6 (J odd) of that byte (a masked add: those bits are 0). 10 operations per 128 codes,
// against 2 per 16 codes (a rotate and a bit merge per vector) when the plane bit was merged at
// each vector.
struct PlaneGather {
  uint8_t byte[2][64];  // vpshufb index (within the 16-byte lane), for J even / odd
  uint8_t bit[2][64];   // the bit to test in that byte
};
constexpr PlaneGather plane_gather() {
  PlaneGather g{};
  for (int odd = 0; odd < 2; ++odd)
    for (int i = 0; i < 64; ++i) {
      const int lane = i / 4, b = i % 4;
      const int bit = (4 * (lane % 2) + 8 * (lane / 8) + b + 16 * odd) % 32;
      g.byte[odd][i] = uint8_t(4 * (lane % 4) + bit / 8);
      g.bit[odd][i] = uint8_t(1 << (bit % 8));
    }
  return g;
}
alignas(64) constexpr PlaneGather kPlaneGather = plane_gather();

struct ChunkQ3 {
  static constexpr int64_t kChunkBytes = 48;
  static constexpr int kBits = 3;
  using Block = Q3;
  static constexpr int lane_index(int j, int lane) { return chunk_lane_index_q2(j, lane); }
  struct Codes {
    __m512i v;
  };
  static Codes load(const uint8_t* p) {
    // 12 dwords: per block, 2 of bit pairs then its plane. Masked: never reads past the chunk.
    const __m512i raw = _mm512_maskz_loadu_epi32(0x0fff, p);
    const __m512i low_dwords = _mm512_setr_epi32(0, 1, 3, 4, 6, 7, 9, 10, 0, 1, 3, 4, 6, 7, 9, 10);
    const __m512i plane_dwords = _mm512_setr_epi32(2, 2, 5, 5, 8, 8, 11, 11, 2, 2, 5, 5, 8, 8, 11, 11);
    const __m512i planes = _mm512_permutexvar_epi32(plane_dwords, raw);
    __m512i v = _mm512_and_si512(
        _mm512_srlv_epi32(_mm512_permutexvar_epi32(low_dwords, raw),
                          _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2)),
        _mm512_set1_epi32(0x33333333));
    for (int odd = 0; odd < 2; ++odd) {
      const __m512i gathered = _mm512_shuffle_epi8(planes, _mm512_load_si512(kPlaneGather.byte[odd]));
      const __mmask64 set = _mm512_test_epi8_mask(gathered, _mm512_load_si512(kPlaneGather.bit[odd]));
      // Bits 2 and 6 of every byte are 0 here: adding sets them.
      v = _mm512_mask_add_epi8(v, set, v, _mm512_set1_epi8(odd ? 0x40 : 0x04));
    }
    return {v};
  }
  template <int J>
  static __m512i index(const Codes& c) {
    // vpermps reads bits 0-3: bits 0-1 and 2 of code J; bit 3 is 0 and the table repeats every 8.
    return J == 0 ? c.v : _mm512_srli_epi32(c.v, 4 * J);
  }
};

template <class C, int MR, int J>
inline void chunk_fma(const typename C::Codes (&codes)[kChunkRows], const __m512 (&table)[kChunkRows], const float* xp,
                      __m512 (&acc)[kChunkRows][kChunkAccumulators]) {
  const __m512 x = _mm512_load_ps(xp + 16 * J);
  for (int i = 0; i < MR; ++i) {
    __m512& a = acc[i][J % kChunkAccumulators];
    a = _mm512_fmadd_ps(_mm512_permutexvar_ps(C::template index<J>(codes[i]), table[i]), x, a);
  }
}

// Rows r0 + i * stride (i < MR), chunks [c0, c1) of the current panel (xp holds their permuted
// activations), plus the tail blocks when `tail`; adds to y when `accumulate`.
template <class C, int MR>
void gemv_chunk_rows(const PackedWeightView& w, int64_t r0, int64_t stride, const float* x, const float* xp,
                     int64_t c0, int64_t c1, bool tail, bool accumulate, float* y) {
  const uint8_t* row[MR];
  __m512 acc[kChunkRows][kChunkAccumulators], table[kChunkRows];
  typename C::Codes codes[kChunkRows];
  for (int i = 0; i < MR; ++i) {
    row[i] = w.codes + (r0 + i * stride) * w.row_bytes;
    for (int a = 0; a < kChunkAccumulators; ++a) acc[i][a] = _mm512_setzero_ps();
  }
  const int64_t chunks_per_group = w.groups_per_row == 1 ? INT64_MAX : w.group_size / kChunk;
  int64_t g = c0 / chunks_per_group, next_group = (g + 1) * chunks_per_group;
  for (int i = 0; i < MR; ++i) table[i] = repeating_table<C::kBits>(w, (r0 + i * stride) * w.groups_per_row + g);
  for (int64_t c = c0; c < c1; ++c) {
    if (c == next_group) {
      ++g;
      next_group += chunks_per_group;
      for (int i = 0; i < MR; ++i) table[i] = repeating_table<C::kBits>(w, (r0 + i * stride) * w.groups_per_row + g);
    }
    for (int i = 0; i < MR; ++i) {
      const uint8_t* p = row[i] + c * C::kChunkBytes;
      _mm_prefetch(reinterpret_cast<const char*>(p + prefetch_bytes), _MM_HINT_T0);
      codes[i] = C::load(p);
    }
    const float* xc = xp + (c - c0) * kChunk;
    chunk_fma<C, MR, 0>(codes, table, xc, acc);
    chunk_fma<C, MR, 1>(codes, table, xc, acc);
    chunk_fma<C, MR, 2>(codes, table, xc, acc);
    chunk_fma<C, MR, 3>(codes, table, xc, acc);
    chunk_fma<C, MR, 4>(codes, table, xc, acc);
    chunk_fma<C, MR, 5>(codes, table, xc, acc);
    chunk_fma<C, MR, 6>(codes, table, xc, acc);
    chunk_fma<C, MR, 7>(codes, table, xc, acc);
  }
  if (tail) {
    // Blocks after the last whole chunk, in natural order (x itself), each with its group's table.
    const int64_t blocks = w.k_padded / kBlock, per_group = w.group_size / kBlock;
    for (int64_t b = c1 * (kChunk / kBlock); b < blocks; ++b) {
      const __m512 x0 = _mm512_loadu_ps(x + b * kBlock), x1 = _mm512_loadu_ps(x + b * kBlock + 16);
      for (int i = 0; i < MR; ++i) {
        __m512 v[2];
        const __m512 table_b = repeating_table<C::kBits>(w, (r0 + i * stride) * w.groups_per_row + b / per_group);
        C::Block::decode(row[i] + b * C::Block::kBytes, table_b, v);
        acc[i][0] = _mm512_fmadd_ps(v[0], x0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(v[1], x1, acc[i][1]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int a = 2; a < kChunkAccumulators; ++a) acc[i][a & 1] = _mm512_add_ps(acc[i][a & 1], acc[i][a]);
    const float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]));
    y[r0 + i * stride] = accumulate ? y[r0 + i * stride] + sum : sum;
  }
}

template <class C>
void gemv_chunked(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const float* x, float* y) {
  if (w.groups_per_row != 1 && w.group_size % kChunk != 0) return gemv<typename C::Block>(w, row_begin, row_end, x, y);
  static constexpr LaneOrder kOrder = lane_order<C>();
  alignas(64) float xp[kPanelChunks * kChunk];
  const int64_t chunks = w.k_padded / kChunk;
  for (int64_t c0 = 0;; c0 += kPanelChunks) {
    const int64_t c1 = c0 + kPanelChunks < chunks ? c0 + kPanelChunks : chunks;
    for (int64_t c = c0; c < c1; ++c)
      for (int i = 0; i < kChunk; ++i) xp[(c - c0) * kChunk + i] = x[c * kChunk + kOrder.index[i]];
    const bool last = c1 == chunks;
    for_row_streams<kChunkRows>(
        row_begin, row_end,
        [&](int64_t r, int64_t stride) {
          gemv_chunk_rows<C, kChunkRows>(w, r, stride, x, xp, c0, c1, last, c0 > 0, y);
        },
        [&](int64_t r) { gemv_chunk_rows<C, 1>(w, r, 1, x, xp, c0, c1, last, c0 > 0, y); });
    if (last) break;
  }
}

// int8 (any group size): the zero point is folded out of the inner loop,
//   sum_k s (c_k - z) x_k = s (sum_k c_k x_k - z X_g),  X_g = sum of x over group g,
// so each 16 codes cost a zero-extension, a conversion and an FMA; X_g is computed once per call
// (up to kMaxGroups groups per row, else the per-block kernel). The rounding differs from the
// reference's per-weight s (c - z): the terms are s c x and s z X (see weight_only_test.cc).
constexpr int64_t kMaxGroups = 2048;

template <int MR>
void gemv_q8_rows(const PackedWeightView& w, int64_t r0, int64_t stride, const float* x, const float* group_x,
                  float* y) {
  const int64_t blocks = w.k_padded / kBlock, per_group = w.group_size / kBlock;
  const uint8_t* row[MR];
  __m512 acc[MR];
  float correction[MR];
  for (int i = 0; i < MR; ++i) {
    row[i] = w.codes + (r0 + i * stride) * w.row_bytes;
    acc[i] = _mm512_setzero_ps();
    correction[i] = 0.0f;
  }
  for (int64_t g = 0, b = 0; g < w.groups_per_row; ++g) {
    __m512 s0[MR], s1[MR];
    for (int i = 0; i < MR; ++i) s0[i] = s1[i] = _mm512_setzero_ps();
    for (const int64_t end = b + per_group < blocks ? b + per_group : blocks; b < end; ++b) {
      const __m512 x0 = _mm512_loadu_ps(x + b * kBlock), x1 = _mm512_loadu_ps(x + b * kBlock + 16);
      for (int i = 0; i < MR; ++i) {
        const uint8_t* p = row[i] + b * kBlock;
        if (b % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(p + prefetch_bytes), _MM_HINT_T0);
        s0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(load_bytes16(p)), x0, s0[i]);
        s1[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(load_bytes16(p + 16)), x1, s1[i]);
      }
    }
    for (int i = 0; i < MR; ++i) {
      const int64_t p = (r0 + i * stride) * w.groups_per_row + g;
      acc[i] = _mm512_fmadd_ps(_mm512_add_ps(s0[i], s1[i]), _mm512_set1_ps(w.scales[p]), acc[i]);
      correction[i] += w.scales[p] * w.zeros[p] * group_x[g];
    }
  }
  for (int i = 0; i < MR; ++i) y[r0 + i * stride] = _mm512_reduce_add_ps(acc[i]) - correction[i];
}

void gemv_q8(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const float* x, float* y) {
  if (w.groups_per_row > kMaxGroups) return gemv<Q8>(w, row_begin, row_end, x, y);
  float group_x[kMaxGroups];
  const int64_t blocks = w.k_padded / kBlock, per_group = w.group_size / kBlock;
  for (int64_t g = 0, b = 0; g < w.groups_per_row; ++g) {
    __m512 s = _mm512_setzero_ps();
    for (const int64_t end = b + per_group < blocks ? b + per_group : blocks; b < end; ++b)
      s = _mm512_add_ps(s, _mm512_add_ps(_mm512_loadu_ps(x + b * kBlock), _mm512_loadu_ps(x + b * kBlock + 16)));
    group_x[g] = _mm512_reduce_add_ps(s);
  }
  for_row_streams<4>(
      row_begin, row_end, [&](int64_t r, int64_t stride) { gemv_q8_rows<4>(w, r, stride, x, group_x, y); },
      [&](int64_t r) { gemv_q8_rows<1>(w, r, 1, x, group_x, y); });
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
  __builtin_cpu_init();  // idempotent; needed if a table is built before main
  prefetch_bytes = __builtin_cpu_is("amd") ? 512 : 1024;
  t.isa = Isa::kAvx512;
  t.name = "avx512";
  t.gemv_f16_f32 = gemv<F16>;
  t.gemv_bf16_f32 = gemv<BF16>;
  t.gemv_q8g_f32 = gemv_q8;
  t.gemv_q4g_f32 = gemv_chunked<ChunkQ4>;
  t.gemv_q3g_f32 = gemv_chunked<ChunkQ3>;
  t.gemv_q2g_f32 = gemv_chunked<ChunkQ2>;
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
  fill_avx512_elementwise_kernels(t);
  fill_avx512_lut_kernels(t);  // int2 / int3 weight-only decode on kQ2L / kQ3L lane panels
  fill_avx512_quantize_kernels(t);
  // Dynamic int8 products stay AVX2's unless AVX512-VNNI is present (fill_avx512_vnni_kernels).
}

}  // namespace lowbit::kernels
