// FP8 E4M3FN ("fn": finite, no infinities), the OCP 8-bit float used for weights.
//
//    bit  7   6 5 4 3   2 1 0
//       [ S | E E E E | M M M ]      exponent bias 7
//   E = 0:        (-1)^S * M/8 * 2^-6            subnormals, steps of 2^-9 (M = 0: +-0)
//   E = 1..15:    (-1)^S * (1 + M/8) * 2^(E-7)   normals
//   E = 15, M = 7 (S.1111.111): NaN; no infinities, so E = 15 holds normals up to
//   1.75 * 2^8 = 448 (S.1111.110), the largest magnitude.
//
// Encoding (this scalar code is the specification): round to nearest, ties to even mantissa;
// saturating: magnitudes >= 448 (and +-inf) become +-448; NaN becomes S.1111.111 with its sign;
// -0 keeps its sign (0x80).
//
// Matrix format "fp8_e4m3": one fp32 scale per output row, scale = row absmax / 448 (an all-zero
// row stores scale 1), code = encode(x / scale), value = scale * decode(code).
// Storage: 8 bits/weight + 32 bits per row.
#pragma once

#include <cstdint>

namespace lowbit {

inline constexpr float kFp8E4M3Max = 448.0f;
inline constexpr uint8_t kFp8E4M3NaN = 0x7f;  // positive NaN; 0xff is the negative one

uint8_t fp8_e4m3_from_f32(float x);
float fp8_e4m3_to_f32(uint8_t code);

}  // namespace lowbit
