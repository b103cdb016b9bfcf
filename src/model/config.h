// The architecture of a Llama-family model, independent of the file it came from.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace lowbit {

// How RoPE pairs the dimensions of a head.
//  kInterleaved: rotates (x[2i], x[2i+1])            — llama2.c, GGUF (llama.cpp converts HF weights
//                                                      by permuting q/k rows into this order).
//  kHalf:        rotates (x[i], x[i + head_dim/2])   — Hugging Face ("rotate_half"), on q/k rows that
//                                                      are permuted relative to the Meta/llama2.c order.
// The same model in either convention gives the same logits; writers permute q/k rows when the
// target file uses the other convention (see model/rope_permute.h).
enum class RopeStyle : uint8_t { kInterleaved, kHalf };

struct ModelConfig {
  std::string architecture = "llama";  // "llama", "mistral" or "qwen2" (qwen2 has q/k/v biases)
  int dim = 0;          // hidden size
  int hidden_dim = 0;   // feed-forward (intermediate) size
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;   // < n_heads means grouped-query attention
  int head_dim = 0;     // usually dim / n_heads, but HF configs may set it explicitly
  int vocab_size = 0;
  int max_seq_len = 0;
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  bool tied_embeddings = true;  // output head shares the token embedding
  bool attention_bias = false;  // q/k/v projections have biases (Qwen2)
  RopeStyle rope_style = RopeStyle::kInterleaved;
  int bos_id = 1;
  int eos_id = 2;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  // Checks that every size is positive and consistent; names `source` in the message.
  Status validate(const std::string& source) const;
  int64_t parameter_count() const;
};

// Canonical tensor names (Hugging Face spelling) used everywhere inside lowbit: recipes match
// against these, whatever the source format.
namespace tensor_names {
std::string embed();                                  // model.embed_tokens.weight
std::string final_norm();                             // model.norm.weight
std::string lm_head();                                // lm_head.weight
std::string layer(int i, const std::string& suffix);  // model.layers.{i}.{suffix}
// Suffixes within a layer.
inline constexpr const char* kAttnNorm = "input_layernorm.weight";
inline constexpr const char* kFfnNorm = "post_attention_layernorm.weight";
inline constexpr const char* kQ = "self_attn.q_proj.weight";
inline constexpr const char* kK = "self_attn.k_proj.weight";
inline constexpr const char* kV = "self_attn.v_proj.weight";
inline constexpr const char* kO = "self_attn.o_proj.weight";
inline constexpr const char* kQBias = "self_attn.q_proj.bias";
inline constexpr const char* kKBias = "self_attn.k_proj.bias";
inline constexpr const char* kVBias = "self_attn.v_proj.bias";
inline constexpr const char* kGate = "mlp.gate_proj.weight";  // llama2.c w1
inline constexpr const char* kUp = "mlp.up_proj.weight";      // llama2.c w3
inline constexpr const char* kDown = "mlp.down_proj.weight";  // llama2.c w2
}  // namespace tensor_names

}  // namespace lowbit
