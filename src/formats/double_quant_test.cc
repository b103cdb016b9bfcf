// Double quantization (_dq, _dq4): spec strings, exact byte accounting, the 8-bit linear and 4-bit
// log scale grids, the reference encoder on the grid, and the stored form of the parameters (both
// ways, hostile input).
#include "formats/double_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "base/half.h"
#include "formats/bitpack.h"
#include "formats/gptq_pack.h"
#include "formats/scale_grid.h"

namespace lowbit {
namespace {

FormatSpec spec_of(const std::string& name) {
  Result<FormatSpec> spec = parse_format_spec(name);
  EXPECT_TRUE(spec.ok()) << name << ": " << spec.status().message();
  return spec.ok() ? *spec : FormatSpec{};
}

// Gaussian rows of different spread (row r scaled by 1 + r/2, so per-row scales differ), an
// all-zero row and a few outliers.
std::vector<float> test_weights(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) w[size_t(r * cols + c)] = normal(rng) * (1.0f + 0.5f * float(r));
  for (size_t i = 0; i < w.size(); i += 23) w[i] *= 6.0f;
  if (rows > 2) std::fill(w.begin() + cols, w.begin() + 2 * cols, 0.0f);
  return w;
}

TEST(DoubleQuantSpec, ParsesNamesAndRoundTrips) {
  FormatSpec spec = spec_of("int3g32_sym_dq");
  EXPECT_EQ(spec.id, FormatId::kInt3);
  EXPECT_EQ(spec.group_size, 32);
  EXPECT_TRUE(spec.symmetric);
  EXPECT_TRUE(spec.double_quant);
  EXPECT_FALSE(spec_of("int3g32_sym").double_quant);
  EXPECT_EQ(spec_of("int4_asym_dq"), spec_of("int4_dq"));
  for (const char* name : {"int2_dq", "int3_dq", "int4_dq", "int8_dq", "int3_sym_dq", "int2g32_dq", "int4g7_sym_dq",
                           "int3_tensor_dq", "int8_tensor_sym_dq"}) {
    EXPECT_EQ(format_spec_name(spec_of(name)), name);
    EXPECT_EQ(spec_of(format_spec_name(spec_of(name))), spec_of(name));
  }
  for (const char* bad : {"int4_dq_sym", "int4_dq_dq", "int4dq", "int4_dqx", "nf4_dq", "nf4g64_dq", "fp8_e4m3_dq",
                          "f16_dq", "_dq", "int4g_dq", "int4_dq8", "int4_dq44", "int4_dq4_sym", "int4_dq4_dq",
                          "nf4_dq4", "int4dq4"}) {
    EXPECT_FALSE(parse_format_spec(bad).ok()) << bad;
  }
}

TEST(DoubleQuantSpec, FourBitScaleCodesParseNameAndDifferFromEightBit) {
  const FormatSpec spec = spec_of("int3g32_sym_dq4");
  EXPECT_TRUE(spec.double_quant);
  EXPECT_EQ(spec.scale_code_bits, 4);
  EXPECT_EQ(spec_of("int3_dq").scale_code_bits, 8);
  EXPECT_NE(spec_of("int3_dq4"), spec_of("int3_dq"));
  EXPECT_EQ(spec_of("int4_asym_dq4"), spec_of("int4_dq4"));
  for (const char* name : {"int2_dq4", "int3_dq4", "int3_sym_dq4", "int3g32_dq4", "int4g7_sym_dq4", "int8_tensor_dq4"}) {
    EXPECT_EQ(format_spec_name(spec_of(name)), name);
    EXPECT_EQ(spec_of(format_spec_name(spec_of(name))), spec_of(name));
  }
}

TEST(DoubleQuantSpec, FormatBytesHandComputed) {
  // [64, 64] int3 per channel: 12288 code bits = 384 words; 64 scale codes; 64 zeros * 3 bits = 6
  // words; fp32 super-scale. 3 + 11/64 bits/weight plus the super-scale's 32 bits.
  EXPECT_EQ(format_bytes(spec_of("int3_dq"), 64, 64), 1536u + 64 + 24 + 4);
  EXPECT_DOUBLE_EQ(format_bits_per_weight(spec_of("int3_dq"), 64, 64), 3.0 + 11.0 / 64 + 32.0 / 4096);
  EXPECT_EQ(format_bytes(spec_of("int3_sym_dq"), 64, 64), 1536u + 64 + 4);  // zero not stored
  // Ragged groups: [64, 172] g32 = 6 groups per row (the last 12 wide): 33024 code bits = 1032
  // words; 384 scale codes; 384 * 3 = 1152 zero bits = 36 words.
  EXPECT_EQ(format_bytes(spec_of("int3g32_dq"), 64, 172), 1032u * 4 + 384 + 36 * 4 + 4);
  // Padding: [3, 5] int3: 45 code bits -> 2 words; 3 codes; 9 zero bits -> 1 word (23 padding bits).
  EXPECT_EQ(format_bytes(spec_of("int3_dq"), 3, 5), 8u + 3 + 4 + 4);
  // int2g32_sym [2, 40]: 160 code bits = 5 words; 2 groups per row (32 + 8) = 4 scale codes.
  EXPECT_EQ(format_bytes(spec_of("int2g32_sym_dq"), 2, 40), 20u + 4 + 4);
  // int8_tensor [3, 5]: 15 code bytes -> 4 words; one scale code; one 8-bit zero -> 1 word.
  EXPECT_EQ(format_bytes(spec_of("int8_tensor_dq"), 3, 5), 16u + 1 + 4 + 4);
  // int4g16 [1, 32]: 2 groups; 2 zeros * 4 bits = 8 bits -> 1 word.
  EXPECT_EQ(format_bytes(spec_of("int4g16_dq"), 1, 32), 16u + 2 + 4 + 4);
  // _dq4: 64 scale codes * 4 bits = 256 bits = 8 words in place of 64 bytes.
  EXPECT_EQ(format_bytes(spec_of("int3_dq4"), 64, 64), 1536u + 32 + 24 + 4);
  EXPECT_DOUBLE_EQ(format_bits_per_weight(spec_of("int3_dq4"), 64, 64), 3.0 + 7.0 / 64 + 32.0 / 4096);
  EXPECT_EQ(format_bytes(spec_of("int3_sym_dq4"), 64, 64), 1536u + 32 + 4);
  // [172, 64]: 33024 code bits = 1032 words; 172 * 4 = 688 bits -> 22 words (16 padding bits);
  // 172 * 3 = 516 zero bits -> 17 words.
  EXPECT_EQ(format_bytes(spec_of("int3_dq4"), 172, 64), 1032u * 4 + 22 * 4 + 17 * 4 + 4);
  // [3, 5]: 3 scale codes = 12 bits -> 1 word; zeros 9 bits -> 1 word.
  EXPECT_EQ(format_bytes(spec_of("int3_dq4"), 3, 5), 8u + 4 + 4 + 4);
}

TEST(DoubleQuantSpec, Stories260kBitsPerWeight) {
  // 5 layers of [64,64], [32,64], [32,64], [64,64], [172,64], [64,172], [172,64]: 226,560 weights
  // in 35 tensors, 2,300 rows (five down projections of 64 rows, 172 columns).
  const std::vector<std::pair<int64_t, int64_t>> layer = {{64, 64},  {32, 64},  {32, 64}, {64, 64},
                                                          {172, 64}, {64, 172}, {172, 64}};
  auto bpw = [&](const char* name) {
    uint64_t bytes = 0;
    for (int l = 0; l < 5; ++l)
      for (auto [rows, cols] : layer) bytes += format_bytes(spec_of(name), rows, cols);
    return 8.0 * double(bytes) / 226560.0;
  };
  // Per layer: codes 45,312 * 3 bits = 16,992 bytes; 600 rows = 600 scale codes; zero points
  // 64*3 = 192 bits -> 6 words, 32*3 -> 3, 172*3 = 516 -> 17 (28 padding bits): 6+3+3+6+17+6+17 =
  // 58 words; 7 super-scales. `lowbit quantize --format int3_dq` prints the same 89,260 bytes.
  EXPECT_DOUBLE_EQ(bpw("int3_dq"), 8.0 * 5 * (16992 + 600 + 58 * 4 + 7 * 4) / 226560.0);
  EXPECT_DOUBLE_EQ(bpw("int3_sym_dq"), 8.0 * 5 * (16992 + 600 + 7 * 4) / 226560.0);
  EXPECT_LT(bpw("int3_dq"), 3.2);
  // _dq4: scale-code words per layer 8 + 4 + 4 + 8 + 22 + 8 + 22 = 76 (172 * 4 bits -> 22 words):
  // 87,780 bytes, 3.0996 bits/weight.
  EXPECT_DOUBLE_EQ(bpw("int3_dq4"), 8.0 * 5 * (16992 + 76 * 4 + 58 * 4 + 7 * 4) / 226560.0);
  EXPECT_DOUBLE_EQ(bpw("int3_sym_dq4"), 8.0 * 5 * (16992 + 76 * 4 + 7 * 4) / 226560.0);
}

TEST(ScaleGrid, CodesDecodeToTheLinearFp16Grid) {
  const ScaleGrid grid{0.0371f};
  for (int code = 0; code < kScaleCodeCount; ++code) {
    const float expected = round_to_fp16(0.0371f * (float(code + 1) / 256.0f));
    EXPECT_EQ(grid.scale(uint8_t(code)), expected) << code;
    if (code > 0) {
      EXPECT_GE(grid.scale(uint8_t(code)), grid.scale(uint8_t(code - 1)));
    }
    EXPECT_EQ(grid.scale(*grid.code_of(grid.scale(uint8_t(code)))), grid.scale(uint8_t(code)));
  }
  EXPECT_EQ(grid.scale(255), round_to_fp16(0.0371f));
  EXPECT_FALSE(grid.code_of(0.0371f * 0.5f + 1e-6f).has_value());
  // Tiny super-scales decode to the fp16 floor, never to 0.
  EXPECT_EQ(ScaleGrid{1e-9f}.scale(0), kMinFp16Scale);
}

TEST(ScaleGrid, FourBitCodesDecodeToTheLogFp16Grid) {
  const ScaleGrid grid{0.0371f, 4};
  EXPECT_EQ(grid.code_count(), 16);
  for (int code = 0; code < 16; ++code) {
    // The table is exp2 correctly rounded to fp32 (computed here in double).
    EXPECT_EQ(kLog4Factors[code], float(std::exp2(-double(15 - code) / 4.0))) << code;
    EXPECT_EQ(grid.scale(uint8_t(code)), round_to_fp16(0.0371f * kLog4Factors[code])) << code;
    if (code > 0) {
      EXPECT_GT(grid.scale(uint8_t(code)), grid.scale(uint8_t(code - 1)));
      // 4 codes per octave: each step is 2^(1/4) = 1.19 up to fp16 rounding.
      EXPECT_NEAR(grid.scale(uint8_t(code)) / grid.scale(uint8_t(code - 1)), std::exp2(0.25), 2e-3);
    }
    EXPECT_EQ(grid.code_of(grid.scale(uint8_t(code))), uint8_t(code));
  }
  EXPECT_EQ(grid.scale(15), round_to_fp16(0.0371f));
  EXPECT_FALSE(grid.code_of(0.0371f * 0.95f).has_value());
  EXPECT_EQ((ScaleGrid{1e-9f, 4}.scale(0)), kMinFp16Scale);
  // Nearest code: compared with every code; clamped at both ends.
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.0f, 0.05f);
  for (int i = 0; i < 2000; ++i) {
    const float s = u(rng);
    const uint8_t code = grid.nearest_code(s);
    ASSERT_LT(code, 16);
    for (int other = 0; other < 16; ++other)
      ASSERT_LE(std::fabs(grid.scale(code) - s), std::fabs(grid.scale(uint8_t(other)) - s)) << s << " " << other;
  }
  EXPECT_EQ(grid.nearest_code(10.0f), 15);
  EXPECT_EQ(grid.nearest_code(0.0f), 0);
}

