#include "quant/gptq.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "formats/gptq_pack.h"
#include "linalg/linalg.h"
#include "quant/hessian.h"

#include "testing/quant_testing.h"

namespace lowbit {
namespace {

constexpr double kFloatEps = std::numeric_limits<float>::epsilon();

using testing::heavy_tailed;
using testing::spec_of;

// Calibration inputs X [n, cols] like an LLM layer's: correlated channels (a shared low-rank part
// plus noise) and a few outlier channels `outlier_gain` times louder than the rest.
std::vector<float> layer_inputs(int64_t n, int64_t cols, uint32_t seed, float outlier_gain = 20.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t rank = 8;
  std::vector<float> mix(size_t(rank * cols));
  for (float& v : mix) v = normal(rng);
  std::vector<float> x(size_t(n * cols));
  std::vector<float> z(static_cast<size_t>(rank));
  for (int64_t t = 0; t < n; ++t) {
    for (float& v : z) v = normal(rng);
    for (int64_t c = 0; c < cols; ++c) {
      float s = 0.5f * normal(rng);
      for (int64_t k = 0; k < rank; ++k) s += z[size_t(k)] * mix[size_t(k * cols + c)];
      x[size_t(t * cols + c)] = s * ((c % 37 == 5) ? outlier_gain : 1.0f);
    }
  }
  return x;
}

std::vector<double> hessian_of(const std::vector<float>& x, int64_t n, int64_t cols) {
  HessianAccumulator acc(cols);
  acc.add(x, n);
  return acc.hessian();
}

// A linear layer to quantize: heavy-tailed weights [rows, cols], LLM-like inputs X [n, cols]
// and their Hessian.
struct TestLayer {
  int64_t rows, cols, n;
  std::vector<float> w, x;
  std::vector<double> h;
};
TestLayer test_layer(int64_t rows, int64_t cols, int64_t n, uint32_t weight_seed, uint32_t input_seed) {
  TestLayer layer{rows, cols, n, heavy_tailed(rows, cols, weight_seed), layer_inputs(n, cols, input_seed), {}};
  layer.h = hessian_of(layer.x, n, cols);
  return layer;
}

std::vector<double> scaled_identity(int64_t cols, double value) {
  std::vector<double> h(size_t(cols * cols), 0.0);
  for (int64_t c = 0; c < cols; ++c) h[size_t(c * cols + c)] = value;
  return h;
}

GptqResult gptq_ok(const std::vector<float>& w, int64_t rows, int64_t cols, const FormatSpec& spec,
                   const std::vector<double>& h, const GptqOptions& options = {}) {
  Result<GptqResult> r = gptq_quantize(w, rows, cols, spec, h, options);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(r).value() : GptqResult{};
}

// ‖X Wᵀ − X Qᵀ‖² summed over tokens and outputs, in double.
double output_error(const std::vector<float>& w, const QuantizedMatrix& q, const std::vector<float>& x, int64_t n) {
  const std::vector<float> dq = dequantize(q);
  const int64_t rows = q.rows, cols = q.cols;
  double total = 0.0;
  std::vector<double> delta(size_t(rows * cols));
  for (size_t i = 0; i < delta.size(); ++i) delta[i] = double(w[i]) - double(dq[i]);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0.0;
      for (int64_t c = 0; c < cols; ++c) s += delta[size_t(r * cols + c)] * double(x[size_t(t * cols + c)]);
      total += s * s;
    }
  return total;
}

TEST(Hessian, EqualsTwiceTheMeanOuterProductWhateverTheBatching) {
  const int64_t n = 600, cols = 13;
  const std::vector<float> x = layer_inputs(n, cols, 3);
  HessianAccumulator whole(cols), pieces(cols);
  whole.add(x, n);
  for (int64_t begin = 0; begin < n; begin += 77) {
    const int64_t rows = std::min<int64_t>(77, n - begin);
    pieces.add(std::span<const float>(x).subspan(size_t(begin * cols), size_t(rows * cols)), rows);
  }
  EXPECT_EQ(whole.rows(), n);
  const std::vector<double> a = whole.hessian(), b = pieces.hessian();
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0.0, abs_sum = 0.0;
      for (int64_t t = 0; t < n; ++t) {
        const double p = double(x[size_t(t * cols + i)]) * double(x[size_t(t * cols + j)]);
        s += p;
        abs_sum += std::fabs(p);
      }
      const double tol = 4.0 * double(n) * std::numeric_limits<double>::epsilon() * abs_sum * 2.0 / double(n);
      EXPECT_NEAR(a[size_t(i * cols + j)], 2.0 * s / double(n), tol);
      EXPECT_NEAR(b[size_t(i * cols + j)], a[size_t(i * cols + j)], tol);
      EXPECT_EQ(a[size_t(i * cols + j)], a[size_t(j * cols + i)]);
    }
  EXPECT_EQ(HessianAccumulator(4).hessian(), std::vector<double>(16, 0.0));
}

