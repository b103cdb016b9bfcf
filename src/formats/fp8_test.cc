#include "formats/fp8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace lowbit {
namespace {

// Independent decode straight from the bit-field definition, in double.
double expected_value(int code) {
  const int sign = code >> 7;
  const int exponent = (code >> 3) & 0xf;
  const int mantissa = code & 0x7;
  const double magnitude =
      exponent == 0 ? mantissa / 8.0 * std::pow(2.0, -6) : (1.0 + mantissa / 8.0) * std::pow(2.0, exponent - 7);
  return sign ? -magnitude : magnitude;
}

bool is_nan_code(int code) { return (code & 0x7f) == 0x7f; }

TEST(Fp8E4M3, DecodesAll256Codes) {
  int nan_count = 0;
  for (int code = 0; code < 256; ++code) {
    const float value = fp8_e4m3_to_f32(uint8_t(code));
    if (is_nan_code(code)) {
      EXPECT_TRUE(std::isnan(value)) << code;
      EXPECT_EQ(std::signbit(value), code >= 0x80);
      ++nan_count;
      continue;
    }
    EXPECT_EQ(double(value), expected_value(code)) << "code " << code;
    EXPECT_EQ(std::signbit(value), code >= 0x80) << code;  // includes -0 = 0x80
  }
  EXPECT_EQ(nan_count, 2);
  EXPECT_EQ(fp8_e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0xfe), -448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);
}

TEST(Fp8E4M3, EveryCodeRoundTripsAndPositiveCodesAreIncreasing) {
  for (int code = 0; code < 256; ++code) {
    if (is_nan_code(code)) continue;
    EXPECT_EQ(fp8_e4m3_from_f32(fp8_e4m3_to_f32(uint8_t(code))), code) << code;
  }
  for (int code = 0; code < 0x7e; ++code) {
    EXPECT_LT(fp8_e4m3_to_f32(uint8_t(code)), fp8_e4m3_to_f32(uint8_t(code + 1))) << code;
  }
}

// Between two neighbouring codes the midpoint goes to the even code (even mantissa), and anything
// off the midpoint to the nearer one; the same holds mirrored for negative values.
TEST(Fp8E4M3, RoundsToNearestTiesToEven) {
  for (int code = 0; code < 0x7e; ++code) {
    for (int sign : {0x00, 0x80}) {
      const float low = fp8_e4m3_to_f32(uint8_t(code | sign));
      const float high = fp8_e4m3_to_f32(uint8_t((code + 1) | sign));
      const float mid = (low + high) / 2;  // exact: both are short binary fractions
      const int even = (code % 2 == 0 ? code : code + 1) | sign;
      EXPECT_EQ(fp8_e4m3_from_f32(mid), even) << "between " << low << " and " << high;
      EXPECT_EQ(fp8_e4m3_from_f32(std::nextafter(mid, low)), code | sign);
      EXPECT_EQ(fp8_e4m3_from_f32(std::nextafter(mid, high)), (code + 1) | sign);
    }
  }
  // Below the smallest subnormal 2^-9: half of it ties to 0, just above half goes up.
  EXPECT_EQ(fp8_e4m3_from_f32(std::ldexp(1.0f, -10)), 0x00);
  EXPECT_EQ(fp8_e4m3_from_f32(std::nextafter(std::ldexp(1.0f, -10), 1.0f)), 0x01);
  EXPECT_EQ(fp8_e4m3_from_f32(1e-30f), 0x00);
  EXPECT_EQ(fp8_e4m3_from_f32(-1e-30f), 0x80);
}

TEST(Fp8E4M3, SaturatesAndKeepsNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(fp8_e4m3_from_f32(448.0f), 0x7e);
  EXPECT_EQ(fp8_e4m3_from_f32(460.0f), 0x7e);
  EXPECT_EQ(fp8_e4m3_from_f32(464.0f), 0x7e);  // would round to 480 unsaturated
  EXPECT_EQ(fp8_e4m3_from_f32(1e30f), 0x7e);
  EXPECT_EQ(fp8_e4m3_from_f32(inf), 0x7e);
  EXPECT_EQ(fp8_e4m3_from_f32(-inf), 0xfe);
  EXPECT_EQ(fp8_e4m3_from_f32(std::nanf("")), 0x7f);
  EXPECT_EQ(fp8_e4m3_from_f32(-std::nanf("")), 0xff);
  EXPECT_EQ(fp8_e4m3_from_f32(0.0f), 0x00);
  EXPECT_EQ(fp8_e4m3_from_f32(-0.0f), 0x80);
}

}  // namespace
}  // namespace lowbit
