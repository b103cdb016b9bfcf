// IEEE fp16 and bfloat16 <-> fp32 conversions (scalar, exact, round-to-nearest-even).
// These are the reference definitions; vectorized versions live in kernels/.
#pragma once

#include <cstdint>
#include <cstring>

namespace lowbit {

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// fp16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Handles subnormals, inf and NaN.
inline float fp16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    if (mant == 0) return f32_from_bits(sign);
    // Subnormal: value = mant * 2^-24.
    float v = float(mant) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

inline uint16_t f32_to_fp16(float f) {
  uint32_t x = f32_bits(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return sign | (x > 0x7f800000u ? 0x7e00 : 0x7c00);  // NaN / inf
  if (x >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65520: overflow to inf
  if (x < 0x38800000u) {
    // Result is subnormal or zero: value / 2^-24 rounded to nearest even.
    float v = f32_from_bits(x) * 16777216.0f;  // exact scaling by 2^24
    // Round half to even via the float addition trick: adding 2^23 forces integer rounding.
    float r = (v + 8388608.0f) - 8388608.0f;
    return sign | uint16_t(r);
  }
  // Normal: rebias exponent, round mantissa from 23 to 10 bits, nearest even.
  uint32_t mant_odd = (x >> 13) & 1u;
  x += 0xc8000fffu + mant_odd;  // rebias (-112 << 23) and add rounding bias
  return sign | uint16_t(x >> 13);
}

// bfloat16: the top 16 bits of an fp32.
inline float bf16_to_f32(uint16_t b) { return f32_from_bits(uint32_t(b) << 16); }
inline uint16_t f32_to_bf16(float f) {
  uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);  // round to nearest even
  return uint16_t(x >> 16);
}

// Rounds through fp16 (what a stored fp16 scale really is).
inline float round_to_fp16(float f) { return fp16_to_f32(f32_to_fp16(f)); }

}  // namespace lowbit
