// The Llama forward pass for training, with every activation the backward pass needs kept, and
// the backward pass itself. The math is the same as model/forward.cc (and the double reference
// model/reference_forward.cc): RMSNorm with eps, RoPE in the config's pair order (frequencies in
// fp32, angles in double), causal grouped-query attention scaled by 1/sqrt(head_dim), SwiGLU
// feed-forward w_down(silu(w_gate x) * w_up x), final norm, output head (tied or not).
//
// Templated on the scalar: float for training, double for the finite-difference gradient checks
// (train/*_test.cc). Every matmul over [batch*seq, features] goes through BLAS (sgemm/dgemm);
// per-row work (norms, RoPE, softmax, attention) is threaded with OpenMP.
//
// A step is:  forward(params, tokens) -> logits;  loss (cross_entropy or distillation) which also
// sets d loss / d logits;  backward(params, grads) which ADDS the gradient of that loss to grads.
// The loss is the mean over the scored positions.
#pragma once

#include <cstdint>
#include <vector>

#include "train/param_layout.h"

namespace lowbit::train {

template <typename T>
class TrainGraph {
 public:
  // Room for `batch` sequences of `seq` tokens (seq <= config.max_seq_len is not required).
  TrainGraph(const ParamLayout& layout, int batch, int seq);

  int batch() const { return batch_; }
  int seq() const { return seq_; }
  int rows() const { return batch_ * seq_; }

  // tokens: [batch, seq] ids in [0, vocab) (checked by the caller); params: [layout.total].
  // Each sequence starts at position 0.
  void forward(const T* params, const int32_t* tokens);
  // [batch*seq, vocab] logits of the last forward().
  const std::vector<T>& logits() const { return logits_; }

  // Mean cross-entropy over positions whose target is >= 0 (targets: [batch*seq]; -1 = unscored).
  double cross_entropy(const int32_t* targets);
  // Mean over all positions of KL(teacher || student) over the full vocabulary, in nats.
  // teacher_log_probs: [batch*seq, vocab] log-softmax of the teacher's logits.
  double distillation(const float* teacher_log_probs);

  // Adds d(loss)/d(params) of the last loss call to grads [layout.total].
  void backward(const T* params, T* grads);

 private:
  void set_dlogits_scale(int counted);

  const ParamLayout& layout_;
  const ModelConfig& c_;
  int batch_, seq_;
  std::vector<int32_t> tokens_;  // [batch*seq]
  std::vector<T> rope_cos_, rope_sin_;  // [seq, head_dim/2]

  struct LayerCache {
    std::vector<T> x_in;    // [N, dim] residual stream entering the block
    std::vector<T> rms1;    // [N] 1/rms of x_in
    std::vector<T> xn1;     // [N, dim] attention norm output
    std::vector<T> q, k, v;  // [N, q_dim], [N, kv_dim] x2 (q, k after RoPE)
    std::vector<T> probs;   // [batch, heads, seq, seq] attention weights (causal: upper part unused)
    std::vector<T> att;     // [N, q_dim] attention output before w_o
    std::vector<T> x_mid;   // [N, dim] after the attention residual
    std::vector<T> rms2;    // [N]
    std::vector<T> xn2;     // [N, dim]
    std::vector<T> gate, up, act;  // [N, hidden] pre-activation gate, up, silu(gate)*up
  };
  std::vector<LayerCache> layers_;
  std::vector<T> x_final_;  // [N, dim]
  std::vector<T> rms_f_;    // [N]
  std::vector<T> xn_f_;     // [N, dim]
  std::vector<T> logits_;   // [N, vocab]
  std::vector<T> dlogits_;  // [N, vocab]
  // Backward scratch.
  std::vector<T> dx_, dxn_, dq_, dk_, dv_, datt_, dh_, dg_, du_;
};

// Free-standing pieces, exposed for the per-layer gradient tests. Rows are independent.
// y[r] = x[r] * inv_rms(x[r]) * w; inv_rms stored per row.
template <typename T>
void rmsnorm_forward(const T* x, const T* w, int rows, int dim, T eps, T* y, T* inv_rms);
// Adds to dx and dw.
template <typename T>
void rmsnorm_backward(const T* x, const T* w, const T* inv_rms, const T* dy, int rows, int dim, T* dx, T* dw);
// Rotates [rows = batch*seq, n_heads*head_dim] in place; row r is at position r % seq.
// inverse = true applies the transpose (the backward pass of a rotation).
template <typename T>
void rope_apply(T* x, int rows, int seq, int n_heads, int head_dim, RopeStyle style, const T* cos, const T* sin,
                bool inverse);
// Causal GQA attention for [batch, seq] tokens: q [N, H*hd], k/v [N, KV*hd] -> out [N, H*hd];
// probs [batch, H, seq, seq].
template <typename T>
void attention_forward(const T* q, const T* k, const T* v, int batch, int seq, int n_heads, int n_kv_heads,
                       int head_dim, T* probs, T* out);
// Sets dq, dk, dv (overwrites).
template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* probs, const T* dout, int batch, int seq,
                        int n_heads, int n_kv_heads, int head_dim, T* dq, T* dk, T* dv);
// act = silu(gate) * up; backward sets dgate, dup.
template <typename T>
void swiglu_forward(const T* gate, const T* up, size_t n, T* act);
template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dact, size_t n, T* dgate, T* dup);
// RoPE tables [seq, head_dim/2] as the runtime computes them.
template <typename T>
void rope_tables(const ModelConfig& c, int seq, std::vector<T>* cos, std::vector<T>* sin);

}  // namespace lowbit::train
