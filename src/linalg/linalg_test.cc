#include "linalg/linalg.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace lowbit::linalg {
namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();

std::vector<double> random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> m(size_t(rows * cols));
  for (double& v : m) v = normal(rng);
  return m;
}

// A symmetric positive definite [n, n] matrix B Bᵀ / n + shift I.
std::vector<double> random_spd(int64_t n, double shift, uint64_t seed) {
  const std::vector<double> b = random_matrix(n, n, seed);
  std::vector<double> h(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < n; ++k) s += b[size_t(i * n + k)] * b[size_t(j * n + k)];
      h[size_t(i * n + j)] = s / double(n) + (i == j ? shift : 0.0);
    }
  return h;
}

// ‖m‖∞: the largest absolute row sum.
double inf_norm(const std::vector<double>& m, int64_t n) {
  double best = 0;
  for (int64_t r = 0; r < n; ++r) {
    double s = 0;
    for (int64_t c = 0; c < n; ++c) s += std::fabs(m[size_t(r * n + c)]);
    best = std::max(best, s);
  }
  return best;
}

// Uᵀ U for an upper-triangular U [n, n].
std::vector<double> upper_gram(const std::vector<double>& u, int64_t n) {
  std::vector<double> g(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k <= std::min(i, j); ++k) s += u[size_t(k * n + i)] * u[size_t(k * n + j)];
      g[size_t(i * n + j)] = s;
    }
  return g;
}

TEST(Linalg, SyrkAccumulatesUpperTriangleOnly) {
  const int64_t n = 37, d = 11;
  const std::vector<double> x = random_matrix(n, d, 1);
  std::vector<double> c(size_t(d * d), 5.0);  // existing contents are accumulated into
  syrk_upper_accumulate(x, n, d, 0.5, c);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) {
      if (j < i) {
        EXPECT_EQ(c[size_t(i * d + j)], 5.0) << "lower triangle must be untouched";
        continue;
      }
      double s = 0, abs_sum = 0;
      for (int64_t t = 0; t < n; ++t) {
        s += x[size_t(t * d + i)] * x[size_t(t * d + j)];
        abs_sum += std::fabs(x[size_t(t * d + i)] * x[size_t(t * d + j)]);
      }
      EXPECT_NEAR(c[size_t(i * d + j)], 5.0 + 0.5 * s, 2.0 * double(n) * kEps * (5.0 + abs_sum));
    }
  symmetrize_from_upper(c, d);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) EXPECT_EQ(c[size_t(i * d + j)], c[size_t(j * d + i)]);
}

TEST(Linalg, GemmAllTranspositions) {
  const int64_t m = 7, n = 5, k = 9;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // Stored shapes: A is [m, k] or [k, m]; B is [k, n] or [n, k].
      std::vector<double> ad = random_matrix(m, k, 2), bd = random_matrix(k, n, 3);
      std::vector<float> a(ad.begin(), ad.end()), b(bd.begin(), bd.end());
      const int64_t lda = ta ? m : k, ldb = tb ? k : n;
      auto at = [&](int64_t i, int64_t p) { return double(ta ? a[size_t(p * lda + i)] : a[size_t(i * lda + p)]); };
      auto bt = [&](int64_t p, int64_t j) { return double(tb ? b[size_t(j * ldb + p)] : b[size_t(p * ldb + j)]); };
      std::vector<float> c(size_t(m * n), 1.0f);
      gemm_f32(ta, tb, m, n, k, -1.0f, a.data(), lda, b.data(), ldb, 1.0f, c.data(), n);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = 1.0, abs_sum = 1.0;
          for (int64_t p = 0; p < k; ++p) {
            s -= at(i, p) * bt(p, j);
            abs_sum += std::fabs(at(i, p) * bt(p, j));
          }
          const double tol = 2.0 * double(k + 1) * std::numeric_limits<float>::epsilon() * abs_sum;
          EXPECT_NEAR(c[size_t(i * n + j)], s, tol) << ta << tb;
        }
    }
}

TEST(Linalg, CholeskyUpperReconstructs) {
  const int64_t n = 40;
  const std::vector<double> h = random_spd(n, 0.1, 4);
  std::vector<double> u = h;
  ASSERT_TRUE(cholesky_upper(u, n).ok());
  for (int64_t r = 1; r < n; ++r)
    for (int64_t c = 0; c < r; ++c) EXPECT_EQ(u[size_t(r * n + c)], 0.0);
  const std::vector<double> g = upper_gram(u, n);
  const double tol = 4.0 * double(n) * kEps * inf_norm(h, n);
  for (size_t i = 0; i < h.size(); ++i) EXPECT_NEAR(g[i], h[i], tol);
}

