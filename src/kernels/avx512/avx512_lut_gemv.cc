// AVX-512 table-lookup kernels for int2 / int3 weights in lane panels (kQ2L, kQ3L; layouts in
// kernel_types.h), weight-only with exact fp32 activations: the decode gemv and the prefill
// dequant. Scalar definition: ref/ref_kernels.cc.
//
// Why tables: the row kernels (avx512_weight_only.cc) spend a shift, a vpermps and an FMA per 16
// weights, and on Zen 4 that is about 1.6 cycles, slower than memory delivers 2-bit codes (int2
// layers read 45% of the probed bandwidth in session 8). Here each lane of a vector is one row of
// a 16-row panel, so all lanes meet the same inputs, and the 16 possible values of a pair of 2-bit
// codes times their two inputs,
//   T[a + 4 b] = a x[k] + b x[k + 1],
// are computed once per token and shared by every row. One vpermps then looks up 2 weights x
// inputs of 16 rows and one add accumulates them: a shift, a vpermps and an add per 32 weights.
// int3 adds bit 2 of four inputs per lookup, H[h0 + 2 h1 + 4 h2 + 8 h3] = 4 (h0 x0 + ... + h3 x3):
// 24 lookups per 16 rows x 32 inputs instead of 32 plus the merging of the bit planes (T-MAC,
// Wei et al. 2024, does the same with int8 tables; these stay fp32, so activations stay exact).
//
// The codes are summed as they are and the zero point is folded out per group, as the int8 row
// kernel does: sum_k s (c_k - z) x_k = s (sum_k c_k x_k - z X_g), X_g the sum of x over the group.
#include <immintrin.h>

#include <cstdint>

#include "kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

// 32 inputs ("a piece") per 16-row panel: kQ2L 2 vectors of codes and 16 pair tables; kQ3L 3
// vectors (low pairs of inputs 0-15, 16-31, then bit 2) and 16 pair + 8 quad tables.
template <bool kThree>
struct Lut {
  static constexpr int kVectors = kThree ? 3 : 2;
  static constexpr int64_t kPieceBytes = 64 * kVectors;
  static constexpr int kTables = kThree ? 24 : 16;
};
// Inputs whose tables are built at once (kQ2L 64 KiB of tables, kQ3L 96 KiB), then every panel
// of the call runs over them. 8192 measured the same (kernels_bench, 2 threads).
constexpr int64_t kSliceInputs = 2048;
constexpr int64_t kSlicePieces = kSliceInputs / kBlock;
// Panels decoded together: 4 memory streams per core (as the row kernels), and each table load
// feeds 4 lookups.
constexpr int kPanels = 4;
// Prefetch distance within each panel's stream of codes. Layers-only harness on the Zen 4 VM (22
// TinyLlama layers, 5 rounds, median share of the probed bandwidth), none / 256 / 512 / 1024 bytes
// ahead: int2 64 / 69 / 70 / 71 %, int3 55 / 59 / 61 / 61 %; 2 or 8 panels at once instead of 4: int2
// 65 and 59 %.
constexpr int64_t kPrefetchBytes = 512;

