// Writes a checkpoint that has quantized weights as a Hugging Face directory: config.json with
// a quantization_config block, model.safetensors holding the floating-point tensors and the
// quantized weights in the GPTQ or lowbit layout (model/quantized_tensors.h), and
// tokenizer.json when the checkpoint has a tokenizer. load_checkpoint() reads it back.
//
// The directory appears complete or not at all: everything is written into a temporary
// sibling directory that is renamed into place at the end.
#pragma once

#include <string>

#include "model/checkpoint.h"

namespace lowbit {

struct QuantizedSaveOptions {
  DType float_dtype = DType::kF32;  // for tensors that stay in floating point
  bool overwrite = false;           // replace an existing output directory
};

Status save_quantized_checkpoint(const std::string& dir, const Checkpoint& ckpt, const QuantizedSaveOptions& options);

}  // namespace lowbit
