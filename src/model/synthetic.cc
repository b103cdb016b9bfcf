#include "model/synthetic.h"

#include <cmath>
#include <cstring>
#include <random>

#include "model/float_values.h"

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

Checkpoint make_random_checkpoint(const ModelConfig& config, uint64_t seed, DType dtype) {
  Checkpoint ck;
  ck.path = "<synthetic>";
  ck.format = "synthetic";
  ck.config = config;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const ExpectedTensor& e : expected_tensors(config)) {
    const std::string& name = e.name;
    const std::vector<int64_t>& shape = e.shape;
    auto ends_with = [&](const char* s) {
      size_t n = std::strlen(s);
      return name.size() >= n && name.compare(name.size() - n, n, s) == 0;
    };
    const bool is_norm = ends_with("norm.weight");
    const bool is_bias = ends_with(".bias");
    int64_t n = 1;
    for (auto s : shape) n *= s;
    std::vector<float> v(static_cast<size_t>(n));
    const float fan_in = shape.size() == 2 ? float(shape[1]) : 1.0f;
    const float std = is_norm ? 0.1f : is_bias ? 0.05f : 1.0f / std::sqrt(fan_in);
    for (auto& x : v) x = (is_norm ? 1.0f : 0.0f) + std * normal(rng);
    LOWBIT_CHECK(ck.tensors.add_owned(name, dtype, shape, encode_floats(v, dtype)).ok());
  }
  return ck;
}

}  // namespace lowbit
