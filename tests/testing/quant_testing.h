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

// Σ_t ‖Q x̃_t − W x_t‖² for Q, W [rows, cols] and x_ref (x), x_q (x̃) [n, cols] row-major: how far
// a layer's output on the quantized model's inputs is from the original layer's on the original
// inputs (the objective of asymmetric calibration, quant/asymmetric_calibration.h).
inline double asymmetric_objective(const std::vector<float>& q, const std::vector<float>& w,
                                   const std::vector<float>& x_ref, const std::vector<float>& x_q, int64_t rows,
                                   int64_t cols) {
  const int64_t n = int64_t(x_ref.size()) / cols;
  double total = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double e = 0;
      for (int64_t c = 0; c < cols; ++c)
        e += double(q[size_t(r * cols + c)]) * x_q[size_t(t * cols + c)] -
             double(w[size_t(r * cols + c)]) * x_ref[size_t(t * cols + c)];
      total += e * e;
    }
  return total;
}

}  // namespace lowbit::testing
