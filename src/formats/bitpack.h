// Bit streams of fixed-width codes in 32-bit words: the one packing rule behind lowbit's canonical
// code layout and the Hugging Face GPTQ qweight/qzeros tensors.
//
// Code i occupies stream bits [i*bits, (i+1)*bits), least significant bit first; stream bit k is
// bit (k % 32) of word k / 32. Words are little-endian on disk. Unused bits of the last word are 0.
//
//   bits = 4:  word 0 = [c7 c6 c5 c4 c3 c2 c1 c0]          (c0 in bits 3..0)
//   bits = 3:  32 codes fill exactly 3 words; codes 10 and 21 straddle a word boundary:
//              word 0 = [c10:1..0 | c9 | c8 | ... | c1 | c0]            bits 31..30 | 29..27 | ... | 2..0
//              word 1 = [c21:0 | c20 | ... | c11 | c10:2]              bit 31 | 30..28 | ... | 3..1 | 0
//              word 2 = [c31 | c30 | ... | c22 | c21:2..1]             bits 31..29 | ... | 4..2 | 1..0
//              (the AutoGPTQ 3-bit scheme is exactly this stream)
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"

namespace lowbit {

// Words needed for `count` codes of `bits` each: ceil(count * bits / 32).
inline size_t packed_word_count(size_t count, int bits) { return (count * size_t(bits) + 31) / 32; }

// ORs the stream of `codes` into `words` (zeroed by the caller, at least packed_word_count long).
// Every code must be < 2^bits.
void pack_bits_into(std::span<const uint8_t> codes, int bits, std::span<uint32_t> words);
std::vector<uint32_t> pack_bits(std::span<const uint8_t> codes, int bits);

// Reads `count` codes back; fails when `words` holds fewer than count * bits bits.
Result<std::vector<uint8_t>> unpack_bits(std::span<const uint32_t> words, int bits, size_t count);

}  // namespace lowbit