// With H = c·I no column's error propagates to another, so GPTQ is round-to-nearest exactly:
// same codes and parameters, for every format family, with and without clipping search.
TEST(Gptq, IdentityHessianEqualsRtnExactly) {
  const int64_t rows = 70, cols = 172;  // rows span two parallel chunks; a ragged last group
  const std::vector<float> w = heavy_tailed(rows, cols, 1);
  const std::vector<double> h = scaled_identity(cols, 2.0);
  for (const char* name : {"int4", "int3g32", "int4g32_sym", "int8_tensor", "int2g64", "nf4", "fp8_e4m3", "int3_dq",
                           "int2g64_sym_dq", "int3_midrise_dq4", "int2g32_midrise"}) {
    for (int clip_steps : {0, 10}) {
      for (bool act_order : {false, true}) {
        const FormatSpec spec = spec_of(name);
        RtnOptions rtn_options;
        rtn_options.clip = ClipSearch{clip_steps, 0.5f};
        GptqOptions options;
        options.clip = rtn_options.clip;
        options.act_order = act_order;  // equal diagonal: the order stays natural
        Result<QuantizedMatrix> rtn = rtn_quantize(w, rows, cols, spec, rtn_options);
        ASSERT_TRUE(rtn.ok());
        const GptqResult gptq = gptq_ok(w, rows, cols, spec, h, options);
        EXPECT_EQ(gptq.matrix.codes, rtn->codes) << name << " clip " << clip_steps;
        EXPECT_EQ(gptq.matrix.super_scale, rtn->super_scale) << name;
        ASSERT_EQ(gptq.matrix.params.size(), rtn->params.size());
        for (size_t i = 0; i < rtn->params.size(); ++i) {
          EXPECT_EQ(gptq.matrix.params[i].scale, rtn->params[i].scale) << name;
          EXPECT_EQ(gptq.matrix.params[i].zero, rtn->params[i].zero) << name;
        }
        EXPECT_EQ(dequantize(gptq.matrix), dequantize(*rtn));
        EXPECT_EQ(gptq.dead_columns, 0);
        EXPECT_EQ(gptq.percdamp_used, options.percdamp);
      }
    }
  }
}

// A diagonal H propagates no error either, and its clipping search weighs each column's squared
// error by H[c, c]: the same search as RTN with column_importance = diag H (and, unweighted, as RTN
// without importance), whose errors never exceed plain min/max's per group (rtn_test.cc); on
// these heavy-tailed rows the diag-H-weighted error is strictly lower than without clipping.
TEST(Gptq, ClipSearchWeighsErrorsByTheHessianDiagonal) {
  const int64_t rows = 70, cols = 172;
  const std::vector<float> w = heavy_tailed(rows, cols, 3);
  std::vector<double> h(size_t(cols * cols), 0.0);
  std::vector<float> diag(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) {
    diag[size_t(c)] = float(1 + (c * 7) % 13) * (c % 37 == 5 ? 16.0f : 1.0f);  // exact in float and double
    h[size_t(c * cols + c)] = diag[size_t(c)];
  }
  for (const char* name : {"int3", "int2_sym", "int2g32", "int3g64", "int4_tensor", "int3_midrise"}) {
    for (bool weighted : {true, false}) {
      const FormatSpec spec = spec_of(name);
      GptqOptions options;
      options.clip = kDefaultClipSearch;
      options.clip_hessian_weighted = weighted;
      RtnOptions rtn_options;
      rtn_options.clip = kDefaultClipSearch;
      if (weighted) rtn_options.column_importance = diag;
      Result<QuantizedMatrix> rtn = rtn_quantize(w, rows, cols, spec, rtn_options);
      ASSERT_TRUE(rtn.ok());
      const GptqResult gptq = gptq_ok(w, rows, cols, spec, h, options);
      EXPECT_EQ(gptq.matrix.codes, rtn->codes) << name << " weighted " << weighted;
      EXPECT_EQ(dequantize(gptq.matrix), dequantize(*rtn)) << name << " weighted " << weighted;
    }
    GptqOptions plain_options, weighted_options;
    weighted_options.clip = kDefaultClipSearch;
    const GptqResult plain = gptq_ok(w, rows, cols, spec_of(name), h, plain_options);
    const GptqResult clipped = gptq_ok(w, rows, cols, spec_of(name), h, weighted_options);
    const double plain_error = weighted_squared_error(w, plain.matrix, diag);
    const double clipped_error = weighted_squared_error(w, clipped.matrix, diag);
    EXPECT_LT(clipped_error, plain_error) << name;
  }
}

