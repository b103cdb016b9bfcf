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
  const uint32_t mask = (1u << bits) - 1;
  std::vector<uint8_t> codes(count);
  for (size_t i = 0; i < count; ++i) {
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
