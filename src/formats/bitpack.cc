#include "formats/bitpack.h"

namespace lowbit {

void pack_bits_into(std::span<const uint8_t> codes, int bits, std::span<uint32_t> words) {
  LOWBIT_CHECK(bits >= 1 && bits <= 8);
  LOWBIT_CHECK(words.size() >= packed_word_count(codes.size(), bits));
  for (size_t i = 0; i < codes.size(); ++i) {
    const uint32_t code = codes[i];
    LOWBIT_CHECK(code >> bits == 0);
    const size_t bit = i * size_t(bits);
    const size_t word = bit / 32;
    const unsigned shift = unsigned(bit % 32);
    words[word] |= code << shift;
    // A code that crosses into the next word leaves its high bits there.
    if (shift + unsigned(bits) > 32) words[word + 1] |= code >> (32 - shift);
  }
}

std::vector<uint32_t> pack_bits(std::span<const uint8_t> codes, int bits) {
  std::vector<uint32_t> words(packed_word_count(codes.size(), bits), 0);
  pack_bits_into(codes, bits, words);
  return words;
}

Result<std::vector<uint8_t>> unpack_bits(std::span<const uint32_t> words, int bits, size_t count) {
  LOWBIT_CHECK(bits >= 1 && bits <= 8);
  if (words.size() < packed_word_count(count, bits)) {
    return error(ErrorCode::kFormat, "{} packed words hold fewer than {} codes of {} bits", words.size(),
                 count, bits);
  }
  std::vector<uint8_t> codes(count);
  // 32 codes of b bits are exactly b whole words, so blocks of 32 codes are independent: threaded
  // for big tensors (a model load unpacks ~10^9 codes), with the width a compile-time constant so
  // each block's shifts and masks unroll. The last partial block takes the generic loop.
  const size_t blocks = count / 32;
  const auto unpack_blocks = [&]<int kBits>() {
#pragma omp parallel for schedule(static) if (blocks >= (size_t(1) << 17))
    for (size_t b = 0; b < blocks; ++b) {
      const uint32_t* w = words.data() + b * kBits;
      uint8_t* out = codes.data() + b * 32;
      for (int i = 0; i < 32; ++i) {
        const int bit = i * kBits, word = bit / 32, shift = bit % 32;
        uint32_t code = w[word] >> shift;
        if (shift + kBits > 32) code |= w[word + 1] << (32 - shift);
        out[i] = uint8_t(code & ((1u << kBits) - 1));
      }
    }
  };
  switch (bits) {
    case 1: unpack_blocks.template operator()<1>(); break;
    case 2: unpack_blocks.template operator()<2>(); break;
    case 3: unpack_blocks.template operator()<3>(); break;
    case 4: unpack_blocks.template operator()<4>(); break;
    case 5: unpack_blocks.template operator()<5>(); break;
    case 6: unpack_blocks.template operator()<6>(); break;
    case 7: unpack_blocks.template operator()<7>(); break;
    default: unpack_blocks.template operator()<8>(); break;
  }
  const uint32_t mask = (1u << bits) - 1;
  for (size_t i = blocks * 32; i < count; ++i) {
    const size_t bit = i * size_t(bits);
    const size_t word = bit / 32;
    const unsigned shift = unsigned(bit % 32);
    uint32_t code = words[word] >> shift;
    if (shift + unsigned(bits) > 32) code |= words[word + 1] << (32 - shift);
    codes[i] = uint8_t(code & mask);
  }
  return codes;
}

}  // namespace lowbit