// The point of GPTQ: on heavy-tailed weights fed by correlated inputs with outlier channels, the
// layer's output error ‖WX − QX‖² is at least twice lower than round-to-nearest's.
TEST(Gptq, HalvesOutputErrorOfRtnAtThreeAndFourBits) {
  const auto& [rows, cols, n, w, x, h] = test_layer(96, 256, 2048, 2, 5);
  for (const char* name : {"int4", "int3", "int4g128", "int3g128"}) {
    for (bool act_order : {false, true}) {
      const FormatSpec spec = spec_of(name);
      GptqOptions options;
      options.act_order = act_order;
      const GptqResult gptq = gptq_ok(w, rows, cols, spec, h, options);
      Result<QuantizedMatrix> rtn = rtn_quantize(w, rows, cols, spec);
      ASSERT_TRUE(rtn.ok());
      const double gptq_error = output_error(w, gptq.matrix, x, n);
      const double rtn_error = output_error(w, *rtn, x, n);
      EXPECT_LE(2.0 * gptq_error, rtn_error) << name << " act_order " << act_order << ": GPTQ " << gptq_error
                                             << " RTN " << rtn_error;
    }
  }
}

// Double quantization with a real Hessian, the clipping search, refit groups and act-order:
// every scale GPTQ stores is a grid scale of the super-scale taken from the weights before any
// compensation, and the 8-bit scales cost little output error over fp16 ones (a relative scale
// error of at most 1/(2·(code + 1)), under 1 % where the scales lie within half the largest).
TEST(Gptq, DoubleQuantizedScalesStayOnTheGridAndCostLittle) {
  const auto& [rows, cols, n, w, x, h] = test_layer(48, 172, 512, 4, 6);
  for (const char* name : {"int3_dq", "int3g32_dq", "int4_sym_dq", "int2_tensor_dq"}) {
    for (bool act_order : {false, true}) {
      GptqOptions options;
      options.clip = kDefaultClipSearch;
      options.act_order = act_order;
      const FormatSpec spec = spec_of(name);
      const GptqResult dq = gptq_ok(w, rows, cols, spec, h, options);
      ASSERT_TRUE(validate_matrix(dq.matrix).ok()) << name;
      EXPECT_EQ(dq.matrix.super_scale, fit_scale_grid(w, dq.matrix.layout(), spec).super_scale) << name;
      const ScaleGrid grid = dq.matrix.scale_grid();
      for (const GroupParams& p : dq.matrix.params) {
        const std::optional<uint8_t> code = grid.code_of(p.scale);
        ASSERT_TRUE(code.has_value()) << name << " scale " << p.scale;
        EXPECT_EQ(p.scale, grid.scale(*code));
      }
      FormatSpec fp16_spec = spec;
      fp16_spec.double_quant = false;
      const GptqResult plain = gptq_ok(w, rows, cols, fp16_spec, h, options);
      EXPECT_LE(output_error(w, dq.matrix, x, n), 1.15 * output_error(w, plain.matrix, x, n))
          << name << (act_order ? " act-order" : "");
    }
  }
}

