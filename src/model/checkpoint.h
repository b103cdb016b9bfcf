// A checkpoint as loaded from any container, before conversion into runtime weights: the
// architecture, the raw tensors under canonical (Hugging Face) names in their stored dtype,
// and the tokenizer when one was found. Loaders map their own names and conventions onto this;
// writers take the same structure, so any format converts to any other.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "formats/quantized_matrix.h"
#include "io/tensor.h"
#include "model/config.h"
#include "model/tokenizer.h"

namespace lowbit {

struct Checkpoint {
  std::string path;     // what the user named (file or directory)
  std::string format;   // "llama2c", "safetensors", "gguf"
  ModelConfig config;   // config.rope_style tells how q/k rows are ordered in `tensors`
  TensorSet tensors;    // canonical names (model/config.h tensor_names), stored dtype
  // Quantized weights by canonical weight name ("model.layers.0.self_attn.q_proj.weight"); such a
  // weight is absent from `tensors`. Codes unpacked, one per weight (the reference form).
  std::map<std::string, std::shared_ptr<const QuantizedMatrix>> quantized;
  // Dynamic quantization (`lowbit quantize --method dynamic`): the quantized linears quantize their
  // input activations per token to int8 at run time. Stored in config.json's quantization_config
  // as "activation_quantization": "int8_dynamic_per_token" (a lowbit key other loaders ignore).
  bool dynamic_int8_activations = false;
  std::shared_ptr<const Tokenizer> tokenizer;  // null when the checkpoint has none
};

// Checks that every tensor the config implies is present with the right shape, either as a
// float tensor (F32/F16/BF16) or as a quantized matrix, and that nothing unexpected is there.
// Names `ckpt.path` in errors.
Status validate_checkpoint_tensors(const Checkpoint& ckpt);
// The float writers (llama2.c, Hugging Face, GGUF) hold no quantized weight: writing one would mean
// silently dequantizing it. Fails naming `out` and the first quantized tensor, and says where
// quantized checkpoints go (lowbit quantize writes them; lowbit run/eval read them).
Status require_float_checkpoint(const Checkpoint& ckpt, const std::string& out, std::string_view container);
// Every tensor the config implies with its shape, in a fixed order (embed, layers, norm, head).
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config);

// Loaders (each validates hostile input and names the file in every error).
Result<Checkpoint> load_llama2c_checkpoint(const std::string& path, const std::string& tokenizer_path);
Result<Checkpoint> load_hf_checkpoint(const std::string& dir);
Result<Checkpoint> load_gguf_checkpoint(const std::string& path);
// Picks the loader by looking at the path: a directory with config.json -> HF; a file starting
// with "GGUF" -> GGUF; otherwise llama2.c (with tokenizer.bin / tok*.bin beside it if present).
Result<Checkpoint> load_checkpoint(const std::string& path, const std::string& tokenizer_path = "");

// Writers. `dtype` is the stored float type (F32, F16 or BF16); q/k rows are permuted when the
// target's RoPE convention differs from config.rope_style. Writes are atomic.
Status save_llama2c_checkpoint(const std::string& path, const Checkpoint& ckpt, bool version1);
Status save_hf_checkpoint(const std::string& dir, const Checkpoint& ckpt, DType dtype,
                          int64_t max_shard_bytes = 0 /* 0 = single model.safetensors */);
Status save_gguf_checkpoint(const std::string& path, const Checkpoint& ckpt, DType dtype);

}  // namespace lowbit
