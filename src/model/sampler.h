// Next-token choice from logits: greedy (temperature 0), or temperature + nucleus (top-p)
// sampling from a seeded generator so runs are reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace lowbit {

struct SamplerOptions {
  float temperature = 0.0f;  // 0 = greedy
  float top_p = 1.0f;        // nucleus mass in (0, 1]
  uint64_t seed = 42;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions options) : options_(options), rng_(options.seed) {}
  int sample(const float* logits, int vocab);

 private:
  SamplerOptions options_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int>> probs_;
};

}  // namespace lowbit
