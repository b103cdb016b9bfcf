// Applies a resolved plan (quant/recipe.h) to a checkpoint: every planned tensor is quantized
// with its method, and the result is a new Checkpoint whose quantized weights replace the float
// ones. The round-to-nearest path lives here; calibrated methods (GPTQ) plug in through
// `calibrated`, which receives the tensors that need calibration data.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "quant/recipe.h"
#include "quant/rtn.h"

namespace lowbit {

using QuantizedWeights = std::map<std::string, std::shared_ptr<const QuantizedMatrix>>;

struct QuantizeProgress {
  std::string stage;   // "rtn", "gptq", ...
  std::string tensor;  // current tensor
  int64_t done = 0, total = 0;
};
using QuantizeProgressFn = std::function<void(const QuantizeProgress&)>;

// Receives each quantized weight as soon as it is done (a streaming writer, e.g.
// export/streaming_writer.h); an error stops the run.
using QuantizedSink = std::function<Status(const std::string& name, std::shared_ptr<const QuantizedMatrix> matrix)>;

// Round-to-nearest for every plan entry whose method is "rtn" (others are skipped).
Result<QuantizedWeights> rtn_quantize_plan(const Checkpoint& ckpt, const Plan& plan, const RtnOptions& options,
                                           const QuantizeProgressFn& progress = {});

// The same, handing each weight to `sink` instead of collecting them, and releasing the source
// tensor's mapped pages after it (io/tensor.h): memory stays at about one tensor in flight
// whatever the model's depth.
Status rtn_quantize_plan_to(const Checkpoint& ckpt, const Plan& plan, const RtnOptions& options,
                            const QuantizedSink& sink, const QuantizeProgressFn& progress = {});

// A copy of `ckpt` (sharing its tensors) with `weights` replacing the float tensors of the
// same names.
Checkpoint with_quantized_weights(const Checkpoint& ckpt, const QuantizedWeights& weights);

// Shapes of every 2-D weight of the checkpoint's architecture (what recipes resolve against).
std::vector<TensorShape> quantizable_tensors(const ModelConfig& config);

}  // namespace lowbit
