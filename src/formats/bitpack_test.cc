#include "formats/bitpack.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace lowbit {
namespace {

std::vector<uint32_t> pack(const std::vector<uint8_t>& codes, int bits) { return pack_bits(codes, bits); }

TEST(BitPack, FourBitsHandWorked) {
  // Codes 0..15 twice: nibble k of a word holds code k of its 8, lowest nibble first.
  std::vector<uint8_t> codes;
  for (int i = 0; i < 32; ++i) codes.push_back(uint8_t(i % 16));
  EXPECT_EQ(pack(codes, 4), (std::vector<uint32_t>{0x76543210, 0xFEDCBA98, 0x76543210, 0xFEDCBA98}));
}

TEST(BitPack, ThreeBitsHandWorked) {
  // Codes j % 8 for j = 0..31. Codes 0..7 are the 24-bit pattern octal 76543210 = 0xFAC688, so the
  // 96-bit stream is that pattern four times: 0xFAC688'FAC688'FAC688'FAC688, cut into words from
  // the low end. Word 0 = codes 0..9 plus the low 2 bits of code 10 (= 2 -> 0b10 in bits 31..30);
  // word 1 bit 0 is code 10's top bit (0), then codes 11..20, then code 21's low bit (5 -> 1) in
  // bit 31; word 2 starts with code 21's upper bits (0b10) and ends with codes 22..31.
  std::vector<uint8_t> codes;
  for (int j = 0; j < 32; ++j) codes.push_back(uint8_t(j % 8));
  EXPECT_EQ(pack(codes, 3), (std::vector<uint32_t>{0x88FAC688, 0xC688FAC6, 0xFAC688FA}));
}

TEST(BitPack, TwoAndEightBitsHandWorked) {
  // 2 bits: codes 1, 2, 3 in bits 1..0, 3..2, 5..4 and a 3 in bits 31..30.
  std::vector<uint8_t> two(16, 0);
  two[0] = 1;
  two[1] = 2;
  two[2] = 3;
  two[15] = 3;
  EXPECT_EQ(pack(two, 2), (std::vector<uint32_t>{0xC0000039}));
  // 8 bits: little-endian bytes; the fifth code starts a padded word.
  EXPECT_EQ(pack({0x12, 0x34, 0x56, 0x78, 0x9A}, 8), (std::vector<uint32_t>{0x78563412, 0x0000009A}));
}

TEST(BitPack, RandomCodesRoundTripWithZeroPadding) {
  std::mt19937 rng(42);
  for (int bits : {1, 2, 3, 4, 5, 6, 7, 8}) {
    for (size_t count : {0u, 1u, 7u, 10u, 11u, 31u, 32u, 33u, 95u, 96u, 97u, 1000u}) {
      std::vector<uint8_t> codes(count);
      for (uint8_t& c : codes) c = uint8_t(rng() & ((1u << bits) - 1));
      const std::vector<uint32_t> words = pack(codes, bits);
      ASSERT_EQ(words.size(), packed_word_count(count, bits));
      Result<std::vector<uint8_t>> back = unpack_bits(words, bits, count);
      ASSERT_TRUE(back.ok());
      EXPECT_EQ(*back, codes) << bits << " bits, " << count << " codes";
      // Every bit past the last code is zero.
      const size_t used = count * size_t(bits);
      for (size_t bit = used; bit < 32 * words.size(); ++bit) {
        ASSERT_EQ((words[bit / 32] >> (bit % 32)) & 1u, 0u) << bits << " bits, " << count << " codes";
      }
    }
  }
}

// Tensors of millions of codes are unpacked by several threads in blocks of 32 codes.
TEST(BitPack, LargeTensorsRoundTrip) {
  std::mt19937 rng(7);
  for (int bits : {2, 3, 4, 8}) {
    const size_t count = (size_t(1) << 22) + 13;
    std::vector<uint8_t> codes(count);
    for (uint8_t& c : codes) c = uint8_t(rng() & ((1u << bits) - 1));
    Result<std::vector<uint8_t>> back = unpack_bits(pack(codes, bits), bits, count);
    ASSERT_TRUE(back.ok());
    EXPECT_TRUE(*back == codes) << bits << " bits";
  }
}

TEST(BitPack, UnpackRejectsShortInput) {
  const std::vector<uint32_t> words = {0xffffffff};
  EXPECT_TRUE(unpack_bits(words, 3, 10).ok());
  EXPECT_EQ(unpack_bits(words, 3, 11).status().code(), ErrorCode::kFormat);
}

}  // namespace
}  // namespace lowbit
