// The FP32 Llama forward pass with a KV cache.
//
// One Session holds the cache for one sequence. forward() takes any number of new tokens:
// many at once is prefill (BLAS matrix-matrix products over all tokens), one at a time is
// decode (threaded matrix-vector products). Both paths share every operation below, so a
// KV-cache decode equals a full recompute up to fp32 rounding.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <vector>

#include "model/model.h"

namespace lowbit {

// Called with the input of every linear layer just before it runs (calibration and
// evaluation attach here). `layer` is the block index, or -1 for the output head.
struct LinearInput {
  int layer;
  const Linear* linear;
  const float* x;  // [n_tokens, linear->in_features]
  int n_tokens;
};
using LinearHook = std::function<void(const LinearInput&)>;
// Called after every product with its wall time (lowbit bench's decode breakdown): one layer, or
// the layers that read one input and run together (q, k, v; gate, up).
using LinearTimer = std::function<void(std::span<const Linear* const> linears, int n_tokens, double seconds)>;

class Session {
 public:
  explicit Session(std::shared_ptr<const Model> model, int max_tokens = 0 /* 0 = config.max_seq_len */);

  const Model& model() const { return *model_; }
  int position() const { return position_; }
  int capacity() const { return capacity_; }
  void reset() { position_ = 0; }
  void set_linear_hook(LinearHook hook) { hook_ = std::move(hook); }
  void set_linear_timer(LinearTimer timer) { timer_ = std::move(timer); }

  // Feeds `tokens` at positions [position(), position() + n). Writes logits [n, vocab] for every
  // token when all_logits, else [1, vocab] for the last one. Fails on an id outside the
  // vocabulary or when the cache would overflow.
  Status forward(std::span<const int> tokens, bool all_logits, std::vector<float>* logits);

  // Pieces of forward(), public for layer-by-layer calibration.
  // x: [n, dim] hidden states of tokens at positions [start, start + n); updated in place.
  void forward_block(int layer, float* x, int n, int start);
  // Embedding lookup into x [n, dim] (ids must be valid).
  void embed(std::span<const int> tokens, float* x) const;
  // Final norm + output head for rows of x [n, dim] -> logits [n, vocab].
  void output_logits(const float* x, int n, float* logits);

 private:
  void ensure_scratch(int n);
  void run_linear(int layer, const Linear& l, const float* x, int n, float* y);
  // Layers reading the same input x (linear_forward_shared_input).
  void run_linears(int layer, std::initializer_list<const Linear*> ls, const float* x, int n,
                   std::initializer_list<float*> ys);
  void attention(int layer, int n, int start);
  void attention_one_token(int layer, int start);

  std::shared_ptr<const Model> model_;
  LinearHook hook_;
  LinearTimer timer_;
  int capacity_ = 0;
  int position_ = 0;
  // [n_layers, n_kv_heads, capacity, head_dim]: one kv head's keys (values) are one contiguous
  // stretch, which decode reads from memory once per token (the weight stream evicts it), in huge
  // pages (kernels/streaming_allocator.h), as the weights.
  std::vector<float, kernels::StreamingAllocator<float>> key_cache_, value_cache_;
  // Where kv head `kv_head`'s key (value) for position `pos` of `layer` starts in the caches.
  size_t kv_cache_at(int layer, int kv_head, int pos) const {
    const ModelConfig& c = model_->config();
    return ((size_t(layer) * c.n_kv_heads + kv_head) * capacity_ + pos) * c.head_dim;
  }
  std::vector<float> rope_cos_, rope_sin_;      // [capacity, head_dim/2]
  // Scratch for n tokens: normed [n, dim], q [n, q_dim], k/v [n, kv_dim], att_out [n, q_dim],
  // gate/up [n, hidden], tmp [n, dim].
  int scratch_tokens_ = 0;
  std::vector<float> normed_, q_, k_, v_, att_out_, gate_, up_, tmp_;
};

// Free-standing building blocks (also used by the training code and tests).
void rms_norm(const float* x, const float* weight, int dim, float eps, float* out);
// Rotates one head vector in place at position `pos` using the precomputed table row.
void apply_rope(float* head, int head_dim, RopeStyle style, const float* cos_row, const float* sin_row);

}  // namespace lowbit
