// Hugging Face config.json <-> ModelConfig for the Llama family (LlamaForCausalLM,
// MistralForCausalLM, Qwen2ForCausalLM).
//
// Fields read (defaults as in transformers' config classes):
//   architectures[0]          -> architecture ("llama" | "mistral" | "qwen2"); model_type when absent
//   hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size,
//   max_position_embeddings   -> required
//   num_key_value_heads       -> default num_attention_heads
//   head_dim                  -> default hidden_size / num_attention_heads
//   rope_theta                -> default 10000 (Qwen2: 1e6)
//   rms_norm_eps              -> default 1e-6
//   tie_word_embeddings       -> default false
//   attention_bias            -> Qwen2 always true; Llama from the field (default false); Mistral false
//   bos_token_id, eos_token_id (a list: its first entry) -> kept at ModelConfig defaults when absent
//   torch_dtype               -> recorded only; tensors carry their own dtype
// A config asking for something the runtime does not implement (rope_scaling, an activation other
// than silu, mlp_bias) is refused with kUnsupported rather than silently computed wrong.
// HF checkpoints always store q/k rows in the kHalf RoPE order.
#pragma once

#include <string>

#include "base/status.h"
#include "io/tensor.h"
#include "model/config.h"

namespace lowbit {

// The value of quantization_config.activation_quantization that marks a dynamically quantized
// checkpoint (int8 activations per token at run time).
inline constexpr const char* kDynamicInt8Activations = "int8_dynamic_per_token";

struct HfConfig {
  ModelConfig model;        // rope_style = kHalf
  std::string torch_dtype;  // "" when absent
  std::string quantization_config_json;  // the "quantization_config" object as JSON text, "" when absent
  // quantization_config.activation_quantization == "int8_dynamic_per_token" (lowbit's key).
  bool dynamic_int8_activations = false;
};

// Parses config.json text; `source` (the path) prefixes every error. The result is validated.
Result<HfConfig> parse_hf_config(const std::string& json_text, const std::string& source);

// config.json text for `config` stored as `dtype` (F32/F16/BF16). Fails with kUnsupported for an
// architecture Hugging Face cannot express (e.g. Mistral with q/k/v biases).
Result<std::string> hf_config_json(const ModelConfig& config, DType dtype);

// "float32" / "float16" / "bfloat16" (torch spelling); "" for other dtypes.
const char* torch_dtype_name(DType dtype);

}  // namespace lowbit
