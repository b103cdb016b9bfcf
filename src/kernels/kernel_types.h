// Plain data the kernels read: views of packed weights and of quantized activations.
//
// This header is included by the per-ISA translation units (src/kernels/avx2, avx512), which are
// compiled with their own -m flags. It must stay free of inline functions and templates: an
// inline function compiled once with -mavx512f and once without is one symbol to the linker,
// which may keep the AVX-512 copy for everyone (an illegal instruction on an older CPU).
#pragma once

#include <cstdint>

namespace lowbit::kernels {

// In-memory weight layouts (never written to disk). Codes run along K in blocks of kBlock = 32
// consecutive inputs of one row; each row's codes are padded with code 0 to k_padded (a multiple
// of 32) and callers pad activations with zeros to the same length, so no kernel has a K tail.
//
//   kF16, kBF16   2 bytes per weight, the dense value; no scales.
//   kQ8, kFP8     1 byte per weight: byte j of a block = code j.
//   kQ4, kNF4     16 bytes per block: byte j = code j | code (j + 16) << 4.
//   kQ2           8 bytes per block:  byte j = code j | code (j+8) << 2 | code (j+16) << 4
//                                              | code (j+24) << 6.
//   kQ3           12 bytes per block: the low two bits of each code as kQ2 (8 bytes), then a
//                 32-bit little-endian plane whose bit j is bit 2 of code j.
//   kQ8P          int8 codes in VNNI panels, for dynamic int8 activations (one group per row):
//                 rows in panels of 16 (the last padded with code 0, scale 0, zero 0); within a
//                 panel, for each step of 4 inputs, 64 bytes: row i's 4 codes at bytes 4i..4i+3.
//                 Code (r, k) is at (r / 16) * 16 * k_padded + (k / 4) * 64 + (r % 16) * 4 + k % 4;
//                 row_bytes = k_padded (per row, as for kQ8).
//   kQ4P          int4 codes in double VNNI panels, for dynamic int8 activations (any group size
//                 that is a multiple of 32): rows in double panels of 32 (the last padded with code
//                 0, scale 0, zero 0); within one, for each step of 4 inputs, 64 bytes: byte 4i +
//                 k % 4 holds row i's code in its low nibble and row 16 + i's in its high nibble.
//                 Code (r, k) is nibble (r % 32) / 16 of byte (r / 32) * 16 * k_padded + (k / 4) *
//                 64 + (r % 16) * 4 + k % 4; row_bytes = k_padded / 2. One load then feeds two
//                 vpdpbusd (16 rows each) after one AND per half: the high half is used as 16 x
//                 code, and its 1/16 is folded into its rows' scales, so no shift.
//   kQ2P          int2 codes in quad VNNI panels, the same for 2 bits: rows in quad panels of 64
//                 (the last padded with code 0, scale 0, zero 0); byte 4i + k % 4 of a step's 64
//                 bytes holds rows i, 16 + i, 32 + i and 48 + i in its bit pairs 0-1, 2-3, 4-5 and
//                 6-7. Code (r, k) is bit pair (r % 64) / 16 of byte (r / 64) * 16 * k_padded +
//                 (k / 4) * 64 + (r % 16) * 4 + k % 4; row_bytes = k_padded / 4. One load feeds
//                 four vpdpbusd after one AND each; quarter q is used as 4^q x code.
//   kQ3P          int3 codes in quad VNNI panels of 64 rows like kQ2P, in pieces of 8 inputs (two
//                 steps s = 2t, 2t + 1), 192 bytes each: the low bit pairs of step 2t as kQ2P (64
//                 bytes), those of step 2t + 1 (64 bytes), then one 64-byte high plane whose byte
//                 4i + k % 4 holds bit 2 of the codes of rows 16 q + i of both steps, at bit
//                 (2 q + 2) % 8 for step 2t and one above for step 2t + 1. Code (r, k), q = (r % 64) /
//                 16, piece = (r / 64) * 24 * k_padded + (k / 8) * 192, j = (r % 16) * 4 + k % 4, o =
//                 (k / 4) % 2: bit pair q of byte piece + 64 o + j, plus 4 x bit (2 q + 2) % 8 + o of
//                 byte piece + 128 + j; row_bytes = 3 k_padded / 8. The plane bits of parts 0-2 land
//                 where a vpdpbusd counts them 4 x 4^q (their low pairs count 4^q); part 3's at bit 0
//                 count 1 and are summed apart, then shifted by 8 (x 256 = 4 x 4^3).
//   kQ2L          int2 codes in lane panels for table-lookup gemv (weight-only, fp32 activations):
//                 rows in panels of 16 (the last padded with code 0, scale 0, zero 0); within a
//                 panel, for each step of 16 inputs, 64 bytes: dword i holds row i's 16 codes,
//                 code k % 16 at bits 2 (k % 16). Code (r, k) is at bits 2 (k % 16) of the dword
//                 at byte (r / 16) * 4 * k_padded + (k / 16) * 64 + (r % 16) * 4; row_bytes =
//                 k_padded / 4. Bits 4t..4t+3 of a dword are the codes of inputs 2t and 2t + 1 of
//                 the step, an index into a 16-entry table of their 16 possible sums (see avx512/).
//   kQ3L          int3 codes in lane panels of 16 rows like kQ2L, in pieces of 32 inputs, 192
//                 bytes each: the low bit pairs of inputs 0-15 as kQ2L (64 bytes), those of
//                 inputs 16-31 (64 bytes), then 64 bytes whose dword i has bit 2 of row i's code
//                 j at bit j. Code (r, k): piece = (r / 16) * 6 * k_padded + (k / 32) * 192, d = (r %
//                 16) * 4: bits 2 (k % 16) of the dword at piece + 64 ((k % 32) / 16) + d, plus 4 x
//                 bit k % 32 of the dword at piece + 128 + d; row_bytes = 3 k_padded / 8.
// These orders let a vector of 8 or 16 lanes pull whole runs of consecutive codes out of one load
// with shifts and masks (see avx2/ and avx512/); kQ8P lets one vpdpbusd multiply 4 inputs of one
// token (broadcast) with 16 rows at once, so a 32-input block ends in 16 int32 row sums that need
// one conversion and one FMA with the block's activation scale (instead of one per 2 blocks of one
// row).
//
// Value of weight (r, k), with g = k / group_size (scales[r, g] lies at param_index(), below):
//   integer grids (kQ8 kQ4 kQ3 kQ2 and their panels):  scales[r, g] * (code - zeros[r, g])   zeros
//                                      are integers
//   kNF4:                             scales[r, g] * nf4_level[code]
//   kFP8:                             scales[r, g] * e4m3_value(code)
//   kF16, kBF16:                      the value itself
inline constexpr int kBlock = 32;

enum class PackedKind : uint8_t { kF16, kBF16, kQ8, kQ4, kQ3, kQ2, kNF4, kFP8, kQ8P, kQ4P, kQ2P, kQ3P, kQ2L, kQ3L };
inline constexpr int kPackedKindCount = 14;
// kQ8P, kQ2L, kQ3L; kQ4P's double panels hold 2 x 16 rows, kQ2P's and kQ3P's quad panels 4 x 16
inline constexpr int kPanelRows = 16;

struct PackedWeightView {
  PackedKind kind = PackedKind::kQ8;
  int64_t rows = 0;            // out_features (panel kinds: the codes hold whole panels beyond it)
  int64_t cols = 0;            // in_features (K)
  int64_t k_padded = 0;        // cols rounded up to kBlock
  int64_t row_bytes = 0;       // bytes of codes per row (k_padded / kBlock blocks)
  int64_t group_size = 0;      // inputs per scale, a multiple of kBlock (k_padded when per channel)
  int64_t groups_per_row = 0;  // k_padded / group_size, rounded up
  const uint8_t* codes = nullptr;  // [rows, row_bytes]
  const float* scales = nullptr;   // at param_index(); null for kF16/kBF16
  const float* zeros = nullptr;    // at param_index() for integer grids, else null
};

inline bool is_panel_kind(PackedKind kind) {
  return kind == PackedKind::kQ8P || kind == PackedKind::kQ4P || kind == PackedKind::kQ2P || kind == PackedKind::kQ3P ||
         kind == PackedKind::kQ2L || kind == PackedKind::kQ3L;
}

// Rows of one whole panel of a panel kind (kQ4P 32, kQ2P / kQ3P 64, the 16-row kinds 16): the
// smallest row range a panel kernel computes without computing rows it does not store.
inline int64_t panel_rows(PackedKind kind) {
  return kind == PackedKind::kQ4P ? 2 * kPanelRows
         : kind == PackedKind::kQ2P || kind == PackedKind::kQ3P ? 4 * kPanelRows
                                                                : kPanelRows;
}

// Where row r's scale and zero for weight group g lie in scales / zeros: [rows, groups] for the
// row kinds; [rows / 16, groups, 16] for the panel kinds (padded to whole panels), so the 16 rows
// of a panel part have one group's scales in one 64-byte vector (the VNNI panel kernels load them;
// gathering them from [rows, groups] cost two vgatherdps per part and group, slow on Zen 4). kQ8P
// has one group per row, where both orders are [rows].
inline int64_t param_index(PackedKind kind, int64_t groups_per_row, int64_t r, int64_t g) {
  if (!is_panel_kind(kind)) return r * groups_per_row + g;
  return (r / kPanelRows * groups_per_row + g) * kPanelRows + r % kPanelRows;
}
inline int64_t param_index(const PackedWeightView& w, int64_t r, int64_t g) {
  return param_index(w.kind, w.groups_per_row, r, g);
}

// Activations quantized dynamically ("qd8"): each token is rounded to symmetric int8 with one
// scale per block of kBlock = 32 consecutive inputs (llama.cpp's Q8_0 granularity):
//   scales[t, b] = max|x[t, block b]| / 127 (1 when the block is all zeros),
//   q = round_half_even(x * (127 / max|x[t, block b]|)), so q lies in [-127, 127].
// One scale per token measured 2.8x the KLD of exact activations on stories260K against int8
// weight-only (an outlier in one block flattens every other block of the token); one per 32
// inputs 1.86x, per 64 2.18x, per 128 2.46x (docs/results.md).
// block_sums[t, b] = sum of q over block b; group_corrections[t, g] = sum over the blocks b of
// weight group g of scales[t, b] * block_sums[t, b], the activation side of the zero-point term
//   sum_k (code_k - zero) q_k scale_b = sum_k code_k q_k scale_b - zero * group_correction
// (made by qd8_group_corrections() in packed_matmul.h for the weight's group size).
// matmul_qd8_slices (packed_matmul.h) passes one token of a weight-only product as two such
// tokens, its two int8 slices, and sums their outputs.
struct QuantizedActivationsView {
  int64_t tokens = 0;
  int64_t k_padded = 0;
  int64_t groups = 0;                      // groups_per_row of the weight these were made for
  const int8_t* values = nullptr;          // [tokens, k_padded], zero beyond the real K
  const float* scales = nullptr;           // [tokens, k_padded / kBlock]
  const int32_t* block_sums = nullptr;     // [tokens, k_padded / kBlock]
  const float* group_corrections = nullptr;  // [tokens, groups]
};

}  // namespace lowbit::kernels
