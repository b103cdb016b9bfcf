// linear_forward's dispatch: packed quantized weights take the fast kernels and agree with the
// reference dequantize path up to fp32 reordering; a weight swapped after packing falls back to
// the reference path; dynamic int8 activations switch int8/int4 weights to the W8A8/W4A8 kernels.
#include "model/linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/kernels.h"
#include "model/forward.h"
#include "model/synthetic.h"

namespace lowbit {
namespace {

std::vector<float> gaussian(int64_t n, uint32_t seed, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

Linear quantized_linear(const std::string& spec, int out, int in, uint32_t seed) {
  Linear l;
  l.name = "test";
  l.out_features = out;
  l.in_features = in;
  l.quantized = std::make_shared<QuantizedMatrix>(
      *quantize_reference(gaussian(int64_t(out) * in, seed, 0.05f), out, in, *parse_format_spec(spec)));
  prepare_linear(l);
  return l;
}

// max |a - b| over max |b|
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return err / scale;
}

TEST(LinearForward, PackedKernelsMatchReferencePath) {
  for (const char* spec : {"int4g32", "int8", "int3g64", "nf4", "fp8_e4m3", "int2g32_sym"}) {
    Linear fast = quantized_linear(spec, 40, 172, 3);
    ASSERT_NE(active_packed(fast), nullptr) << spec;
    Linear reference = fast;
    reference.packed = nullptr;
    EXPECT_EQ(linear_path(reference, 1), "reference");
    for (int n : {1, 5}) {
      const std::vector<float> x = gaussian(int64_t(n) * 172, 9, 1.0f);
      std::vector<float> y_fast(size_t(n) * 40), y_ref(y_fast.size());
      linear_forward(fast, x.data(), n, y_fast.data());
      linear_forward(reference, x.data(), n, y_ref.data());
      // fp32 reordering of 172-term sums: a few units of 2^-24 per term, relative to the output.
      EXPECT_LT(relative_error(y_fast, y_ref), 172 * 0x1p-22) << spec << " n=" << n;
    }
  }
}

TEST(LinearForward, SwappedWeightFallsBackToReference) {
  // Weight-only int4 runs on the int8 kernels as two int8 slices where the table says so.
  const bool sliced = lowbit::kernels::kernels().weight_only_int8_slices;
  Linear l = quantized_linear("int4g32", 8, 64, 4);
  EXPECT_EQ(linear_path(l, 1), sliced ? "gemv_qd8x2_q4p_f32" : "gemv_q4g_f32");
  l.quantized = std::make_shared<QuantizedMatrix>(*l.quantized);  // e.g. GPTQ's driver replacing it
  EXPECT_EQ(active_packed(l), nullptr);
  EXPECT_EQ(linear_path(l, 1), "reference");
  prepare_linear(l);
  EXPECT_EQ(linear_path(l, 7), sliced ? "gemm_qd8x2_q4p_f32" : "dequant_q4g_f32+sgemm");
}

TEST(LinearForward, DynamicInt8ActivationsUseQd8Kernels) {
  for (const char* spec : {"int8_sym", "int4g128"}) {
    Linear l = quantized_linear(spec, 48, 256, 5);
    const std::vector<float> x = gaussian(3 * 256, 6, 1.0f);
    std::vector<float> exact(3 * 48), q(3 * 48);
    linear_forward(l, x.data(), 3, exact.data());
    l.dynamic_int8_activations = true;
    EXPECT_EQ(linear_path(l, 1).rfind("gemv_qd8_", 0), 0u) << linear_path(l, 1);
    linear_forward(l, x.data(), 3, q.data());
    // Per-token int8 activations: each input moves by at most half a step of absmax / 127.
    EXPECT_LT(relative_error(q, exact), 0.05) << spec;
    EXPECT_GT(relative_error(q, exact), 0.0) << spec;  // the int8 path really ran
  }
}

// Bound on the fp32 reordering error between two ways of summing y[t, o] = sum_k w[o, k] x[t, k]:
// each of the `in` partial sums may round by 2^-24 relative, so |Δy| <= in · 2^-23 · sum_k |w x|
// (a factor 2 for the two orders compared).
double reorder_bound(const Linear& l, const std::vector<float>& x, int n) {
  const std::vector<float> w = weight_values(l);
  double bound = 0;
  for (int t = 0; t < n; ++t)
    for (int o = 0; o < l.out_features; ++o) {
      double sum_abs = 0;
      for (int k = 0; k < l.in_features; ++k)
        sum_abs += std::fabs(double(w[size_t(o) * l.in_features + k]) * x[size_t(t) * l.in_features + k]);
      bound = std::max(bound, l.in_features * 0x1p-23 * sum_abs);
    }
  return bound;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i])));
  return d;
}

