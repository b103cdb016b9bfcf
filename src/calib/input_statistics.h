// What GPTQ needs to know about a block's layer inputs: the Hessian of each input (quant/hessian.h)
// and, for asymmetric calibration, its shift from the original model's input at the same place
// (quant/asymmetric_calibration.h). Shared by the GPTQ driver and the sensitivity measurement.
#pragma once

#include <memory>
#include <vector>

#include "calib/block_runner.h"
#include "quant/asymmetric_calibration.h"
#include "quant/hessian.h"

namespace lowbit {

// The original (unquantized) model running beside the one being quantized, on its own stream.
struct ReferenceRun {
  BlockRunner runner;  // over the original model
  WindowStream stream;
  ReferenceRun(std::shared_ptr<const Model> original, const std::vector<std::vector<int>>& windows, int max_tokens,
               int threads)
      : runner(std::move(original), max_tokens, threads), stream(runner.embed(windows)) {}
  void propagate(int block) { runner.propagate(block, stream); }
};

struct InputStatistics {
  std::vector<HessianAccumulator> hessians;  // per reader
  std::vector<InputShiftAccumulator> shifts;  // per reader, with a reference run; else empty
  int64_t peak_bytes = 0;  // accumulators plus the reference inputs held while pairing
};

// Runs block `block` over `stream` and accumulates the input statistics of each layer in `readers`
// (layers of block `block` of the runner's model, given by their index in LayerWeights::linears()).
// With `reference`, the original model's block runs too and each token's input is paired with the
// same token's input there; the reference stream is not advanced (call reference->propagate).
InputStatistics collect_input_statistics(BlockRunner& runner, const WindowStream& stream, int block,
                                         const std::vector<int>& readers, ReferenceRun* reference);

}  // namespace lowbit
