#include "calib/gptq_driver.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "calib/block_runner.h"
#include "calib/model_view.h"
#include "calib/input_statistics.h"

namespace lowbit {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Index of each linear in LayerWeights::linears() order: q k v o gate up down.
constexpr int kLinearsPerBlock = 7;
// Layers that read the same input share one Hessian: q/k/v the normed residual, o the attention
// output, gate/up the normed residual, down the gated hidden state.
constexpr int kInputOf[kLinearsPerBlock] = {0, 0, 0, 1, 2, 2, 3};
constexpr int kInputs = 4;
// Calibration runs windows on at most this many threads (one Session each).
constexpr int kMaxSessions = 8;

std::vector<std::vector<int>> stages(bool true_sequential) {
  if (true_sequential) return {{0, 1, 2}, {3}, {4, 5}, {6}};
  return {{0, 1, 2, 3, 4, 5, 6}};
}

Status validate_windows(const std::vector<std::vector<int>>& windows, const ModelConfig& c) {
  if (windows.empty()) return error(ErrorCode::kInvalidArgument, "GPTQ needs at least one calibration window");
  for (size_t w = 0; w < windows.size(); ++w) {
    if (windows[w].empty() || int64_t(windows[w].size()) > c.max_seq_len) {
      return error(ErrorCode::kInvalidArgument, "calibration window {} has {} tokens (allowed 1..{})", w,
                   windows[w].size(), c.max_seq_len);
    }
    for (int id : windows[w]) {
      if (id < 0 || id >= c.vocab_size) {
        return error(ErrorCode::kInvalidArgument, "calibration window {} holds token {} outside [0, {})", w, id,
                     c.vocab_size);
      }
    }
  }
  return Status::Ok();
}

// Which block and linear each target names; fails on names that are not block linears.
Result<std::map<std::string, FormatSpec>> resolve_targets(const Model& model,
                                                          const std::vector<std::pair<std::string, FormatSpec>>& targets) {
  std::map<std::string, FormatSpec> by_name;
  for (const auto& [name, spec] : targets) {
    if (!spec.is_quantized()) {
      return error(ErrorCode::kInvalidArgument, "GPTQ target {}: format '{}' is not a quantized format", name,
                   format_spec_name(spec));
    }
    if (!by_name.emplace(name, spec).second) {
      return error(ErrorCode::kInvalidArgument, "GPTQ target {} is listed twice", name);
    }
  }
  size_t found = 0;
  for (const LayerWeights& layer : model.layers())
    for (const Linear* l : layer.linears()) found += by_name.count(l->name);
  if (found != by_name.size()) {
    for (const auto& [name, spec] : by_name) {
      bool present = false;
      for (const LayerWeights& layer : model.layers())
        for (const Linear* l : layer.linears()) present = present || l->name == name;
      if (!present) {
        return error(ErrorCode::kNotFound,
                     "GPTQ target {} is not a linear layer of a block (embeddings and the output head are not "
                     "GPTQ targets)",
                     name);
      }
    }
  }
  return by_name;
}

}  // namespace

