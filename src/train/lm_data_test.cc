// Held-out perplexity of the training graph equals what `lowbit eval` (eval/metrics.h, the
// runtime's KV-cache forward) reports on the same windows; batches are windows of the stream.
#include "train/lm_data.h"

#include <gtest/gtest.h>

#include <cmath>

#include "eval/metrics.h"
#include "model/synthetic.h"

namespace lowbit::train {
namespace {

TEST(HeldOutNll, MatchesTheEvaluator) {
  const ModelConfig c = tiny_test_config();
  auto model = Model::from_checkpoint(make_random_checkpoint(c, 11)).value();
  const ParamLayout layout = make_param_layout(c).value();
  const std::vector<float> params = params_from_model(layout, *model);
  const int seq = 100;  // two query blocks of the attention kernel
  std::vector<int32_t> stream(size_t(seq) * 3 + 17);  // 3 windows and a dropped tail
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = int32_t((i * 7 + i / 5) % size_t(c.vocab_size));
  const HeldOutResult mine = held_out_nll(layout, params, stream, seq, 0);
  EvalProtocol protocol;
  protocol.windows.length = seq;
  const EvalResult theirs = evaluate(model, nullptr, stream, protocol).value();
  EXPECT_EQ(mine.windows, theirs.windows);
  EXPECT_EQ(mine.tokens_scored, theirs.tokens_scored);
  // Two fp32 forwards summing in different orders: each logit differs by at most
  // ~2^-24 · (terms per sum) · layers · |logit| (see train_graph_test.cc), and a mean NLL moves by
  // at most twice the largest logit difference.
  const double tol = 2 * 0x1p-24 * 4 * c.hidden_dim * c.n_layers * 8;
  EXPECT_NEAR(mine.mean_nll, theirs.mean_nll, tol);
  std::printf("  held-out NLL %.8f vs evaluator %.8f (tolerance %.1e)\n", mine.mean_nll, theirs.mean_nll, tol);
}

TEST(SampleLmBatch, TargetsAreTheNextTokens) {
  std::vector<int32_t> stream(50);
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = int32_t(i);
  std::vector<int32_t> tokens(3 * 8), targets(3 * 8);
  sample_lm_batch(stream, 3, 8, 42, tokens.data(), targets.data());
  for (int b = 0; b < 3; ++b)
    for (int t = 0; t < 8; ++t) {
      EXPECT_EQ(targets[size_t(b * 8 + t)], tokens[size_t(b * 8 + t)] + 1);
      if (t > 0) {
        EXPECT_EQ(tokens[size_t(b * 8 + t)], tokens[size_t(b * 8 + t - 1)] + 1);
      }
    }
  std::vector<int32_t> again(tokens.size()), again_t(tokens.size());
  sample_lm_batch(stream, 3, 8, 42, again.data(), again_t.data());
  EXPECT_EQ(again, tokens);  // seeded
}

}  // namespace
}  // namespace lowbit::train
