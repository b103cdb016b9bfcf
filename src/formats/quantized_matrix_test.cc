#include "formats/quantized_matrix.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "base/half.h"
#include "formats/bitpack.h"
#include "formats/fp8.h"
#include "formats/nf4.h"

namespace lowbit {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

FormatSpec spec_of(const std::string& name) {
  Result<FormatSpec> spec = parse_format_spec(name);
  EXPECT_TRUE(spec.ok()) << name;
  return *spec;
}

// Gaussian weights with a few outliers, one all-zero row and one constant row, so groups of every
// kind (mixed sign, single sign, degenerate) occur.
std::vector<float> test_weights(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w(size_t(rows * cols));
  for (float& x : w) x = normal(rng);
  for (size_t i = 0; i < w.size(); i += 17) w[i] *= 12.0f;
  if (rows > 2) std::fill(w.begin() + cols, w.begin() + 2 * cols, 0.0f);
  if (rows > 3) std::fill(w.begin() + 2 * cols, w.begin() + 3 * cols, 0.25f);
  return w;
}

QuantizedMatrix quantize_ok(const std::vector<float>& w, int64_t rows, int64_t cols, const FormatSpec& spec) {
  Result<QuantizedMatrix> m = quantize_reference(w, rows, cols, spec);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(m).value() : QuantizedMatrix{};
}

struct Shape {
  int64_t rows, cols;
};
const Shape kShapes[] = {{5, 172}, {3, 37}, {1, 1}, {4, 64}, {6, 129}};

std::vector<std::string> int_spec_names() {
  std::vector<std::string> names;
  for (const char* bits : {"int2", "int3", "int4", "int8"}) {
    for (const char* granularity : {"", "g32", "g7", "_tensor"}) {
      for (const char* symmetry : {"", "_sym"}) names.push_back(std::string(bits) + granularity + symmetry);
    }
  }
  return names;
}

// Per element: inside its group's grid the error is at most half a step (plus the float rounding
// of x/scale and scale*(q - zero)); outside, the value is clamped to the nearest grid end.
TEST(QuantizedMatrix, IntFormatsRoundTripWithinHalfAStep) {
  for (const std::string& name : int_spec_names()) {
    const FormatSpec spec = spec_of(name);
    const int maxq = spec.max_code();
    for (const Shape& shape : kShapes) {
      const std::vector<float> w = test_weights(shape.rows, shape.cols, 11);
      const QuantizedMatrix m = quantize_ok(w, shape.rows, shape.cols, spec);
      ASSERT_EQ(m.codes.size(), w.size());
      ASSERT_EQ(m.params.size(), size_t(m.layout().param_count()));
      const std::vector<float> dq = dequantize(m);
      for (int64_t r = 0; r < shape.rows; ++r) {
        for (int64_t c = 0; c < shape.cols; ++c) {
          const size_t i = size_t(r * shape.cols + c);
          const GroupParams& p = m.params_at(r, c);
          ASSERT_EQ(round_to_fp16(p.scale), p.scale);
          ASSERT_EQ(p.zero, std::floor(p.zero));
          ASSERT_LE(m.codes[i], maxq);
          ASSERT_EQ(dq[i], p.scale * (float(m.codes[i]) - p.zero));  // stored params reproduce dq
          const double low = double(p.scale) * (0.0 - p.zero);
          const double high = double(p.scale) * (maxq - p.zero);
          const double slop = (std::fabs(w[i]) + std::fabs(dq[i])) * kEps;
          if (w[i] >= low && w[i] <= high) {
            EXPECT_LE(std::fabs(double(w[i]) - dq[i]), p.scale / 2.0 + slop) << name << " at " << r << "," << c;
          } else {
            EXPECT_LE(std::fabs(dq[i] - (w[i] < low ? low : high)), slop) << name << " at " << r << "," << c;
          }
        }
      }
    }
  }
}

TEST(QuantizedMatrix, RaggedLastGroupIsFitFromItsOwnColumns) {
  // [2, 172] int4g32: columns 160..171 hold small values, the rest large ones.
  std::vector<float> w(2 * 172);
  for (int64_t i = 0; i < 2 * 172; ++i) w[size_t(i)] = (i % 172 >= 160) ? 0.01f * float(i % 7) - 0.02f : 10.0f;
  const QuantizedMatrix m = quantize_ok(w, 2, 172, spec_of("int4g32"));
  ASSERT_EQ(m.params.size(), 12u);
  for (int64_t r = 0; r < 2; ++r) {
    const auto begin = w.begin() + r * 172 + 160;
    const auto [lo, hi] = std::minmax_element(begin, begin + 12);
    const GroupParams expected = fit_int_grid(*lo, *hi, 4, ZeroPoint::kFitted);
    EXPECT_EQ(m.params[size_t(r * 6 + 5)].scale, expected.scale);
    EXPECT_EQ(m.params[size_t(r * 6 + 5)].zero, expected.zero);
    EXPECT_EQ(m.params[size_t(r * 6 + 4)].scale, fit_int_grid(10.0f, 10.0f, 4, ZeroPoint::kFitted).scale);
  }
}

TEST(QuantizedMatrix, PerTensorUsesOneRangeForAllRows) {
  const std::vector<float> w = test_weights(4, 20, 3);
  const QuantizedMatrix m = quantize_ok(w, 4, 20, spec_of("int8_tensor"));
  ASSERT_EQ(m.params.size(), 1u);
  const auto [lo, hi] = std::minmax_element(w.begin(), w.end());
  EXPECT_EQ(m.params[0].scale, fit_int_grid(*lo, *hi, 8, ZeroPoint::kFitted).scale);
  EXPECT_EQ(m.params[0].zero, fit_int_grid(*lo, *hi, 8, ZeroPoint::kFitted).zero);
}

// NF4: scale = block absmax; a value between levels L_k and L_{k+1} (after dividing by absmax)
// is off by at most absmax * (L_{k+1} - L_k) / 2, plus float rounding of x/absmax and the product.
TEST(QuantizedMatrix, Nf4BlocksRoundTripWithinHalfTheLevelGap) {
  for (const char* name : {"nf4", "nf4g32"}) {
    const FormatSpec spec = spec_of(name);
    const std::vector<float> w = test_weights(5, 150, 5);  // 150 = 2*64 + 22 ragged
    const QuantizedMatrix m = quantize_ok(w, 5, 150, spec);
    const GroupLayout layout = m.layout();
    const std::vector<float> dq = dequantize(m);
    for (int64_t r = 0; r < 5; ++r) {
      for (int64_t g = 0; g < layout.groups_per_row; ++g) {
        float absmax = 0.0f;
        for (int64_t c = layout.group_begin(g); c < layout.group_end(g); ++c) {
          absmax = std::max(absmax, std::fabs(w[size_t(r * 150 + c)]));
        }
        const float scale = m.params[size_t(r * layout.groups_per_row + g)].scale;
        EXPECT_EQ(scale, absmax);
        for (int64_t c = layout.group_begin(g); c < layout.group_end(g); ++c) {
          const size_t i = size_t(r * 150 + c);
          if (absmax == 0.0f) {
            EXPECT_EQ(m.codes[i], 7);  // the exact zero level
            EXPECT_EQ(dq[i], 0.0f);
            continue;
          }
          const float v = w[i] / absmax;
          int k = 0;
          while (k < 14 && kNf4.levels[k + 1] < v) ++k;
          const double gap = double(kNf4.levels[k + 1]) - double(kNf4.levels[k]);
          EXPECT_LE(std::fabs(double(w[i]) - dq[i]), absmax * gap / 2 + 4 * absmax * kEps) << name << " " << i;
        }
      }
    }
  }
}

// FP8: scale = row absmax / 448; a normalized value v with exponent e = max(floor(log2|v|), -6)
// sits on a grid of step 2^(e-3), so the error is at most scale * 2^(e-3) / 2 plus float rounding.
TEST(QuantizedMatrix, Fp8RowsRoundTripWithinHalfAStep) {
  const std::vector<float> w = test_weights(5, 33, 9);
  const QuantizedMatrix m = quantize_ok(w, 5, 33, spec_of("fp8_e4m3"));
  const std::vector<float> dq = dequantize(m);
  for (int64_t r = 0; r < 5; ++r) {
    float absmax = 0.0f;
    for (int64_t c = 0; c < 33; ++c) absmax = std::max(absmax, std::fabs(w[size_t(r * 33 + c)]));
    const float scale = m.params[size_t(r)].scale;
    EXPECT_EQ(scale, absmax > 0.0f ? absmax / 448.0f : 1.0f);
    for (int64_t c = 0; c < 33; ++c) {
      const size_t i = size_t(r * 33 + c);
      const double v = double(w[i]) / scale;
      const int exponent = v == 0.0 ? -6 : std::max(int(std::floor(std::log2(std::fabs(v)))), -6);
      const double step = std::ldexp(1.0, exponent - 3);
      const double slop = (std::fabs(w[i]) + std::fabs(dq[i])) * 2 * kEps;
      EXPECT_LE(std::fabs(double(w[i]) - dq[i]), scale * step / 2 + slop) << i;
    }
  }
}

TEST(QuantizedMatrix, CanonicalBitStreamMatchesFormatBytes) {
  for (const char* name : {"int2g32", "int3", "int4g7_sym", "int8_tensor", "nf4", "fp8_e4m3"}) {
    const FormatSpec spec = spec_of(name);
    for (const Shape& shape : kShapes) {
      const std::vector<float> w = test_weights(shape.rows, shape.cols, 21);
      const QuantizedMatrix m = quantize_ok(w, shape.rows, shape.cols, spec);
      const std::vector<uint32_t> words = pack_bits(m.codes, spec.code_bits());
      const uint64_t param_bytes =
          uint64_t(m.params.size()) * uint64_t(spec.info().scale_bits + (spec.stores_zero() ? 16 : 0)) / 8;
      EXPECT_EQ(4 * words.size() + param_bytes, format_bytes(spec, shape.rows, shape.cols)) << name;
      Result<std::vector<uint8_t>> codes = unpack_bits(words, spec.code_bits(), m.codes.size());
      ASSERT_TRUE(codes.ok());
      EXPECT_EQ(*codes, m.codes);
    }
  }
}

TEST(QuantizedMatrix, RejectsBadInput) {
  std::vector<float> w(12, 0.5f);
  EXPECT_EQ(quantize_reference(w, 3, 5, spec_of("int4")).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(quantize_reference(w, 3, 4, spec_of("f16")).status().code(), ErrorCode::kInvalidArgument);
  w[7] = std::nanf("");
  EXPECT_EQ(quantize_reference(w, 3, 4, spec_of("int4")).status().code(), ErrorCode::kInvalidArgument);
  w[7] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(quantize_reference(w, 3, 4, spec_of("nf4")).status().code(), ErrorCode::kInvalidArgument);
  w[7] = 1e5f;  // beyond fp16 scales, fine for fp32 ones
  EXPECT_EQ(quantize_reference(w, 3, 4, spec_of("int8")).status().code(), ErrorCode::kUnsupported);
  EXPECT_TRUE(quantize_reference(w, 3, 4, spec_of("nf4")).ok());
  EXPECT_TRUE(quantize_reference(w, 3, 4, spec_of("fp8_e4m3")).ok());

  QuantizedMatrix m = quantize_ok(std::vector<float>(12, 0.5f), 3, 4, spec_of("int3"));
  EXPECT_TRUE(validate_matrix(m).ok());
  m.codes[2] = 8;
  EXPECT_EQ(validate_matrix(m).code(), ErrorCode::kInvalidArgument);
  m.codes[2] = 7;
  m.params.pop_back();
  EXPECT_EQ(validate_matrix(m).code(), ErrorCode::kInvalidArgument);
}

// g_idx (act-order) maps each input to its group: params_at and dequantize follow it, and
// validate_matrix checks its size and range.
TEST(QuantizedMatrix, GroupIndexSelectsParameters) {
  QuantizedMatrix m = quantize_ok(test_weights(3, 10, 5), 3, 10, spec_of("int4g4"));  // groups 4, 4, 2
  ASSERT_EQ(m.layout().groups_per_row, 3);
  const std::vector<float> contiguous = dequantize(m);
  // The identity map changes nothing.
  for (int c = 0; c < 10; ++c) m.g_idx.push_back(c / 4);
  EXPECT_TRUE(validate_matrix(m).ok());
  EXPECT_EQ(dequantize(m), contiguous);
  // A permuted map: input c decodes with the parameters of group g_idx[c] of its row.
  m.g_idx = {2, 0, 1, 0, 2, 1, 0, 1, 0, 1};
  ASSERT_TRUE(validate_matrix(m).ok());
  const std::vector<float> permuted = dequantize(m);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 10; ++c) {
      const GroupParams& p = m.params[size_t(r * 3 + m.g_idx[size_t(c)])];
      EXPECT_EQ(&m.params_at(r, c), &p);
      EXPECT_EQ(permuted[size_t(r * 10 + c)], p.scale * (float(m.codes[size_t(r * 10 + c)]) - p.zero));
    }
  m.g_idx[4] = 3;
  EXPECT_EQ(validate_matrix(m).code(), ErrorCode::kInvalidArgument);
  m.g_idx[4] = -1;
  EXPECT_EQ(validate_matrix(m).code(), ErrorCode::kInvalidArgument);
  m.g_idx.pop_back();
  EXPECT_EQ(validate_matrix(m).code(), ErrorCode::kInvalidArgument);
}

TEST(QuantizedMatrix, EmptyMatrixIsValid) {
  const QuantizedMatrix m = quantize_ok({}, 0, 5, spec_of("int4g32"));
  EXPECT_TRUE(m.codes.empty());
  EXPECT_TRUE(m.params.empty());
  EXPECT_TRUE(dequantize(m).empty());
}

}  // namespace
}  // namespace lowbit