Result<GptqModelResult> gptq_quantize_model(std::shared_ptr<const Model> model,
                                            const std::vector<std::pair<std::string, FormatSpec>>& targets,
                                            const std::vector<std::vector<int>>& windows,
                                            const GptqModelOptions& options, const GptqProgress& progress) {
  const Clock::time_point start = Clock::now();
  if (model == nullptr) return error(ErrorCode::kInvalidArgument, "GPTQ needs a model");
  const ModelConfig& c = model->config();
  LOWBIT_RETURN_IF_ERROR(validate_windows(windows, c));
  LOWBIT_ASSIGN_OR_RETURN(const auto by_name, resolve_targets(*model, targets));

  GptqModelResult result;
  const int total = int(by_name.size());
  int last_block = -1;  // blocks after the last targeted one need not run
  for (int b = 0; b < c.n_layers; ++b)
    for (const Linear* l : model->layers()[size_t(b)].linears())
      if (by_name.count(l->name)) last_block = b;
  if (last_block < 0) {
    result.total_seconds = seconds_since(start);
    return result;
  }

  LOWBIT_ASSIGN_OR_RETURN(std::shared_ptr<Model> work, make_editable_view(model));
  int max_len = 0;
  for (const auto& w : windows) max_len = std::max(max_len, int(w.size()));
  // One Session per thread (each holds a KV cache for all layers of max_len positions).
  const int threads = std::clamp(omp_get_max_threads(), 1, std::min(kMaxSessions, int(windows.size())));
  BlockRunner runner(work, max_len, threads);

  Clock::time_point t = Clock::now();
  WindowStream stream = runner.embed(windows);
  // The original model beside the quantized one, for asymmetric calibration.
  // Streaming: the original model is a view of its own whose block b borrows the working copy's
  // fp32 weights from load_block until release_block (mirror_weights), so both models' memory
  // stays one block.
  std::optional<ReferenceRun> reference;
  std::shared_ptr<Model> reference_view;
  if (options.asymmetric_calibration) {
    if (options.load_block) {
      LOWBIT_ASSIGN_OR_RETURN(reference_view, make_editable_view(model));
    }
    reference.emplace(reference_view ? std::shared_ptr<const Model>(reference_view) : model, windows, max_len, threads);
  }
  auto mirror_weights = [&](int b) {
    if (!reference_view) return;
    const std::vector<Linear*> from = work->mutable_layers()[size_t(b)].linears();
    const std::vector<Linear*> to = reference_view->mutable_layers()[size_t(b)].linears();
    for (size_t i = 0; i < from.size(); ++i)
      if (!from[i]->is_quantized()) to[i]->weight = from[i]->weight;
  };
  result.activation_bytes = int64_t((stream.x.size() + (reference ? reference->stream.x.size() : 0)) * sizeof(float));
  result.embed_seconds = seconds_since(t);

  int done = 0;
  for (int b = 0; b <= last_block; ++b) {
    LayerWeights& block = work->mutable_layers()[size_t(b)];
    if (options.load_block) LOWBIT_RETURN_IF_ERROR(options.load_block(b, block));
    mirror_weights(b);
    const std::vector<Linear*> linears = block.linears();
    for (const std::vector<int>& stage : stages(options.true_sequential)) {
      std::vector<int> targeted;
      for (int i : stage)
        if (by_name.count(linears[size_t(i)]->name)) targeted.push_back(i);
      if (targeted.empty()) continue;

      // One reader per distinct input: the first targeted layer that reads it.
      std::vector<int> readers;
      int reader_of_input[kInputs] = {-1, -1, -1, -1};
      for (int i : targeted) {
        if (reader_of_input[kInputOf[i]] >= 0) continue;
        reader_of_input[kInputOf[i]] = int(readers.size());
        readers.push_back(i);
      }
      t = Clock::now();
      const InputStatistics stats =
          collect_input_statistics(runner, stream, b, readers, reference ? &*reference : nullptr);
      result.hessian_forward_seconds += seconds_since(t);
      result.peak_hessian_bytes = std::max(result.peak_hessian_bytes, stats.peak_bytes);
      // Asymmetric: one correction per input, shared by the layers that read it.
      std::vector<std::vector<double>> hessians(readers.size()), corrections(readers.size());
      for (size_t k = 0; k < readers.size(); ++k) {
        hessians[k] = stats.hessians[k].hessian();
        if (!options.asymmetric_calibration) continue;
        Result<std::vector<double>> c =
            asymmetric_correction(linears[size_t(readers[k])]->in_features, hessians[k], stats.shifts[k].shift(),
                                  options.gptq.percdamp, options.gptq.damp_retries);
        if (!c.ok()) return c.status().with_context("GPTQ of " + linears[size_t(readers[k])]->name);
        corrections[k] = std::move(*c);
      }

      for (int i : targeted) {
        Linear& linear = *linears[size_t(i)];
        const Clock::time_point layer_start = Clock::now();
        const size_t reader = size_t(reader_of_input[kInputOf[i]]);
        const HessianAccumulator& acc = stats.hessians[reader];
        const std::vector<double>& h = hessians[reader];
        std::vector<float> weight = weight_values(linear);
        if (options.asymmetric_calibration)
          weight = apply_asymmetric_correction(weight, linear.out_features, linear.in_features, corrections[reader]);
        Result<GptqResult> q = gptq_quantize(weight, linear.out_features, linear.in_features, by_name.at(linear.name),
                                             h, options.gptq);
        if (!q.ok()) return q.status().with_context("GPTQ of " + linear.name);
        auto matrix = std::make_shared<const QuantizedMatrix>(std::move(q->matrix));
        // Later stages and the next block see this layer quantized.
        linear.quantized = matrix;
        linear.weight = nullptr;
        if (options.sink) LOWBIT_RETURN_IF_ERROR(options.sink(linear.name, matrix));
        else result.quantized[linear.name] = matrix;
        GptqLayerReport report;
        report.name = linear.name;
        report.block = b;
        report.proxy_loss = q->proxy_loss;
        report.percdamp_used = q->percdamp_used;
        report.dead_columns = q->dead_columns;
        report.hessian_tokens = acc.rows();
        report.seconds = seconds_since(layer_start);
        result.quantize_seconds += report.seconds;
        result.layers.push_back(report);
        ++done;
        if (progress) progress(b, linear.name, done, total);
      }
    }
    // Block b with its quantized weights produces block b+1's inputs.
    if (b < last_block) {
      t = Clock::now();
      runner.propagate(b, stream);
      if (reference) reference->propagate(b);
      result.propagate_seconds += seconds_since(t);
    }
    if (options.release_block) LOWBIT_RETURN_IF_ERROR(options.release_block(b, block));
    mirror_weights(b);  // the placeholders again: nothing points at released memory
    if (b == last_block) break;
  }
  result.total_seconds = seconds_since(start);
  return result;
}

}  // namespace lowbit
