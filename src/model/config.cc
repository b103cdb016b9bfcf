#include "model/config.h"

#include <cmath>

namespace lowbit {

Status ModelConfig::validate(const std::string& source) const {
  auto bad = [&](const char* what, int64_t v) {
    return error(ErrorCode::kFormat, "{}: invalid {} = {}", source, what, v);
  };
  constexpr int kMax = 1 << 24;  // generous cap: rejects absurd sizes before any allocation
  if (dim <= 0 || dim > kMax) return bad("dim", dim);
  if (hidden_dim <= 0 || hidden_dim > kMax) return bad("hidden_dim", hidden_dim);
  if (n_layers <= 0 || n_layers > 4096) return bad("n_layers", n_layers);
  if (n_heads <= 0 || n_heads > 4096) return bad("n_heads", n_heads);
  if (n_kv_heads <= 0 || n_kv_heads > n_heads) return bad("n_kv_heads", n_kv_heads);
  if (n_heads % n_kv_heads != 0)
    return error(ErrorCode::kFormat, "{}: n_heads {} is not a multiple of n_kv_heads {}", source, n_heads,
                 n_kv_heads);
  if (head_dim <= 0 || head_dim % 2 != 0 || head_dim > 4096) return bad("head_dim", head_dim);
  if (vocab_size <= 0 || vocab_size > kMax) return bad("vocab_size", vocab_size);
  if (max_seq_len <= 0 || max_seq_len > kMax) return bad("max_seq_len", max_seq_len);
  if (!(rope_theta > 0) || !std::isfinite(rope_theta)) return error(ErrorCode::kFormat, "{}: invalid rope_theta {}", source, rope_theta);
  if (!(norm_eps > 0) || !std::isfinite(norm_eps)) return error(ErrorCode::kFormat, "{}: invalid norm eps {}", source, norm_eps);
  return Status::Ok();
}

int64_t ModelConfig::parameter_count() const {
  const int64_t d = dim, h = hidden_dim, q = q_dim(), kv = kv_dim(), v = vocab_size;
  int64_t per_layer = d * q + 2 * d * kv + q * d + 3 * d * h + 2 * d;
  if (attention_bias) per_layer += q + 2 * kv;
  return v * d + n_layers * per_layer + d + (tied_embeddings ? 0 : v * d);
}

namespace tensor_names {
std::string embed() { return "model.embed_tokens.weight"; }
std::string final_norm() { return "model.norm.weight"; }
std::string lm_head() { return "lm_head.weight"; }
std::string layer(int i, const std::string& suffix) {
  return "model.layers." + std::to_string(i) + "." + suffix;
}
}  // namespace tensor_names

}  // namespace lowbit