// Weight-only int4 / int3 / int2 on a table with weight_only_int8_slices (AVX-512 VNNI) run on the
// int8 kernels with the token as two int8 slices (kernels/packed_matmul.h); other formats and
// tables keep the fp32 kernels. Either way the result is the exact product within what the two
// slices carry (each input to max|x[block]| / 64516; int8_slices_test.cc checks the bound).
TEST(LinearForward, WeightOnlyLowBitOnInt8SlicesWhereTheTableSaysSo) {
  const bool sliced = lowbit::kernels::kernels().weight_only_int8_slices;
  for (const char* spec : {"int4g128", "int3g64", "int2g32_sym", "int8_sym", "nf4"}) {
    Linear fast = quantized_linear(spec, 33, 256, 21);
    Linear reference = fast;
    reference.packed = nullptr;
    const std::string s(spec);
    const bool low_bit = s.starts_with("int4") || s.starts_with("int3") || s.starts_with("int2");
    EXPECT_EQ(linear_path(fast, 1).find("qd8x2") != std::string::npos, sliced && low_bit) << linear_path(fast, 1);
    for (int n : {1, 4}) {
      const std::vector<float> x = gaussian(int64_t(n) * 256, 22, 1.0f);
      std::vector<float> y_fast(size_t(n) * 33), y_ref(y_fast.size());
      linear_forward(fast, x.data(), n, y_fast.data());
      linear_forward(reference, x.data(), n, y_ref.data());
      // Each input is carried to within max|x| / 64516 (a bound over all blocks and tokens).
      const std::vector<float> w = weight_values(fast);
      double max_x = 0, row_abs = 0;
      for (float v : x) max_x = std::max(max_x, double(std::fabs(v)));
      for (int o = 0; o < 33; ++o) {
        double sum = 0;
        for (int k = 0; k < 256; ++k) sum += std::fabs(w[size_t(o) * 256 + k]);
        row_abs = std::max(row_abs, sum);
      }
      EXPECT_LE(max_abs_diff(y_fast, y_ref), reorder_bound(fast, x, n) + row_abs * max_x / 64516) << spec << " n=" << n;
    }
  }
  // Rows too long for the int8 kernels' int32 sums keep the fp32 kernels' layout.
  EXPECT_EQ(linear_path(quantized_linear("int4g128", 2, 65536 + 128, 23), 1), "gemv_q4g_f32");
}

TEST(LinearForward, DynamicReferencePathMatchesQd8Kernels) {
  for (const char* spec : {"int8_sym", "int8", "int4g32", "int4g128_sym", "int3g64", "int2g32_sym"}) {
    for (int n : {1, 4, 20}) {
      Linear fast = quantized_linear(spec, 33, 256, 11);
      fast.dynamic_int8_activations = true;
      Linear reference = fast;
      reference.packed = nullptr;
      EXPECT_EQ(linear_path(reference, n), "reference_qd8");
      const std::vector<float> x = gaussian(int64_t(n) * 256, 12, 1.0f);
      std::vector<float> y_fast(size_t(n) * 33), y_ref(y_fast.size());
      linear_forward(fast, x.data(), n, y_fast.data());
      linear_forward(reference, x.data(), n, y_ref.data());
      EXPECT_LE(max_abs_diff(y_fast, y_ref), reorder_bound(fast, x, n)) << spec << " n=" << n;
    }
  }
  // A format without an int8-activation kernel still rounds its activations (reference path),
  // rather than silently running with exact ones.
  Linear nf4 = quantized_linear("nf4", 4, 64, 7);
  nf4.dynamic_int8_activations = true;
  EXPECT_EQ(linear_path(nf4, 1), "reference_qd8");
  const std::vector<float> x = gaussian(64, 13, 1.0f);
  std::vector<float> exact(4), rounded(4);
  linear_forward(nf4, x.data(), 1, rounded.data());
  nf4.dynamic_int8_activations = false;
  linear_forward(nf4, x.data(), 1, exact.data());
  EXPECT_GT(max_abs_diff(rounded, exact), 0.0);
}

TEST(LinearForward, HalfPrecisionDenseWeights) {
  const std::vector<float> w = gaussian(16 * 96, 8, 0.1f), x = gaussian(96, 9, 1.0f);
  Linear l;
  l.out_features = 16;
  l.in_features = 96;
  l.weight = w.data();
  std::vector<float> y32(16), y16(16);
  linear_forward(l, x.data(), 1, y32.data());
  pack_dense_linear(l, kernels::PackedKind::kBF16);
  EXPECT_EQ(linear_path(l, 1), "gemv_bf16_f32");
  linear_forward(l, x.data(), 1, y16.data());
  EXPECT_LT(relative_error(y16, y32), 0.02);
}