// Tables of one piece's inputs x[0..31]: 16 pair tables, then (kThree) 8 quad tables.
template <bool kThree>
inline void piece_tables(const float* x, float* t) {
  const __m512 a = _mm512_setr_ps(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
  const __m512 b = _mm512_setr_ps(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  for (int p = 0; p < 16; ++p)
    _mm512_store_ps(t + 16 * p,
                    _mm512_fmadd_ps(b, _mm512_set1_ps(x[2 * p + 1]), _mm512_mul_ps(a, _mm512_set1_ps(x[2 * p]))));
  if (!kThree) return;
  // 4 x bit i of the entry's index, i = 0..3
  const __m512 e0 = _mm512_setr_ps(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
  const __m512 e1 = _mm512_setr_ps(0, 0, 4, 4, 0, 0, 4, 4, 0, 0, 4, 4, 0, 0, 4, 4);
  const __m512 e2 = _mm512_setr_ps(0, 0, 0, 0, 4, 4, 4, 4, 0, 0, 0, 0, 4, 4, 4, 4);
  const __m512 e3 = _mm512_setr_ps(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
  for (int q = 0; q < 8; ++q) {
    const float* xq = x + 4 * q;
    __m512 h = _mm512_mul_ps(e0, _mm512_set1_ps(xq[0]));
    h = _mm512_fmadd_ps(e1, _mm512_set1_ps(xq[1]), h);
    h = _mm512_fmadd_ps(e2, _mm512_set1_ps(xq[2]), h);
    h = _mm512_fmadd_ps(e3, _mm512_set1_ps(xq[3]), h);
    _mm512_store_ps(t + 16 * (16 + q), h);
  }
}

// Lookup J of one code vector: bits 4J..4J+3 of every lane index table J.
template <int J, int MR>
inline void lookups(const __m512i (&v)[kPanels], const float* table, __m512 (&acc)[kPanels][2]) {
  const __m512 t = _mm512_load_ps(table + 16 * J);
  for (int i = 0; i < MR; ++i) {
    const __m512i index = J == 0 ? v[i] : _mm512_srli_epi32(v[i], 4 * J);
    acc[i][J % 2] = _mm512_add_ps(acc[i][J % 2], _mm512_permutexvar_ps(index, t));
  }
}
template <int MR>
inline void eight_lookups(const __m512i (&v)[kPanels], const float* tables, __m512 (&acc)[kPanels][2]) {
  lookups<0, MR>(v, tables, acc);
  lookups<1, MR>(v, tables, acc);
  lookups<2, MR>(v, tables, acc);
  lookups<3, MR>(v, tables, acc);
  lookups<4, MR>(v, tables, acc);
  lookups<5, MR>(v, tables, acc);
  lookups<6, MR>(v, tables, acc);
  lookups<7, MR>(v, tables, acc);
}

// Panels panel0 + i * stride (i < MR) over the slice of pieces [s0, b1) (tables and piece_sums
// hold it): out[i] = their rows' partial products.
template <bool kThree, int MR>
void panels_over_slice(const PackedWeightView& w, int64_t panel0, int64_t stride, int64_t s0, int64_t b1,
                       const float* tables, const float* piece_sums, __m512 (&out)[kPanels]) {
  using L = Lut<kThree>;
  const int64_t panel_bytes = kPanelRows * w.row_bytes, pieces_per_group = w.group_size / kBlock;
  const uint8_t* base[kPanels];
  for (int i = 0; i < MR; ++i) {
    base[i] = w.codes + (panel0 + i * stride) * panel_bytes;
    out[i] = _mm512_setzero_ps();
  }
  for (int64_t b = s0; b < b1;) {
    const int64_t g = b / pieces_per_group, end = (g + 1) * pieces_per_group < b1 ? (g + 1) * pieces_per_group : b1;
    __m512 acc[kPanels][2];
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    float group_x = 0.0f;
    for (; b < end; ++b) {
      const float* t = tables + (b - s0) * L::kTables * 16;
      group_x += piece_sums[b - s0];
      for (int part = 0; part < L::kVectors; ++part) {
        __m512i v[kPanels];
        for (int i = 0; i < MR; ++i) {
          const uint8_t* at = base[i] + b * L::kPieceBytes + 64 * part;
          _mm_prefetch(reinterpret_cast<const char*>(at + kPrefetchBytes), _MM_HINT_T0);
          v[i] = _mm512_loadu_si512(at);
        }
        // parts 0, 1: 8 pair lookups each; part 2 (bit 2): 8 quad lookups
        eight_lookups<MR>(v, t + 16 * 8 * part, acc);
      }
    }
    const __m512 xg = _mm512_set1_ps(group_x);
    for (int i = 0; i < MR; ++i) {
      const int64_t p = param_index(w, (panel0 + i * stride) * kPanelRows, g);
      const __m512 sum = _mm512_fnmadd_ps(_mm512_loadu_ps(w.zeros + p), xg, _mm512_add_ps(acc[i][0], acc[i][1]));
      out[i] = _mm512_fmadd_ps(_mm512_loadu_ps(w.scales + p), sum, out[i]);
    }
  }
}

// Adds (or, for the first slice, stores) a panel's 16 results to the rows of y it owns in
// [row_begin, row_end).
inline void store_panel(int64_t panel, int64_t row_begin, int64_t row_end, bool first, __m512 v, float* y) {
  const int64_t r0 = panel * kPanelRows;
  const int64_t lo = row_begin > r0 ? row_begin - r0 : 0, hi = row_end < r0 + kPanelRows ? row_end - r0 : kPanelRows;
  const __mmask16 mask = __mmask16(((1u << hi) - 1) & ~((1u << lo) - 1));
  if (!first) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, y + r0));
  _mm512_mask_storeu_ps(y + r0, mask, v);
}

template <bool kThree>
void gemv_lut(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const float* x, float* y) {
  using L = Lut<kThree>;
  if (row_begin >= row_end) return;
  alignas(64) float tables[kSlicePieces * L::kTables * 16];
  float piece_sums[kSlicePieces];
  const int64_t pieces = w.k_padded / kBlock;
  const int64_t p_begin = row_begin / kPanelRows, p_end = (row_end + kPanelRows - 1) / kPanelRows;
  for (int64_t s0 = 0; s0 < pieces; s0 += kSlicePieces) {
    const int64_t s1 = s0 + kSlicePieces < pieces ? s0 + kSlicePieces : pieces;
    for (int64_t b = s0; b < s1; ++b) {
      const float* xb = x + b * kBlock;
      piece_tables<kThree>(xb, tables + (b - s0) * L::kTables * 16);
      piece_sums[b - s0] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(xb), _mm512_loadu_ps(xb + 16)));
    }
    // Panels in kPanels streams, each walking its own contiguous part of the range.
    const int64_t part = (p_end - p_begin) / kPanels;
    for (int64_t p = p_begin; p < p_begin + part; ++p) {
      __m512 out[kPanels];
      panels_over_slice<kThree, kPanels>(w, p, part, s0, s1, tables, piece_sums, out);
      for (int i = 0; i < kPanels; ++i) store_panel(p + i * part, row_begin, row_end, s0 == 0, out[i], y);
    }
    for (int64_t p = p_begin + kPanels * part; p < p_end; ++p) {
      __m512 out[kPanels];
      panels_over_slice<kThree, 1>(w, p, 1, s0, s1, tables, piece_sums, out);
      store_panel(p, row_begin, row_end, s0 == 0, out[0], y);
    }
  }
}

