// AdamW against a hand-computed step, the schedule's end points, a tiny overfit run whose loss
// must fall, resume == uninterrupted run, and state-file validation.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>

#include "testing/testing.h"
#include "train/lm_data.h"
#include "train/train_graph.h"

namespace lowbit::train {
namespace {

TEST(AdamW, MatchesHandComputedSteps) {
  // Two parameters: p0 decays, p1 (a "norm") does not.
  std::vector<float> p = {1.0f, -2.0f};
  const std::vector<uint8_t> mask = {1, 0};
  AdamWOptions o;
  o.beta1 = 0.9, o.beta2 = 0.99, o.eps = 1e-8, o.weight_decay = 0.1;
  AdamWState s;
  // Step 1, g = (0.5, -0.25): m = 0.1 g, v = 0.01 g²; m̂ = g, v̂ = g²  ->  update = sign(g) (+ wd p).
  adamw_step(p, {0.5f, -0.25f}, mask, o, 0.1, s);
  const double u0 = 0.5 / (0.5 + 1e-8) + 0.1 * 1.0, u1 = -0.25 / (0.25 + 1e-8);
  EXPECT_NEAR(p[0], 1.0 - 0.1 * u0, 1e-7);
  EXPECT_NEAR(p[1], -2.0 - 0.1 * u1, 1e-7);
  // Step 2, g = (-0.5, 0.25): m = 0.9·0.05 − 0.05 = −0.005, v = 0.99·0.0025 + 0.01·0.25 = 0.004975
  //   m̂ = −0.005/0.19, v̂ = 0.004975/0.0199.
  const double p0 = p[0], p1 = p[1];
  adamw_step(p, {-0.5f, 0.25f}, mask, o, 0.1, s);
  const double mh0 = -0.005 / 0.19, vh0 = 0.004975 / (1 - 0.99 * 0.99);
  const double mh1 = 0.0025 / 0.19, vh1 = (0.99 * 0.000625 + 0.01 * 0.0625) / (1 - 0.99 * 0.99);
  EXPECT_NEAR(p[0], p0 - 0.1 * (mh0 / (std::sqrt(vh0) + 1e-8) + 0.1 * p0), 1e-6);
  EXPECT_NEAR(p[1], p1 - 0.1 * (mh1 / (std::sqrt(vh1) + 1e-8)), 1e-6);
  EXPECT_EQ(s.step, 2);
}

TEST(ClipGradNorm, ScalesToTheBound) {
  std::vector<float> g = {3.0f, 4.0f};
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 1.0), 5.0);
  EXPECT_NEAR(g[0], 0.6f, 1e-7);
  EXPECT_NEAR(g[1], 0.8f, 1e-7);
  std::vector<float> h = {0.3f, 0.4f};
  clip_grad_norm(h, 1.0);
  EXPECT_EQ(h[0], 0.3f);
}

TEST(LrSchedule, WarmupThenCosineToTheFloor) {
  LrSchedule s{1e-3, 0.1, 10, 111};
  EXPECT_NEAR(s.at(0), 1e-4, 1e-12);
  EXPECT_NEAR(s.at(9), 1e-3, 1e-12);
  EXPECT_NEAR(s.at(10), 1e-3, 1e-12);
  EXPECT_NEAR(s.at(60), 0.55e-3, 1e-9);  // halfway through the cosine
  EXPECT_NEAR(s.at(110), 1e-4, 1e-12);
}

ModelConfig small_config() {
  ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 16;
  c.max_seq_len = 16;
  return c;
}

// A deterministic stream with structure to learn: a repeating pattern of period 7.
std::vector<int32_t> pattern_stream(size_t n, int vocab) {
  std::vector<int32_t> s(n);
  for (size_t i = 0; i < n; ++i) s[i] = int32_t((i % 7) * 3 % vocab);
  return s;
}

struct PatternRun {
  ParamLayout layout;
  std::vector<int32_t> stream;
  TrainGraph<float> graph;
  std::vector<int32_t> tokens, targets;
  PatternRun() : layout(make_param_layout(small_config()).value()), stream(pattern_stream(2000, 16)), graph(layout, 4, 16) {
    tokens.resize(64);
    targets.resize(64);
  }
  LossAndGradFn fn() {
    return [this](int64_t step, const std::vector<float>& params, std::vector<float>& grads) {
      sample_lm_batch(stream, 4, 16, step_seed(7, step), tokens.data(), targets.data());
      graph.forward(params.data(), tokens.data());
      const double loss = graph.cross_entropy(targets.data());
      graph.backward(params.data(), grads.data());
      return loss;
    };
  }
};

TEST(TrainLoop, OverfitsATinyPattern) {
  PatternRun run;
  TrainState state;
  state.params = random_init_params(run.layout, 1);
  const double initial = held_out_nll(run.layout, state.params, run.stream, 16, 8).mean_nll;
  TrainLoopOptions o;
  o.steps = 150;
  o.lr = {1e-2, 0.1, 10, 150};
  o.log_every = 50;
  auto r = run_train_loop(run.layout, o, weight_decay_mask(run.layout), 0, state, run.fn(), {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  const double final_nll = held_out_nll(run.layout, state.params, run.stream, 16, 8).mean_nll;
  // From ~ln(16) = 2.77 nats at initialisation; the pattern is deterministic after a few tokens
  // of context, so the loss must fall by an order of magnitude.
  EXPECT_NEAR(initial, std::log(16.0), 0.2);
  EXPECT_LT(final_nll, 0.1 * initial);
}

TEST(TrainLoop, ResumeEqualsUninterruptedRun) {
  lowbit::testing::TempDir tmp;
  TrainLoopOptions o;
  o.steps = 12;
  o.lr = {3e-3, 0.1, 3, 12};
  o.log_every = 100;
  PatternRun a;
  TrainState full;
  full.params = random_init_params(a.layout, 2);
  ASSERT_TRUE(run_train_loop(a.layout, o, weight_decay_mask(a.layout), 9, full, a.fn(), {}).ok());

  PatternRun b;
  TrainState part;
  part.params = random_init_params(b.layout, 2);
  // Stop after the state saved at step 6 by failing the loss from step 6 on.
  TrainLoopOptions first = o;
  first.state_path = tmp.file("state");
  first.save_every = 6;
  int64_t stop_at = 6;
  auto fn = b.fn();
  auto limited = [&](int64_t step, const std::vector<float>& p, std::vector<float>& g) {
    if (step >= stop_at) return std::nan("");  // aborts the loop after the save at step 6
    return fn(step, p, g);
  };
  EXPECT_FALSE(run_train_loop(b.layout, first, weight_decay_mask(b.layout), 9, part, limited, {}).ok());
  auto loaded = load_train_state(tmp.file("state"), 9, b.layout.total);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->step, 6);
  TrainState resumed = std::move(loaded).value();
  PatternRun c;
  ASSERT_TRUE(run_train_loop(c.layout, o, weight_decay_mask(c.layout), 9, resumed, c.fn(), {}).ok());
  EXPECT_EQ(resumed.params, full.params);

  // A state from another run, or a damaged one, is refused with a message naming the file.
  auto other = load_train_state(tmp.file("state"), 10, b.layout.total);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find(tmp.file("state")), std::string::npos);
  auto bytes = lowbit::testing::read_bytes(tmp.file("state"));
  bytes.resize(bytes.size() - 4);
  lowbit::testing::write_bytes(tmp.file("short"), bytes);
  EXPECT_FALSE(load_train_state(tmp.file("short"), 9, b.layout.total).ok());
}

}  // namespace
}  // namespace lowbit::train
