#include "formats/gptq_pack.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "base/half.h"

namespace lowbit {
namespace {

using Format = GptqCheckpointFormat;

std::vector<uint32_t> as_words(const std::vector<int32_t>& v) { return std::vector<uint32_t>(v.begin(), v.end()); }

// A 4-bit, group-16 matrix with out = 2 columns and in = 32 inputs, small enough to pack by hand.
QuantizedMatrix hand_matrix() {
  QuantizedMatrix m;
  m.spec = FormatSpec{FormatId::kInt4, Granularity::kGroup, 16, false};
  m.rows = 2;   // out_features
  m.cols = 32;  // in_features
  for (int i = 0; i < 32; ++i) m.codes.push_back(uint8_t(i % 16));       // column 0: 0..15, 0..15
  for (int i = 0; i < 32; ++i) m.codes.push_back(uint8_t(15 - i % 16));  // column 1: 15..0, 15..0
  // params [out, groups]: (scale, zero)
  m.params = {{0.5f, 3.0f}, {0.25f, 1.0f}, {1.5f, 15.0f}, {2.0f, 8.0f}};
  return m;
}

TEST(GptqPack, HandWorkedGroupMatrix) {
  Result<GptqTensors> packed = pack_gptq(hand_matrix(), Format::kGptqV1);
  ASSERT_TRUE(packed.ok()) << packed.status().message();
  const GptqTensors& t = *packed;
  EXPECT_EQ(t.group_size, 16);
  EXPECT_EQ(t.group_count(), 2);
  // qweight [32/32*4 = 4, out = 2], row-major: word w of column 0, then of column 1.
  // Column 0 codes 0..7 -> 0x76543210, 8..15 -> 0xFEDCBA98; column 1 codes 15..8 -> 0x89ABCDEF.
  EXPECT_EQ(as_words(t.qweight), (std::vector<uint32_t>{0x76543210, 0x89ABCDEF, 0xFEDCBA98, 0x01234567,
                                                        0x76543210, 0x89ABCDEF, 0xFEDCBA98, 0x01234567}));
  // qzeros [2 groups, ceil(2/32)*4 = 4]: v1 stores zero - 1. Group 0: column 0 zero 3 -> 2,
  // column 1 zero 15 -> 14 = 0xE in bits 7..4. Group 1: 1 -> 0 and 8 -> 7.
  EXPECT_EQ(as_words(t.qzeros), (std::vector<uint32_t>{0xE2, 0, 0, 0, 0x70, 0, 0, 0}));
  // scales [groups, out] in fp16: 0.5 = 0x3800, 1.5 = 0x3E00, 0.25 = 0x3400, 2.0 = 0x4000.
  EXPECT_EQ(t.scales, (std::vector<uint16_t>{0x3800, 0x3E00, 0x3400, 0x4000}));
  std::vector<int32_t> g_idx(32);
  for (int i = 0; i < 32; ++i) g_idx[size_t(i)] = i / 16;
  EXPECT_EQ(t.g_idx, g_idx);

  // gptq_v2 stores the zeros themselves: 3 | 15 << 4 and 1 | 8 << 4.
  Result<GptqTensors> v2 = pack_gptq(hand_matrix(), Format::kGptqV2);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(as_words(v2->qzeros), (std::vector<uint32_t>{0xF3, 0, 0, 0, 0x81, 0, 0, 0}));
  EXPECT_EQ(v2->qweight, t.qweight);
}

// Symmetric zero = 2^(bits-1) is stored as 2^(bits-1) - 1 in v1: the familiar 0x77777777 at 4 bits.
TEST(GptqPack, SymmetricZeroWordsHandWorked) {
  struct Case {
    FormatId id;
    std::vector<uint32_t> qzeros;  // one group, out = 32
  };
  const Case cases[] = {
      {FormatId::kInt4, {0x77777777, 0x77777777, 0x77777777, 0x77777777}},
      {FormatId::kInt8, std::vector<uint32_t>(8, 0x7F7F7F7F)},
      {FormatId::kInt2, {0x55555555, 0x55555555}},
      // 3 bits: field 3 = 0b011 repeated; stream bit k is 1 unless k % 3 == 2.
      {FormatId::kInt3, {0xDB6DB6DB, 0xB6DB6DB6, 0x6DB6DB6D}},
  };
  for (const Case& c : cases) {
    QuantizedMatrix m;
    m.spec = FormatSpec{c.id, Granularity::kPerChannel, 0, true};
    m.rows = 32;
    m.cols = 32;
    m.codes.assign(32 * 32, 1);
    m.params.assign(32, GroupParams{0.125f, float(1 << (m.spec.code_bits() - 1))});
    Result<GptqTensors> t = pack_gptq(m, Format::kGptqV1);
    ASSERT_TRUE(t.ok()) << t.status().message();
    EXPECT_EQ(t->group_size, -1);
    EXPECT_EQ(as_words(t->qzeros), c.qzeros) << m.spec.code_bits() << " bits";
    EXPECT_EQ(t->g_idx, std::vector<int32_t>(32, 0));
  }
}

TEST(GptqPack, V1RefusesZeroPointZero) {
  QuantizedMatrix m = hand_matrix();
  m.params[1].zero = 0.0f;
  EXPECT_EQ(pack_gptq(m, Format::kGptqV1).status().code(), ErrorCode::kUnsupported);
  EXPECT_TRUE(pack_gptq(m, Format::kGptqV2).ok());
  m.params[1].zero = 16.0f;  // v1 can hold 16 (field 15), v2 cannot
  EXPECT_TRUE(pack_gptq(m, Format::kGptqV1).ok());
  EXPECT_EQ(pack_gptq(m, Format::kGptqV2).status().code(), ErrorCode::kUnsupported);
}

TEST(GptqPack, RejectsNonFp16ScalesAndOtherFormats) {
  QuantizedMatrix m = hand_matrix();
  m.params[0].scale = 0.1f;  // not an fp16 value
  EXPECT_EQ(pack_gptq(m, Format::kGptqV1).status().code(), ErrorCode::kInvalidArgument);
  QuantizedMatrix nf4 = hand_matrix();
  nf4.spec = FormatSpec{FormatId::kNF4, Granularity::kGroup, 16, false};
  EXPECT_EQ(pack_gptq(nf4, Format::kGptqV1).status().code(), ErrorCode::kUnsupported);
}

// Random codes, zeros and fp16 scales for ragged shapes at every bit width: pack then unpack
// returns the same matrix, and the padding of qweight columns holds zero codes.
TEST(GptqPack, RandomMatricesRoundTripLosslessly) {
  std::mt19937 rng(2024);
  const FormatId ids[] = {FormatId::kInt2, FormatId::kInt3, FormatId::kInt4, FormatId::kInt8};
  const int64_t shapes[][2] = {{1, 1}, {5, 37}, {33, 70}, {64, 172}, {32, 64}, {7, 96}};
  for (FormatId id : ids) {
    for (auto [out, in] : shapes) {
      for (int64_t group : {int64_t(-1), int64_t(32), int64_t(7)}) {
        for (bool symmetric : {false, true}) {
          for (Format format : {Format::kGptqV1, Format::kGptqV2}) {
            QuantizedMatrix m;
            m.spec = FormatSpec{id, group == -1 ? Granularity::kPerChannel : Granularity::kGroup,
                                group == -1 ? 0 : group, symmetric};
            m.rows = out;
            m.cols = in;
            const int maxq = m.spec.max_code();
            m.codes.resize(size_t(out * in));
            for (uint8_t& c : m.codes) c = uint8_t(rng() % uint32_t(maxq + 1));
            m.params.resize(size_t(m.layout().param_count()));
            for (GroupParams& p : m.params) {
              p.scale = round_to_fp16(std::ldexp(float(rng() % 1000 + 1), -12));
              const int lowest = format == Format::kGptqV1 ? 1 : 0;
              p.zero = symmetric ? float((maxq + 1) / 2) : float(lowest + int(rng() % uint32_t(maxq + 1 - lowest)));
            }
            Result<GptqTensors> t = pack_gptq(m, format);
            ASSERT_TRUE(t.ok()) << t.status().message();
            ASSERT_EQ(t->qweight.size(), size_t((in + 31) / 32 * m.spec.code_bits() * out));
            Result<QuantizedMatrix> back = unpack_gptq(*t, symmetric, format);
            ASSERT_TRUE(back.ok()) << back.status().message();
            EXPECT_EQ(back->spec, m.spec);
            EXPECT_EQ(back->codes, m.codes);
            ASSERT_EQ(back->params.size(), m.params.size());
            for (size_t i = 0; i < m.params.size(); ++i) {
              EXPECT_EQ(back->params[i].scale, m.params[i].scale);
              EXPECT_EQ(back->params[i].zero, m.params[i].zero);
            }
            // Padding codes of every column read back as 0.
            GptqTensors padded = *t;
            padded.in_features = (in + 31) / 32 * 32;
            padded.group_size = -1;
            padded.qzeros.assign(size_t(padded.qzeros_cols()), 0);
            padded.scales.assign(size_t(out), 0x3c00);
            padded.g_idx.assign(size_t(padded.in_features), 0);
            Result<QuantizedMatrix> wide = unpack_gptq(padded, false, Format::kGptqV2);
            ASSERT_TRUE(wide.ok()) << wide.status().message();
            for (int64_t o = 0; o < out; ++o) {
              for (int64_t i = in; i < padded.in_features; ++i) {
                ASSERT_EQ(wide->codes[size_t(o * padded.in_features + i)], 0);
              }
            }
          }
        }
      }
    }
  }
}

TEST(GptqPack, PerTensorIsWrittenPerChannel) {
  QuantizedMatrix m;
  m.spec = FormatSpec{FormatId::kInt4, Granularity::kPerTensor, 0, false};
  m.rows = 3;
  m.cols = 40;
  m.codes.assign(120, 9);
  m.params = {{0.5f, 4.0f}};
  Result<GptqTensors> t = pack_gptq(m, Format::kGptqV1);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->scales, (std::vector<uint16_t>{0x3800, 0x3800, 0x3800}));
  Result<QuantizedMatrix> back = unpack_gptq(*t, false, Format::kGptqV1);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->spec.granularity, Granularity::kPerChannel);
  EXPECT_EQ(dequantize(*back), dequantize(m));
}

