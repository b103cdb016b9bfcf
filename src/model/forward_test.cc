#include "model/forward.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "model/reference_forward.h"
#include "model/synthetic.h"
#include "testing/testing.h"

namespace lowbit {
namespace {

std::shared_ptr<Model> tiny_model(ModelConfig c, uint64_t seed = 1) {
  auto m = Model::from_checkpoint(make_random_checkpoint(c, seed));
  EXPECT_TRUE(m.ok()) << m.status().message();
  return *m;
}

std::vector<int> random_tokens(int n, int vocab, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::vector<int> t(static_cast<size_t>(n));
  for (auto& x : t) x = int(rng() % uint32_t(vocab));
  return t;
}

// fp32 vs double: each logit is a chain of dot products of length ≤ max(dim, hidden); the fp32
// rounding error grows like sqrt(K)·2^-24 per product relative to the magnitudes involved, and
// layers compound it. Bound: n_layers · sqrt(max K) · 2^-24 · 64 (slack for exp/softmax), times
// the logit scale.
double tolerance(const ModelConfig& c, double scale) {
  const double k = std::max(c.dim, c.hidden_dim);
  return (c.n_layers + 1) * std::sqrt(k) * std::ldexp(1.0, -24) * 64 * std::max(1.0, scale);
}

void expect_matches_reference(const ModelConfig& c) {
  auto model = tiny_model(c);
  auto tokens = random_tokens(40, c.vocab_size, 7);
  Session s(model);
  std::vector<float> logits;
  ASSERT_TRUE(s.forward(tokens, true, &logits).ok());
  std::vector<double> ref = reference_forward(*model, tokens);
  double scale = 0, max_err = 0;
  for (double r : ref) scale = std::max(scale, std::abs(r));
  for (size_t i = 0; i < ref.size(); ++i) max_err = std::max(max_err, std::abs(ref[i] - logits[i]));
  EXPECT_LT(max_err, tolerance(c, scale)) << "scale " << scale;
  EXPECT_GT(scale, 0.1);  // the model is not degenerate
}

TEST(Forward, MatchesDoubleReference) { expect_matches_reference(tiny_test_config()); }

TEST(Forward, MatchesDoubleReferenceWithHalfRopeBiasesAndUntiedHead) {
  ModelConfig c = tiny_test_config();
  c.rope_style = RopeStyle::kHalf;
  c.attention_bias = true;
  c.tied_embeddings = false;
  c.n_kv_heads = 2;
  expect_matches_reference(c);
}

TEST(Forward, KvCacheDecodeEqualsFullRecompute) {
  ModelConfig c = tiny_test_config();
  auto model = tiny_model(c);
  auto tokens = random_tokens(33, c.vocab_size, 3);
  Session full(model);
  std::vector<float> all;
  ASSERT_TRUE(full.forward(tokens, true, &all).ok());
  // Prefill 10 tokens, then decode one at a time.
  Session inc(model);
  std::vector<float> step;
  ASSERT_TRUE(inc.forward(std::span(tokens).first(10), true, &step).ok());
  std::vector<float> got(step);
  for (size_t t = 10; t < tokens.size(); ++t) {
    ASSERT_TRUE(inc.forward(std::span(tokens).subspan(t, 1), false, &step).ok());
    got.insert(got.end(), step.begin(), step.end());
  }
  ASSERT_EQ(got.size(), all.size());
  double scale = 0, max_err = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    scale = std::max(scale, double(std::abs(all[i])));
    max_err = std::max(max_err, double(std::abs(all[i] - got[i])));
  }
  // Same fp32 operations in a different blocking (gemm vs gemv): rounding-level differences.
  EXPECT_LT(max_err, tolerance(c, scale));
}

TEST(Forward, RejectsBadTokensAndOverflow) {
  ModelConfig c = tiny_test_config();
  auto model = tiny_model(c);
  Session s(model, 8);
  std::vector<float> logits;
  std::vector<int> bad = {1, c.vocab_size};
  EXPECT_EQ(s.forward(bad, false, &logits).code(), ErrorCode::kInvalidArgument);
  std::vector<int> long_seq(9, 1);
  EXPECT_EQ(s.forward(long_seq, false, &logits).code(), ErrorCode::kInvalidArgument);
}

TEST(Forward, HookSeesEveryLinearInput) {
  ModelConfig c = tiny_test_config();
  auto model = tiny_model(c);
  Session s(model);
  int calls = 0, head_calls = 0;
  s.set_linear_hook([&](const LinearInput& in) {
    ++calls;
    if (in.layer < 0) ++head_calls;
    EXPECT_EQ(in.n_tokens, 5);
  });
  std::vector<float> logits;
  ASSERT_TRUE(s.forward(random_tokens(5, c.vocab_size, 1), true, &logits).ok());
  EXPECT_EQ(calls, c.n_layers * 7 + 1);
  EXPECT_EQ(head_calls, 1);
}

// ---- stories260K (real pretrained model) ----

std::vector<int32_t> read_ints(const std::string& path) {
  auto bytes = testing::read_bytes(path);
  std::vector<int32_t> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

TEST(Stories260K, LogitsMatchIndependentImplementation) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  auto ck = load_llama2c_checkpoint(dir + "/stories260K.bin", dir + "/tok512.bin");
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  auto model = Model::from_checkpoint(*ck);
  ASSERT_TRUE(model.ok());
  auto tokens = read_ints(dir + "/eval_tokens.bin");
  auto ref_bytes = testing::read_bytes(dir + "/logits_eval_first4.bin");
  std::vector<float> ref(ref_bytes.size() / 4);
  std::memcpy(ref.data(), ref_bytes.data(), ref_bytes.size());
  ASSERT_EQ(ref.size(), size_t(4 * 256 * 512));
  double worst = 0;
  for (int w = 0; w < 4; ++w) {
    Session s(*model);
    std::vector<float> logits;
    ASSERT_TRUE(s.forward(std::span<const int>(tokens.data() + w * 256, 256), true, &logits).ok());
    for (size_t i = 0; i < logits.size(); ++i) {
      const double r = ref[size_t(w) * 256 * 512 + i];
      worst = std::max(worst, std::abs(logits[i] - r) / std::max(1.0, std::abs(r)));
    }
  }
  EXPECT_LT(worst, 1e-4);
  std::printf("max relative logit difference vs reference: %.3g\n", worst);
}

TEST(Stories260K, GreedyDecodingReproducesReference) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  auto ck = load_llama2c_checkpoint(dir + "/stories260K.bin", dir + "/tok512.bin");
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  auto model = *Model::from_checkpoint(*ck);
  std::vector<int> expected;
  std::ifstream f(dir + "/greedy_ids.txt");
  for (int id; f >> id;) expected.push_back(id);
  ASSERT_EQ(expected.size(), 200u);
  Session s(model);
  std::vector<float> logits;
  int token = 1;  // BOS
  std::vector<int> got;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(s.forward(std::span<const int>(&token, 1), false, &logits).ok());
    token = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
    got.push_back(token);
  }
  EXPECT_EQ(got, expected);
}

}  // namespace
}  // namespace lowbit
