#include "quant/rtn.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "base/half.h"
#include "testing/quant_testing.h"

namespace lowbit {
namespace {

using testing::heavy_tailed;
using testing::spec_of;

std::vector<float> importance_for(int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::exponential_distribution<float> exponential(1.0f);
  std::vector<float> importance(static_cast<size_t>(cols));
  for (float& v : importance) v = exponential(rng);
  importance[0] = 0.0f;  // a dead input column
  return importance;
}

QuantizedMatrix rtn_ok(const std::vector<float>& w, int64_t rows, int64_t cols, const FormatSpec& spec,
                       const RtnOptions& options = {}) {
  Result<QuantizedMatrix> m = rtn_quantize(w, rows, cols, spec, options);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(m).value() : QuantizedMatrix{};
}

// Weighted squared error of each parameter set, from the dequantized matrix.
std::vector<double> per_group_errors(const std::vector<float>& w, const QuantizedMatrix& m,
                                     const std::vector<float>& importance) {
  const GroupLayout layout = m.layout();
  const std::vector<float> dq = dequantize(m);
  std::vector<double> errors(size_t(layout.param_count()), 0.0);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t c = 0; c < m.cols; ++c) {
      const size_t i = size_t(r * m.cols + c);
      const double diff = double(w[i]) - double(dq[i]);
      errors[size_t(layout.param_index(r, c))] += (importance.empty() ? 1.0 : importance[size_t(c)]) * diff * diff;
    }
  }
  return errors;
}

const char* kSpecs[] = {"int2",    "int2g32",       "int3g32",   "int3_sym",  "int4g32",
                        "int4g7_sym", "int8",      "int8g32",   "int4_tensor", "nf4",
                        "nf4g32",  "fp8_e4m3",    "int3_dq",   "int2g32_sym_dq", "int4g7_dq",
                        "int3_midrise", "int2g32_midrise_dq4"};

TEST(Rtn, WithoutClippingEqualsTheReferenceEncoder) {
  const std::vector<float> w = heavy_tailed(6, 172, 1);
  for (const char* name : kSpecs) {
    const QuantizedMatrix rtn = rtn_ok(w, 6, 172, spec_of(name));
    Result<QuantizedMatrix> reference = quantize_reference(w, 6, 172, spec_of(name));
    ASSERT_TRUE(reference.ok());
    EXPECT_EQ(rtn.codes, reference->codes) << name;
    EXPECT_EQ(rtn.super_scale, reference->super_scale) << name;
    ASSERT_EQ(rtn.params.size(), reference->params.size());
    for (size_t i = 0; i < rtn.params.size(); ++i) {
      EXPECT_EQ(rtn.params[i].scale, reference->params[i].scale) << name;
      EXPECT_EQ(rtn.params[i].zero, reference->params[i].zero) << name;
    }
  }
}

// 256 x 1024 weights are enough to take the multi-threaded path; results must not change.
TEST(Rtn, LargeMatrixMatchesTheReferenceEncoder) {
  const std::vector<float> w = heavy_tailed(256, 1024, 2);
  for (const char* name : {"int4g128", "int3", "nf4"}) {
    const QuantizedMatrix rtn = rtn_ok(w, 256, 1024, spec_of(name));
    Result<QuantizedMatrix> reference = quantize_reference(w, 256, 1024, spec_of(name));
    ASSERT_TRUE(reference.ok());
    EXPECT_EQ(rtn.codes, reference->codes) << name;
    EXPECT_EQ(dequantize(rtn), dequantize(*reference)) << name;
  }
}

TEST(Rtn, ClippingNeverIncreasesErrorOfAnyGroup) {
  for (const char* name : kSpecs) {
    for (bool weighted : {false, true}) {
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{6, 172}, {3, 37}, {1, 1}, {8, 64}}) {
        const std::vector<float> w = heavy_tailed(rows, cols, 7);
        const std::vector<float> importance = weighted ? importance_for(cols, 3) : std::vector<float>{};
        RtnOptions options;
        options.clip = kDefaultClipSearch;
        options.column_importance = importance;
        const QuantizedMatrix plain = rtn_ok(w, rows, cols, spec_of(name));
        const QuantizedMatrix clipped = rtn_ok(w, rows, cols, spec_of(name), options);
        const std::vector<double> plain_errors = per_group_errors(w, plain, importance);
        const std::vector<double> clipped_errors = per_group_errors(w, clipped, importance);
        for (size_t g = 0; g < plain_errors.size(); ++g) {
          EXPECT_LE(clipped_errors[g], plain_errors[g]) << name << " group " << g;
        }
        EXPECT_LE(weighted_squared_error(w, clipped, importance), weighted_squared_error(w, plain, importance))
            << name;
      }
    }
  }
}