TEST(GptqPack, UnpackRejectsMalformedTensors) {
  const GptqTensors good = *pack_gptq(hand_matrix(), Format::kGptqV1);
  ASSERT_TRUE(unpack_gptq(good, false, Format::kGptqV1).ok());

  GptqTensors short_qweight = good;
  short_qweight.qweight.pop_back();
  EXPECT_EQ(unpack_gptq(short_qweight, false, Format::kGptqV1).status().code(), ErrorCode::kFormat);

  GptqTensors bad_g_idx = good;
  bad_g_idx.g_idx[3] = 2;  // only groups 0 and 1 exist
  EXPECT_EQ(unpack_gptq(bad_g_idx, false, Format::kGptqV1).status().code(), ErrorCode::kFormat);
  bad_g_idx.g_idx[3] = -1;
  EXPECT_EQ(unpack_gptq(bad_g_idx, false, Format::kGptqV1).status().code(), ErrorCode::kFormat);

  // Zeros 3, 15, 1, 8 are not the symmetric 8.
  EXPECT_EQ(unpack_gptq(good, true, Format::kGptqV1).status().code(), ErrorCode::kFormat);

  GptqTensors five_bits = good;
  five_bits.bits = 5;
  EXPECT_EQ(unpack_gptq(five_bits, false, Format::kGptqV1).status().code(), ErrorCode::kUnsupported);

  GptqTensors bad_scale = good;
  bad_scale.scales[0] = 0x7c00;  // +inf
  EXPECT_EQ(unpack_gptq(bad_scale, false, Format::kGptqV1).status().code(), ErrorCode::kFormat);
}