TEST(ScaleGrid, NearestCodeIsTheNearestDecodedScale) {
  const ScaleGrid grid{0.5f};
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.0f, 0.6f);
  for (int i = 0; i < 2000; ++i) {
    const float s = u(rng);
    const uint8_t code = grid.nearest_code(s);
    for (int other = 0; other < kScaleCodeCount; ++other)
      ASSERT_LE(std::fabs(grid.scale(code) - s), std::fabs(grid.scale(uint8_t(other)) - s)) << s << " " << other;
  }
  EXPECT_EQ(grid.nearest_code(10.0f), 255);  // above the super-scale: clamped to the top
  EXPECT_EQ(grid.nearest_code(0.0f), 0);
}

TEST(DoubleQuantEncoder, EveryScaleIsOnTheGridAndErrorsStayWithinHalfAStep) {
  for (const char* name : {"int2_dq", "int3_dq", "int3_sym_dq", "int4g32_dq", "int3g7_sym_dq", "int8_tensor_dq",
                           "int3_dq4", "int3g7_sym_dq4", "int2g32_dq4"}) {
    const FormatSpec spec = spec_of(name);
    const int64_t rows = 6, cols = 75;
    const std::vector<float> w = test_weights(rows, cols, 11);
    Result<QuantizedMatrix> m = quantize_reference(w, rows, cols, spec);
    ASSERT_TRUE(m.ok()) << m.status().message();
    ASSERT_TRUE(validate_matrix(*m).ok()) << name;
    // The super-scale is the largest plain min/max scale of a nonzero group: exactly code 255.
    const GroupLayout layout = m->layout();
    float largest = 0.0f;
    for (int64_t pr = 0; pr < layout.param_rows; ++pr)
      for (int64_t g = 0; g < layout.groups_per_row; ++g) {
        const ValueRange range = group_range(w, layout, pr, g);
        if (range.min != 0.0f || range.max != 0.0f)
          largest = std::max(largest, fit_int_grid(range.min, range.max, spec.code_bits(), spec.zero_point()).scale);
      }
    EXPECT_EQ(m->super_scale, largest) << name;
    const ScaleGrid grid = m->scale_grid();
    for (const GroupParams& p : m->params) {
      const auto code = grid.code_of(p.scale);
      ASSERT_TRUE(code.has_value()) << name << " scale " << p.scale;
      const float factor = spec.scale_code_bits == 4 ? float(std::exp2(-double(15 - *code) / 4.0))
                                                     : float(*code + 1) / 256.0f;
      EXPECT_EQ(p.scale, std::max(round_to_fp16(m->super_scale * factor), kMinFp16Scale)) << name;
      EXPECT_EQ(p.zero, std::floor(p.zero));
    }
    // Inside its group's grid each weight is within half a step (plus float rounding).
    const std::vector<float> back = dequantize(*m);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const size_t i = size_t(r * cols + c);
        const GroupParams& p = m->params_at(r, c);
        const float lo = p.scale * (0.0f - p.zero), hi = p.scale * (float(spec.max_code()) - p.zero);
        if (w[i] < lo || w[i] > hi) continue;
        EXPECT_LE(std::fabs(back[i] - w[i]), 0.5f * p.scale * (1.0f + 1e-5f) + 1e-6f * std::fabs(w[i]))
            << name << " [" << r << ", " << c << "]";
      }
  }
}

