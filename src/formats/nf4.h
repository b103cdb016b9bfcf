// NF4, the 4-bit NormalFloat of QLoRA (Dettmers et al. 2023) as bitsandbytes implements it.
//
// A block of `group_size` (default 64) consecutive weights of a row shares one fp32 absmax; each
// weight stores the 4-bit index of the nearest of 16 fixed levels to x / absmax:
//
//    code (4 bits):  [ L3 L2 L1 L0 ]   level index 0..15, value = absmax * kNf4Levels[code]
//
// Levels: quantiles of N(0,1) normalized to [-1, 1], 7 negative, an exact 0 (code 7), 8 positive;
// the constants are bitsandbytes' (csrc/kernels.cu) to full printed precision.
// Encoding (bitsandbytes dQuantizeNF4): v = x * (1 / absmax) (a zero block uses factor 0),
// code = number of decision thresholds t with v > t, the thresholds being bitsandbytes' float
// literals for the midpoints of adjacent levels. A value exactly on a threshold takes the lower
// level.
//
// Storage: 4 bits/weight + 32 bits of fp32 absmax per block = 4.5 bits/weight for block 64.
// Differences from bitsandbytes, for an exporter to undo: blocks here run along each row (the
// last one shorter when the block does not divide the row) while bitsandbytes blocks the flattened
// tensor (identical when cols % group_size == 0); the canonical code stream is LSB-first while
// bitsandbytes puts the first of two codes in the HIGH nibble of a byte (pack_nf4_bitsandbytes).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lowbit {

// Levels as printed by bitsandbytes (each is exactly a float).
inline constexpr double kNf4LevelsExact[16] = {
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
};

// Decision thresholds: thresholds[i] separates levels i and i + 1. These are bitsandbytes' float
// literals from dQuantizeNF4, i.e. the double midpoints of adjacent levels printed to 16-17
// digits and parsed straight to float. Where a midpoint is exactly halfway between two floats
// (indices 0, 8, 12, 14), that decimal parse lands one ulp away from float(double midpoint); we
// keep bitsandbytes' values so that codes match it bit for bit.
struct Nf4Tables {
  float levels[16];
  float thresholds[15];
};
constexpr Nf4Tables make_nf4_tables() {
  Nf4Tables tables{{}, {-0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f,
                        -0.33967943489551544f, -0.23460740596055984f, -0.13791173323988914f,
                        -0.045525018125772476f, 0.03979014977812767f, 0.1202552504837513f,
                        0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
                        0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f}};
  for (int i = 0; i < 16; ++i) tables.levels[i] = float(kNf4LevelsExact[i]);
  return tables;
}
inline constexpr Nf4Tables kNf4 = make_nf4_tables();
static_assert(kNf4.levels[7] == 0.0f && kNf4.levels[0] == -1.0f && kNf4.levels[15] == 1.0f);

inline constexpr int kNf4DefaultBlock = 64;
// A full block is a whole number of 32-bit words of codes (64 * 4 = 256 bits = 8 words).
static_assert(kNf4DefaultBlock * 4 % 32 == 0, "an NF4 block fills whole words");

// `normalized` is x / absmax, nominally in [-1, 1]; values outside clamp to the end levels.
uint8_t nf4_encode(float normalized);
inline float nf4_decode(uint8_t code) { return kNf4.levels[code & 0xf]; }

// bitsandbytes byte order: byte i = (codes[2i] << 4) | codes[2i+1]; an odd count pads with
// code 0 in the last low nibble.
std::vector<uint8_t> pack_nf4_bitsandbytes(std::span<const uint8_t> codes);

}  // namespace lowbit
