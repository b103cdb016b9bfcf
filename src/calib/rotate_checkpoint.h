// Incoherence rotation before quantization (QuaRot / SpinQuant, weights only, no run-time cost).
//
// A Llama block computes y = x + W_o·attn(W_qkv·n(x)) and y = x + W_down·f(W_gate·n(x), W_up·n(x)),
// with n the RMSNorm. Rotating the residual stream by an orthogonal Q (x → Q x) changes nothing
// the model computes once
//   - each norm's gain is folded into the columns of the linears that read it (the norm becomes
//     plain x / rms(x), which commutes with Q because |Q x| = |x|),
//   - the readers (q, k, v, gate, up, the head) become W Qᵀ and the writers (o, down) Q W,
//   - the embedding rows become Q e (E Qᵀ);
// and each value head may be rotated too: v's rows of kv head j by R (v_j → R v_j, with its bias),
// o's columns of every query head that reads kv head j by Rᵀ (attention mixes value vectors
// linearly, so the rotation passes through it).
// The function is the same; the weights are not: a coordinate that carried an outlier is now
// spread over all of them, and each row of W Qᵀ looks Gaussian, which is what per-row and
// per-group grids fit best (most at 2-3 bits). The feed-forward hidden side (down's columns) is
// not rotated: SwiGLU does not commute with a rotation, and rotating it would need one at run time.
//
// The head can no longer share the embedding (it carries the final norm's gain), so the result
// has tied_embeddings = false and its own lm_head.weight. Every tensor of the result is an owned
// copy, F32 where the source was F32, else F16 (the model once more in memory; one block at a
// time beside it while rotating).
#pragma once

#include <cstdint>
#include <functional>

#include "base/status.h"
#include "model/checkpoint.h"

namespace lowbit {

struct RotationOptions {
  uint64_t seed = 0;        // Q and each layer's R come from it (linalg::random_orthogonal)
  bool value_heads = true;  // also rotate v/o per head
};

// (layers done, layers total) after each block; a 7B model's rotation is minutes of sgemm.
using RotationProgress = std::function<void(int, int)>;

// Fails (kInvalidArgument, naming ck.path) on a checkpoint that holds quantized weights.
Result<Checkpoint> rotate_checkpoint(const Checkpoint& ck, const RotationOptions& options,
                                     const RotationProgress& progress = {});

}  // namespace lowbit