TEST(DoubleQuantEncoder, AllZeroMatrixAndAllZeroGroups) {
  const FormatSpec spec = spec_of("int3g4_dq");
  std::vector<float> w(2 * 8, 0.0f);
  Result<QuantizedMatrix> m = quantize_reference(w, 2, 8, spec);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(validate_matrix(*m).ok());
  for (float v : dequantize(*m)) EXPECT_EQ(v, 0.0f);
  // One nonzero group: the zero groups' [-1, 1] fallback must not set the super-scale.
  w[5] = 0.01f;
  m = quantize_reference(w, 2, 8, spec);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->super_scale, fit_int_grid(0.0f, 0.01f, 3, ZeroPoint::kFitted).scale);
  EXPECT_EQ(dequantize(*m)[0], 0.0f);
}

QuantizedMatrix quantized(const char* name, int64_t rows, int64_t cols) {
  Result<QuantizedMatrix> m = quantize_reference(test_weights(rows, cols, 5), rows, cols, spec_of(name));
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(m).value() : QuantizedMatrix{};
}

TEST(DoubleQuantStorage, PackUnpackIsBitExactAndSizedAsFormatBytes) {
  for (const char* name : {"int2_dq", "int3_dq", "int3_sym_dq", "int4g32_dq", "int3g7_dq", "int8_tensor_dq",
                           "int3_dq4", "int3_sym_dq4", "int2g32_dq4", "int4_tensor_dq4"}) {
    const QuantizedMatrix m = quantized(name, 5, 75);
    Result<DoubleQuantParams> stored = pack_double_quant(m);
    ASSERT_TRUE(stored.ok()) << stored.status().message();
    EXPECT_EQ(stored->super_scale, m.super_scale);
    EXPECT_EQ(stored->scale_codes.empty(), m.spec.scale_code_bits == 4) << name;
    EXPECT_EQ(stored->scale_words.empty(), m.spec.scale_code_bits == 8) << name;
    const uint64_t bytes = 4 * packed_word_count(m.codes.size(), m.spec.code_bits()) + stored->scale_codes.size() +
                           4 * stored->scale_words.size() + 4 * stored->zero_words.size() + 4;
    EXPECT_EQ(bytes, format_bytes(m.spec, m.rows, m.cols)) << name;
    Result<std::vector<GroupParams>> back = unpack_double_quant(m.spec, m.rows, m.cols, *stored);
    ASSERT_TRUE(back.ok()) << back.status().message();
    ASSERT_EQ(back->size(), m.params.size());
    for (size_t i = 0; i < m.params.size(); ++i) {
      EXPECT_EQ((*back)[i].scale, m.params[i].scale) << name << " " << i;
      EXPECT_EQ((*back)[i].zero, m.params[i].zero) << name << " " << i;
    }
  }
}

