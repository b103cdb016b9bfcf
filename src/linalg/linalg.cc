#include "linalg/linalg.h"

#include <cblas.h>
#include <lapacke.h>

#include <climits>

namespace lowbit::linalg {
namespace {

// LAPACK and CBLAS take 32-bit sizes; anything larger is a caller bug at the sizes lowbit uses.
int as_int(int64_t v) {
  LOWBIT_CHECK(v >= 0 && v <= INT_MAX);
  return int(v);
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

}  // namespace lowbit::linalg
