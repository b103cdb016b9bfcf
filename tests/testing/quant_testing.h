// Helpers shared by the quantizer tests (formats/, quant/): format specs by name and
// LLM-like weights.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "formats/format.h"

namespace lowbit::testing {

inline FormatSpec spec_of(const std::string& name) {
  Result<FormatSpec> spec = parse_format_spec(name);
  EXPECT_TRUE(spec.ok()) << name;
  return spec.ok() ? *spec : FormatSpec{};
}

// Heavy-tailed weights (Student-t like: normal / sqrt(uniform)), as trained LLM weights are and
// where clipping and error compensation pay off.
inline std::vector<float> heavy_tailed(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::uniform_real_distribution<float> uniform(0.05f, 1.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& x : w) x = normal(rng) / std::sqrt(uniform(rng));
  return w;
}

}  // namespace lowbit::testing
