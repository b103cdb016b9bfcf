#include "quant/rtn.h"

#include <cmath>

#include <fmt/format.h>

namespace lowbit {
namespace {

Status validate_options(const RtnOptions& options, int64_t cols) {
  LOWBIT_RETURN_IF_ERROR(validate_clip_search(options.clip));
  const auto& importance = options.column_importance;
  if (!importance.empty() && importance.size() != size_t(cols)) {
    return error(ErrorCode::kInvalidArgument, "{} column importances for {} columns", importance.size(), cols);
  }
  for (size_t c = 0; c < importance.size(); ++c) {
    if (!std::isfinite(importance[c]) || importance[c] < 0.0f) {
      return error(ErrorCode::kInvalidArgument, "column importance [{}] = {} is not finite and >= 0", c,
                   importance[c]);
    }
  }
  return Status::Ok();
}

// Weighted squared error of one parameter set's elements under `params`.
double group_error(std::span<const float> weights, const GroupLayout& layout, int64_t param_row, int64_t group,
                   const FormatSpec& spec, const GroupParams& params, std::span<const float> importance) {
  double total = 0.0;
  for (int64_t r = layout.row_begin(param_row); r < layout.row_end(param_row); ++r) {
    for (int64_t c = layout.group_begin(group); c < layout.group_end(group); ++c) {
      const float w = weights[size_t(r * layout.cols + c)];
      const double diff = double(w) - double(decode_value(spec, encode_value(spec, w, params), params));
      total += (importance.empty() ? 1.0 : double(importance[size_t(c)])) * diff * diff;
    }
  }
  return total;
}

}  // namespace

Status validate_clip_search(const ClipSearch& clip) {
  constexpr int kMaxClipSteps = 1000;
  if (clip.steps < 0 || clip.steps > kMaxClipSteps)
    return error(ErrorCode::kInvalidArgument, "clip search steps {} outside [0, {}]", clip.steps, kMaxClipSteps);
  if (clip.steps > 0 && !(clip.min_shrink > 0.0f && clip.min_shrink <= 1.0f))
    return error(ErrorCode::kInvalidArgument, "clip search min_shrink {} outside (0, 1]", clip.min_shrink);
  return Status::Ok();
}

std::string clip_search_name(const ClipSearch& clip) {
  if (clip.steps == 0) return "off";
  return fmt::format("{} factors 1..{:g}", clip.steps + 1, clip.min_shrink);
}

Result<QuantizedMatrix> rtn_quantize(std::span<const float> weights, int64_t rows, int64_t cols,
                                     const FormatSpec& spec, const RtnOptions& options) {
  LOWBIT_RETURN_IF_ERROR(validate_weights(weights, rows, cols, spec));
  LOWBIT_RETURN_IF_ERROR(validate_options(options, cols));
  QuantizedMatrix matrix{spec, rows, cols, std::vector<uint8_t>(weights.size()), {}};
  const GroupLayout layout = matrix.layout();
  matrix.params.resize(size_t(layout.param_count()));
  const ClipSearch clip = options.clip;
  const auto importance = options.column_importance;
  // Double quantization: the tensor's super-scale first, so every candidate scale of the search
  // below is already a grid scale and the search compares what would be stored.
  const ScaleGrid grid = fit_scale_grid(weights, layout, spec);
  matrix.super_scale = grid.super_scale;

  // Groups are independent: each writes only its own parameters and codes. Small matrices stay
  // on one thread, where starting the team would cost more than the work.
  const int64_t group_total = layout.param_count();
  const bool parallel = weights.size() * size_t(clip.steps + 1) >= (size_t(1) << 18);
#pragma omp parallel for schedule(dynamic, 16) if (parallel)
  for (int64_t index = 0; index < group_total; ++index) {
    const int64_t param_row = index / layout.groups_per_row;
    const int64_t group = index % layout.groups_per_row;
    const ValueRange range = group_range(weights, layout, param_row, group);
    GroupParams best = fit_group(spec, range.min, range.max, 1.0f, grid);
    if (clip.steps > 0) {
      double best_error = group_error(weights, layout, param_row, group, spec, best, importance);
      const float step = (1.0f - clip.min_shrink) / float(clip.steps);
      for (int k = 1; k <= clip.steps; ++k) {
        const float shrink = 1.0f - float(k) * step;
        if (!(shrink > 0.0f)) break;
        const GroupParams candidate = fit_group(spec, range.min, range.max, shrink, grid);
        const double candidate_error = group_error(weights, layout, param_row, group, spec, candidate, importance);
        if (candidate_error < best_error) {
          best_error = candidate_error;
          best = candidate;
        }
      }
    }
    matrix.params[size_t(index)] = best;
    for (int64_t r = layout.row_begin(param_row); r < layout.row_end(param_row); ++r) {
      for (int64_t c = layout.group_begin(group); c < layout.group_end(group); ++c) {
        const size_t i = size_t(r * cols + c);
        matrix.codes[i] = encode_value(spec, weights[i], best);
      }
    }
  }
  return matrix;
}

double weighted_squared_error(std::span<const float> weights, const QuantizedMatrix& matrix,
                              std::span<const float> column_importance) {
  LOWBIT_CHECK(weights.size() == matrix.codes.size());
  LOWBIT_CHECK(column_importance.empty() || column_importance.size() == size_t(matrix.cols));
  const std::vector<float> values = dequantize(matrix);
  double total = 0.0;
  for (size_t i = 0; i < values.size(); ++i) {
    const double diff = double(weights[i]) - double(values[i]);
    const double weight = column_importance.empty() ? 1.0 : double(column_importance[i % size_t(matrix.cols)]);
    total += weight * diff * diff;
  }
  return total;
}

}  // namespace lowbit
