#include "linalg/linalg.h"

#include <cblas.h>
#include <lapacke.h>

#include <bit>
#include <climits>
#include <cmath>

namespace lowbit::linalg {
namespace {

// LAPACK and CBLAS take 32-bit sizes; anything larger is a caller bug at the sizes lowbit uses.
int as_int(int64_t v) {
  LOWBIT_CHECK(v >= 0 && v <= INT_MAX);
  return int(v);
}

// splitmix64: a platform-independent stream (std::normal_distribution differs between libraries).
uint64_t next_random(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double next_uniform_open(uint64_t& state) {  // in (0, 1)
  return (double(next_random(state) >> 11) + 0.5) * 0x1.0p-53;
}

void zero_strict_lower(std::span<double> a, int64_t n) {
  for (int64_t r = 1; r < n; ++r)
    for (int64_t c = 0; c < r; ++c) a[size_t(r * n + c)] = 0.0;
}

}  // namespace

void syrk_upper_accumulate(std::span<const double> x, int64_t n, int64_t d, double alpha, std::span<double> c) {
  LOWBIT_CHECK(x.size() >= size_t(n * d) && c.size() == size_t(d * d));
  if (n == 0 || d == 0) return;
  // Row-major C = alpha * Aᵀ A + C with A = x [n, d]: N = d, K = n, lda = d.
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, as_int(d), as_int(n), alpha, x.data(), as_int(d), 1.0,
              c.data(), as_int(d));
}

void symmetrize_from_upper(std::span<double> a, int64_t n) {
  LOWBIT_CHECK(a.size() == size_t(n * n));
  for (int64_t r = 1; r < n; ++r)
    for (int64_t c = 0; c < r; ++c) a[size_t(r * n + c)] = a[size_t(c * n + r)];
}

void gemm_f32(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
              int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
              as_int(m), as_int(n), as_int(k), alpha, a, as_int(lda), b, as_int(ldb), beta, c, as_int(ldc));
}

void gemm_f64(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
              int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_dgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
              as_int(m), as_int(n), as_int(k), alpha, a, as_int(lda), b, as_int(ldb), beta, c, as_int(ldc));
}

Status solve_positive_definite(std::span<double> a, int64_t n, std::span<double> b, int64_t nrhs) {
  LOWBIT_CHECK(a.size() == size_t(n * n) && b.size() == size_t(n * nrhs));
  if (n == 0 || nrhs == 0) return Status::Ok();
  const lapack_int info =
      LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', as_int(n), as_int(nrhs), a.data(), as_int(n), b.data(), as_int(nrhs));
  LOWBIT_CHECK(info >= 0);
  if (info > 0) {
    return error(ErrorCode::kInvalidArgument, "matrix is not positive definite (leading minor {} of {})", info, n);
  }
  return Status::Ok();
}

Status cholesky_upper(std::span<double> a, int64_t n) {
  LOWBIT_CHECK(a.size() == size_t(n * n));
  if (n == 0) return Status::Ok();
  const lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', as_int(n), a.data(), as_int(n));
  LOWBIT_CHECK(info >= 0);  // a negative info is an argument error: a bug here
  if (info > 0) {
    return error(ErrorCode::kInvalidArgument, "matrix is not positive definite (leading minor {} of {})", info, n);
  }
  zero_strict_lower(a, n);
  return Status::Ok();
}

Status cholesky_inverse_upper(std::span<double> a, int64_t n) {
  LOWBIT_CHECK(a.size() == size_t(n * n));
  if (n == 0) return Status::Ok();
  // H = Uᵀ U, then potri forms H⁻¹ from U (upper triangle), mirrored to a full matrix, then the
  // upper factor of H⁻¹.
  lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', as_int(n), a.data(), as_int(n));
  LOWBIT_CHECK(info >= 0);
  if (info > 0) {
    return error(ErrorCode::kInvalidArgument, "matrix is not positive definite (leading minor {} of {})", info, n);
  }
  info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'U', as_int(n), a.data(), as_int(n));
  LOWBIT_CHECK(info >= 0);
  if (info > 0) return error(ErrorCode::kInvalidArgument, "matrix is singular (pivot {} of {})", info, n);
  symmetrize_from_upper(a, n);
  Status status = cholesky_upper(a, n);
  if (!status.ok()) return status.with_context("inverse is numerically not positive definite");
  return Status::Ok();
}

std::vector<double> random_orthogonal(int64_t n, uint64_t seed) {
  LOWBIT_CHECK(n > 0);
  const size_t nn = size_t(n) * size_t(n);
  std::vector<double> q(nn);
  uint64_t state = seed;
  if (std::has_single_bit(uint64_t(n))) {
    const double scale = 1.0 / std::sqrt(double(n));
    std::vector<double> sign(static_cast<size_t>(n));
    for (auto& s : sign) s = (next_random(state) >> 63) ? -scale : scale;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        q[size_t(i * n + j)] = (std::popcount(uint64_t(i & j)) & 1) ? -sign[size_t(j)] : sign[size_t(j)];
    return q;
  }
  for (size_t i = 0; i < nn; i += 2) {  // Box-Muller pairs
    const double r = std::sqrt(-2.0 * std::log(next_uniform_open(state)));
    const double t = 2.0 * M_PI * next_uniform_open(state);
    q[i] = r * std::cos(t);
    if (i + 1 < nn) q[i + 1] = r * std::sin(t);
  }
  std::vector<double> tau(static_cast<size_t>(n));
  lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, as_int(n), as_int(n), q.data(), as_int(n), tau.data());
  LOWBIT_CHECK(info == 0);
  std::vector<double> r_sign(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) r_sign[size_t(j)] = q[size_t(j * n + j)] < 0 ? -1.0 : 1.0;
  info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, as_int(n), as_int(n), as_int(n), q.data(), as_int(n), tau.data());
  LOWBIT_CHECK(info == 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) q[size_t(i * n + j)] *= r_sign[size_t(j)];
  return q;
}

}  // namespace lowbit::linalg