// Σ (w − q)² / (2 d²) is ½ tr(ΔW H_λ ΔWᵀ) for the dampened H_λ the run factorized.
TEST(Gptq, ProxyLossIsTheDampenedQuadratic) {
  const int64_t rows = 24, cols = 80, n = 512;
  const std::vector<float> w = heavy_tailed(rows, cols, 7);
  const std::vector<float> x = layer_inputs(n, cols, 8, 5.0f);
  std::vector<double> h = hessian_of(x, n, cols);
  for (bool act_order : {false, true}) {
    GptqOptions options;
    options.act_order = act_order;
    options.block_size = 16;
    const GptqResult r = gptq_ok(w, rows, cols, spec_of("int3g16"), h, options);
    double mean_diag = 0.0;
    for (int64_t c = 0; c < cols; ++c) mean_diag += h[size_t(c * cols + c)] / double(cols);
    const std::vector<float> dq = dequantize(r.matrix);
    double quadratic = 0.0, scale = 0.0;
    for (int64_t row = 0; row < rows; ++row)
      for (int64_t i = 0; i < cols; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          const double di = double(w[size_t(row * cols + i)]) - dq[size_t(row * cols + i)];
          const double dj = double(w[size_t(row * cols + j)]) - dq[size_t(row * cols + j)];
          const double hij = h[size_t(i * cols + j)] + (i == j ? r.percdamp_used * mean_diag : 0.0);
          quadratic += 0.5 * di * hij * dj;
          scale += 0.5 * std::fabs(di * hij * dj);
        }
    // The column loop runs in fp32: each weight carries O(cols) rounded updates.
    EXPECT_NEAR(r.proxy_loss, quadratic, double(cols) * kFloatEps * scale) << act_order;
  }
}

// A plain column-by-column GPTQ, written from the paper with no lazy blocks: every error updates
// all later columns at once. Groups are fit when their first column is reached.
QuantizedMatrix plain_gptq(std::vector<float> w, int64_t rows, int64_t cols, const FormatSpec& spec,
                           std::vector<double> h, bool act_order, double percdamp) {
  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), int64_t(0));
  if (act_order)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return h[size_t(a * cols + a)] > h[size_t(b * cols + b)]; });
  std::vector<double> u(size_t(cols * cols));
  double mean_diag = 0.0;
  for (int64_t c = 0; c < cols; ++c) mean_diag += h[size_t(c * cols + c)] / double(cols);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j)
      u[size_t(i * cols + j)] = h[size_t(perm[size_t(i)] * cols + perm[size_t(j)])] + (i == j ? percdamp * mean_diag : 0.0);
  EXPECT_TRUE(linalg::cholesky_inverse_upper(u, cols).ok());

  QuantizedMatrix m{spec, rows, cols, std::vector<uint8_t>(size_t(rows * cols)), {}};
  const GroupLayout layout = m.layout();
  m.params.resize(size_t(layout.param_count()));
  if (act_order && spec.granularity == Granularity::kGroup) m.g_idx.resize(size_t(cols));
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> row(static_cast<size_t>(cols));  // processed order
    for (int64_t j = 0; j < cols; ++j) row[size_t(j)] = w[size_t(r * cols + perm[size_t(j)])];
    GroupParams p{};
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t g = j / layout.group_size;
      if (j % layout.group_size == 0) {
        const int64_t end = std::min(cols, j + layout.group_size);
        const auto [lo, hi] = std::minmax_element(row.begin() + j, row.begin() + end);
        p = fit_group(spec, *lo, *hi);
        m.params[size_t(r * layout.groups_per_row + g)] = p;
      }
      if (!m.g_idx.empty()) m.g_idx[size_t(perm[size_t(j)])] = int32_t(g);
      const uint8_t code = encode_value(spec, row[size_t(j)], p);
      m.codes[size_t(r * cols + perm[size_t(j)])] = code;
      const float e = (row[size_t(j)] - decode_value(spec, code, p)) / float(u[size_t(j * cols + j)]);
      for (int64_t k = j + 1; k < cols; ++k) row[size_t(k)] -= e * float(u[size_t(j * cols + k)]);
    }
  }
  return m;
}