// Unpacking `bad` as m's parameters fails with a format error.
void expect_format_error(const QuantizedMatrix& m, const DoubleQuantParams& bad, const char* what) {
  Result<std::vector<GroupParams>> r = unpack_double_quant(m.spec, m.rows, m.cols, bad);
  EXPECT_FALSE(r.ok()) << what;
  if (!r.ok()) {
    EXPECT_EQ(r.status().code(), ErrorCode::kFormat) << what;
  }
}

TEST(DoubleQuantStorage, UnpackRejectsDamagedFields) {
  const QuantizedMatrix m = quantized("int3_dq", 5, 75);
  const DoubleQuantParams good = *pack_double_quant(m);
  auto fails = [&](const DoubleQuantParams& bad, const char* what) { expect_format_error(m, bad, what); };
  for (float super : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      70000.0f}) {
    DoubleQuantParams bad = good;
    bad.super_scale = super;
    fails(bad, "super-scale");
  }
  DoubleQuantParams bad = good;
  bad.scale_codes.pop_back();
  fails(bad, "one scale code short");
  bad = good;
  bad.zero_words.push_back(0);
  fails(bad, "one zero word too many");
  bad = good;
  bad.zero_words.back() |= 0x80000000u;  // 5 zeros * 3 bits = 15 bits used: bit 31 is padding
  fails(bad, "nonzero padding");
  bad = good;
  bad.scale_words = {0};
  fails(bad, "4-bit scale words next to 8-bit codes");
  const QuantizedMatrix sym = quantized("int3_sym_dq", 5, 75);
  bad = *pack_double_quant(sym);
  bad.zero_words = {0};
  Result<std::vector<GroupParams>> r = unpack_double_quant(sym.spec, sym.rows, sym.cols, bad);
  EXPECT_FALSE(r.ok());
}

