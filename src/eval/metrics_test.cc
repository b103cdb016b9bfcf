#include "eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

#include "model/synthetic.h"
#include "testing/testing.h"

namespace lowbit {
namespace {

TEST(Metrics, UniformLogitsGivePerplexityEqualToVocab) {
  MetricAccumulator acc;
  std::vector<float> logits(50, 0.3f);
  for (int t = 0; t < 7; ++t) acc.add(logits.data(), nullptr, 50, t);
  EvalResult r = acc.result();
  EXPECT_NEAR(r.perplexity, 50.0, 50.0 * 1e-12);
  EXPECT_EQ(r.tokens_scored, 7);
  EXPECT_FALSE(r.has_reference);
}

TEST(Metrics, KlDivergenceMatchesHandComputedValue) {
  // P_ref = softmax(0, ln 3) = (1/4, 3/4); P_model = softmax(0, 0) = (1/2, 1/2).
  // KL(P_ref ‖ P_model) = 1/4 ln(1/2) + 3/4 ln(3/2).
  std::vector<float> ref = {0.0f, float(std::log(3.0))}, model = {0.0f, 0.0f};
  MetricAccumulator acc;
  acc.add(model.data(), ref.data(), 2, 1);
  EvalResult r = acc.result();
  const double expected = 0.25 * std::log(0.5) + 0.75 * std::log(1.5);
  EXPECT_NEAR(r.kld, expected, 1e-7);  // float rounding of ln 3 in the input logits
  EXPECT_NEAR(r.perplexity, 2.0, 1e-12);
  EXPECT_NEAR(r.reference_perplexity, 4.0 / 3.0, 1e-6);
  EXPECT_EQ(r.top1, 0.0);  // model's argmax (tie → index 0) differs from the reference's (1)
}

TEST(Metrics, IdenticalModelsHaveZeroKldAndFullAgreement) {
  auto model = *Model::from_checkpoint(make_random_checkpoint(tiny_test_config(), 5));
  std::vector<int32_t> tokens(200);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 37) % 300);
  EvalProtocol p;
  p.windows.length = 64;
  auto r = evaluate(model, model, tokens, p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->windows, 3);
  EXPECT_EQ(r->dropped_tokens, 200 - 192);
  EXPECT_EQ(r->tokens_scored, 3 * 63);
  EXPECT_NEAR(r->kld, 0.0, 1e-12);
  EXPECT_EQ(r->top1, 1.0);
  EXPECT_NEAR(r->perplexity, r->reference_perplexity, 1e-9);
}

TEST(Metrics, ScoreFromSkipsEarlyPositions) {
  auto model = *Model::from_checkpoint(make_random_checkpoint(tiny_test_config(), 5));
  std::vector<int32_t> tokens(128, 3);
  EvalProtocol p;
  p.windows.length = 64;
  p.score_from = 32;
  auto r = evaluate(model, nullptr, tokens, p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tokens_scored, 2 * 31);
  p.score_from = 63;
  EXPECT_EQ(evaluate(model, nullptr, tokens, p).status().code(), ErrorCode::kInvalidArgument);
}

TEST(TokenData, RejectsBadTokenFiles) {
  testing::TempDir dir;
  testing::write_bytes(dir.file("empty.bin"), "", 0);
  EXPECT_EQ(read_token_file(dir.file("empty.bin"), 10).status().code(), ErrorCode::kFormat);
  testing::write_bytes(dir.file("odd.bin"), "abcde", 5);
  EXPECT_EQ(read_token_file(dir.file("odd.bin"), 10).status().code(), ErrorCode::kFormat);
  int32_t bad[] = {1, 2, 10};
  testing::write_bytes(dir.file("bad.bin"), bad, sizeof(bad));
  auto r = read_token_file(dir.file("bad.bin"), 10);
  EXPECT_EQ(r.status().code(), ErrorCode::kFormat);
  EXPECT_NE(r.status().message().find("position 2"), std::string::npos) << r.status().message();
  EXPECT_EQ(read_token_file(dir.file("missing.bin"), 10).status().code(), ErrorCode::kIo);
}

TEST(TokenData, WindowsWithStride) {
  int64_t dropped = 0;
  auto s = window_starts(10, WindowSpec{4, 3, 0}, &dropped);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, (std::vector<int64_t>{0, 3, 6}));
  EXPECT_EQ(dropped, 0);
  EXPECT_FALSE(window_starts(3, WindowSpec{4, 0, 0}, &dropped).ok());
}

TEST(Stories260K, PerplexityMatchesReference) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  auto ck = load_llama2c_checkpoint(dir + "/stories260K.bin", dir + "/tok512.bin");
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  auto model = *Model::from_checkpoint(*ck);
  auto tokens = read_token_file(dir + "/eval_tokens.bin", 512);
  ASSERT_TRUE(tokens.ok());
  EvalProtocol p;
  p.windows.length = 256;
  auto r = evaluate(model, nullptr, *tokens, p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tokens_scored, 16320);
  const double reference_ppl = 4.044226770917576;  // reference.json "fp32.ppl"
  EXPECT_NEAR(r->perplexity, reference_ppl, reference_ppl * 1e-3);
}

}  // namespace
}  // namespace lowbit
