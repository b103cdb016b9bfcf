#include "quant/asymmetric_calibration.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "testing/quant_testing.h"

namespace lowbit {
namespace {

std::vector<float> gaussian(size_t n, uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(InputShiftAccumulator, MatchesTheDirectSumOverBatches) {
  constexpr int64_t dim = 5, n1 = 300, n2 = 700;  // the second batch spans two 512-row slices
  const std::vector<float> x = gaussian(size_t((n1 + n2) * dim), 1), xq = gaussian(size_t((n1 + n2) * dim), 2);
  InputShiftAccumulator acc(dim);
  acc.add(std::span(x).first(size_t(n1 * dim)), std::span(xq).first(size_t(n1 * dim)), n1);
  acc.add(std::span(x).subspan(size_t(n1 * dim)), std::span(xq).subspan(size_t(n1 * dim)), n2);
  EXPECT_EQ(acc.rows(), n1 + n2);
  const std::vector<double> d = acc.shift();
  for (int64_t i = 0; i < dim; ++i)
    for (int64_t j = 0; j < dim; ++j) {
      double expected = 0, magnitude = 0;
      for (int64_t t = 0; t < n1 + n2; ++t) {
        const double term = (double(x[size_t(t * dim + i)]) - xq[size_t(t * dim + i)]) * xq[size_t(t * dim + j)];
        expected += term;
        magnitude += std::abs(term);
      }
      expected *= 2.0 / double(n1 + n2);
      // fp64 sums of exact fp32 products, in a different order: a few ulps of the magnitude.
      EXPECT_NEAR(d[size_t(i * dim + j)], expected, 1e-14 * magnitude) << i << "," << j;
    }
}

TEST(AsymmetricTarget, NoShiftLeavesTheWeightsExactly) {
  constexpr int64_t rows = 3, cols = 4, n = 50;
  const std::vector<float> x = gaussian(size_t(n * cols), 3), w = gaussian(size_t(rows * cols), 4);
  InputShiftAccumulator shift(cols);
  shift.add(x, x, n);
  std::vector<double> h(size_t(cols * cols), 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        h[size_t(i * cols + j)] += 2.0 / n * x[size_t(t * cols + i)] * x[size_t(t * cols + j)];
  Result<std::vector<float>> target = asymmetric_target(w, rows, cols, h, shift.shift(), 0.01, 0);
  ASSERT_TRUE(target.ok()) << target.status().message();
  EXPECT_EQ(*target, w);
}

// W* solves the dampened normal equations 2/n (W* X̃ X̃ᵀ − W X X̃ᵀ) + λ (W* − W) = 0, so it fits
// the original outputs on the shifted inputs better than W itself does.
TEST(AsymmetricTarget, SolvesTheDampenedLeastSquaresProblem) {
  constexpr int64_t rows = 3, cols = 6, n = 400;
  const std::vector<float> x = gaussian(size_t(n * cols), 5), w = gaussian(size_t(rows * cols), 6);
  std::vector<float> xq = x;
  const std::vector<float> noise = gaussian(xq.size(), 7, 0.2f);
  for (size_t i = 0; i < xq.size(); ++i) xq[i] = 0.9f * xq[i] + noise[i];  // a shrink and noise
  std::vector<double> h(size_t(cols * cols), 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        h[size_t(i * cols + j)] += 2.0 / n * xq[size_t(t * cols + i)] * xq[size_t(t * cols + j)];
  InputShiftAccumulator shift(cols);
  shift.add(x, xq, n);
  constexpr double percdamp = 0.01;
  Result<std::vector<float>> target = asymmetric_target(w, rows, cols, h, shift.shift(), percdamp, 0);
  ASSERT_TRUE(target.ok()) << target.status().message();
  const std::vector<float>& ws = *target;
  double mean_diag = 0;
  for (int64_t c = 0; c < cols; ++c) mean_diag += h[size_t(c * cols + c)] / cols;
  const double lambda = percdamp * mean_diag;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      double residual = lambda * (double(ws[size_t(r * cols + j)]) - w[size_t(r * cols + j)]), magnitude = 0;
      for (int64_t t = 0; t < n; ++t) {
        double fit = 0, scale = 0;
        for (int64_t c = 0; c < cols; ++c) {
          fit += double(ws[size_t(r * cols + c)]) * xq[size_t(t * cols + c)] -
                 double(w[size_t(r * cols + c)]) * x[size_t(t * cols + c)];
          scale += std::abs(double(ws[size_t(r * cols + c)]) * xq[size_t(t * cols + c)]);
        }
        residual += 2.0 / n * fit * xq[size_t(t * cols + j)];
        magnitude += 2.0 / n * scale * std::abs(xq[size_t(t * cols + j)]);
      }
      // W* is rounded to fp32 at the end: each product carries up to half an fp32 ulp of error.
      EXPECT_NEAR(residual, 0.0, magnitude * std::numeric_limits<float>::epsilon()) << r << "," << j;
    }
  EXPECT_LT(testing::asymmetric_objective(ws, w, x, xq, rows, cols),
            0.9 * testing::asymmetric_objective(w, w, x, xq, rows, cols));
}

TEST(AsymmetricTarget, RejectsBadSizesAndDampening) {
  const std::vector<float> w(6, 1.0f);
  const std::vector<double> h(4, 0.0), d(4, 0.0);
  EXPECT_FALSE(asymmetric_target(w, 3, 3, h, d, 0.01, 0).ok());  // weight is [3, 2]
  EXPECT_FALSE(asymmetric_target(w, 3, 2, h, std::vector<double>(3), 0.01, 0).ok());
  EXPECT_FALSE(asymmetric_target(w, 3, 2, std::vector<double>{1, 0, 0, 1}, d, 0.0, 0).ok());
  // No input energy at all: nothing to fit, the weights stay.
  Result<std::vector<float>> same = asymmetric_target(w, 3, 2, h, d, 0.01, 0);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, w);
}

}  // namespace
}  // namespace lowbit
