// Thin wrappers over BLAS and LAPACK for the dense linear algebra GPTQ needs: Hessian
// accumulation (syrk), products (gemm), and Cholesky factorizations (potrf/potri).
//
// Every matrix is row-major and dense with leading dimension = its column count unless a
// leading dimension is passed. Sizes are int64_t here and checked against LAPACK's 32-bit
// integers inside. Failures that come from the data (a matrix that is not positive definite)
// return a Status; shape mistakes are bugs and fail a LOWBIT_CHECK.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"

namespace lowbit::linalg {

// c [d, d] upper triangle += alpha * xᵀ x, for x [n, d]. The strict lower triangle of c is not
// touched. In double: callers that accumulate many fp32 rows convert them first so the sum of
// tens of thousands of outer products keeps full precision.
void syrk_upper_accumulate(std::span<const double> x, int64_t n, int64_t d, double alpha, std::span<double> c);

// Copies the upper triangle of a [n, n] matrix onto its lower triangle (a full symmetric matrix).
void symmetrize_from_upper(std::span<double> a, int64_t n);

// C [m, n] = alpha * op(A) * op(B) + beta * C in fp32, op(A) [m, k], op(B) [k, n]; lda/ldb/ldc are
// the row strides of A, B, C as stored.
void gemm_f32(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
              int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// The same in fp64.
void gemm_f64(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
              int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

// Solves a x = b for a symmetric positive definite a [n, n] (only the upper triangle is read; a is
// overwritten with its Cholesky factor) and b [n, nrhs], which is replaced by x. Fails with
// kInvalidArgument when a is not positive definite.
Status solve_positive_definite(std::span<double> a, int64_t n, std::span<double> b, int64_t nrhs);

// In-place Cholesky a = Uᵀ U of a symmetric positive definite [n, n] matrix. Reads only the upper
// triangle; leaves U in the upper triangle and zeros in the strict lower one. Fails with
// kInvalidArgument, naming the first non-positive leading minor, when a is not positive definite.
Status cholesky_upper(std::span<double> a, int64_t n);

// For a symmetric positive definite H [n, n] (only the upper triangle is read), replaces it with
// the upper Cholesky factor U of its inverse: H⁻¹ = Uᵀ U, zeros below the diagonal. This is the
// matrix GPTQ walks column by column (torch: cholesky(cholesky_inverse(cholesky(H)), upper=True)).
// Fails with kInvalidArgument when H, or numerically its inverse, is not positive definite.
Status cholesky_inverse_upper(std::span<double> a, int64_t n);

// A random orthogonal [n, n] matrix (row-major, fp64), the same for the same (n, seed) on every
// platform. For n a power of two: the Walsh-Hadamard matrix with randomly signed columns, scaled by
// 1/sqrt(n) (QuaRot's choice: every entry is ±1/sqrt(n), so every output coordinate mixes every
// input coordinate equally). Otherwise: the Q factor of the QR decomposition of a Gaussian matrix
// with Q's column signs matched to R's diagonal, which makes Q uniformly (Haar) distributed.
std::vector<double> random_orthogonal(int64_t n, uint64_t seed);

}  // namespace lowbit::linalg
