#include "formats/fp8.h"

#include <algorithm>
#include <cmath>

#include "formats/int_grid.h"

namespace lowbit {

namespace {
constexpr int kExponentBias = 7;
constexpr int kMantissaBits = 3;
constexpr int kMinNormalExponent = 1 - kExponentBias;  // -6
}  // namespace

uint8_t fp8_e4m3_from_f32(float x) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  if (std::isnan(x)) return sign | kFp8E4M3NaN;
  const float magnitude = std::fabs(x);
  if (magnitude >= kFp8E4M3Max) return sign | 0x7e;  // saturate, infinities included
  if (magnitude == 0.0f) return sign;

  // Spacing of representable values around `magnitude`: 2^(exponent - 3), where exponent is
  // floor(log2(magnitude)) but never below the subnormal exponent -6.
  int frexp_exponent = 0;
  std::frexp(magnitude, &frexp_exponent);  // magnitude = f * 2^frexp_exponent, f in [0.5, 1)
  const int exponent = std::max(frexp_exponent - 1, kMinNormalExponent);
  // Dividing by a power of two is exact, so the only rounding is this one, half to even.
  const float units = round_half_even(std::ldexp(magnitude, kMantissaBits - exponent));
  // units is in [8, 16] for normals (16 carries into the next exponent) and [0, 8] for
  // subnormals; one formula covers all cases because the exponent field increments exactly when
  // units passes 8 * k.
  const int code = ((exponent + kExponentBias) << kMantissaBits) + int(units) - (1 << kMantissaBits);
  return sign | uint8_t(code);
}

float fp8_e4m3_to_f32(uint8_t code) {
  const bool negative = (code & 0x80) != 0;
  const int exponent_field = (code >> kMantissaBits) & 0xf;
  const int mantissa = code & 0x7;
  if (exponent_field == 0xf && mantissa == 0x7) return negative ? -std::nanf("") : std::nanf("");
  const float magnitude = exponent_field == 0
                              ? std::ldexp(float(mantissa), kMinNormalExponent - kMantissaBits)
                              : std::ldexp(float(8 + mantissa), exponent_field - kExponentBias - kMantissaBits);
  return negative ? -magnitude : magnitude;
}

}  // namespace lowbit
