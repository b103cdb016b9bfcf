// Weight-only kernels (fp32 activations): every ISA's gemv against the scalar reference, and the
// threaded driver (decode gemv, prefill dequantize + BLAS) against a double-precision product of
// formats/ dequantize(), over every format and edge shape. Tolerances come from the magnitudes
// and K (kernel_test_util.h), never a fixed epsilon.
#include "kernels/packed_matmul.h"

#include "kernels/kernel_test_util.h"

namespace lowbit::kernels {
namespace {

using testing::dot_tolerance;
using testing::edge_shapes;
using testing::max_abs;
using testing::packable_specs;
using testing::random_matrix;
using testing::random_values;

// x padded to k_padded with zeros, as the driver passes it.
std::vector<float> padded(const std::vector<float>& x, int64_t k_padded) {
  std::vector<float> out(x);
  out.resize(size_t(k_padded), 0.0f);
  return out;
}

// Bound on |s c x| and |s z x| over the weight's groups: the int8 gemv folds the zero point out
// (s (sum c x - z sum x)), so its rounding scales with those terms rather than with |s (c - z)|.
double folded_weight_bound(const QuantizedMatrix& m) {
  double bound = 0;
  for (const GroupParams& p : m.params)
    bound = std::max(bound, std::fabs(p.scale) * std::max(double(m.spec.max_code()), std::fabs(double(p.zero))));
  return bound;
}

// The gemv of `isa` on a random `spec` matrix of shape s, called on two row ranges split at
// rows / split, against the scalar reference within the derived dot-product tolerance.
// lut: int2 / int3 in the lane panels of the table-lookup gemv (kQ2L / kQ3L).
void expect_gemv_matches_reference(Isa isa, const std::string& spec, const testing::Shape& s, int64_t split,
                                   uint32_t& seed, bool lut = false) {
  const QuantizedMatrix m = random_matrix(spec, s.rows, s.cols, seed++);
  auto p = pack_quantized(m, false, lut);
  ASSERT_NE(p, nullptr);
  const std::vector<float> x = padded(random_values(s.cols, seed++), p->k_padded);
  std::vector<float> ref(size_t(s.rows)), fast(size_t(s.rows), -1.0f);
  gemv_for(kernels_for(Isa::kRef), p->kind)(p->view(), 0, s.rows, x.data(), ref.data());
  // The upper range first: the rows before it (possibly in the same 16-row panel) stay untouched.
  const int64_t r0 = s.rows / split;
  gemv_for(kernels_for(isa), p->kind)(p->view(), r0, s.rows, x.data(), fast.data());
  for (int64_t r = 0; r < r0; ++r) ASSERT_EQ(fast[size_t(r)], -1.0f) << isa_name(isa) << " " << spec << " row " << r;
  gemv_for(kernels_for(isa), p->kind)(p->view(), 0, r0, x.data(), fast.data());
  const double w_bound = std::max(double(max_abs(dequantize(m))), folded_weight_bound(m));
  const double tol = dot_tolerance(s.cols, max_abs(x), w_bound);
  for (int64_t r = 0; r < s.rows; ++r)
    ASSERT_NEAR(fast[size_t(r)], ref[size_t(r)], tol)
        << isa_name(isa) << " " << spec << " " << s.rows << "x" << s.cols << " row " << r;
}

TEST(GemvF32, EveryIsaMatchesReference) {
  uint32_t seed = 7;
  for (Isa isa : testing::fast_isas())
    for (const std::string& spec : packable_specs())
      for (const testing::Shape& s : edge_shapes()) expect_gemv_matches_reference(isa, spec, s, 3, seed);
}

// Rows long enough for the decode fast paths: whole 128-weight chunks in groups of 128 or more,
// more than one panel of permuted activations (8192 inputs), ragged tails and a row count that
// is not a multiple of the 4 rows done at once.
TEST(GemvF32, LongRowsEveryIsaMatchesReference) {
  uint32_t seed = 300;
  const std::vector<testing::Shape> shapes = {{6, 128}, {5, 4096}, {3, 8192 + 640 + 40}, {9, 2048 + 96}, {1, 300}};
  for (Isa isa : testing::fast_isas())
    for (const char* spec : {"int8", "int8g128", "int8g256_sym", "int4", "int4g128", "int4g256_sym", "int3g128",
                             "int3", "int2g128", "int2g256_sym", "int2", "int4g64", "nf4g128"})
      for (const testing::Shape& s : shapes) expect_gemv_matches_reference(isa, spec, s, 2, seed);
}

// The table-lookup gemv on lane panels: every int2 / int3 granularity, edge shapes (row ranges
// split inside a 16-row panel), rows longer than one slice of tables (2048 inputs) and more than
// 4 panels per call.
TEST(GemvF32, LutPanelsEveryIsaMatchesReference) {
  uint32_t seed = 500;
  std::vector<testing::Shape> shapes = edge_shapes();
  for (const testing::Shape& s :
       {testing::Shape{70, 2048 + 96}, testing::Shape{150, 4096 + 40}, testing::Shape{9, 300}})
    shapes.push_back(s);
  for (Isa isa : testing::fast_isas())
    for (const char* spec : {"int2", "int2_sym", "int2g32", "int2g64_sym", "int2g128", "int2_tensor", "int3",
                             "int3_sym", "int3g32", "int3g128", "int3g64_sym", "int2_midrise", "int3g32_midrise"})
      for (const testing::Shape& s : shapes)
        for (int64_t split : {2, 3}) expect_gemv_matches_reference(isa, spec, s, split, seed, /*lut=*/true);
}

TEST(GemvF32, HalfPrecisionWeights) {
  uint32_t seed = 70;
  for (Isa isa : testing::fast_isas()) {
    for (PackedKind kind : {PackedKind::kF16, PackedKind::kBF16}) {
      for (const testing::Shape& s : edge_shapes()) {
        const std::vector<float> w = random_values(s.rows * s.cols, seed++);
        auto p = pack_dense(w.data(), s.rows, s.cols, kind);
        const std::vector<float> x = padded(random_values(s.cols, seed++), p->k_padded);
        std::vector<float> ref(size_t(s.rows)), fast(size_t(s.rows));
        gemv_for(kernels_for(Isa::kRef), kind)(p->view(), 0, s.rows, x.data(), ref.data());
        gemv_for(kernels_for(isa), kind)(p->view(), 0, s.rows, x.data(), fast.data());
        const double tol = dot_tolerance(s.cols, max_abs(x), max_abs(w) * 1.01);
        for (int64_t r = 0; r < s.rows; ++r)
          ASSERT_NEAR(fast[size_t(r)], ref[size_t(r)], tol) << isa_name(isa) << " " << packed_kind_name(kind);
      }
    }
  }
}

// y [n, rows] = x [n, cols] Wᵀ in double from formats/ dequantize().
std::vector<double> reference_product(const std::vector<float>& w, int64_t rows, int64_t cols,
                                      const std::vector<float>& x, int64_t n) {
  std::vector<double> y(size_t(n * rows));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double acc = 0;
      for (int64_t k = 0; k < cols; ++k) acc += double(w[size_t(r * cols + k)]) * x[size_t(t * cols + k)];
      y[size_t(t * rows + r)] = acc;
    }
  return y;
}

TEST(MatmulF32, DecodeAndPrefillMatchDoubleReference) {
  uint32_t seed = 900;
  for (Isa isa : supported_isas()) {
    for (const char* spec : {"int8", "int4g32", "int4g128_sym", "int3g64", "int2g32", "nf4", "fp8_e4m3"}) {
      for (const testing::Shape s : {testing::Shape{37, 172}, testing::Shape{70, 256}, testing::Shape{5, 33}}) {
        const QuantizedMatrix m = random_matrix(spec, s.rows, s.cols, seed++);
        for (bool lut : {false, true}) {
        auto p = pack_quantized(m, false, lut);
        const std::vector<float> w = dequantize(m);
        for (int64_t n : {1, 2, 9}) {
          const std::vector<float> x = random_values(n * s.cols, seed++);
          std::vector<float> y(size_t(n * s.rows), -1.0f);
          matmul_f32(*p, x.data(), n, y.data(), kernels_for(isa));
          const std::vector<double> expected = reference_product(w, s.rows, s.cols, x, n);
          const double tol = dot_tolerance(s.cols, max_abs(x), std::max(double(max_abs(w)), folded_weight_bound(m)));
          for (size_t i = 0; i < y.size(); ++i)
            ASSERT_NEAR(y[i], expected[i], tol)
                << isa_name(isa) << " " << spec << " lut=" << lut << " n=" << n << " at " << i;
        }
        }
      }
    }
  }
}

TEST(MatmulF32, LlmShapeRowsSplitAcrossThreads) {
  // One 4096-wide layer at decode, big enough for the threaded path.
  const QuantizedMatrix m = random_matrix("int4g128", 256, 4096, 31);
  auto p = pack_quantized(m);
  const std::vector<float> w = dequantize(m), x = random_values(4096, 32);
  const std::vector<double> expected = reference_product(w, 256, 4096, x, 1);
  for (Isa isa : supported_isas()) {
    std::vector<float> y(256);
    matmul_f32(*p, x.data(), 1, y.data(), kernels_for(isa));
    const double tol = dot_tolerance(4096, max_abs(x), max_abs(w));
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], expected[i], tol) << isa_name(isa);
  }
}

}  // namespace
}  // namespace lowbit::kernels
