// Layer-by-layer GPTQ over a whole model (the driver half of IST-DASLab llama.py's
// `llama_sequential`; the algorithm itself is quant/gptq.h).
//
//   1. Embed every calibration window: the residual stream x [tokens, dim] entering block 0.
//   2. For each block b, for each stage of its linear layers
//        true sequential:  {q, k, v}, then {o}, then {gate, up}, then {down}
//        otherwise:        all seven at once
//      run block b on every window through the runtime (Session::forward_block) with a LinearHook
//      that accumulates the Hessian of each targeted layer's input, then GPTQ-quantize the stage's
//      targeted layers and install them in the block, so later stages see inputs computed with
//      the already-quantized earlier ones.
//      With asymmetric calibration the original model runs block b too, on its own stream, and
//      each layer's GPTQ starts from the least-squares target W* instead of W (see the option).
//   3. Run block b once more with its quantized weights to produce block b+1's inputs.
// Layers sharing an input (q/k/v; gate/up) share one Hessian. Each window runs on its own from
// position 0, as the evaluation protocol does; several windows run at once, one Session per
// thread (calib/block_runner.h), their Hessian terms summed in window order whatever the count.
//
// Memory: the residual stream of all windows (tokens × dim floats), per thread a Session (a KV
// cache of n_layers × longest window × kv_dim, twice) and one window's scratch, the fp64
// Hessians of one stage, and one layer's weight copy while it is quantized. The model's weights
// are never copied (calib/model_view.h); quantized results are the output.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "formats/format.h"
#include "formats/quantized_matrix.h"
#include "model/model.h"
#include "quant/gptq.h"

namespace lowbit {

struct GptqModelOptions {
  GptqOptions gptq;            // per-layer algorithm options (block size, dampening, act-order, ...)
  bool true_sequential = true;  // quantize q/k/v, o, gate/up, down in turn (see above)
  // Asymmetric calibration (quant/asymmetric_calibration.h): each layer is fit to the original
  // model's outputs on the original inputs, so it also undoes part of the error the layers
  // quantized before it left in its input. The original model then runs beside the quantized
  // one: twice the residual stream and block runs, and one stage's original inputs held at once.
  // With load_block the original model's block b shares the working copy's loaded weights.
  bool asymmetric_calibration = false;

  // Streaming, for models larger than memory (calib/streamed_model.h); all optional.
  // load_block(b, layer) runs before block b is first used, on the driver's working copy of the
  // block (e.g. to give its linears fp32 weights converted from the file); release_block(b,
  // layer) runs once block b's outputs for block b+1 exist, and may drop its weights and
  // quantized matrices.
  std::function<Status(int, LayerWeights&)> load_block, release_block;
  // Receives each layer as soon as it is quantized; when set, GptqModelResult::quantized stays
  // empty (the caller writes the layers out as they come).
  std::function<Status(const std::string&, std::shared_ptr<const QuantizedMatrix>)> sink;
};

struct GptqLayerReport {
  std::string name;
  int block = 0;
  double proxy_loss = 0;     // Σ (w − q)² / (2 d²) = mean-over-tokens squared output error (gptq.h)
  double percdamp_used = 0;  // > options.gptq.percdamp when the Hessian needed more dampening
  int64_t dead_columns = 0;
  int64_t hessian_tokens = 0;
  double seconds = 0;        // the GPTQ algorithm on this layer (Hessian collection not included)
};

struct GptqModelResult {
  std::map<std::string, std::shared_ptr<const QuantizedMatrix>> quantized;  // by canonical weight name
  std::vector<GptqLayerReport> layers;  // in the order they were quantized
  // Wall-clock seconds: embedding, block runs that collect Hessians (accumulation included),
  // the GPTQ algorithm, block runs that propagate to the next block, and the whole call.
  double embed_seconds = 0, hessian_forward_seconds = 0, quantize_seconds = 0, propagate_seconds = 0,
         total_seconds = 0;
  int64_t activation_bytes = 0;    // the residual stream of all windows
  int64_t peak_hessian_bytes = 0;  // the most Hessian memory held at once (one stage's)
};

// (block, layer name, layers done, layers total), called after each layer is quantized.
using GptqProgress = std::function<void(int, const std::string&, int, int)>;

// `targets`: canonical weight names of block linears ("model.layers.3.mlp.down_proj.weight") with
// their formats; every other tensor is left as it is. Fails (naming the layer) on an unknown or
// duplicate target, a non-quantized format, an empty window set, a window longer than the
// context or with an id outside the vocabulary, or when GPTQ fails on a layer.
Result<GptqModelResult> gptq_quantize_model(std::shared_ptr<const Model> model,
                                            const std::vector<std::pair<std::string, FormatSpec>>& targets,
                                            const std::vector<std::vector<int>>& windows,
                                            const GptqModelOptions& options, const GptqProgress& progress = {});

}  // namespace lowbit
