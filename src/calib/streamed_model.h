// GPTQ over a model larger than memory: a Model whose block linears are placeholders until the
// layer-by-layer driver reaches them (calib/gptq_driver.h load_block / release_block).
//
// Model::from_checkpoint converts every F16/BF16 tensor into an fp32 arena up front — twice the
// file size for an F16 model. Here the blocks' linear weights are left in the checkpoint's
// read-only mapping; load_block converts one block's seven weights (or points at them in place
// when they are aligned F32) and release_block frees them, drops the block's quantized matrices
// (already handed to the writer) and releases the mapped pages. What stays for the whole run is
// what does not grow with depth: the embedding (and output head) in fp32, the norms.
//
// Until loaded, a placeholder weight reads as zeros from one shared read-only anonymous mapping
// (the zero page: no resident memory), so nothing dangles and a missed load shows up as a
// wrong result in tests rather than a crash.
#pragma once

#include <functional>
#include <memory>

#include "base/status.h"
#include "model/checkpoint.h"
#include "model/model.h"

namespace lowbit {

struct StreamedModel {
  std::shared_ptr<const Model> model;
  std::function<Status(int, LayerWeights&)> load_block, release_block;
};

Result<StreamedModel> make_streamed_model(const Checkpoint& ckpt);

}  // namespace lowbit
