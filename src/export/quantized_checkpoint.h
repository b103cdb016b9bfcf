// Writes a checkpoint that has quantized weights as a Hugging Face directory: config.json with
// a quantization_config block, model.safetensors holding the floating-point tensors and the
// quantized weights in the GPTQ or lowbit layout (model/quantized_tensors.h), and
// tokenizer.json when the checkpoint has a tokenizer. load_checkpoint() reads it back.
//
// The directory appears complete or not at all: everything is written into a temporary
// sibling directory that is swapped into place at the end (io/atomic_directory.h); an
// interrupted or failed run (disk full) leaves the previous output as it was and no temporaries.
// export/streaming_writer.h writes the same files tensor by tensor (bounded memory); this
// function is that writer fed with a checkpoint already in memory.
#pragma once

#include <map>
#include <string>

#include "model/checkpoint.h"

namespace lowbit {

struct QuantizedSaveOptions {
  DType float_dtype = DType::kF32;  // for tensors that stay in floating point
  bool overwrite = false;           // replace an existing output directory
  // Mark the checkpoint as dynamically quantized (quantization_config.activation_quantization);
  // also set when the checkpoint written says so (Checkpoint::dynamic_int8_activations).
  bool dynamic_int8_activations = false;
  // More text files to publish with the checkpoint (name -> contents), e.g. lowbit-recipe.json.
  std::map<std::string, std::string> extra_files;
};

Status save_quantized_checkpoint(const std::string& dir, const Checkpoint& ckpt, const QuantizedSaveOptions& options);

}  // namespace lowbit