// Lazy blocks change only the order of fp32 additions, so the codes match the plain algorithm.
// A row may legitimately diverge where rounding moved a value across a rounding boundary; such
// rows must be rare (at most 1 in 20 here) and every other row must match exactly.
TEST(Gptq, LazyBlocksEqualPlainColumnByColumn) {
  const int64_t rows = 80, cols = 200, n = 1024;
  const std::vector<float> w = heavy_tailed(rows, cols, 11);
  const std::vector<float> x = layer_inputs(n, cols, 12, 8.0f);
  const std::vector<double> h = hessian_of(x, n, cols);
  for (const char* name : {"int4", "int3g32", "int4g48", "int2g64"}) {  // g48 straddles 128-blocks
    for (bool act_order : {false, true}) {
      const FormatSpec spec = spec_of(name);
      const QuantizedMatrix plain = plain_gptq(w, rows, cols, spec, h, act_order, 0.01);
      for (int block : {1, 7, 128, 1000}) {
        GptqOptions options;
        options.block_size = block;
        options.act_order = act_order;
        const GptqResult lazy = gptq_ok(w, rows, cols, spec, h, options);
        EXPECT_EQ(lazy.matrix.g_idx, plain.g_idx);
        int64_t differing_rows = 0;
        for (int64_t r = 0; r < rows; ++r) {
          const bool same = std::equal(plain.codes.begin() + r * cols, plain.codes.begin() + (r + 1) * cols,
                                       lazy.matrix.codes.begin() + r * cols);
          differing_rows += same ? 0 : 1;
        }
        EXPECT_LE(differing_rows * 20, rows) << name << " block " << block << " act_order " << act_order;
        // And the dequantized matrices agree where the rows agree: the parameters are the same.
        const std::vector<float> a = dequantize(plain), b = dequantize(lazy.matrix);
        int64_t equal_values = 0;
        for (size_t i = 0; i < a.size(); ++i) equal_values += a[i] == b[i] ? 1 : 0;
        EXPECT_GE(equal_values, int64_t(a.size()) - differing_rows * cols) << name << " block " << block;
      }
    }
  }
}

// Act-order with groups: columns are quantized loudest first and grouped in that order; g_idx
// records each input's group, has the group sizes of the layout, and survives GPTQ packing.
TEST(Gptq, ActOrderGroupsRoundTripThroughGroupIndex) {
  const int64_t rows = 64, cols = 128, n = 512;
  const std::vector<float> w = heavy_tailed(rows, cols, 21);
  const std::vector<float> x = layer_inputs(n, cols, 22);
  const std::vector<double> h = hessian_of(x, n, cols);
  GptqOptions options;
  options.act_order = true;
  const GptqResult r = gptq_ok(w, rows, cols, spec_of("int4g32"), h, options);
  const QuantizedMatrix& m = r.matrix;
  ASSERT_TRUE(validate_matrix(m).ok());
  ASSERT_EQ(m.g_idx.size(), size_t(cols));
  std::vector<int> members(4, 0);
  for (int32_t g : m.g_idx) members[size_t(g)] += 1;
  EXPECT_EQ(members, (std::vector<int>{32, 32, 32, 32}));
  // The loudest input (an outlier channel) is processed first, so it is in group 0.
  int64_t loudest = 0;
  for (int64_t c = 1; c < cols; ++c)
    if (h[size_t(c * cols + c)] > h[size_t(loudest * cols + loudest)]) loudest = c;
  EXPECT_EQ(m.g_idx[size_t(loudest)], 0);
  std::vector<int32_t> contiguous(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) contiguous[size_t(c)] = int32_t(c / 32);
  EXPECT_NE(m.g_idx, contiguous);

  for (GptqCheckpointFormat format : {GptqCheckpointFormat::kGptqV1, GptqCheckpointFormat::kGptqV2}) {
    Result<GptqTensors> packed = pack_gptq(m, format);
    if (!packed.ok()) {
      // v1 cannot store a zero point of 0; v2 always can.
      EXPECT_EQ(format, GptqCheckpointFormat::kGptqV1) << packed.status().message();
      continue;
    }
    EXPECT_EQ(packed->g_idx, m.g_idx);
    Result<QuantizedMatrix> back = unpack_gptq(*packed, false, format);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(back->g_idx, m.g_idx);
    EXPECT_EQ(dequantize(*back), dequantize(m));
  }

  // Static groups keep contiguous groups (no g_idx) even with act-order.
  options.static_groups = true;
  const GptqResult s = gptq_ok(w, rows, cols, spec_of("int4g32"), h, options);
  EXPECT_TRUE(s.matrix.g_idx.empty());
  EXPECT_TRUE(validate_matrix(s.matrix).ok());
  // Their parameters are RTN's: fit once from the original weights.
  Result<QuantizedMatrix> rtn = rtn_quantize(w, rows, cols, spec_of("int4g32"));
  for (size_t i = 0; i < rtn->params.size(); ++i) EXPECT_EQ(s.matrix.params[i].scale, rtn->params[i].scale);
}

