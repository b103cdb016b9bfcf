// Hugging Face checkpoint directories: config.json + model.safetensors (or shards listed in
// model.safetensors.index.json) + optional tokenizer.json. load_hf_checkpoint and the plain
// save_hf_checkpoint are declared in model/checkpoint.h; this header adds the options form.
//
// Directory layout written (what transformers' save_pretrained writes for safetensors):
//   config.json                         written last, so a directory with one is complete
//   model.safetensors                   when everything fits one shard, or
//   model-00001-of-0000N.safetensors    shards of at most max_shard_bytes of tensor data
//   model.safetensors.index.json        {"metadata": {"total_size": B}, "weight_map": {name: file}}
//   tokenizer.json                      when the checkpoint has a tokenizer
// Every safetensors file carries __metadata__ {"format": "pt"}, which transformers requires.
#pragma once

#include <cstdint>
#include <string>

#include "model/checkpoint.h"

namespace lowbit {

struct HfSaveOptions {
  DType dtype = DType::kF32;    // stored float type: F32, F16 or BF16
  int64_t max_shard_bytes = 0;  // 0 = one model.safetensors; else tensor bytes per shard (a
                                // larger tensor gets a shard of its own, as in transformers)
  bool overwrite = false;       // replace a directory that already holds config.json (--force);
                                // stale files of a previous save there (index, shards,
                                // tokenizer.json) are removed so they cannot mix with the new one
};

Status save_hf_checkpoint(const std::string& dir, const Checkpoint& ckpt, const HfSaveOptions& options);

}  // namespace lowbit
