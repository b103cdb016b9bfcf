// A quantized [rows, cols] weight in the reference (unpacked) form every format shares: one code
// per weight and one GroupParams per (row, group). This is what quantizers produce and what the
// packers (canonical bit stream, GPTQ tensors) and kernels consume.
//
// Per element, by format family (the scalar reference; see the family headers for layouts):
//   intN    fit: int_grid.h min/max grid    value = scale * (code - zero)
//   nf4     fit: scale = block absmax        value = scale * kNf4.levels[code]
//   fp8     fit: scale = row absmax / 448    value = scale * fp8_e4m3_to_f32(code)
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "formats/format.h"
#include "formats/int_grid.h"

namespace lowbit {

struct QuantizedMatrix {
  FormatSpec spec;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> codes;       // [rows, cols], one code per weight
  std::vector<GroupParams> params;  // [layout().param_rows, layout().groups_per_row]
  // Group of each input column, [cols], or empty for the contiguous groups of the layout
  // (column c in group c / group_size). GPTQ with act-order quantizes columns in a permuted order
  // and forms its groups in that order, so a group's columns are scattered: g_idx records them
  // (the Hugging Face GPTQ tensor of the same name). Values lie in [0, groups_per_row).
  // (The `= {}` lets brace initializations that stop at `params` compile without warnings.)
  std::vector<int32_t> g_idx = {};
  // Double-quantized formats (spec.double_quant): the tensor's fp32 super-scale; every
  // params[i].scale is then scale_grid().scale(code) for some 8-bit (_dq4: 4-bit) code (scale_grid.h), and the
  // zero points are integers in [0, max_code]. 0 for every other format.
  float super_scale = 0.0f;

  ScaleGrid scale_grid() const { return ScaleGrid{spec.double_quant ? super_scale : 0.0f, spec.scale_code_bits}; }

  GroupLayout layout() const { return group_layout(spec, rows, cols); }
  int64_t group_of(int64_t col, const GroupLayout& l) const {
    return g_idx.empty() ? col / l.group_size : int64_t(g_idx[size_t(col)]);
  }
  int64_t param_index(int64_t row, int64_t col, const GroupLayout& l) const {
    return (l.param_rows == 1 ? 0 : row) * l.groups_per_row + group_of(col, l);
  }
  const GroupParams& params_at(int64_t row, int64_t col) const {
    const GroupLayout l = layout();
    return params[size_t(param_index(row, col, l))];
  }
};

// Parameters for a group whose values span [group_min, group_max]; `shrink` in (0, 1] narrows
// the range (1 = plain min/max, or absmax for nf4/fp8). Double-quantized specs need the tensor's
// active `grid` (the scale is snapped to it); other specs take none.
GroupParams fit_group(const FormatSpec& spec, float group_min, float group_max, float shrink = 1.0f,
                      const ScaleGrid& grid = {});
uint8_t encode_value(const FormatSpec& spec, float x, const GroupParams& params);
float decode_value(const FormatSpec& spec, uint8_t code, const GroupParams& params);

// Input checks shared by every quantizer: a quantized spec, weights.size() == rows*cols, every
// weight finite, and for integer grids |w| <= 65504 so that fp16 scales can hold the range.
Status validate_weights(std::span<const float> weights, int64_t rows, int64_t cols, const FormatSpec& spec);
// Consistency of a matrix built elsewhere (e.g. read from a file): sizes, code ranges, g_idx
// (empty, or [cols] with every value in [0, groups_per_row)) and, for double-quantized formats,
// a valid super-scale, every scale on its grid and every zero point an integer in [0, max_code].
Status validate_matrix(const QuantizedMatrix& matrix);

// Min and max over the elements of one parameter set.
struct ValueRange {
  float min;
  float max;
};
ValueRange group_range(std::span<const float> weights, const GroupLayout& layout, int64_t param_row,
                       int64_t group);

// The scale grid a quantizer uses for `weights` [rows, cols] under `spec`: inactive unless the
// spec is double-quantized; then its super-scale is the largest min/max scale (shrink 1, fp16
// rounded) over the groups of `layout` that hold a nonzero value (an all-zero group's [-1, 1]
// fallback range would otherwise set it), or that fallback scale when every group is zero.
ScaleGrid fit_scale_grid(std::span<const float> weights, const GroupLayout& layout, const FormatSpec& spec);

// The reference encoder: each group fit from its min/max (absmax) with no clipping.
Result<QuantizedMatrix> quantize_reference(std::span<const float> weights, int64_t rows, int64_t cols,
                                           const FormatSpec& spec);

// [rows, cols] fp32 values of the matrix.
std::vector<float> dequantize(const QuantizedMatrix& matrix);

}  // namespace lowbit
