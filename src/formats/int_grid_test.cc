#include "formats/int_grid.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "base/half.h"

namespace lowbit {
namespace {

constexpr float kEps = std::numeric_limits<float>::epsilon();

TEST(IntGrid, AsymmetricHandExample) {
  // [-1, 2] at 4 bits: scale = 3/15 = 0.2 -> fp16 0.199951171875; zero = round(1/0.19995) = 5.
  GroupParams p = fit_int_grid(-1.0f, 2.0f, 4, ZeroPoint::kFitted);
  EXPECT_EQ(p.scale, 0.199951171875f);
  EXPECT_EQ(p.zero, 5.0f);
  EXPECT_EQ(quantize_int_grid(2.0f, p, 15), 15);   // round(10.0024) + 5
  EXPECT_EQ(quantize_int_grid(-1.0f, p, 15), 0);   // round(-5.0012) + 5
  EXPECT_EQ(quantize_int_grid(0.0f, p, 15), 5);
  EXPECT_EQ(quantize_int_grid(9.0f, p, 15), 15);   // clamped
  EXPECT_EQ(quantize_int_grid(-9.0f, p, 15), 0);
  EXPECT_EQ(dequantize_int_grid(15, p), 0.199951171875f * 10.0f);
  EXPECT_EQ(dequantize_int_grid(5, p), 0.0f);
}

TEST(IntGrid, RangeAlwaysContainsZero) {
  // All-positive group [0.5, 3]: xmin becomes 0, so zero = 0 and scale = 3/15.
  GroupParams p = fit_int_grid(0.5f, 3.0f, 4, ZeroPoint::kFitted);
  EXPECT_EQ(p.zero, 0.0f);
  EXPECT_EQ(p.scale, round_to_fp16(0.2f));
  // All-negative group [-3, -0.5]: xmax becomes 0, zero = maxq.
  GroupParams n = fit_int_grid(-3.0f, -0.5f, 4, ZeroPoint::kFitted);
  EXPECT_EQ(n.zero, 15.0f);
}

TEST(IntGrid, SymmetricHandExample) {
  // [-3, 1] at 4 bits sym: range [-3, 3], scale = 6/15 = 0.4 -> fp16 0.39990234375, zero = 8.
  GroupParams p = fit_int_grid(-3.0f, 1.0f, 4, ZeroPoint::kMidTread);
  EXPECT_EQ(p.scale, 0.39990234375f);
  EXPECT_EQ(p.zero, 8.0f);
  EXPECT_EQ(quantize_int_grid(-3.0f, p, 15), 0);  // round(-7.5018) + 8
  EXPECT_EQ(fit_int_grid(-1.0f, 1.0f, 8, ZeroPoint::kMidTread).zero, 128.0f);
  EXPECT_EQ(fit_int_grid(-1.0f, 1.0f, 3, ZeroPoint::kMidTread).zero, 4.0f);
  EXPECT_EQ(fit_int_grid(-1.0f, 1.0f, 2, ZeroPoint::kMidTread).zero, 2.0f);
}

TEST(IntGrid, MidriseHandExample) {
  // [0.5, 2] at 3 bits midrise: range [-2, 2] even with no negative value, scale = 4/7 -> fp16
  // 0.5712890625, zero 3.5: levels ±scale/2, ±3 scale/2, ±5 scale/2, ±7 scale/2 (= ±1.9995).
  GroupParams p = fit_int_grid(0.5f, 2.0f, 3, ZeroPoint::kMidRise);
  EXPECT_EQ(p.scale, 0.5712890625f);
  EXPECT_EQ(p.zero, 3.5f);
  EXPECT_EQ(quantize_int_grid(2.0f, p, 7), 7);   // the top level, 3.5 steps up
  EXPECT_EQ(quantize_int_grid(-2.0f, p, 7), 0);  // as far down as up
  EXPECT_EQ(quantize_int_grid(0.1f, p, 7), 4);   // +scale/2, the nearest level to a small value
  EXPECT_EQ(quantize_int_grid(-0.1f, p, 7), 3);  // -scale/2
  EXPECT_EQ(dequantize_int_grid(4, p), 0.5f * p.scale);
  // Exactly on the boundary 0 between the two middle levels: x / scale + 1/2 = 0.5 rounds to even.
  EXPECT_EQ(quantize_int_grid(0.0f, p, 7), 3);
  EXPECT_EQ(fit_int_grid(-1.0f, 1.0f, 2, ZeroPoint::kMidRise).zero, 1.5f);
  EXPECT_EQ(fit_int_grid(-1.0f, 1.0f, 4, ZeroPoint::kMidRise).zero, 7.5f);
}

TEST(IntGrid, SymmetricNonNegativeGroupKeepsReferenceQuirk) {
  // The reference keeps xmin = 0 when no value is negative: scale = xmax/15 but only 7 steps lie
  // above zero = 8, so 3.0 is clipped to 7 * scale.
  GroupParams p = fit_int_grid(0.5f, 3.0f, 4, ZeroPoint::kMidTread);
  EXPECT_EQ(p.scale, round_to_fp16(0.2f));
  EXPECT_EQ(p.zero, 8.0f);
  EXPECT_EQ(quantize_int_grid(3.0f, p, 15), 15);
  EXPECT_EQ(dequantize_int_grid(15, p), 7.0f * p.scale);
}

TEST(IntGrid, AllZeroGroupUsesUnitRangeAndDecodesZeroExactly) {
  for (int bits : {2, 3, 4, 8}) {
    for (ZeroPoint kind : {ZeroPoint::kFitted, ZeroPoint::kMidTread, ZeroPoint::kMidRise}) {
      GroupParams p = fit_int_grid(0.0f, 0.0f, bits, kind);
      EXPECT_EQ(p.scale, round_to_fp16(2.0f / float((1 << bits) - 1)));
      // A midrise grid has no level at 0: 0 lands half a step away.
      EXPECT_EQ(dequantize_int_grid(quantize_int_grid(0.0f, p, (1 << bits) - 1), p),
                kind == ZeroPoint::kMidRise ? -p.scale / 2.0f : 0.0f);
    }
  }
}

TEST(IntGrid, RoundsHalfToEven) {
  // 2 bits over [-2.5, 0.5]: scale = 1 exactly, -xmin/scale = 2.5 -> zero 2 (not 3).
  GroupParams p = fit_int_grid(-2.5f, 0.5f, 2, ZeroPoint::kFitted);
  EXPECT_EQ(p.scale, 1.0f);
  EXPECT_EQ(p.zero, 2.0f);
  EXPECT_EQ(quantize_int_grid(0.5f, p, 3), 2);   // round(0.5) = 0
  EXPECT_EQ(quantize_int_grid(-2.5f, p, 3), 0);  // round(-2.5) = -2
  EXPECT_EQ(quantize_int_grid(1.5f, p, 3), 3);   // round(1.5) = 2, + 2 = 4, clamped to 3
}

TEST(IntGrid, ShrinkNarrowsTheRange) {
  // Shrink 0.5 on [-1, 2]: range [-0.5, 1], scale = 0.1 -> fp16, zero = round(0.5 / 0.1) = 5.
  GroupParams p = fit_int_grid(-1.0f, 2.0f, 4, ZeroPoint::kFitted, 0.5f);
  EXPECT_EQ(p.scale, round_to_fp16(0.1f));
  EXPECT_EQ(p.zero, 5.0f);
}

TEST(IntGrid, TinyAndHugeRangesStayWithinFp16) {
  GroupParams tiny = fit_int_grid(-1e-12f, 1e-12f, 4, ZeroPoint::kFitted);
  EXPECT_EQ(tiny.scale, kMinFp16Scale);
  GroupParams huge = fit_int_grid(-65504.0f, 65504.0f, 2, ZeroPoint::kFitted);
  EXPECT_LE(huge.scale, kMaxFp16Value);
  EXPECT_EQ(round_to_fp16(huge.scale), huge.scale);
}

// Property test over random groups. The scale is an fp16 value and the zero an integer code (midrise:
// an integer + 1/2, exact in float), so the
// stored parameters reproduce every dequantized value exactly. Error bounds, derived:
//  * x inside the grid [scale*(0 - zero), scale*(maxq - zero)]: |x - dq| <= scale/2, plus the float
//    rounding of x/scale and of scale*(q - zero): (|x| + |dq|) * eps.
//  * any x of a min/max fit (asymmetric, or symmetric with a negative value): the grid misses the
//    group's ends by at most scale/2 + maxq*|s - scale| where s = (xmax - xmin)/maxq before the
//    fp16 rounding, so that bound (plus the same float slop and the rounding of s) holds for all x.
TEST(IntGrid, RandomGroupsMeetDerivedBounds) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int bits : {2, 3, 4, 8}) {
    const int maxq = (1 << bits) - 1;
    for (ZeroPoint kind : {ZeroPoint::kFitted, ZeroPoint::kMidTread, ZeroPoint::kMidRise}) {
      const bool symmetric = kind != ZeroPoint::kFitted;
      for (int trial = 0; trial < 300; ++trial) {
        const float spread = std::ldexp(1.0f, trial % 20 - 10);
        const float offset = (trial % 3 == 0) ? spread * 0.7f : 0.0f;
        std::vector<float> group(1 + trial % 40);
        for (float& x : group) x = normal(rng) * spread + offset;
        const auto [lo, hi] = std::minmax_element(group.begin(), group.end());
        GroupParams p = fit_int_grid(*lo, *hi, bits, kind);
        ASSERT_EQ(round_to_fp16(p.scale), p.scale);
        ASSERT_EQ(p.zero - std::floor(p.zero), kind == ZeroPoint::kMidRise ? 0.5f : 0.0f);
        ASSERT_GE(p.zero, 0.0f);
        ASSERT_LE(p.zero, float(maxq));

        const double xmin = std::min(0.0, double(*lo));
        const double xmax = std::max(0.0, double(*hi));
        const double sym_max = std::max(-xmin, xmax);
        const double range = symmetric ? 2 * sym_max : xmax - xmin;
        const double s_exact = range / maxq;
        const bool covers_group = !symmetric || xmin < 0 || kind == ZeroPoint::kMidRise;
        const double grid_low = double(p.scale) * (0.0 - p.zero);
        const double grid_high = double(p.scale) * (maxq - p.zero);
        for (float x : group) {
          const float dq = dequantize_int_grid(quantize_int_grid(x, p, maxq), p);
          const double slop = (std::fabs(double(x)) + std::fabs(double(dq)) + range) * 2 * kEps;
          const double error = std::fabs(double(x) - double(dq));
          if (x >= grid_low && x <= grid_high) {
            EXPECT_LE(error, p.scale / 2.0 + slop) << "bits " << bits << " x " << x;
          }
          if (covers_group) {
            EXPECT_LE(error, p.scale / 2.0 + maxq * std::fabs(s_exact - p.scale) + slop)
                << "bits " << bits << " zero point " << int(kind) << " x " << x;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
