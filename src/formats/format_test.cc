#include "formats/format.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace lowbit {
namespace {

FormatSpec parse_ok(std::string_view text) {
  Result<FormatSpec> spec = parse_format_spec(text);
  EXPECT_TRUE(spec.ok()) << text << ": " << spec.status().message();
  return spec.ok() ? *spec : FormatSpec{};
}

TEST(FormatSpec, ParsesEveryFamily) {
  EXPECT_EQ(parse_ok("int4g128"), (FormatSpec{FormatId::kInt4, Granularity::kGroup, 128, false}));
  EXPECT_EQ(parse_ok("int8"), (FormatSpec{FormatId::kInt8, Granularity::kPerChannel, 0, false}));
  EXPECT_EQ(parse_ok("int3g32_sym"), (FormatSpec{FormatId::kInt3, Granularity::kGroup, 32, true}));
  EXPECT_EQ(parse_ok("int2_tensor"), (FormatSpec{FormatId::kInt2, Granularity::kPerTensor, 0, false}));
  EXPECT_EQ(parse_ok("int8_tensor_sym"), (FormatSpec{FormatId::kInt8, Granularity::kPerTensor, 0, true}));
  EXPECT_EQ(parse_ok("int4_sym"), (FormatSpec{FormatId::kInt4, Granularity::kPerChannel, 0, true}));
  EXPECT_EQ(parse_ok("int4g32_asym"), parse_ok("int4g32"));
  FormatSpec midrise{FormatId::kInt3, Granularity::kPerChannel, 0, true, true, 4};
  midrise.midrise = true;
  EXPECT_EQ(parse_ok("int3_midrise_dq4"), midrise);
  EXPECT_EQ(parse_ok("int3_midrise_dq4").zero_point(), ZeroPoint::kMidRise);
  EXPECT_EQ(parse_ok("int3_sym_dq4").zero_point(), ZeroPoint::kMidTread);
  EXPECT_EQ(parse_ok("int3_dq4").zero_point(), ZeroPoint::kFitted);
  EXPECT_EQ(parse_ok("nf4"), (FormatSpec{FormatId::kNF4, Granularity::kGroup, 64, false}));
  EXPECT_EQ(parse_ok("nf4g128"), (FormatSpec{FormatId::kNF4, Granularity::kGroup, 128, false}));
  EXPECT_EQ(parse_ok("fp8_e4m3"), (FormatSpec{FormatId::kFP8E4M3, Granularity::kPerChannel, 0, false}));
  EXPECT_EQ(parse_ok("f16"), (FormatSpec{FormatId::kF16, Granularity::kNone, 0, false}));
  EXPECT_EQ(parse_ok("bf16"), (FormatSpec{FormatId::kBF16, Granularity::kNone, 0, false}));
  EXPECT_EQ(parse_ok("f32"), (FormatSpec{FormatId::kF32, Granularity::kNone, 0, false}));
}

TEST(FormatSpec, RejectsMalformedSpecs) {
  for (const char* bad : {"", "int", "int5", "int16", "int4g", "int4g0", "int4g032", "int4gx", "int4g-1",
                          "int4g99999999999999999999", "int4_sym_sym", "int4_tensorg32", "int4g32_tensor",
                          "int4_midrise_sym", "int4_sym_midrise", "nf4_midrise",
                          "nf4_sym", "nf4g", "fp8", "fp8_e5m2", "INT4", "int4 ", " int4", "f64"}) {
    Result<FormatSpec> spec = parse_format_spec(bad);
    EXPECT_FALSE(spec.ok()) << "'" << bad << "' should not parse";
    if (!spec.ok()) {
      EXPECT_EQ(spec.status().code(), ErrorCode::kInvalidArgument);
    }
  }
}

TEST(FormatSpec, CanonicalNamesRoundTrip) {
  for (const char* name : {"int8", "int4", "int3", "int2", "int4g128", "int4g32_sym", "int2g7", "int8_tensor",
                           "int3_tensor_sym", "int4_sym", "int2g32_midrise", "int3_midrise_dq4", "nf4", "nf4g32",
                           "fp8_e4m3", "f16", "bf16", "f32"}) {
    FormatSpec spec = parse_ok(name);
    EXPECT_EQ(format_spec_name(spec), name);
    EXPECT_EQ(parse_ok(format_spec_name(spec)), spec);
  }
  EXPECT_EQ(format_spec_name(parse_ok("int4g32_asym")), "int4g32");
}

TEST(FormatTable, NominalBitsPerWeight) {
  EXPECT_DOUBLE_EQ(format_info(FormatId::kInt4).nominal_bits_per_weight(128, false), 4.25);
  EXPECT_DOUBLE_EQ(format_info(FormatId::kInt4).nominal_bits_per_weight(128, true), 4.125);
  EXPECT_DOUBLE_EQ(format_info(FormatId::kInt3).nominal_bits_per_weight(32, false), 4.0);
  EXPECT_DOUBLE_EQ(format_info(FormatId::kNF4).nominal_bits_per_weight(64, false), 4.5);
  EXPECT_DOUBLE_EQ(format_info(FormatId::kFP8E4M3).nominal_bits_per_weight(4096, false), 8.0 + 32.0 / 4096);
  EXPECT_DOUBLE_EQ(format_info(FormatId::kF16).nominal_bits_per_weight(1, false), 16.0);
}

TEST(GroupLayout, RaggedLastGroup) {
  // 172 = 5 * 32 + 12: six groups per row, the last one 12 wide.
  GroupLayout layout = group_layout(parse_ok("int4g32"), 3, 172);
  EXPECT_EQ(layout.groups_per_row, 6);
  EXPECT_EQ(layout.param_rows, 3);
  EXPECT_EQ(layout.param_count(), 18);
  EXPECT_EQ(layout.group_begin(5), 160);
  EXPECT_EQ(layout.group_end(5), 172);
  EXPECT_EQ(layout.param_index(2, 171), 2 * 6 + 5);
  GroupLayout per_tensor = group_layout(parse_ok("int4_tensor"), 3, 172);
  EXPECT_EQ(per_tensor.param_count(), 1);
  EXPECT_EQ(per_tensor.param_index(2, 171), 0);
  EXPECT_EQ(per_tensor.row_end(0), 3);
  GroupLayout per_channel = group_layout(parse_ok("int4"), 3, 172);
  EXPECT_EQ(per_channel.param_count(), 3);
  EXPECT_EQ(per_channel.group_end(0), 172);
}

TEST(FormatBytes, HandComputedSizes) {
  // int4g32 [64, 172]: 64*172*4 = 44032 bits = 1376 words; 64 rows * 6 groups * (2 + 2) bytes.
  EXPECT_EQ(format_bytes(parse_ok("int4g32"), 64, 172), 1376u * 4 + 64 * 6 * 4);
  // int3 [3, 5]: 45 bits -> 2 words (19 padding bits counted); 3 rows of scale + zero.
  EXPECT_EQ(format_bytes(parse_ok("int3"), 3, 5), 8u + 12);
  EXPECT_EQ(format_bytes(parse_ok("int3_sym"), 3, 5), 8u + 6);  // zero not stored
  EXPECT_EQ(format_bytes(parse_ok("int3_midrise"), 3, 5), 8u + 6);  // nor here
  EXPECT_EQ(format_bytes(parse_ok("int2_tensor"), 2, 3), 4u + 4);
  // nf4 [2, 100]: 800 bits = 25 words; blocks 64 + 36 per row, fp32 absmax each.
  EXPECT_EQ(format_bytes(parse_ok("nf4"), 2, 100), 100u + 4 * 4);
  // fp8 [3, 5]: 15 bytes padded to 16, one fp32 scale per row.
  EXPECT_EQ(format_bytes(parse_ok("fp8_e4m3"), 3, 5), 16u + 12);
  EXPECT_EQ(format_bytes(parse_ok("f16"), 3, 5), 30u);
  EXPECT_EQ(format_bytes(parse_ok("bf16"), 3, 5), 30u);
  EXPECT_EQ(format_bytes(parse_ok("f32"), 3, 5), 60u);
  EXPECT_EQ(format_bytes(parse_ok("int4g128"), 0, 0), 0u);
}

TEST(FormatBytes, BitsPerWeightIsEightBytesPerElement) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1}, {3, 5}, {64, 172}, {172, 64}, {7, 129}, {32, 4096}};
  for (const char* name :
       {"int8", "int4g128", "int3g32_sym", "int2_tensor", "nf4", "nf4g32", "fp8_e4m3", "f16", "f32"}) {
    FormatSpec spec = parse_ok(name);
    for (auto [rows, cols] : shapes) {
      EXPECT_DOUBLE_EQ(format_bits_per_weight(spec, rows, cols),
                       8.0 * double(format_bytes(spec, rows, cols)) / double(rows * cols))
          << name << " " << rows << "x" << cols;
    }
  }
  // With whole groups and whole words the exact figure is the table's nominal one.
  EXPECT_DOUBLE_EQ(format_bits_per_weight(parse_ok("int4g128"), 4096, 4096), 4.25);
  EXPECT_DOUBLE_EQ(format_bits_per_weight(parse_ok("int3g128_sym"), 4096, 4096), 3.125);
  EXPECT_DOUBLE_EQ(format_bits_per_weight(parse_ok("nf4"), 4096, 4096), 4.5);
}

