// Round-to-nearest quantization of a [rows, cols] fp32 weight (row = output channel, col = input)
// to any quantized format spec (format.h): each group gets min/max parameters (absmax for nf4 and
// fp8) and every weight its nearest code. No calibration data is needed.
//
// Optional clipping search (as in AWQ's auto_clip, llama.cpp's make_qx_quants and the reference
// GPTQ Quantizer's `mse` mode): per group, shrink the range by factors
//   1, 1 - d, 1 - 2d, ..., min_shrink        with d = (1 - min_shrink) / steps
// and keep the factor whose dequantized group has the least squared error
//   sum_c importance[c] * (w[r, c] - dq[r, c])^2
// where importance is a per-input-column weight (e.g. mean x^2 of the calibration activations
// feeding the layer, so errors on loud inputs count more); no importance = all ones. Factor 1 is
// always a candidate and replaced only by a strictly smaller error, so clipping never increases the
// (weighted) error of any group over plain min/max. The reference GPTQ search uses |err|^2.4 and
// factors down to 0.2 in steps of 0.01; steps and min_shrink are options here.
//
// Double-quantized formats (_dq, formats/scale_grid.h): the tensor's super-scale comes first
// (fit_scale_grid, from plain min/max), and every candidate scale, shrunk or not, is snapped to its
// 8-bit grid before the zero point and codes are chosen, so the search compares stored scales.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/status.h"
#include "formats/quantized_matrix.h"

namespace lowbit {

struct ClipSearch {
  int steps = 0;            // 0 = plain min/max; otherwise steps + 1 candidate factors
  float min_shrink = 0.5f;  // smallest factor tried, in (0, 1]
  bool operator==(const ClipSearch&) const = default;
};
// "off", or e.g. "11 factors 1..0.5" (for tables and warnings).
std::string clip_search_name(const ClipSearch& clip);
// Fails (kInvalidArgument) unless steps is in [0, 1000] and, when searching, min_shrink in (0, 1].
Status validate_clip_search(const ClipSearch& clip);
// 1.0, 0.95, ..., 0.5.
inline constexpr ClipSearch kDefaultClipSearch{10, 0.5f};

struct RtnOptions {
  ClipSearch clip;
  std::span<const float> column_importance;  // [cols], finite and >= 0; empty = uniform
};

// Fails on a non-quantized spec, a size mismatch, non-finite weights or options out of range.
// With clip.steps == 0 the result equals formats' quantize_reference().
Result<QuantizedMatrix> rtn_quantize(std::span<const float> weights, int64_t rows, int64_t cols,
                                     const FormatSpec& spec, const RtnOptions& options = {});

// sum over the matrix of importance[c] * (w - dequantized)^2, accumulated in double.
double weighted_squared_error(std::span<const float> weights, const QuantizedMatrix& matrix,
                              std::span<const float> column_importance = {});

}  // namespace lowbit
