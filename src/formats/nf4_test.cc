#include "formats/nf4.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace lowbit {
namespace {

TEST(Nf4, LevelsAreBitsandbytesConstants) {
  // csrc/kernels.cu dDequantizeNF4, code 0b0000 .. 0b1111.
  const float expected[16] = {-1.0f,
                              -0.6961928009986877f,
                              -0.5250730514526367f,
                              -0.39491748809814453f,
                              -0.28444138169288635f,
                              -0.18477343022823334f,
                              -0.09105003625154495f,
                              0.0f,
                              0.07958029955625534f,
                              0.16093020141124725f,
                              0.24611230194568634f,
                              0.33791524171829224f,
                              0.44070982933044434f,
                              0.5626170039176941f,
                              0.7229568362236023f,
                              1.0f};
  for (int code = 0; code < 16; ++code) EXPECT_EQ(nf4_decode(uint8_t(code)), expected[code]) << code;
}

TEST(Nf4, ThresholdsAreBitsandbytesDecisionTree) {
  // csrc/kernels.cu dQuantizeNF4: `x > t` picks the upper side at each node.
  const float expected[15] = {-0.8480964004993439f,  -0.6106329262256622f, -0.4599952697753906f,
                              -0.33967943489551544f, -0.23460740596055984f, -0.13791173323988914f,
                              -0.045525018125772476f, 0.03979014977812767f,  0.1202552504837513f,
                              0.2035212516784668f,    0.2920137718319893f,   0.3893125355243683f,
                              0.5016634166240692f,    0.6427869200706482f,   0.8614784181118011f};
  for (int i = 0; i < 15; ++i) {
    EXPECT_EQ(kNf4.thresholds[i], expected[i]) << i;
    // Each is the midpoint of its two levels to within one float ulp.
    const double midpoint = (double(kNf4.levels[i]) + double(kNf4.levels[i + 1])) / 2;
    EXPECT_LE(std::fabs(double(kNf4.thresholds[i]) - midpoint),
              std::fabs(midpoint) * std::numeric_limits<float>::epsilon()) << i;
    EXPECT_EQ(nf4_encode(expected[i]), i) << "a value on a threshold takes the lower level";
    EXPECT_EQ(nf4_encode(std::nextafter(expected[i], 2.0f)), i + 1);
  }
}

TEST(Nf4, EnumeratesAll16Codes) {
  for (int code = 0; code < 16; ++code) {
    EXPECT_EQ(nf4_encode(nf4_decode(uint8_t(code))), code);
    if (code > 0) {
      EXPECT_LT(nf4_decode(uint8_t(code - 1)), nf4_decode(uint8_t(code)));
    }
  }
  EXPECT_EQ(nf4_encode(-5.0f), 0);  // outside [-1, 1]: end levels
  EXPECT_EQ(nf4_encode(5.0f), 15);
}

TEST(Nf4, EncodesToTheNearestLevel) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int trial = 0; trial < 20000; ++trial) {
    const float v = uniform(rng);
    const float chosen = std::fabs(v - nf4_decode(nf4_encode(v)));
    for (int code = 0; code < 16; ++code) {
      // The float thresholds are the double midpoints rounded once, so a value can be nearer the
      // other level only by that rounding: at most half an ulp of the threshold.
      const float other = std::fabs(v - nf4_decode(uint8_t(code)));
      EXPECT_LE(chosen, other + std::numeric_limits<float>::epsilon()) << v;
    }
  }
}

TEST(Nf4, PacksBitsandbytesNibbleOrder) {
  const uint8_t codes[] = {0x1, 0x2, 0x3, 0xf, 0x7};
  const std::vector<uint8_t> bytes = pack_nf4_bitsandbytes(codes);
  ASSERT_EQ(bytes.size(), 3u);
  EXPECT_EQ(bytes[0], 0x12);  // first code in the high nibble
  EXPECT_EQ(bytes[1], 0x3f);
  EXPECT_EQ(bytes[2], 0x70);  // odd count: low nibble padded with 0
}

}  // namespace
}  // namespace lowbit
