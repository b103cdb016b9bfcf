#include "base/status.h"

#include <gtest/gtest.h>

#include "base/half.h"

namespace lowbit {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return error(ErrorCode::kInvalidArgument, "value {} is not positive", v);
  return v;
}

Status use(int v, int* out) {
  LOWBIT_ASSIGN_OR_RETURN(*out, parse_positive(v));
  return Status::Ok();
}

TEST(Status, PropagatesErrorsWithCodesAndContext) {
  int out = 0;
  EXPECT_TRUE(use(3, &out).ok());
  EXPECT_EQ(out, 3);
  Status s = use(-1, &out).with_context("file.bin");
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "file.bin: value -1 is not positive");
  EXPECT_EQ(exit_code(ErrorCode::kFormat), 4);
}

TEST(Half, Fp16RoundTripsEveryFiniteCode) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f) continue;  // inf/NaN checked below
    float f = fp16_to_f32(uint16_t(h));
    ASSERT_EQ(f32_to_fp16(f), h) << h;
  }
  EXPECT_EQ(f32_to_fp16(1e6f), 0x7c00);
  EXPECT_EQ(f32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_fp16(65519.0f), 0x7bff);  // rounds down to max finite
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7c00);  // ties away to inf (even)
}

TEST(Half, Fp16RoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0).
  EXPECT_EQ(f32_to_fp16(1.0f + 1.0f / 2048), 0x3c00);
  // 1 + 3*2^-11 is halfway between 1+2^-10 and 1+2^-9: ties to even (1 + 2^-9).
  EXPECT_EQ(f32_to_fp16(1.0f + 3.0f / 2048), 0x3c02);
  // Smallest subnormal and half of it.
  EXPECT_EQ(f32_to_fp16(5.9604645e-8f), 0x0001);
  EXPECT_EQ(f32_to_fp16(2.9802322e-8f), 0x0000);
}

TEST(Half, Bf16) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    if (((b >> 7) & 0xff) == 0xff) continue;
    ASSERT_EQ(f32_to_bf16(bf16_to_f32(uint16_t(b))), b);
  }
  EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);  // tie -> even
}

}  // namespace
}  // namespace lowbit
