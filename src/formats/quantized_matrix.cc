#include "formats/quantized_matrix.h"

#include <algorithm>
#include <cmath>

#include "formats/fp8.h"
#include "formats/nf4.h"

namespace lowbit {

GroupParams fit_group(const FormatSpec& spec, float group_min, float group_max, float shrink, const ScaleGrid& grid) {
  const FormatInfo& info = spec.info();
  LOWBIT_CHECK(spec.double_quant == grid.active() && "a double-quantized spec needs its tensor's scale grid");
  if (info.integer_grid) return fit_int_grid(group_min, group_max, info.code_bits, spec.zero_point(), shrink, grid);
  LOWBIT_CHECK(shrink > 0.0f && shrink <= 1.0f);
  const float absmax = std::max(std::fabs(group_min), std::fabs(group_max)) * shrink;
  switch (spec.id) {
    case FormatId::kNF4:
      return GroupParams{absmax, 0.0f};  // bitsandbytes stores a zero block's absmax as 0
    case FormatId::kFP8E4M3:
      return GroupParams{absmax > 0.0f ? absmax / kFp8E4M3Max : 1.0f, 0.0f};
    default:
      LOWBIT_CHECK(false && "fit_group needs a quantized format");
      return {};
  }
}

uint8_t encode_value(const FormatSpec& spec, float x, const GroupParams& params) {
  if (spec.info().integer_grid) return quantize_int_grid(x, params, spec.max_code());
  switch (spec.id) {
    case FormatId::kNF4:
      // bitsandbytes multiplies by the reciprocal of absmax (0 for an all-zero block).
      return nf4_encode(x * (params.scale > 0.0f ? 1.0f / params.scale : 0.0f));
    case FormatId::kFP8E4M3:
      return fp8_e4m3_from_f32(x / params.scale);
    default:
      LOWBIT_CHECK(false && "encode_value needs a quantized format");
      return 0;
  }
}

float decode_value(const FormatSpec& spec, uint8_t code, const GroupParams& params) {
  if (spec.info().integer_grid) return dequantize_int_grid(code, params);
  switch (spec.id) {
    case FormatId::kNF4:
      return params.scale * nf4_decode(code);
    case FormatId::kFP8E4M3:
      return params.scale * fp8_e4m3_to_f32(code);
    default:
      LOWBIT_CHECK(false && "decode_value needs a quantized format");
      return 0.0f;
  }
}

Status validate_weights(std::span<const float> weights, int64_t rows, int64_t cols, const FormatSpec& spec) {
  if (!spec.is_quantized()) {
    return error(ErrorCode::kInvalidArgument, "format '{}' is not a quantized format", format_spec_name(spec));
  }
  if (spec.granularity == Granularity::kGroup && spec.group_size <= 0) {
    return error(ErrorCode::kInvalidArgument, "group size {} must be positive", spec.group_size);
  }
  if (rows < 0 || cols < 0 || weights.size() != size_t(rows) * size_t(cols)) {
    return error(ErrorCode::kInvalidArgument, "weight of {} values is not a [{}, {}] matrix", weights.size(),
                 rows, cols);
  }
  const bool fp16_params = spec.info().integer_grid;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!std::isfinite(weights[i])) {
      return error(ErrorCode::kInvalidArgument, "weight [{}, {}] is not finite ({})", int64_t(i) / cols,
                   int64_t(i) % cols, weights[i]);
    }
    if (fp16_params && std::fabs(weights[i]) > kMaxFp16Value) {
      return error(ErrorCode::kUnsupported, "weight [{}, {}] = {} is beyond the fp16 range of {} scales",
                   int64_t(i) / cols, int64_t(i) % cols, weights[i], format_spec_name(spec));
    }
  }
  return Status::Ok();
}

