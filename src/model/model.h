// Runtime weights of a Llama-family model: fp32 values ready for the forward pass.
// Built from a Checkpoint (any container). F32 tensors that are suitably aligned are used in
// place from the read-only mmap; F16/BF16 tensors are converted once into owned buffers (in huge pages).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/streaming_allocator.h"
#include "model/checkpoint.h"
#include "model/linear.h"

namespace lowbit {

struct LayerWeights {
  const float* attn_norm = nullptr;  // [dim]
  Linear q, k, v, o;                 // [q_dim, dim], [kv_dim, dim] ×2, [dim, q_dim]
  const float* ffn_norm = nullptr;   // [dim]
  Linear gate, up, down;             // [hidden, dim] ×2, [dim, hidden]
  // The seven linear layers in execution order (q, k, v, o, gate, up, down).
  std::vector<Linear*> linears() { return {&q, &k, &v, &o, &gate, &up, &down}; }
  std::vector<const Linear*> linears() const { return {&q, &k, &v, &o, &gate, &up, &down}; }
};

class Model {
 public:
  static Result<std::shared_ptr<Model>> from_checkpoint(const Checkpoint& ckpt);

  const ModelConfig& config() const { return config_; }
  const float* embedding() const { return embedding_; }  // [vocab, dim]
  const float* final_norm() const { return final_norm_; }  // [dim]
  const Linear& lm_head() const { return lm_head_; }  // [vocab, dim]
  const std::vector<LayerWeights>& layers() const { return layers_; }
  std::vector<LayerWeights>& mutable_layers() { return layers_; }
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  std::shared_ptr<const Tokenizer> shared_tokenizer() const { return tokenizer_; }
  const std::string& source_path() const { return source_path_; }
  const std::string& source_format() const { return source_format_; }

 private:
  ModelConfig config_;
  std::string source_path_, source_format_;
  TensorSet source_;  // keeps the mapped files alive
  // Converted tensors, in huge pages (kernels/streaming_allocator.h): the fp32 decode streams them
  // once per token. Moving the outer vector keeps each buffer in place.
  std::vector<std::vector<float, kernels::StreamingAllocator<float>>> owned_;
  const float* embedding_ = nullptr;
  const float* final_norm_ = nullptr;
  Linear lm_head_;
  std::vector<LayerWeights> layers_;
  std::shared_ptr<const Tokenizer> tokenizer_;
};

}  // namespace lowbit
