// Weight formats: the table of every format lowbit stores, the spec strings that name them, and the
// exact storage size of a [rows, cols] weight in lowbit's canonical layout (docs/formats.md).
//
// Spec strings (what a recipe or the CLI writes):
//   int<b>[g<N>|_tensor][_sym|_midrise|_asym][_dq|_dq4]   b in {2,3,4,8}. Scale granularity:
//                                        (nothing)  per channel: one group = one whole output row
//                                        g<N>       groups of N consecutive inputs along a row; the
//                                                   last group of a row is shorter when N does not
//                                                   divide the row (172 = 5*32 + 12)
//                                        _tensor    one scale (and zero) for the whole matrix
//                                      _asym (default): fp16 scale + fp16 integer zero point per group
//                                      _sym: fp16 scale per group, zero fixed at 2^(b-1) (not stored)
//                                      _midrise: like _sym, zero fixed at (2^b - 1)/2: the levels
//                                        are the odd multiples of scale/2, none at 0 (int_grid.h)
//                                      _dq (double quantization, scale_grid.h): each group's scale
//                                        is an 8-bit code on a linear grid under one fp32
//                                        super-scale per tensor, and the asymmetric zero point is
//                                        stored in b bits: (8 + b) bits per group instead of 32
//                                      _dq4: the same with 4-bit scale codes on a log grid (4 codes
//                                        per octave, scale_grid.h): (4 + b) bits per group
//   nf4[g<N>]                          NormalFloat4, absmax blocks of N (default 64) along a row,
//                                      fp32 absmax per block (bitsandbytes without double quant)
//   fp8_e4m3                           E4M3FN codes, one fp32 scale per output row
//   f16 | bf16 | f32                   dense, no scales
//
// Canonical storage layout (the one format_bytes() measures; kernels repack in memory):
//   codes   all rows*cols codes of the matrix, row-major, as one little-endian LSB-first bit
//           stream of `code_bits` per code, in 32-bit words; the stream is padded with zero bits
//           to a whole word (padding counted)
//   params  per (row, group): scale, then zero for asymmetric formats, as separate arrays
//           [param_rows, groups_per_row] of the stored type (fp16 for int, fp32 for nf4/fp8)
// so  bytes = 4*ceil(rows*cols*code_bits/32) + param_sets*(scale_bytes + zero_bytes)
// and bits/weight = 8*bytes/(rows*cols). For INTn asym with group G dividing the row this is
// n + 32/G; the stories260K reference counts the same way (4-bit g32 over its 35 linears, whose
// 172-wide rows end in a 12-wide group: 5.028248587570621).
// Double-quantized INTn (_dq) stores, after the codes, in this order:
//   scale codes   [param_rows, groups_per_row] uint8, one byte each (no padding)
//   zero points   asymmetric only: the param_sets zero points, row-major, as a bit stream of
//                 code_bits each like the codes, padded with zero bits to a whole 32-bit word
//   super-scale   one fp32
// so  bytes = 4*ceil(rows*cols*b/32) + param_sets + [asym] 4*ceil(param_sets*b/32) + 4
// (int3_dq per channel on [64, 64]: 1536 + 64 + 24 + 4 = 1628 bytes, 3.180 bits/weight).
// _dq4 stores the scale codes as a bit stream of 4 bits each (like the codes), padded with zero
// bits to a whole 32-bit word, in place of the bytes:
//     bytes = 4*ceil(rows*cols*b/32) + 4*ceil(param_sets*4/32) + [asym] 4*ceil(param_sets*b/32) + 4
// (int3_dq4 on [64, 64]: 1536 + 32 + 24 + 4 = 1596 bytes, 3.117 bits/weight).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "formats/int_grid.h"

