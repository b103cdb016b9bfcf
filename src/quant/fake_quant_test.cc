// Fake quantization equals quantize-then-dequantize and lands every value on its group's grid,
// within half a grid step of the weight.
#include "quant/fake_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace lowbit {
namespace {

std::vector<float> gaussian(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.1f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(FakeQuant, EqualsDequantizedRtnAndIsIdempotent) {
  for (const char* spec_text : {"int2g32", "int3g32", "int4g128", "int4", "int8g32_sym"}) {
    const FormatSpec spec = parse_format_spec(spec_text).value();
    const int64_t rows = 7, cols = 172;  // a ragged last group, as stories260K's w2
    const std::vector<float> w = gaussian(size_t(rows * cols), 3);
    std::vector<float> fq(w.size());
    ASSERT_TRUE(fake_quantize(w, rows, cols, spec, fq).ok());
    const std::vector<float> expected = dequantize(rtn_quantize(w, rows, cols, spec).value());
    EXPECT_EQ(fq, expected) << spec_text;
    // Every value is on its group's grid, and (asymmetric min/max grids clip nothing) within half
    // a step of the weight, plus the range lost to rounding the scale to fp16 (2^-11 relative).
    const QuantizedMatrix q = rtn_quantize(w, rows, cols, spec).value();
    for (size_t i = 0; i < w.size(); ++i) {
      const GroupParams& p = q.params_at(int64_t(i) / cols, int64_t(i) % cols);
      const float code = fq[i] / p.scale + p.zero;
      EXPECT_NEAR(code, std::nearbyint(code), 1e-3f) << spec_text << " " << i;
      EXPECT_GE(std::nearbyint(code), 0.0f);
      EXPECT_LE(std::nearbyint(code), float(spec.max_code()));
      if (!spec.symmetric) {
        EXPECT_LE(std::abs(fq[i] - w[i]), p.scale * (0.5f + float(spec.max_code()) * 0x1p-11f) + 1e-7f)
            << spec_text << " " << i;
      }
    }
  }
}

TEST(FakeQuant, RejectsSizeMismatch) {
  const FormatSpec spec = parse_format_spec("int4g32").value();
  std::vector<float> w(64, 0.5f), out(63);
  EXPECT_FALSE(fake_quantize(w, 2, 32, spec, out).ok());
}

}  // namespace
}  // namespace lowbit