TEST(Linalg, CholeskyInverseUpperIsFactorOfInverse) {
  for (int64_t n : {1, 3, 64, 130}) {
    const std::vector<double> h = random_spd(n, 0.05, uint64_t(n));
    std::vector<double> u = h;
    // Only the upper triangle is read: garbage below must not matter.
    for (int64_t r = 1; r < n; ++r)
      for (int64_t c = 0; c < r; ++c) u[size_t(r * n + c)] = 1e30;
    ASSERT_TRUE(cholesky_inverse_upper(u, n).ok());
    for (int64_t r = 1; r < n; ++r)
      for (int64_t c = 0; c < r; ++c) ASSERT_EQ(u[size_t(r * n + c)], 0.0);
    const std::vector<double> inverse = upper_gram(u, n);
    // (Uᵀ U) H = I up to the backward error of the factorizations: a few n·eps·κ∞(H).
    const double kappa = inf_norm(h, n) * inf_norm(inverse, n);
    const double tol = 8.0 * double(n) * kEps * kappa;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t k = 0; k < n; ++k) s += inverse[size_t(i * n + k)] * h[size_t(k * n + j)];
        EXPECT_NEAR(s, i == j ? 1.0 : 0.0, tol) << "n=" << n << " (" << i << ", " << j << ")";
      }
  }
}

// GPTQ relies on this: a diagonal H gives an exactly diagonal factor (no error propagation), so
// GPTQ with H = I reduces to round-to-nearest bit for bit.
TEST(Linalg, DiagonalInputGivesExactDiagonalFactor) {
  const int64_t n = 9;
  std::vector<double> h(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) h[size_t(i * n + i)] = 4.0 * double(i + 1) * double(i + 1);
  ASSERT_TRUE(cholesky_inverse_upper(h, n).ok());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      if (i != j) {
        EXPECT_EQ(h[size_t(i * n + j)], 0.0);
      } else {
        EXPECT_NEAR(h[size_t(i * n + i)], 0.5 / double(i + 1), 2.0 * kEps / double(i + 1));
      }
    }
}

TEST(Linalg, NotPositiveDefiniteFails) {
  const int64_t n = 3;
  // Rank one: [1 1 1; 1 1 1; 1 1 1] fails at the second leading minor.
  std::vector<double> ones(size_t(n * n), 1.0);
  Status s = cholesky_inverse_upper(ones, n);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("leading minor 2"), std::string::npos) << s.message();
  std::vector<double> negative = {1, 0, 0, 0, -1, 0, 0, 0, 1};
  EXPECT_EQ(cholesky_upper(negative, n).code(), ErrorCode::kInvalidArgument);
  std::vector<double> empty;
  EXPECT_TRUE(cholesky_inverse_upper(empty, 0).ok());
}

// QᵀQ = I to a few ulps of n (Householder QR and the exact ±1 Hadamard both keep orthogonality
// to O(n·eps)), the same matrix for the same seed, another for another seed; powers of two get
// the signed Hadamard form (every entry ±1/sqrt(n)).
TEST(Linalg, RandomOrthogonalIsOrthogonalAndSeeded) {
  for (int64_t n : {1, 2, 3, 8, 12, 64, 172}) {
    SCOPED_TRACE(n);
    const std::vector<double> q = random_orthogonal(n, 5);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (int64_t k = 0; k < n; ++k) dot += q[size_t(k * n + i)] * q[size_t(k * n + j)];
        worst = std::max(worst, std::abs(dot - (i == j ? 1.0 : 0.0)));
      }
    EXPECT_LT(worst, 16 * double(n) * kEps);
    EXPECT_EQ(q, random_orthogonal(n, 5));
    if (n > 2) {
      EXPECT_NE(q, random_orthogonal(n, 6));
    }
    if ((n & (n - 1)) == 0) {
      for (double v : q) EXPECT_DOUBLE_EQ(std::abs(v), 1.0 / std::sqrt(double(n)));
    }
  }
}

}  // namespace
}  // namespace lowbit::linalg