namespace {

// What a double-quantized matrix must satisfy to be stored exactly: 8-bit scale codes against
// its super-scale, zero points that fit in code_bits (or the symmetric grid's fixed one, not stored).
Status validate_double_quant(const QuantizedMatrix& matrix) {
  const FormatSpec& spec = matrix.spec;
  if (!spec.info().integer_grid) {
    return error(ErrorCode::kInvalidArgument, "format '{}': double quantization is for INTn only",
                 format_spec_name(spec));
  }
  if (!valid_super_scale(matrix.super_scale)) {
    return error(ErrorCode::kInvalidArgument, "super-scale {} of {} is not finite in (0, {}]", matrix.super_scale,
                 format_spec_name(spec), kMaxFp16Value);
  }
  const ScaleGrid grid = matrix.scale_grid();
  for (size_t i = 0; i < matrix.params.size(); ++i) {
    const GroupParams& p = matrix.params[i];
    if (!grid.code_of(p.scale)) {
      return error(ErrorCode::kInvalidArgument, "scale {} of parameter set {} is not on the {}-bit grid of super-scale {}",
                   p.scale, i, grid.code_bits, matrix.super_scale);
    }
    if (!spec.stores_zero()) {
      if (p.zero != spec.fixed_zero()) {
        return error(ErrorCode::kInvalidArgument, "zero point {} of parameter set {} is not {}'s fixed {}", p.zero, i,
                     format_spec_name(spec), spec.fixed_zero());
      }
    } else if (p.zero != std::floor(p.zero) || p.zero < 0.0f || p.zero > float(spec.max_code())) {
      return error(ErrorCode::kInvalidArgument, "zero point {} of parameter set {} is not an integer in [0, {}]",
                   p.zero, i, spec.max_code());
    }
  }
  return Status::Ok();
}

}  // namespace

Status validate_matrix(const QuantizedMatrix& matrix) {
  const FormatSpec& spec = matrix.spec;
  if (!spec.is_quantized() || (spec.granularity == Granularity::kGroup && spec.group_size <= 0)) {
    return error(ErrorCode::kInvalidArgument, "format '{}' is not a quantized format", format_spec_name(spec));
  }
  if (matrix.rows < 0 || matrix.cols < 0 || matrix.codes.size() != size_t(matrix.rows) * size_t(matrix.cols)) {
    return error(ErrorCode::kInvalidArgument, "{} codes do not fill a [{}, {}] matrix", matrix.codes.size(),
                 matrix.rows, matrix.cols);
  }
  const GroupLayout layout = matrix.layout();
  if (matrix.params.size() != size_t(layout.param_count())) {
    return error(ErrorCode::kInvalidArgument, "{} parameter sets where {} on [{}, {}] needs {}",
                 matrix.params.size(), format_spec_name(spec), matrix.rows, matrix.cols, layout.param_count());
  }
  if (!matrix.g_idx.empty()) {
    if (matrix.g_idx.size() != size_t(matrix.cols)) {
      return error(ErrorCode::kInvalidArgument, "g_idx has {} entries for {} columns", matrix.g_idx.size(),
                   matrix.cols);
    }
    for (size_t c = 0; c < matrix.g_idx.size(); ++c) {
      if (matrix.g_idx[c] < 0 || matrix.g_idx[c] >= layout.groups_per_row) {
        return error(ErrorCode::kInvalidArgument, "g_idx[{}] = {} is outside [0, {})", c, matrix.g_idx[c],
                     layout.groups_per_row);
      }
    }
  }
  const int max_code = (1 << spec.code_bits()) - 1;
  // The largest code first (a vectorized pass over what can be a gigabyte of codes at load; the
  // early-exit loop ran byte by byte), then where the first offender is.
  uint8_t largest = 0;
  for (const uint8_t c : matrix.codes) largest = std::max(largest, c);
  if (largest > max_code) {
    const size_t i = size_t(std::find_if(matrix.codes.begin(), matrix.codes.end(), [&](uint8_t c) { return c > max_code; }) -
                            matrix.codes.begin());
    return error(ErrorCode::kInvalidArgument, "code {} at index {} exceeds {} bits", matrix.codes[i], i,
                 spec.code_bits());
  }
  for (const GroupParams& p : matrix.params) {
    if (!std::isfinite(p.scale) || !std::isfinite(p.zero)) {
      return error(ErrorCode::kInvalidArgument, "non-finite scale or zero point ({}, {})", p.scale, p.zero);
    }
  }
  return spec.double_quant ? validate_double_quant(matrix) : Status::Ok();
}