// Act-order: inputs quantized in a permuted order form their groups in that order, so g_idx is a
// permuted group map. It travels through the GPTQ tensors unchanged and the parameters of group g
// of a row are the ones its g_idx == g inputs decode with.
TEST(GptqPack, PermutedGroupIndexRoundTrips) {
  QuantizedMatrix m = hand_matrix();
  // Inputs 0..15 and 16..31 trade group membership in a scattered pattern (16 per group).
  m.g_idx.resize(32);
  for (int i = 0; i < 32; ++i) m.g_idx[size_t(i)] = (i * 7 % 32) < 16 ? 1 : 0;
  ASSERT_TRUE(validate_matrix(m).ok());
  for (Format format : {Format::kGptqV1, Format::kGptqV2}) {
    Result<GptqTensors> t = pack_gptq(m, format);
    ASSERT_TRUE(t.ok()) << t.status().message();
    EXPECT_EQ(t->g_idx, m.g_idx);
    // The stored scales are per group, whatever the membership: group 0 of column 0 is (0.5, 3).
    EXPECT_EQ(t->scales[0], 0x3800);
    Result<QuantizedMatrix> back = unpack_gptq(*t, false, format);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(back->g_idx, m.g_idx);
    EXPECT_EQ(back->codes, m.codes);
    EXPECT_EQ(dequantize(*back), dequantize(m));
  }
  // Element (row 1, input 2) decodes with group g_idx[2] of row 1.
  const std::vector<float> values = dequantize(m);
  const GroupParams& p = m.params[size_t(1 * 2 + m.g_idx[2])];
  EXPECT_EQ(values[size_t(1 * 32 + 2)], p.scale * (float(m.codes[size_t(1 * 32 + 2)]) - p.zero));
  EXPECT_EQ(&m.params_at(1, 2), &p);
}

}  // namespace
}  // namespace lowbit
