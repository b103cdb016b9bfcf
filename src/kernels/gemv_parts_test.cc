// gemv_parts (several decode products over one input, their rows split across threads as one
// range) against each product run alone through matmul_f32 / matmul_qd8 / BLAS sgemv.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/kernel_test_util.h"
#include "kernels/packed_matmul.h"

namespace lowbit::kernels {
namespace {

using testing::random_values;

TEST(GemvParts, MatchesEachProductAloneOnEveryIsa) {
  uint32_t seed = 900;
  const int saved_threads = omp_get_max_threads();
  for (Isa isa : supported_isas()) {
    const KernelTable& table = kernels_for(isa);
    // 4096 inputs: over the threading threshold; 172: one thread, ragged last block.
    for (int64_t cols : {4096, 172}) {
      // Weight-only int4 g128 (fp32 activations, and the token as two int8 slices), W8A8 panels
      // (70 rows: a partial 64-row unit), W3A8 with 17 rows, and a dense fp32 weight. The calls
      // run one after another with different shapes: gemv_parts keeps its buffers between calls.
      const QuantizedMatrix q4 = testing::random_matrix("int4g128", 40, cols, seed++);
      const QuantizedMatrix q8 = testing::random_matrix("int8_sym", 70, cols, seed++);
      const QuantizedMatrix q3 = testing::random_matrix("int3g32", 17, cols, seed++);
      const std::vector<float> dense = random_values(33 * cols, seed++, 0.02f);
      const auto p4 = pack_quantized(q4), p8 = pack_quantized(q8, /*q8_panels=*/true), p3 = pack_quantized(q3);
      const std::vector<float> x = random_values(cols, seed++);

      // Each alone (the reference for the grouped call).
      std::vector<float> y4(40), y8(70), y3(17), yd(33), y4_two_tokens(80);
      matmul_f32(*p4, x.data(), 1, y4.data(), table);
      // Two slices: two identical tokens take matmul_qd8_slices' prefill path, not gemv_parts.
      std::vector<float> xx(x);
      xx.insert(xx.end(), x.begin(), x.end());
      matmul_qd8_slices(*p4, xx.data(), 2, y4_two_tokens.data(), 2, table);
      const std::vector<float> y4s(y4_two_tokens.begin(), y4_two_tokens.begin() + 40);
      matmul_qd8(*p8, x.data(), 1, y8.data(), table);
      matmul_qd8(*p3, x.data(), 1, y3.data(), table);
      cblas_sgemv(CblasRowMajor, CblasNoTrans, 33, int(cols), 1.0f, dense.data(), int(cols), x.data(), 1, 0.0f,
                  yd.data(), 1);

      const double max_w = std::max({testing::max_abs(dequantize(q4)), testing::max_abs(dequantize(q8)),
                                     testing::max_abs(dequantize(q3)), testing::max_abs(dense)});
      // Only the summation order may differ (row ranges split differently); the kernels sum
      // code x activation and zero-point terms separately, each bounded by 2 max|w| |x|.
      const double tol = testing::dot_tolerance(cols, 4 * max_w, testing::max_abs(x));
      for (int threads : {1, 2, 3}) {
        omp_set_num_threads(threads);
        std::vector<float> g4(40, NAN), g8(70, NAN), g3(17, NAN), gd(33, NAN), g4s(40, NAN);
        std::vector<GemvPart> parts(5);
        parts[0] = {p4.get(), false, nullptr, 40, cols, g4.data()};
        parts[1] = {p8.get(), true, nullptr, 70, cols, g8.data()};
        parts[2] = {p3.get(), true, nullptr, 17, cols, g3.data()};
        parts[3] = {nullptr, false, dense.data(), 33, cols, gd.data()};
        parts[4] = {p4.get(), 2, nullptr, 40, cols, g4s.data()};
        gemv_parts(parts, x.data(), table);
        const auto expect_near = [&](const std::vector<float>& got, const std::vector<float>& want, const char* what) {
          for (size_t r = 0; r < want.size(); ++r)
            ASSERT_NEAR(got[r], want[r], tol) << table.name << " " << what << " row " << r << " cols " << cols
                                              << " threads " << threads;
        };
        expect_near(g4, y4, "int4g128 weight-only");
        expect_near(g8, y8, "int8 panels qd8");
        expect_near(g3, y3, "int3g32 qd8");
        expect_near(gd, yd, "dense fp32");
        expect_near(g4s, y4s, "int4g128 as two int8 slices");
      }
    }
  }
  omp_set_num_threads(saved_threads);
}

// Each thread of the region quantizes a range of the token's groups (gemv_parts): the products
// must not depend on how the token was split, bit for bit, whatever the thread count, with groups
// of different sizes in one call (ranges on multiples of both) and a ragged last group and block.
TEST(GemvParts, TokenQuantizedInRangesGivesTheSameBitsForAnyThreadCount) {
  uint32_t seed = 1900;
  const int saved_threads = omp_get_max_threads();
  for (Isa isa : supported_isas()) {
    const KernelTable& table = kernels_for(isa);
    for (int64_t cols : {4192, 2090}) {  // 33 groups of 128 (the last 96 wide); 66 blocks (the last 10)
      const QuantizedMatrix q2 = testing::random_matrix("int2g128", 130, cols, seed++);
      const QuantizedMatrix q4 = testing::random_matrix("int4g128", 40, cols, seed++);
      const QuantizedMatrix q3 = testing::random_matrix("int3g32", 17, cols, seed++);
      const auto p2 = pack_quantized(q2, true), p4 = pack_quantized(q4), p3 = pack_quantized(q3, true);
      std::vector<float> x = random_values(cols, seed++);
      for (size_t i = 0; i < x.size(); ++i) x[i] *= std::ldexp(1.0f, int(i % 5) * 4 - 8);  // blocks of unlike scales
      std::vector<std::vector<float>> first;
      for (int threads : {1, 2, 3, 4}) {
        omp_set_num_threads(threads);
        std::vector<std::vector<float>> y = {std::vector<float>(130, NAN), std::vector<float>(40, NAN),
                                             std::vector<float>(17, NAN)};
        const std::vector<GemvPart> parts = {{p2.get(), 2, nullptr, 130, cols, y[0].data()},
                                             {p4.get(), 1, nullptr, 40, cols, y[1].data()},
                                             {p3.get(), 2, nullptr, 17, cols, y[2].data()}};
        gemv_parts(parts, x.data(), table);
        if (threads == 1) {
          // The one-thread call against the prefill path, which quantizes each token whole.
          const std::vector<float> xx = [&] {
            std::vector<float> v(x);
            v.insert(v.end(), x.begin(), x.end());
            return v;
          }();
          std::vector<float> y2(260), y4(80), y3(34);
          matmul_qd8_slices(*p2, xx.data(), 2, y2.data(), 2, table);
          matmul_qd8(*p4, xx.data(), 2, y4.data(), table);
          matmul_qd8_slices(*p3, xx.data(), 2, y3.data(), 2, table);
          const double tol = testing::dot_tolerance(cols, 4 * testing::max_abs(dequantize(q2)), testing::max_abs(x));
          for (size_t r = 0; r < 130; ++r) ASSERT_NEAR(y[0][r], y2[r], tol) << table.name << " int2 row " << r;
          for (size_t r = 0; r < 40; ++r) ASSERT_NEAR(y[1][r], y4[r], tol) << table.name << " int4 row " << r;
          for (size_t r = 0; r < 17; ++r) ASSERT_NEAR(y[2][r], y3[r], tol) << table.name << " int3 row " << r;
          first = y;
          continue;
        }
        for (size_t i = 0; i < y.size(); ++i)
          for (size_t r = 0; r < y[i].size(); ++r)
            ASSERT_EQ(y[i][r], first[i][r]) << table.name << " part " << i << " row " << r << " cols " << cols
                                            << " threads " << threads;
      }
    }
  }
  omp_set_num_threads(saved_threads);
}

}  // namespace
}  // namespace lowbit::kernels