ValueRange group_range(std::span<const float> weights, const GroupLayout& layout, int64_t param_row,
                       int64_t group) {
  ValueRange range{0.0f, 0.0f};
  bool first = true;
  for (int64_t r = layout.row_begin(param_row); r < layout.row_end(param_row); ++r) {
    for (int64_t c = layout.group_begin(group); c < layout.group_end(group); ++c) {
      const float w = weights[size_t(r * layout.cols + c)];
      range.min = first ? w : std::min(range.min, w);
      range.max = first ? w : std::max(range.max, w);
      first = false;
    }
  }
  return range;
}

ScaleGrid fit_scale_grid(std::span<const float> weights, const GroupLayout& layout, const FormatSpec& spec) {
  if (!spec.double_quant) return {};
  float largest = 0.0f, fallback = 0.0f;
  for (int64_t pr = 0; pr < layout.param_rows; ++pr) {
    for (int64_t g = 0; g < layout.groups_per_row; ++g) {
      const ValueRange range = group_range(weights, layout, pr, g);
      const float scale = fit_int_grid(range.min, range.max, spec.code_bits(), spec.zero_point()).scale;
      if (range.min == 0.0f && range.max == 0.0f) fallback = scale;
      else largest = std::max(largest, scale);
    }
  }
  return ScaleGrid{largest > 0.0f ? largest : fallback > 0.0f ? fallback : 1.0f, spec.scale_code_bits};
}

Result<QuantizedMatrix> quantize_reference(std::span<const float> weights, int64_t rows, int64_t cols,
                                           const FormatSpec& spec) {
  LOWBIT_RETURN_IF_ERROR(validate_weights(weights, rows, cols, spec));
  QuantizedMatrix matrix{spec, rows, cols, std::vector<uint8_t>(weights.size()), {}};
  const GroupLayout layout = matrix.layout();
  matrix.params.resize(size_t(layout.param_count()));
  const ScaleGrid grid = fit_scale_grid(weights, layout, spec);
  matrix.super_scale = grid.super_scale;
  for (int64_t pr = 0; pr < layout.param_rows; ++pr) {
    for (int64_t g = 0; g < layout.groups_per_row; ++g) {
      const ValueRange range = group_range(weights, layout, pr, g);
      const GroupParams params = fit_group(spec, range.min, range.max, 1.0f, grid);
      matrix.params[size_t(pr * layout.groups_per_row + g)] = params;
      for (int64_t r = layout.row_begin(pr); r < layout.row_end(pr); ++r) {
        for (int64_t c = layout.group_begin(g); c < layout.group_end(g); ++c) {
          const size_t i = size_t(r * cols + c);
          matrix.codes[i] = encode_value(spec, weights[i], params);
        }
      }
    }
  }
  return matrix;
}

std::vector<float> dequantize(const QuantizedMatrix& matrix) {
  LOWBIT_CHECK(matrix.codes.size() == size_t(matrix.rows) * size_t(matrix.cols));
  const GroupLayout layout = matrix.layout();
  LOWBIT_CHECK(matrix.params.size() == size_t(layout.param_count()));
  LOWBIT_CHECK(matrix.g_idx.empty() || matrix.g_idx.size() == size_t(matrix.cols));
  for (int32_t g : matrix.g_idx) LOWBIT_CHECK(g >= 0 && g < layout.groups_per_row);
  std::vector<float> values(matrix.codes.size());
  for (int64_t r = 0; r < matrix.rows; ++r) {
    for (int64_t c = 0; c < matrix.cols; ++c) {
      const size_t i = size_t(r * matrix.cols + c);
      values[i] = decode_value(matrix.spec, matrix.codes[i], matrix.params[size_t(matrix.param_index(r, c, layout))]);
    }
  }
  return values;
}

}  // namespace lowbit
