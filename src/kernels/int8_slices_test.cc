// Weight-only products on the int8 kernels with each token as two int8 slices
// (matmul_qd8_slices, packed_matmul.h), on every ISA the machine runs, against the exact product
// of the dequantized weights with the fp32 activations.
//
// Tolerance, derived per row: the two slices carry each input x_k to within max|x[block]| / 64516
// (packed_matmul.h), which moves the row's result by at most sum_k |w_k| max|x[block(k)]| / 64516;
// the kernels' fp32 steps (one conversion and one FMA per 32-input block, one per group, the zero
// point term, the sum of the slices) each round by 2^-24 of a partial sum bounded by
// mag = sum_k scale (code_k + zero) |x_k|. A run that dropped the second slice errs by up to
// 254x the first term: the test also asserts the error stays below a twentieth of what one slice
// (plain int8 activations) allows.
#include <algorithm>
#include <cmath>

#include "kernels/kernel_test_util.h"
#include "kernels/packed_matmul.h"

namespace lowbit::kernels {
namespace {

using testing::random_values;

TEST(MatmulQd8Slices, TwoSlicesMatchExactActivationsOnEveryIsa) {
  uint32_t seed = 900;
  for (Isa isa : supported_isas()) {
    for (const char* spec : {"int4g128", "int4g32_sym", "int4", "int3g128", "int3", "int2g64_sym", "int2g128",
                             "int8_sym"}) {
      for (const testing::Shape s : {testing::Shape{70, 2048}, testing::Shape{19, 172}, testing::Shape{1, 32}}) {
        const QuantizedMatrix m = testing::random_matrix(spec, s.rows, s.cols, seed++);
        for (bool panels : {false, true}) {
          auto p = pack_quantized(m, panels);
          ASSERT_TRUE(p != nullptr && supports_qd8(*p)) << spec;
          const std::vector<float> w = dequantize(m);
          for (int64_t n : {1, 2, 9}) {  // 9 tokens: 18 slice tokens, the AMX prefill kernels where present
            // Inputs over several orders of magnitude, so that blocks have very different scales.
            std::vector<float> x = random_values(n * s.cols, seed++);
            for (size_t i = 0; i < x.size(); ++i) x[i] *= std::ldexp(1.0f, int(i % 7) * 3 - 9);
            std::vector<float> y(size_t(n * s.rows));
            matmul_qd8_slices(*p, x.data(), n, y.data(), 2, kernels_for(isa));
            double worst_share = 0;  // error / what one int8 slice may cost, worst row
            for (int64_t t = 0; t < n; ++t) {
              const float* xt = x.data() + t * s.cols;
              std::vector<double> block_max(size_t((s.cols + 31) / 32), 0.0);
              for (int64_t k = 0; k < s.cols; ++k)
                block_max[size_t(k / 32)] = std::max(block_max[size_t(k / 32)], std::fabs(double(xt[k])));
              for (int64_t r = 0; r < s.rows; ++r) {
                double exact = 0, slices = 0, one_slice = 0, mag = 0;
                for (int64_t k = 0; k < s.cols; ++k) {
                  const double wk = w[size_t(r * s.cols + k)];
                  const GroupParams& g = m.params[size_t(m.layout().param_index(r, k))];
                  exact += wk * xt[k];
                  slices += std::fabs(wk) * block_max[size_t(k / 32)] / 64516;
                  one_slice += std::fabs(wk) * block_max[size_t(k / 32)] / 254;
                  mag += std::fabs(g.scale) * (m.codes[size_t(r * s.cols + k)] + std::fabs(g.zero)) * std::fabs(xt[k]);
                }
                const int64_t steps = (s.cols + 31) / 32 + m.layout().groups_per_row + 4;
                const double tol = 1.02 * (slices + double(steps) * 0x1p-23 * mag);
                const double err = std::fabs(y[size_t(t * s.rows + r)] - exact);
                ASSERT_LE(err, tol) << kernels_for(isa).name << " " << spec << (panels ? " panels" : "") << " n=" << n
                                    << " t=" << t << " r=" << r;
                if (one_slice > 0) worst_share = std::max(worst_share, err / one_slice);
              }
            }
            EXPECT_LT(worst_share, 0.05) << kernels_for(isa).name << " " << spec << (panels ? " panels" : "")
                                         << ": the second slice was not applied";
          }
        }
      }
    }
  }
}

// One slice is matmul_qd8 itself (dynamic int8 activations): the same values bit for bit.
TEST(MatmulQd8Slices, OneSliceIsMatmulQd8) {
  for (Isa isa : supported_isas()) {
    const QuantizedMatrix m = testing::random_matrix("int4g64", 40, 320, 31);
    auto p = pack_quantized(m, true);
    for (int64_t n : {1, 3}) {
      const std::vector<float> x = random_values(n * 320, 32);
      std::vector<float> a(size_t(n * 40)), b(a.size());
      matmul_qd8(*p, x.data(), n, a.data(), kernels_for(isa));
      matmul_qd8_slices(*p, x.data(), n, b.data(), 1, kernels_for(isa));
      EXPECT_EQ(a, b) << kernels_for(isa).name << " n=" << n;
    }
  }
}

}  // namespace
}  // namespace lowbit::kernels