TEST(Gptq, DeadColumnsAreZeroed) {
  const int64_t rows = 8, cols = 40, n = 256;
  const std::vector<float> w = heavy_tailed(rows, cols, 31);
  std::vector<float> x = layer_inputs(n, cols, 32, 1.0f);
  for (int64_t t = 0; t < n; ++t) x[size_t(t * cols + 3)] = x[size_t(t * cols + 17)] = 0.0f;
  const GptqResult r = gptq_ok(w, rows, cols, spec_of("int4g8"), hessian_of(x, n, cols));
  EXPECT_EQ(r.dead_columns, 2);
  const std::vector<float> dq = dequantize(r.matrix);
  for (int64_t row = 0; row < rows; ++row) {
    EXPECT_EQ(dq[size_t(row * cols + 3)], 0.0f);
    EXPECT_EQ(dq[size_t(row * cols + 17)], 0.0f);
  }
}

TEST(Gptq, IndefiniteHessianRetriesWithMoreDampeningThenFails) {
  const int64_t rows = 2, cols = 2;
  const std::vector<float> w = {0.1f, -0.2f, 0.3f, 0.05f};
  // Eigenvalues 4 and -2: the dampening λ = percdamp · mean diagonal (1) must exceed 2.
  const std::vector<double> h = {1.0, 3.0, 3.0, 1.0};
  GptqOptions options;  // percdamp 0.01, 0.1, 1 fail; 10 works
  Result<GptqResult> r = gptq_quantize(w, rows, cols, spec_of("int4"), h, options);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_DOUBLE_EQ(r->percdamp_used, 10.0);
  options.damp_retries = 2;
  Result<GptqResult> failed = gptq_quantize(w, rows, cols, spec_of("int4"), h, options);
  EXPECT_EQ(failed.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(failed.status().message().find("not positive definite"), std::string::npos);
}

TEST(Gptq, RejectsBadInput) {
  const std::vector<float> w(12, 0.5f);
  const std::vector<double> h = scaled_identity(4, 1.0);
  const FormatSpec int4 = spec_of("int4");
  EXPECT_TRUE(gptq_quantize(w, 3, 4, int4, h).ok());
  EXPECT_EQ(gptq_quantize(w, 3, 4, spec_of("f16"), h).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(gptq_quantize(w, 4, 4, int4, h).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(gptq_quantize(w, 3, 4, int4, scaled_identity(3, 1.0)).status().code(), ErrorCode::kInvalidArgument);
  std::vector<double> bad = h;
  bad[1] = std::nan("");
  EXPECT_EQ(gptq_quantize(w, 3, 4, int4, bad).status().code(), ErrorCode::kInvalidArgument);
  bad = h;
  bad[5] = -1.0;
  EXPECT_EQ(gptq_quantize(w, 3, 4, int4, bad).status().code(), ErrorCode::kInvalidArgument);
  GptqOptions options;
  options.block_size = 0;
  EXPECT_EQ(gptq_quantize(w, 3, 4, int4, h, options).status().code(), ErrorCode::kInvalidArgument);
  options = {};
  options.percdamp = -0.1;
  EXPECT_EQ(gptq_quantize(w, 3, 4, int4, h, options).status().code(), ErrorCode::kInvalidArgument);
  options = {};
  options.clip = ClipSearch{5, 0.0f};
  EXPECT_EQ(gptq_quantize(w, 3, 4, int4, h, options).status().code(), ErrorCode::kInvalidArgument);
  std::vector<float> inf = w;
  inf[0] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(gptq_quantize(inf, 3, 4, int4, h).status().code(), ErrorCode::kInvalidArgument);
  // Empty matrices are fine.
  EXPECT_TRUE(gptq_quantize({}, 0, 4, int4, h).ok());
}

}  // namespace
}  // namespace lowbit
