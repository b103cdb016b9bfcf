#include "quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "linalg/linalg.h"

namespace lowbit {
namespace {

constexpr int kMaxDampRetries = 20;
// Output rows handled by one task of the parallel column loop: every row is independent given U.
constexpr int64_t kRowChunk = 64;

Status validate_options(const GptqOptions& options) {
  if (options.block_size < 1) {
    return error(ErrorCode::kInvalidArgument, "GPTQ block size {} must be at least 1", options.block_size);
  }
  if (!std::isfinite(options.percdamp) || options.percdamp < 0.0) {
    return error(ErrorCode::kInvalidArgument, "GPTQ dampening {} must be finite and >= 0", options.percdamp);
  }
  if (options.damp_retries < 0 || options.damp_retries > kMaxDampRetries) {
    return error(ErrorCode::kInvalidArgument, "GPTQ dampening retries {} outside [0, {}]", options.damp_retries,
                 kMaxDampRetries);
  }
  return validate_clip_search(options.clip);
}

Status validate_hessian(std::span<const double> hessian, int64_t cols) {
  if (hessian.size() != size_t(cols) * size_t(cols)) {
    return error(ErrorCode::kInvalidArgument, "Hessian of {} values is not [{}, {}]", hessian.size(), cols, cols);
  }
  for (int64_t r = 0; r < cols; ++r) {
    for (int64_t c = r; c < cols; ++c) {
      if (!std::isfinite(hessian[size_t(r * cols + c)])) {
        return error(ErrorCode::kInvalidArgument, "Hessian [{}, {}] is not finite", r, c);
      }
    }
    if (hessian[size_t(r * cols + r)] < 0.0) {
      return error(ErrorCode::kInvalidArgument, "Hessian diagonal [{}] = {} is negative", r,
                   hessian[size_t(r * cols + r)]);
    }
  }
  return Status::Ok();
}

// Σ importance[i] · (v_i − dq(v_i))²; empty importance = all ones.
double squared_error(const FormatSpec& spec, std::span<const float> values, const GroupParams& params,
                     std::span<const double> importance) {
  double total = 0.0;
  for (size_t i = 0; i < values.size(); ++i) {
    const float v = values[i];
    const double diff = double(v) - double(decode_value(spec, encode_value(spec, v, params), params));
    total += (importance.empty() ? 1.0 : importance[i]) * diff * diff;
  }
  return total;
}

// Parameters for one group's values: min/max, then (optionally) the clipping search of
// rtn_quantize with the same candidate factors and the same strict-improvement rule, so that
// GPTQ with H = I picks the same parameters as RTN. `importance` (one per value, or empty)
// weights each value's squared error: diag H of its input column when clip_hessian_weighted.
GroupParams fit_values(const FormatSpec& spec, const ScaleGrid& grid, std::span<const float> values,
                       const ClipSearch& clip, std::span<const double> importance = {}) {
  float lo = 0.0f, hi = 0.0f;
  if (!values.empty()) {
    const auto [mn, mx] = std::minmax_element(values.begin(), values.end());
    lo = *mn;
    hi = *mx;
  }
  GroupParams best = fit_group(spec, lo, hi, 1.0f, grid);
  if (clip.steps == 0) return best;
  double best_error = squared_error(spec, values, best, importance);
  const float step = (1.0f - clip.min_shrink) / float(clip.steps);
  for (int k = 1; k <= clip.steps; ++k) {
    const float shrink = 1.0f - float(k) * step;
    if (!(shrink > 0.0f)) break;
    const GroupParams candidate = fit_group(spec, lo, hi, shrink, grid);
    const double candidate_error = squared_error(spec, values, candidate, importance);
    if (candidate_error < best_error) {
      best_error = candidate_error;
      best = candidate;
    }
  }
  return best;
}

// Quantize-dequantize one value. Integer grids call the int_grid.h inlines that encode_value and
// decode_value call, so the two paths agree bit for bit.
struct Quantizer {
  const FormatSpec& spec;
  bool integer_grid;
  int max_code;
  uint8_t encode(float x, const GroupParams& p) const {
    return integer_grid ? quantize_int_grid(x, p, max_code) : encode_value(spec, x, p);
  }
  float decode(uint8_t code, const GroupParams& p) const {
    return integer_grid ? dequantize_int_grid(code, p) : decode_value(spec, code, p);
  }
};

// The matrices of one run, in processing order (column j of the algorithm is input perm[j]).
struct Work {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> perm;  // processing position -> input column
  std::vector<float> wt;      // [cols, rows]: row j holds processed column j of W, updated in place
  std::vector<float> u;       // [cols, cols] upper Cholesky factor of H⁻¹ (permuted, dampened)
  std::vector<float> err;     // [block, rows] scaled errors (w − q) / d of the current block
};

// Damps and factorizes the permuted Hessian, retrying with more dampening. Returns the percdamp
// that worked.
Result<double> factor_inverse(std::vector<double> h, int64_t cols, const GptqOptions& options,
                              std::vector<float>* u) {
  double mean_diag = 0.0;
  for (int64_t c = 0; c < cols; ++c) mean_diag += h[size_t(c * cols + c)];
  mean_diag = cols > 0 ? mean_diag / double(cols) : 0.0;
  double percdamp = options.percdamp;
  Status last;
  for (int attempt = 0; attempt <= options.damp_retries; ++attempt) {
    std::vector<double> damped = h;
    for (int64_t c = 0; c < cols; ++c) damped[size_t(c * cols + c)] += percdamp * mean_diag;
    last = linalg::cholesky_inverse_upper(damped, cols);
    if (last.ok()) {
      u->assign(damped.begin(), damped.end());
      return percdamp;
    }
    percdamp = percdamp > 0.0 ? percdamp * 10.0 : 0.01;
  }
  return error(ErrorCode::kInvalidArgument,
               "Hessian is not positive definite even with dampening {} of the mean diagonal ({} retries): {}",
               percdamp / 10.0, options.damp_retries, last.message());
}

// Where a block starting at i1 must end: after block_size columns, or earlier where a group that
// is refit from the current weights would straddle the end (its later columns would still lack
// this block's updates when it is fit).
int64_t block_end(int64_t i1, int64_t cols, int64_t block_size, int64_t refit_group) {
  int64_t i2 = std::min(i1 + block_size, cols);
  if (refit_group > 0 && i2 < cols) {
    const int64_t last_start = (i2 - 1) / refit_group * refit_group;
    if (last_start > i1 && std::min(last_start + refit_group, cols) > i2) i2 = last_start;
  }
  return i2;
}

}  // namespace

Result<GptqResult> gptq_quantize(std::span<const float> weights, int64_t rows, int64_t cols, const FormatSpec& spec,
                                 std::span<const double> hessian, const GptqOptions& options) {
  LOWBIT_RETURN_IF_ERROR(validate_weights(weights, rows, cols, spec));
  LOWBIT_RETURN_IF_ERROR(validate_options(options));
  LOWBIT_RETURN_IF_ERROR(validate_hessian(hessian, cols));

  GptqResult result;
  QuantizedMatrix& m = result.matrix;
  m = QuantizedMatrix{spec, rows, cols, std::vector<uint8_t>(weights.size()), {}};
  const GroupLayout layout = m.layout();
  m.params.resize(size_t(layout.param_count()));
  const int64_t groups_per_row = layout.groups_per_row;
  const bool grouped = spec.granularity == Granularity::kGroup;
  const bool static_groups = grouped && options.static_groups;
  const int64_t refit_group = grouped && !static_groups ? layout.group_size : 0;

  // Step 1: dead inputs. h is the full symmetric Hessian (from its upper triangle).
  std::vector<double> h(hessian.begin(), hessian.end());
  linalg::symmetrize_from_upper(h, cols);
  std::vector<float> w(weights.begin(), weights.end());  // [rows, cols]
  for (int64_t c = 0; c < cols; ++c) {
    if (h[size_t(c * cols + c)] != 0.0) continue;
    ++result.dead_columns;
    h[size_t(c * cols + c)] = 1.0;
    for (int64_t r = 0; r < rows; ++r) w[size_t(r * cols + c)] = 0.0f;
  }

  // Clipping-search weights per input column: diag H (dead columns have 1 and zero weights).
  std::vector<double> column_weight;
  if (options.clip.steps > 0 && options.clip_hessian_weighted) {
    column_weight.resize(size_t(cols));
    for (int64_t c = 0; c < cols; ++c) column_weight[size_t(c)] = h[size_t(c * cols + c)];
  }
  auto weights_of = [&](int64_t begin, int64_t end) {  // natural columns [begin, end)
    return column_weight.empty() ? std::span<const double>()
                                 : std::span<const double>(column_weight.data() + begin, size_t(end - begin));
  };

  // Double quantization: the super-scale from the min/max scales of the (dead-zeroed) weights'
  // groups in natural column order, before any fit, so every fit below (up front or at a group's
  // first column) snaps its scale to the 8-bit grid before choosing codes. A group refit from
  // error-compensated weights can want a scale above the super-scale; it gets the top code, a
  // slight clip.
  const ScaleGrid grid = fit_scale_grid(w, layout, spec);
  m.super_scale = grid.super_scale;

  // Parameters fit before the column loop, from the weights in natural column order.
  std::vector<float> values;
  if (spec.granularity == Granularity::kPerTensor) {
    std::vector<double> tensor_weight;  // [rows, cols], column weights repeated per row
    if (!column_weight.empty())
      for (int64_t r = 0; r < rows; ++r) tensor_weight.insert(tensor_weight.end(), column_weight.begin(), column_weight.end());
    m.params[0] = fit_values(spec, grid, w, options.clip, tensor_weight);
  } else if (!grouped || static_groups) {
    for (int64_t pr = 0; pr < layout.param_rows; ++pr)
      for (int64_t g = 0; g < groups_per_row; ++g) {
        const float* row = w.data() + pr * cols;
        values.assign(row + layout.group_begin(g), row + layout.group_end(g));
        m.params[size_t(pr * groups_per_row + g)] =
            fit_values(spec, grid, values, options.clip, weights_of(layout.group_begin(g), layout.group_end(g)));
      }
  }

  // Step 2: processing order.
  Work work;
  work.rows = rows;
  work.cols = cols;
  work.perm.resize(size_t(cols));
  std::iota(work.perm.begin(), work.perm.end(), int64_t(0));
  if (options.act_order) {
    // Stable, so ties keep the natural order and the result is reproducible.
    std::stable_sort(work.perm.begin(), work.perm.end(), [&](int64_t a, int64_t b) {
      return h[size_t(a * cols + a)] > h[size_t(b * cols + b)];
    });
    if (grouped && !static_groups) {
      m.g_idx.resize(size_t(cols));
      for (int64_t j = 0; j < cols; ++j) m.g_idx[size_t(work.perm[size_t(j)])] = int32_t(j / layout.group_size);
    }
  }
  std::vector<double> hp(size_t(cols * cols));  // [cols, cols] permuted
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j)
      hp[size_t(i * cols + j)] = h[size_t(work.perm[size_t(i)] * cols + work.perm[size_t(j)])];
  h.clear();
  h.shrink_to_fit();

