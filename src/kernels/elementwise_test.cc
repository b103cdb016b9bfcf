// The exp-based element-wise kernels (SwiGLU's silu * up, softmax rows) of every ISA against the
// scalar reference (std::exp), over lengths around the vector widths and inputs out to where exp
// overflows and underflows.
#include <cmath>
#include <random>
#include <vector>

#include "kernels/kernel_test_util.h"

namespace lowbit::kernels {
namespace {

constexpr float kUlp = 0x1p-24f;
const std::vector<int64_t> kLengths = {1, 7, 8, 9, 15, 16, 17, 31, 100, 1000, 5632};

TEST(Elementwise, SiluMulMatchesReference) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> wide(-100.0f, 100.0f), unit(-2.0f, 2.0f);
  // Where exp(-g) overflows (g < -88.7), is huge, underflows (g > 103.3) or is exactly 1.
  const float specials[] = {0.0f, -88.5f, -88.8f, -89.5f, -104.5f, 88.5f, 104.5f, 1e-30f, -1e-30f, -0.5f};
  const KernelTable& ref = kernels_for(Isa::kRef);
  for (Isa isa : testing::fast_isas()) {
    const KernelTable& fast = kernels_for(isa);
    for (int64_t n : kLengths) {
      std::vector<float> g(static_cast<size_t>(n)), u(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        g[size_t(i)] = i % 3 == 0 ? wide(rng) : unit(rng);
        u[size_t(i)] = unit(rng);
      }
      for (size_t i = 0; i < std::size(specials) && i < size_t(n); ++i) g[size_t(i) * size_t(n) / std::size(specials)] = specials[i];
      std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n), NAN);
      ref.silu_mul_f32(g.data(), u.data(), n, want.data());
      fast.silu_mul_f32(g.data(), u.data(), n, got.data());
      for (int64_t i = 0; i < n; ++i) {
        // exp within a few ulp, then one add, one divide and one multiply, each rounded.
        const double tol = 8 * kUlp * std::fabs(want[size_t(i)]) + 1e-37;
        ASSERT_NEAR(got[size_t(i)], want[size_t(i)], tol) << fast.name << " n=" << n << " g=" << g[size_t(i)];
      }
      // In place (out = gate), as the forward pass calls it.
      std::vector<float> inplace = g;
      fast.silu_mul_f32(inplace.data(), u.data(), n, inplace.data());
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(inplace[size_t(i)], got[size_t(i)]) << fast.name << " n=" << n;
    }
  }
}

TEST(Elementwise, SoftmaxMatchesReference) {
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> score(-30.0f, 30.0f);
  const KernelTable& ref = kernels_for(Isa::kRef);
  for (Isa isa : testing::fast_isas()) {
    const KernelTable& fast = kernels_for(isa);
    for (int64_t n : kLengths) {
      for (float spread : {1.0f, 200.0f}) {  // 200: most entries underflow to 0 after the max
        std::vector<float> row(static_cast<size_t>(n));
        for (float& v : row) v = score(rng) * spread / 30.0f;
        std::vector<float> want = row, got = row;
        ref.softmax_f32(want.data(), n);
        fast.softmax_f32(got.data(), n);
        double total = 0;
        for (int64_t i = 0; i < n; ++i) {
          // Each exp within a few ulp; the sum's order differs (n terms); one divide.
          const double tol = (8 + double(n)) * kUlp * std::fabs(want[size_t(i)]) + 1e-44;
          ASSERT_NEAR(got[size_t(i)], want[size_t(i)], tol) << fast.name << " n=" << n << " i=" << i;
          total += got[size_t(i)];
        }
        EXPECT_NEAR(total, 1.0, (8 + double(n)) * kUlp) << fast.name << " n=" << n;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit::kernels