// Row r's weights, bit for bit the reference's s * (code - z): a 16-entry table per group holds
// s * ((i mod 2^bits) - z), indexed by the codes (vpermps reads bits 0-3 of each lane; for int2 the
// bits above the code belong to the next code, which the repeating table ignores).
template <bool kThree>
void dequant_lut(const PackedWeightView& w, int64_t row_begin, int64_t row_end, float* out) {
  using L = Lut<kThree>;
  alignas(64) static constexpr float kRepeating[2][16] = {{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3},
                                                           {0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7}};
  const __m512i pair_shifts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i bit_shifts = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const int64_t pieces = w.k_padded / kBlock, pieces_per_group = w.group_size / kBlock;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* lane = w.codes + r / kPanelRows * kPanelRows * w.row_bytes + r % kPanelRows * 4;
    float* o = out + (r - row_begin) * w.k_padded;
    __m512 table = _mm512_setzero_ps();
    for (int64_t b = 0; b < pieces; ++b) {
      if (b % pieces_per_group == 0) {
        const int64_t p = param_index(w, r, b / pieces_per_group);
        table = _mm512_mul_ps(_mm512_sub_ps(_mm512_load_ps(kRepeating[kThree]), _mm512_set1_ps(w.zeros[p])),
                              _mm512_set1_ps(w.scales[p]));
      }
      const uint8_t* piece = lane + b * L::kPieceBytes;
      int32_t high = 0;
      if (kThree) __builtin_memcpy(&high, piece + 128, 4);
      for (int h = 0; h < 2; ++h) {
        int32_t low;
        __builtin_memcpy(&low, piece + 64 * h, 4);
        __m512i index = _mm512_srlv_epi32(_mm512_set1_epi32(low), pair_shifts);
        if (kThree) {
          const __m512i bit2 =
              _mm512_srlv_epi32(_mm512_set1_epi32(high), _mm512_add_epi32(bit_shifts, _mm512_set1_epi32(16 * h)));
          // bits 0-1 from the pair, bit 2 from the plane (0xE4: mask ? pair : shifted plane; bit 3
          // is a neighbour's, which the table, repeating every 8, ignores)
          index = _mm512_ternarylogic_epi32(index, _mm512_slli_epi32(bit2, 2), _mm512_set1_epi32(3), 0xE4);
        }
        _mm512_storeu_ps(o + b * kBlock + 16 * h, _mm512_permutexvar_ps(index, table));
      }
    }
  }
}

}  // namespace

void fill_avx512_lut_kernels(KernelTable& t) {
  t.gemv_q2l_f32 = gemv_lut<false>;
  t.gemv_q3l_f32 = gemv_lut<true>;
  t.dequant_q2l_f32 = dequant_lut<false>;
  t.dequant_q3l_f32 = dequant_lut<true>;
  t.prefers_lut_panels = true;
}

}  // namespace lowbit::kernels