TEST(DoubleQuantStorage, UnpackRejectsDamaged4BitScaleCodes) {
  const QuantizedMatrix m = quantized("int3_dq4", 5, 75);  // 5 scale codes * 4 bits = 20 bits: one word
  const DoubleQuantParams good = *pack_double_quant(m);
  ASSERT_EQ(good.scale_words.size(), 1u);
  auto fails = [&](const DoubleQuantParams& bad, const char* what) { expect_format_error(m, bad, what); };
  DoubleQuantParams bad = good;
  bad.scale_words.clear();
  fails(bad, "no scale words");
  bad = good;
  bad.scale_words.push_back(0);
  fails(bad, "one scale word too many");
  bad = good;
  bad.scale_words[0] |= 1u << 20;  // bits 20..31 are padding
  fails(bad, "nonzero padding");
  bad = good;
  bad.scale_codes.assign(5, 15);
  fails(bad, "8-bit codes next to the words");
  EXPECT_TRUE(unpack_double_quant(m.spec, m.rows, m.cols, good).ok());
}

TEST(DoubleQuantStorage, ValidateRejectsParametersOffTheGrid) {
  QuantizedMatrix m = quantized("int3_dq", 5, 75);
  QuantizedMatrix bad = m;
  bad.params[1].scale = std::nextafter(bad.params[1].scale, 1.0f);
  EXPECT_FALSE(validate_matrix(bad).ok());
  EXPECT_FALSE(pack_double_quant(bad).ok());
  bad = m;
  bad.params[2].zero = 8.0f;  // above 3 bits
  EXPECT_FALSE(validate_matrix(bad).ok());
  bad = m;
  bad.params[2].zero = 1.5f;
  EXPECT_FALSE(validate_matrix(bad).ok());
  bad = m;
  bad.super_scale = 0.0f;
  EXPECT_FALSE(validate_matrix(bad).ok());
  EXPECT_TRUE(validate_matrix(m).ok());
}

// The Hugging Face GPTQ tensors have fp16 scales and b-bit zero fields: a double-quantized
// matrix (fp16 grid scales, integer zeros) packs into them losslessly, only larger. The
// checkpoint writer never chooses that layout for _dq (model/quantized_tensors.h), but a caller of
// pack_gptq gets the same values back.
TEST(DoubleQuantStorage, GptqPackingExpandsLosslessly) {
  for (const char* name : {"int4g32_dq", "int3_sym_dq", "int2_dq"}) {
    const QuantizedMatrix m = quantized(name, 32, 64);
    Result<GptqTensors> packed = pack_gptq(m, GptqCheckpointFormat::kGptqV2);
    ASSERT_TRUE(packed.ok()) << name << ": " << packed.status().message();
    Result<QuantizedMatrix> back = unpack_gptq(*packed, m.spec.symmetric, GptqCheckpointFormat::kGptqV2);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_FALSE(back->spec.double_quant);
    EXPECT_EQ(dequantize(*back), dequantize(m)) << name;
  }
}

}  // namespace
}  // namespace lowbit
