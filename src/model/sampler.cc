#include "model/sampler.h"

#include <algorithm>
#include <cmath>

namespace lowbit {

int Sampler::sample(const float* logits, int vocab) {
  if (options_.temperature <= 0.0f) return int(std::max_element(logits, logits + vocab) - logits);
  const float max_logit = *std::max_element(logits, logits + vocab);
  probs_.resize(size_t(vocab));
  double sum = 0;
  for (int i = 0; i < vocab; ++i) {
    float p = std::exp((logits[i] - max_logit) / options_.temperature);
    probs_[size_t(i)] = {p, i};
    sum += p;
  }
  // Keep the smallest set of most likely tokens whose mass reaches top_p.
  std::sort(probs_.begin(), probs_.end(), [](auto& a, auto& b) { return a.first > b.first; });
  double kept = 0;
  size_t n = 0;
  while (n < probs_.size() && (n == 0 || kept < options_.top_p * sum)) kept += probs_[n++].first;
  const double r = std::uniform_real_distribution<double>(0.0, kept)(rng_);
  double acc = 0;
  for (size_t i = 0; i < n; ++i) {
    acc += probs_[i].first;
    if (r < acc) return probs_[i].second;
  }
  return probs_[n - 1].second;
}

}  // namespace lowbit