TEST(Rtn, ClippingHelpsLowBitHeavyTailedWeights) {
  const std::vector<float> w = heavy_tailed(16, 256, 5);
  for (const char* name : {"int2g32", "int3g32", "int3", "int4"}) {
    RtnOptions options;
    options.clip = kDefaultClipSearch;
    const double plain = weighted_squared_error(w, rtn_ok(w, 16, 256, spec_of(name)));
    const double clipped = weighted_squared_error(w, rtn_ok(w, 16, 256, spec_of(name), options));
    EXPECT_LT(clipped, plain) << name;
  }
}

// The importance-weighted search minimises the weighted error over the same candidates as the
// unweighted one, so per group it can only do better on that measure.
TEST(Rtn, ImportanceWeightedSearchWinsOnWeightedError) {
  const std::vector<float> w = heavy_tailed(8, 128, 9);
  const std::vector<float> importance = importance_for(128, 4);
  RtnOptions uniform;
  uniform.clip = kDefaultClipSearch;
  RtnOptions weighted = uniform;
  weighted.column_importance = importance;
  for (const char* name : {"int3g32", "int4", "nf4"}) {
    const std::vector<double> by_uniform = per_group_errors(w, rtn_ok(w, 8, 128, spec_of(name), uniform), importance);
    const std::vector<double> by_weighted = per_group_errors(w, rtn_ok(w, 8, 128, spec_of(name), weighted), importance);
    for (size_t g = 0; g < by_uniform.size(); ++g) EXPECT_LE(by_weighted[g], by_uniform[g]) << name << " " << g;
  }
}

TEST(Rtn, RejectsBadInputAndOptions) {
  const std::vector<float> w = heavy_tailed(2, 8, 1);
  EXPECT_EQ(rtn_quantize(w, 2, 8, spec_of("f32")).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(rtn_quantize(w, 3, 8, spec_of("int4")).status().code(), ErrorCode::kInvalidArgument);
  std::vector<float> nan_weights = w;
  nan_weights[3] = std::nanf("");
  EXPECT_EQ(rtn_quantize(nan_weights, 2, 8, spec_of("int4")).status().code(), ErrorCode::kInvalidArgument);

  RtnOptions options;
  options.clip = {-1, 0.5f};
  EXPECT_EQ(rtn_quantize(w, 2, 8, spec_of("int4"), options).status().code(), ErrorCode::kInvalidArgument);
  options.clip = {10, 0.0f};
  EXPECT_EQ(rtn_quantize(w, 2, 8, spec_of("int4"), options).status().code(), ErrorCode::kInvalidArgument);
  options.clip = kDefaultClipSearch;
  const std::vector<float> short_importance(7, 1.0f);
  options.column_importance = short_importance;
  EXPECT_EQ(rtn_quantize(w, 2, 8, spec_of("int4"), options).status().code(), ErrorCode::kInvalidArgument);
  std::vector<float> negative_importance(8, 1.0f);
  negative_importance[2] = -1.0f;
  options.column_importance = negative_importance;
  EXPECT_EQ(rtn_quantize(w, 2, 8, spec_of("int4"), options).status().code(), ErrorCode::kInvalidArgument);
}

// Double quantization: the clipping search picks among grid scales only, so every stored scale
// is the super-scale's grid value of some 8-bit code, and the super-scale is the tensor's (the
// largest plain min/max scale), not moved by the search.
TEST(Rtn, DoubleQuantizedClippingKeepsEveryScaleOnTheGrid) {
  for (const char* name : {"int3_dq", "int2g32_dq", "int4_sym_dq", "int3_tensor_dq"}) {
    const std::vector<float> w = heavy_tailed(8, 172, 5);
    RtnOptions options;
    options.clip = kDefaultClipSearch;
    const QuantizedMatrix m = rtn_ok(w, 8, 172, spec_of(name), options);
    const QuantizedMatrix plain = rtn_ok(w, 8, 172, spec_of(name));
    EXPECT_TRUE(validate_matrix(m).ok()) << name;
    EXPECT_EQ(m.super_scale, fit_scale_grid(w, m.layout(), m.spec).super_scale) << name;
    EXPECT_EQ(m.super_scale, plain.super_scale) << name;
    const ScaleGrid grid = m.scale_grid();
    int clipped = 0;
    for (size_t i = 0; i < m.params.size(); ++i) {
      const float scale = m.params[i].scale;
      const std::optional<uint8_t> code = grid.code_of(scale);
      ASSERT_TRUE(code.has_value()) << name << " scale " << scale;
      EXPECT_EQ(scale, round_to_fp16(m.super_scale * (float(*code + 1) / float(kScaleCodeCount)))) << name;
      clipped += scale < plain.params[i].scale ? 1 : 0;
    }
    EXPECT_GT(clipped, 0) << name << ": heavy tails should make the search shrink some scale";
  }
}

TEST(Rtn, EmptyMatrix) {
  RtnOptions options;
  options.clip = kDefaultClipSearch;
  const QuantizedMatrix m = rtn_ok({}, 0, 16, spec_of("int4g32"), options);
  EXPECT_TRUE(m.codes.empty());
  EXPECT_EQ(weighted_squared_error({}, m), 0.0);
}

}  // namespace
}  // namespace lowbit
