#include "model/synthetic.h"

#include <cmath>
#include <cstring>
#include <random>

#include "base/half.h"

namespace lowbit {

ModelConfig tiny_test_config() {
  ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 172;
  c.n_layers = 2;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 8;
  c.vocab_size = 300;
  c.max_seq_len = 128;
  c.tied_embeddings = true;
  return c;
}

namespace {
std::vector<uint8_t> encode(const std::vector<float>& v, DType dtype) {
  std::vector<uint8_t> out(v.size() * dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      uint16_t h = dtype == DType::kF16 ? f32_to_fp16(v[i]) : f32_to_bf16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}
}  // namespace

Checkpoint make_random_checkpoint(const ModelConfig& config, uint64_t seed, DType dtype) {
  Checkpoint ck;
  ck.path = "<synthetic>";
  ck.format = "synthetic";
  ck.config = config;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::string> names = expected_tensor_names(config);
  // Shapes come from the validator's table: build a throwaway checkpoint-free lookup.
  for (const std::string& name : names) {
    std::vector<int64_t> shape;
    const int64_t d = config.dim, h = config.hidden_dim, q = config.q_dim(), kv = config.kv_dim();
    auto ends_with = [&](const char* s) {
      size_t n = std::strlen(s);
      return name.size() >= n && name.compare(name.size() - n, n, s) == 0;
    };
    bool is_norm = false, is_bias = false;
    if (name == tensor_names::embed() || name == tensor_names::lm_head()) shape = {config.vocab_size, d};
    else if (name == tensor_names::final_norm() || ends_with("layernorm.weight")) shape = {d}, is_norm = true;
    else if (ends_with("q_proj.weight")) shape = {q, d};
    else if (ends_with("k_proj.weight") || ends_with("v_proj.weight")) shape = {kv, d};
    else if (ends_with("q_proj.bias")) shape = {q}, is_bias = true;
    else if (ends_with("k_proj.bias") || ends_with("v_proj.bias")) shape = {kv}, is_bias = true;
    else if (ends_with("o_proj.weight")) shape = {d, q};
    else if (ends_with("gate_proj.weight") || ends_with("up_proj.weight")) shape = {h, d};
    else if (ends_with("down_proj.weight")) shape = {d, h};
    int64_t n = 1;
    for (auto s : shape) n *= s;
    std::vector<float> v(size_t(n));
    const float fan_in = shape.size() == 2 ? float(shape[1]) : 1.0f;
    const float std = is_norm ? 0.1f : is_bias ? 0.05f : 1.0f / std::sqrt(fan_in);
    for (auto& x : v) x = (is_norm ? 1.0f : 0.0f) + std * normal(rng);
    LOWBIT_CHECK(ck.tensors.add_owned(name, dtype, shape, encode(v, dtype)).ok());
  }
  return ck;
}

}  // namespace lowbit