// A quantized checkpoint runs its unquantized F16 / BF16 linears (here the head) at their stored
// precision, with the same values; a float checkpoint runs fp32 (the reference), whatever its dtype.
TEST(LinearForward, QuantizedCheckpointKeepsStoredHalfPrecision) {
  for (DType dtype : {DType::kF16, DType::kBF16, DType::kF32}) {
    ModelConfig c = tiny_test_config();
    c.tied_embeddings = false;
    Checkpoint ck = make_random_checkpoint(c, 3, dtype);
    auto float_model = Model::from_checkpoint(ck);
    ASSERT_TRUE(float_model.ok()) << float_model.status().message();
    EXPECT_EQ(linear_path((*float_model)->lm_head(), 1), "blas_f32");
    std::vector<std::string> names;
    for (const ExpectedTensor& e : expected_tensors(c)) {
      if (e.shape.size() != 2 || e.name == tensor_names::embed() || e.name == tensor_names::lm_head()) continue;
      std::vector<float> values = gaussian(e.shape[0] * e.shape[1], 1, 0.05f);
      ck.quantized[e.name] = std::make_shared<QuantizedMatrix>(
          *quantize_reference(values, e.shape[0], e.shape[1], *parse_format_spec("int8")));
      names.push_back(e.name);
    }
    ck.tensors = ck.tensors.without(names);
    auto model = Model::from_checkpoint(ck);
    ASSERT_TRUE(model.ok()) << model.status().message();
    const Linear& head = (*model)->lm_head();
    const std::string expected =
        dtype == DType::kF16 ? "gemv_f16_f32" : dtype == DType::kBF16 ? "gemv_bf16_f32" : "blas_f32";
    EXPECT_EQ(linear_path(head, 1), expected) << dtype_name(dtype);
    // The half-precision copy holds exactly the stored values: only the summation order differs.
    const std::vector<float> x = gaussian(2 * c.dim, 4, 1.0f);
    std::vector<float> y(size_t(2) * c.vocab_size), y_ref(y.size());
    linear_forward(head, x.data(), 2, y.data());
    Linear reference = head;
    reference.packed = nullptr;
    linear_forward(reference, x.data(), 2, y_ref.data());
    EXPECT_LE(max_abs_diff(y, y_ref), reorder_bound(head, x, 2)) << dtype_name(dtype);
  }
}

TEST(LinearForward, ModelFromCheckpointPacksEveryQuantizedLinear) {
  Checkpoint ck = make_random_checkpoint(tiny_test_config(), 3);
  const ModelConfig& c = ck.config;
  for (const ExpectedTensor& e : expected_tensors(c)) {
    if (e.shape.size() != 2 || e.name == tensor_names::embed()) continue;
    std::vector<float> values = gaussian(e.shape[0] * e.shape[1], 1, 0.05f);
    ck.quantized[e.name] = std::make_shared<QuantizedMatrix>(
        *quantize_reference(values, e.shape[0], e.shape[1], *parse_format_spec("int4g32")));
  }
  std::vector<std::string> names;
  for (const auto& [name, m] : ck.quantized) names.push_back(name);
  ck.tensors = ck.tensors.without(names);
  auto model = Model::from_checkpoint(ck);
  ASSERT_TRUE(model.ok()) << model.status().message();
  for (const LayerWeights& L : (*model)->layers())
    for (const Linear* l : L.linears()) {
      EXPECT_NE(active_packed(*l), nullptr) << l->name;
      EXPECT_FALSE(l->dynamic_int8_activations) << l->name;
    }
  // A dynamically quantized checkpoint turns on int8 activations in every quantized linear.
  ck.dynamic_int8_activations = true;
  auto dynamic = Model::from_checkpoint(ck);
  ASSERT_TRUE(dynamic.ok()) << dynamic.status().message();
  for (const LayerWeights& L : (*dynamic)->layers())
    for (const Linear* l : L.linears()) EXPECT_TRUE(l->dynamic_int8_activations) << l->name;
  ck.dynamic_int8_activations = false;
  // Same logits as the reference dequantize path, up to fp32 reordering.
  std::vector<float> fast, reference;
  Session s(*model);
  ASSERT_TRUE(s.forward(std::vector<int>{1, 2, 3, 4}, true, &fast).ok());
  for (LayerWeights& L : (*model)->mutable_layers())
    for (Linear* l : L.linears()) l->packed = nullptr;
  s.reset();
  ASSERT_TRUE(s.forward(std::vector<int>{1, 2, 3, 4}, true, &reference).ok());
  EXPECT_LT(relative_error(fast, reference), 1e-4);
}

}  // namespace
}  // namespace lowbit