namespace lowbit {

enum class FormatId : uint8_t { kF32, kF16, kBF16, kInt8, kInt4, kInt3, kInt2, kNF4, kFP8E4M3 };

// How many elements share one set of quantization parameters.
enum class Granularity : uint8_t {
  kNone,        // dense formats: no parameters
  kPerTensor,   // one set for the whole matrix
  kPerChannel,  // one set per output row
  kGroup,       // one set per `group_size` consecutive inputs of a row
};

// Constant facts about a format family.
struct FormatInfo {
  FormatId id;
  std::string_view name;       // family name at the start of a spec string
  int code_bits;               // bits per stored weight (the dense value itself for f16/f32)
  int scale_bits;              // bits of one stored scale (0: none)
  int zero_bits;               // bits of one stored zero point when asymmetric (0: never stored)
  bool integer_grid;           // INTn: uniform grid with scale and zero (int_grid.h)
  int default_group;           // group size when the spec names none (0: per channel)
  // Nominal bits/weight for full groups of G weights: code_bits + (scale_bits + zero_bits)/G.
  // Exact figures with padding and ragged groups come from format_bytes().
  constexpr double nominal_bits_per_weight(int64_t group, bool symmetric) const {
    if (scale_bits == 0) return code_bits;
    return code_bits + double(scale_bits + (symmetric ? 0 : zero_bits)) / double(group);
  }
};

inline constexpr FormatInfo kFormatTable[] = {
    // id                 name        code scale zero  int    default group
    {FormatId::kF32, "f32", 32, 0, 0, false, 0},
    {FormatId::kF16, "f16", 16, 0, 0, false, 0},
    {FormatId::kBF16, "bf16", 16, 0, 0, false, 0},
    {FormatId::kInt8, "int8", 8, 16, 16, true, 0},
    {FormatId::kInt4, "int4", 4, 16, 16, true, 0},
    {FormatId::kInt3, "int3", 3, 16, 16, true, 0},
    {FormatId::kInt2, "int2", 2, 16, 16, true, 0},
    {FormatId::kNF4, "nf4", 4, 32, 0, false, 64},
    {FormatId::kFP8E4M3, "fp8_e4m3", 8, 32, 0, false, 0},
};
inline constexpr int kFormatCount = int(sizeof(kFormatTable) / sizeof(kFormatTable[0]));

// The table is indexed by FormatId: keep the rows in enum order.
constexpr bool format_table_is_in_enum_order() {
  for (int i = 0; i < kFormatCount; ++i) {
    if (int(kFormatTable[i].id) != i) return false;
  }
  return true;
}
static_assert(format_table_is_in_enum_order(), "kFormatTable rows must follow FormatId order");
static_assert(kFormatCount == int(FormatId::kFP8E4M3) + 1, "every FormatId needs a table row");

constexpr const FormatInfo& format_info(FormatId id) { return kFormatTable[int(id)]; }

// A parsed spec string: a format family plus its scale granularity and symmetry.
struct FormatSpec {
  FormatId id = FormatId::kF32;
  Granularity granularity = Granularity::kNone;
  int64_t group_size = 0;  // only for Granularity::kGroup
  bool symmetric = false;  // only for integer grids: no stored zero point (_sym or _midrise)
  bool double_quant = false;  // integer grids only: 8-bit scale codes + b-bit zeros (_dq)
  int scale_code_bits = 8;    // double_quant only: 8 (_dq, linear grid) or 4 (_dq4, log grid)
  bool midrise = false;       // symmetric only: zero (2^b - 1)/2 instead of 2^(b-1) (_midrise)

  const FormatInfo& info() const { return format_info(id); }
  int code_bits() const { return info().code_bits; }
  // Largest integer code of an integer grid: 2^bits - 1.
  int max_code() const { return (1 << code_bits()) - 1; }
  bool is_quantized() const { return granularity != Granularity::kNone; }
  bool stores_zero() const { return info().integer_grid && !symmetric; }
  ZeroPoint zero_point() const {
    return !symmetric ? ZeroPoint::kFitted : midrise ? ZeroPoint::kMidRise : ZeroPoint::kMidTread;
  }
  // The zero point of a symmetric integer grid, which is not stored: 2^(b-1), or (2^b - 1)/2 midrise.
  float fixed_zero() const { return fixed_zero_point(code_bits(), zero_point()); }

  friend bool operator==(const FormatSpec&, const FormatSpec&) = default;
};

Result<FormatSpec> parse_format_spec(std::string_view text);
// The canonical spec string; parse_format_spec(format_spec_name(s)) == s.
std::string format_spec_name(const FormatSpec& spec);

// Which parameter set each element of a [rows, cols] matrix uses. Parameters are stored
// row-major as [param_rows, groups_per_row]; group g of a row covers columns
// [g*group_size, min(cols, (g+1)*group_size)).
struct GroupLayout {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t param_rows = 0;      // rows (per channel / group), 1 (per tensor), 0 (dense)
  int64_t group_size = 0;      // columns per group (cols for per channel and per tensor)
  int64_t groups_per_row = 0;  // ceil(cols / group_size)

  int64_t param_count() const { return param_rows * groups_per_row; }
  int64_t param_index(int64_t row, int64_t col) const {
    return (param_rows == 1 ? 0 : row) * groups_per_row + col / group_size;
  }
  // Rows covered by parameter row `param_row`: all rows when one set spans the matrix.
  int64_t row_begin(int64_t param_row) const { return param_rows == 1 ? 0 : param_row; }
  int64_t row_end(int64_t param_row) const { return param_rows == 1 ? rows : param_row + 1; }
  int64_t group_begin(int64_t group) const { return group * group_size; }
  int64_t group_end(int64_t group) const {
    return group_begin(group) + group_size < cols ? group_begin(group) + group_size : cols;
  }
};
GroupLayout group_layout(const FormatSpec& spec, int64_t rows, int64_t cols);

// Exact bytes of a [rows, cols] weight in the canonical layout described above.
uint64_t format_bytes(const FormatSpec& spec, int64_t rows, int64_t cols);
// 8 * format_bytes / (rows * cols).
double format_bits_per_weight(const FormatSpec& spec, int64_t rows, int64_t cols);

}  // namespace lowbit