// stories260K (../shared/models/stories260K/README.md): 5 layers of wq [64,64], wk [32,64],
// wv [32,64], wo [64,64], w1 [172,64], w2 [64,172], w3 [172,64]; figures from its reference.json,
// which counts 32 bits of fp16 scale + fp16 zero per group (group -1 = per channel).
TEST(FormatBytes, Stories260kReferenceBitsPerWeight) {
  const std::vector<std::pair<int64_t, int64_t>> layer = {{64, 64},  {32, 64},  {32, 64}, {64, 64},
                                                          {172, 64}, {64, 172}, {172, 64}};
  struct Figure {
    const char* spec;
    double bpw;
  };
  const Figure figures[] = {
      {"int8", 8.423728813559322},    {"int8g32", 9.028248587570621}, {"int4", 4.423728813559322},
      {"int4g32", 5.028248587570621}, {"int3", 3.4237288135593222},   {"int3g32", 4.028248587570621},
      {"int2", 2.4237288135593222},   {"int2g32", 3.0282485875706215},
  };
  for (const Figure& figure : figures) {
    FormatSpec spec = parse_ok(figure.spec);
    uint64_t bytes = 0;
    uint64_t elements = 0;
    for (int l = 0; l < 5; ++l) {
      for (auto [rows, cols] : layer) {
        bytes += format_bytes(spec, rows, cols);
        elements += uint64_t(rows * cols);
      }
    }
    EXPECT_EQ(elements, 226560u);
    EXPECT_DOUBLE_EQ(8.0 * double(bytes) / double(elements), figure.bpw) << figure.spec;
  }
}

}  // namespace
}  // namespace lowbit