  // Steps 3-4.
  LOWBIT_ASSIGN_OR_RETURN(result.percdamp_used, factor_inverse(std::move(hp), cols, options, &work.u));

  work.wt.resize(size_t(cols * rows));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) work.wt[size_t(j * rows + r)] = w[size_t(r * cols + work.perm[size_t(j)])];
  w.clear();
  w.shrink_to_fit();

  // Step 5, block by block.
  const Quantizer quantizer{spec, spec.info().integer_grid, spec.max_code()};
  const int64_t chunks = (rows + kRowChunk - 1) / kRowChunk;
  std::vector<double> chunk_loss(size_t(chunks), 0.0);
  work.err.resize(size_t(std::min<int64_t>(options.block_size, cols) * rows));
  const bool parallel = rows * cols >= (int64_t(1) << 16);
  for (int64_t i1 = 0; i1 < cols;) {
    const int64_t i2 = block_end(i1, cols, options.block_size, refit_group);
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t r0 = chunk * kRowChunk, r1 = std::min(rows, r0 + kRowChunk);
      std::vector<float> group_values;
      std::vector<double> group_weights;  // diag H of the group's columns, in processing order
      double loss = 0.0;
      for (int64_t j = i1; j < i2; ++j) {
        const int64_t col = work.perm[size_t(j)];
        // Which parameter set each row uses for this column: params[param_row * stride + group].
        int64_t group = 0;
        if (grouped) group = static_groups ? col / layout.group_size : j / layout.group_size;
        if (refit_group > 0 && j % refit_group == 0) {
          // Step 6: refit from the current weights of this group's columns (all up to date).
          const int64_t j_end = std::min(j + refit_group, cols);
          group_weights.clear();
          if (!column_weight.empty())
            for (int64_t k = j; k < j_end; ++k) group_weights.push_back(column_weight[size_t(work.perm[size_t(k)])]);
          for (int64_t r = r0; r < r1; ++r) {
            group_values.clear();
            for (int64_t k = j; k < j_end; ++k) group_values.push_back(work.wt[size_t(k * rows + r)]);
            m.params[size_t(r * groups_per_row + group)] =
                fit_values(spec, grid, group_values, options.clip, group_weights);
          }
        }
        const int64_t stride = layout.param_rows == 1 ? 0 : groups_per_row;
        const GroupParams* params = m.params.data() + group;
        const float d = work.u[size_t(j * cols + j)];
        float* wj = work.wt.data() + j * rows;
        float* ej = work.err.data() + (j - i1) * rows;
        for (int64_t r = r0; r < r1; ++r) {
          const GroupParams& p = params[r * stride];
          const uint8_t code = quantizer.encode(wj[r], p);
          const float diff = wj[r] - quantizer.decode(code, p);
          m.codes[size_t(r * cols + col)] = code;
          loss += double(diff) * double(diff) / (double(d) * double(d));
          ej[r] = diff / d;
        }
        // Error compensation inside the block: w_k −= e · U[j, k].
        for (int64_t k = j + 1; k < i2; ++k) {
          const float ujk = work.u[size_t(j * cols + k)];
          if (ujk == 0.0f) continue;
          float* wk = work.wt.data() + k * rows;
          for (int64_t r = r0; r < r1; ++r) wk[r] -= ujk * ej[r];
        }
      }
      chunk_loss[size_t(chunk)] += loss;
    }
    // Lazy update of every later column: Wt[i2:, :] −= U[i1:i2, i2:]ᵀ · Err [i2-i1, rows].
    if (i2 < cols && rows > 0) {
      linalg::gemm_f32(true, false, cols - i2, rows, i2 - i1, -1.0f, work.u.data() + i1 * cols + i2, cols,
                       work.err.data(), rows, 1.0f, work.wt.data() + i2 * rows, rows);
    }
    i1 = i2;
  }
  for (double loss : chunk_loss) result.proxy_loss += loss;
  result.proxy_loss *= 0.5;
  return result;
}

}  // namespace lowbit
