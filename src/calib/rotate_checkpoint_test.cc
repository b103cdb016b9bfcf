#include "calib/rotate_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/float_values.h"
#include "model/model.h"
#include "model/reference_forward.h"
#include "model/synthetic.h"

namespace lowbit {
namespace {

namespace tn = tensor_names;

std::vector<double> reference_logits(const Checkpoint& ck, const std::vector<int>& tokens) {
  auto model = Model::from_checkpoint(ck);
  EXPECT_TRUE(model.ok()) << model.status().message();
  return reference_forward(**model, tokens);
}

// The rotated model computes the same function: logits (double reference forward, so only the
// fp32 rounding of the rotated weights differs) agree to the bound of forward_test.cc, with
// gains folded, norms at one and the head untied; and the weights did change.
void expect_same_function(const ModelConfig& c, const RotationOptions& options, DType dtype = DType::kF32) {
  const Checkpoint ck = make_random_checkpoint(c, 3, dtype);
  auto rotated = rotate_checkpoint(ck, options);
  ASSERT_TRUE(rotated.ok()) << rotated.status().message();
  EXPECT_FALSE(rotated->config.tied_embeddings);
  ASSERT_NE(rotated->tensors.find(tn::lm_head()), nullptr);
  for (float g : float_values(*rotated->tensors.find(tn::layer(0, tn::kAttnNorm)))) ASSERT_EQ(g, 1.0f);
  for (const char* name : {tn::kQ, tn::kV, tn::kO, tn::kDown}) {
    const auto before = float_values(*ck.tensors.find(tn::layer(1, name)));
    const auto after = float_values(*rotated->tensors.find(tn::layer(1, name)));
    ASSERT_EQ(before.size(), after.size());
    EXPECT_NE(before, after) << name;
  }

  std::mt19937 rng(11);
  std::vector<int> tokens(24);
  for (int& t : tokens) t = int(rng() % uint32_t(c.vocab_size));
  const std::vector<double> want = reference_logits(ck, tokens), got = reference_logits(*rotated, tokens);
  ASSERT_EQ(want.size(), got.size());
  double scale = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::abs(want[i]));
    worst = std::max(worst, std::abs(want[i] - got[i]));
  }
  // The rotated weights are rounded once more to the stored type (an F16 or BF16 source is stored
  // as F16). F32: forward_test.cc's bound. F16 (u = 2^-11): the roundings of independent weights
  // add in quadrature, so each layer moves a logit by about u times its scale (measured 0.001 x
  // scale); 8 is slack. A gain left unfolded moves them by ~0.2 x scale.
  for (const RawTensor& t : rotated->tensors.tensors()) EXPECT_EQ(t.dtype, dtype == DType::kF32 ? DType::kF32 : DType::kF16);
  const double k = std::max(c.dim, c.hidden_dim);
  const double bound = dtype == DType::kF32
                           ? (c.n_layers + 1) * std::sqrt(k) * std::ldexp(1.0, -24) * 64 * std::max(1.0, scale)
                           : (c.n_layers + 1) * std::ldexp(1.0, -11) * 8 * std::max(1.0, scale);
  EXPECT_LT(worst, bound) << "scale " << scale;
  EXPECT_GT(scale, 0.1);
}

TEST(RotateCheckpoint, SameFunctionHadamardGqaTiedHead) { expect_same_function(tiny_test_config(), {}); }

TEST(RotateCheckpoint, SameFunctionWithoutValueHeads) {
  RotationOptions options;
  options.value_heads = false;
  options.seed = 9;
  expect_same_function(tiny_test_config(), options);
}

// dim 48 is not a power of two (QR rotation), head_dim 6, with q/k/v biases and its own head.
TEST(RotateCheckpoint, SameFunctionQrRotationBiasesUntiedHead) {
  ModelConfig c = tiny_test_config();
  c.dim = 48;
  c.n_heads = 8;
  c.n_kv_heads = 2;
  c.head_dim = 6;
  c.attention_bias = true;
  c.tied_embeddings = false;
  expect_same_function(c, {});
}

TEST(RotateCheckpoint, SameFunctionFromHalfPrecisionStoredAsF16) {
  expect_same_function(tiny_test_config(), {}, DType::kF16);
  expect_same_function(tiny_test_config(), {}, DType::kBF16);
}

TEST(RotateCheckpoint, RefusesQuantizedCheckpoint) {
  Checkpoint ck = make_random_checkpoint(tiny_test_config(), 1);
  ck.quantized[tn::layer(0, tn::kQ)] = nullptr;
  auto rotated = rotate_checkpoint(ck, {});
  ASSERT_FALSE(rotated.ok());
  EXPECT_NE(rotated.status().message().find("already quantized"), std::string::npos);
}

}  // namespace
}  // namespace lowbit
