// Dynamic int8 activations (W8A8, W4A8): the quantizer and the int8 x int8 -> int32 group dot
// products of every ISA against the scalar reference.
//
// Exactness: with power-of-two scales and magnitudes kept below 2^23 units of the smallest scale,
// every fp32 operation after the integer dot products is exact, so any ISA's output must equal
// the reference's bit for bit: an int32 accumulator that is off by one shows up as a mismatch.
// Each test states and checks that precondition. Realistic data is then compared with a
// tolerance derived from the magnitudes.
#include <algorithm>
#include <cmath>

#include "kernels/kernel_test_util.h"
#include "kernels/packed_matmul.h"

namespace lowbit::kernels {
namespace {

using testing::random_values;

struct Activations {
  int64_t tokens = 0, k_padded = 0, groups = 0;
  std::vector<int8_t> values;
  std::vector<float> scales;
  std::vector<int32_t> sums;
  QuantizedActivationsView view() const {
    return {tokens, k_padded, groups, values.data(), scales.data(), sums.data()};
  }
};

// Integer activations uniform in [-limit, limit] with power-of-two scales; sums per group.
Activations random_activations(int64_t tokens, int64_t cols, const PackedWeight& w, int limit, std::mt19937& rng) {
  Activations a;
  a.tokens = tokens;
  a.k_padded = w.k_padded;
  a.groups = w.groups_per_row;
  a.values.assign(size_t(tokens * w.k_padded), 0);
  a.sums.assign(size_t(tokens * w.groups_per_row), 0);
  std::uniform_int_distribution<int> value(-limit, limit), exponent(-8, -2);
  for (int64_t t = 0; t < tokens; ++t) {
    a.scales.push_back(std::ldexp(1.0f, exponent(rng)));
    for (int64_t k = 0; k < cols; ++k) {
      const int8_t q = int8_t(value(rng));
      a.values[size_t(t * w.k_padded + k)] = q;
      a.sums[size_t(t * w.groups_per_row + k / w.group_size)] += q;
    }
  }
  return a;
}

// Integer-grid matrix with random codes and zero points and scales in {2^-4, 2^-5, 2^-6}.
QuantizedMatrix exact_matrix(const std::string& spec, int64_t rows, int64_t cols, std::mt19937& rng) {
  QuantizedMatrix m{testing::spec_of(spec), rows, cols, std::vector<uint8_t>(size_t(rows * cols)), {}};
  const int max_code = m.spec.max_code();
  std::uniform_int_distribution<int> code(0, max_code), exponent(-6, -4);
  for (uint8_t& c : m.codes) c = uint8_t(code(rng));
  m.params.resize(size_t(m.layout().param_count()));
  for (GroupParams& p : m.params) p = {std::ldexp(1.0f, exponent(rng)), m.spec.symmetric ? float((max_code + 1) / 2) : float(code(rng))};
  return m;
}

// Largest sum over a row of max_code * |q| (the raw accumulator bound) in units of the smallest
// scale: the exactness precondition is that it stays below 2^23.
double exactness_bound(const QuantizedMatrix& m, const Activations& a) {
  double worst = 0;
  for (int64_t t = 0; t < a.tokens; ++t) {
    double s = 0;
    for (int64_t k = 0; k < a.k_padded; ++k) s += double(m.spec.max_code()) * std::abs(a.values[size_t(t * a.k_padded + k)]);
    worst = std::max(worst, 2 * 4 * s);  // code and zero terms, scale ratio up to 4
  }
  return worst;
}

void expect_exact(const std::string& spec, int64_t rows, int64_t cols, int64_t tokens, int limit, std::mt19937& rng) {
  const QuantizedMatrix m = exact_matrix(spec, rows, cols, rng);
  auto p = pack_quantized(m);
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(supports_qd8(*p));
  const Activations a = random_activations(tokens, cols, *p, limit, rng);
  ASSERT_LT(exactness_bound(m, a), 0x1p23) << "test parameters break the exactness precondition";
  std::vector<float> ref(size_t(tokens * rows));
  gemm_qd8_for(kernels_for(Isa::kRef), p->kind)(p->view(), 0, rows, a.view(), ref.data(), rows);
  for (Isa isa : testing::fast_isas()) {
    std::vector<float> fast(ref.size(), -1.0f);
    const int64_t r0 = rows / 2;
    gemm_qd8_for(kernels_for(isa), p->kind)(p->view(), r0, rows, a.view(), fast.data(), rows);
    gemm_qd8_for(kernels_for(isa), p->kind)(p->view(), 0, r0, a.view(), fast.data(), rows);
    for (size_t i = 0; i < ref.size(); ++i)
      ASSERT_EQ(fast[i], ref[i]) << kernels_for(isa).name << " " << spec << " " << rows << "x" << cols << " tokens "
                                 << tokens << " at " << i;
  }
}

TEST(GemmQd8, IntegerDotProductsExactEdgeShapes) {
  std::mt19937 rng(1);
  for (const char* spec : {"int8", "int8_sym", "int8g32", "int8g64_sym", "int4", "int4g32", "int4g64", "int4g128_sym"})
    for (int64_t cols : {1, 7, 31, 32, 33, 64, 96, 172, 200})
      for (int64_t rows : {1, 2, 3, 5})
        for (int64_t tokens : {1, 2, 3, 4, 5, 9})
          // Full-range activations for 4-bit codes; 8-bit codes at full range are covered by
          // SaturationExtremesExact, here |q| <= 16 keeps K = 200 within the precondition.
          expect_exact(spec, rows, cols, tokens, spec[3] == '4' ? 127 : 16, rng);
}

TEST(GemmQd8, IntegerDotProductsExactLlmWidths) {
  std::mt19937 rng(2);
  // Small activations keep the exactness precondition at K = 4096 and 11008.
  for (int64_t cols : {4096, 11008}) {
    expect_exact("int4g128", 6, cols, 5, 3, rng);
    expect_exact("int4", 3, cols, 2, 3, rng);
  }
  expect_exact("int8", 3, 4096, 2, 1, rng);
}

TEST(GemmQd8, SaturationExtremesExact) {
  // Codes 0 and 255 against activations -127 and 127: the AVX2 path's int16 pairs at their
  // largest (2 * 128 * 127), the VNNI path's raw sums at theirs.
  for (uint8_t code : {uint8_t(0), uint8_t(255)}) {
    for (int8_t q : {int8_t(-127), int8_t(127)}) {
      QuantizedMatrix m{testing::spec_of("int8"), 2, 64, std::vector<uint8_t>(128, code), {{0.25f, 128.0f}, {0.25f, 0.0f}}};
      auto p = pack_quantized(m);
      Activations a;
      a.tokens = 1, a.k_padded = 64, a.groups = 1;
      a.values.assign(64, q);
      a.scales = {1.0f};
      a.sums = {64 * q};
      std::vector<float> ref(2), fast(2);
      gemm_qd8_for(kernels_for(Isa::kRef), p->kind)(p->view(), 0, 2, a.view(), ref.data(), 2);
      EXPECT_EQ(ref[0], 0.25f * 64 * (code - 128) * q);
      for (Isa isa : testing::fast_isas()) {
        gemm_qd8_for(kernels_for(isa), p->kind)(p->view(), 0, 2, a.view(), fast.data(), 2);
        EXPECT_EQ(fast, ref) << isa_name(isa) << " code " << int(code) << " q " << int(q);
      }
    }
  }
}

TEST(QuantizeQd8, EveryIsaMatchesReferenceExactly) {
  uint32_t seed = 40;
  for (Isa isa : testing::fast_isas()) {
    for (int64_t k : {1, 5, 8, 31, 32, 33, 63, 100, 172, 4099}) {
      for (int64_t group : {32, 64, 128}) {
        const int64_t k_padded = (k + 31) / 32 * 32, groups = (k_padded + group - 1) / group;
        for (float magnitude : {0.0f, 1e-3f, 1.0f, 300.0f}) {
          std::vector<float> x = random_values(k, seed++, magnitude);
          if (k > 3) x[size_t(k / 2)] = 0.5f * x[size_t(k / 3)];  // a value at a tie-prone ratio
          std::vector<int8_t> q_ref(size_t(k_padded), 99), q_fast(size_t(k_padded), 77);
          std::vector<int32_t> s_ref(static_cast<size_t>(groups)), s_fast(static_cast<size_t>(groups));
          float scale_ref, scale_fast;
          kernels_for(Isa::kRef).quantize_f32_qd8(x.data(), k, k_padded, group, q_ref.data(), &scale_ref, s_ref.data());
          kernels_for(isa).quantize_f32_qd8(x.data(), k, k_padded, group, q_fast.data(), &scale_fast, s_fast.data());
          ASSERT_EQ(scale_fast, scale_ref);
          ASSERT_EQ(q_fast, q_ref) << isa_name(isa) << " k " << k << " magnitude " << magnitude;
          ASSERT_EQ(s_fast, s_ref);
          for (int64_t i = k; i < k_padded; ++i) ASSERT_EQ(q_ref[size_t(i)], 0);
          if (magnitude > 0) {
            const float amax = testing::max_abs(x);
            EXPECT_EQ(scale_ref, amax / 127.0f);
            for (int64_t i = 0; i < k; ++i) EXPECT_LE(std::abs(x[size_t(i)] / scale_ref - q_ref[size_t(i)]), 0.5f + 1e-3f);
          }
        }
      }
    }
  }
}

TEST(MatmulQd8, RealisticDataWithinDerivedTolerance) {
  uint32_t seed = 500;
  for (Isa isa : supported_isas()) {
    for (const char* spec : {"int8_sym", "int8", "int4g128", "int4g32_sym", "int4"}) {
      for (const testing::Shape s : {testing::Shape{48, 4096}, testing::Shape{19, 172}}) {
        const QuantizedMatrix m = testing::random_matrix(spec, s.rows, s.cols, seed++);
        auto p = pack_quantized(m);
        const std::vector<float> w = dequantize(m);
        for (int64_t n : {1, 6}) {
          const std::vector<float> x = random_values(n * s.cols, seed++);
          std::vector<float> y(size_t(n * s.rows));
          matmul_qd8(*p, x.data(), n, y.data(), kernels_for(isa));
          for (int64_t t = 0; t < n; ++t) {
            const float* xt = x.data() + t * s.cols;
            const float amax = *std::max_element(xt, xt + s.cols, [](float a, float b) { return std::fabs(a) < std::fabs(b); });
            const double act_step = std::fabs(amax) / 127.0;
            for (int64_t r = 0; r < s.rows; ++r) {
              double exact = 0, abs_w = 0, abs_wx = 0;
              for (int64_t k = 0; k < s.cols; ++k) {
                const double wk = w[size_t(r * s.cols + k)];
                exact += wk * xt[k];
                abs_w += std::fabs(wk);
                abs_wx += std::fabs(wk * xt[k]);
              }
              // Activation rounding moves each input by at most half a step; then fp32 rounding.
              const double tol = 0.5 * act_step * abs_w + abs_wx * s.cols * 0x1p-22;
              ASSERT_NEAR(y[size_t(t * s.rows + r)], exact, tol) << kernels_for(isa).name << " " << spec;
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace lowbit::kernels
