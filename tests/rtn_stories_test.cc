// RTN on the real stories260K model against the independent reference figures
// (../shared/models/stories260K/reference.json, key "rtn"), evaluated on eval_tokens.bin with the
// reference protocol (64 windows of 256, every position after the first scored).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "calib/quantize_checkpoint.h"
#include "eval/metrics.h"
#include "testing/testing.h"

namespace lowbit {
namespace {

struct Row {
  int bits, group;
  double bpw, kld, ppl, top1;
};

// The model, its FP32 runtime, eval_tokens.bin and the reference protocol (64 windows of 256).
struct StoriesSetup {
  Checkpoint ck;
  std::shared_ptr<Model> fp;
  std::vector<int32_t> tokens;
  EvalProtocol protocol;
};

StoriesSetup load_stories(const std::string& dir) {
  StoriesSetup s;
  auto ck = load_llama2c_checkpoint(dir + "/stories260K.bin", dir + "/tok512.bin");
  EXPECT_TRUE(ck.ok()) << ck.status().message();
  s.ck = *ck;
  s.fp = *Model::from_checkpoint(s.ck);
  s.tokens = *read_token_file(dir + "/eval_tokens.bin", 512);
  s.protocol.windows.length = 256;
  return s;
}

TEST(Stories260K, RtnMatchesReferenceFigures) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  std::ifstream f(dir + "/reference.json");
  auto ref = nlohmann::json::parse(f);
  StoriesSetup s = load_stories(dir);
  const Checkpoint* ck = &s.ck;
  auto fp = s.fp;
  const auto& tokens = s.tokens;
  const EvalProtocol& protocol = s.protocol;

  std::map<std::pair<int, int>, Row> got;
  for (const auto& r : ref["rtn"]) {
    const int bits = r["bits"], group = r["group"];
    const std::string spec = "int" + std::to_string(bits) + (group > 0 ? "g" + std::to_string(group) : "");
    Recipe recipe = uniform_recipe(*parse_format_spec(spec), "rtn");
    Plan plan = *resolve_plan(recipe, quantizable_tensors(ck->config));
    auto weights = rtn_quantize_plan(*ck, plan, RtnOptions{});
    ASSERT_TRUE(weights.ok()) << weights.status().message();
    auto model = Model::from_checkpoint(with_quantized_weights(*ck, *weights));
    ASSERT_TRUE(model.ok()) << model.status().message();
    auto e = evaluate(*model, fp, tokens, protocol);
    ASSERT_TRUE(e.ok());
    // Bits per weight over the quantized tensors alone (the plan also lists the kept embedding).
    uint64_t qbytes = 0;
    for (const auto& pe : plan.entries)
      if (pe.format.is_quantized()) qbytes += pe.bytes;
    Row row{bits, group, 8.0 * double(qbytes) / double(plan.quantized_weights()), e->kld, e->perplexity, e->top1};
    got[{bits, group}] = row;
    const double ref_kld = r["kld"], ref_bpw = r["bpw"];
    std::printf("int%d group %3d: bpw %.4f (ref %.4f)  ppl %.4f (ref %.4f)  KLD %.5f (ref %.5f, %+.2f%%)  top-1 %.4f\n",
                bits, group, row.bpw, ref_bpw, row.ppl, double(r["ppl"]), row.kld, ref_kld,
                100 * (row.kld / ref_kld - 1), row.top1);
    EXPECT_NEAR(row.bpw, ref_bpw, 1e-9);
    EXPECT_NEAR(row.kld, ref_kld, 0.05 * ref_kld) << spec;
  }
  // KLD falls monotonically with bits, and groups beat per-channel at equal bits.
  auto kld = [&](int bits, int group) { return got[std::make_pair(bits, group)].kld; };
  for (int group : {-1, 32}) {
    EXPECT_GT(kld(2, group), kld(3, group));
    EXPECT_GT(kld(3, group), kld(4, group));
    EXPECT_GT(kld(4, group), kld(8, group));
  }
  for (int bits : {2, 3, 4, 8}) EXPECT_LT(kld(bits, 32), kld(bits, -1)) << bits;
}

// Dynamic quantization (`lowbit quantize --method dynamic`): int8 per-channel symmetric weights
// with activations rounded to int8 at run time, one scale per 32 inputs of each token, against the
// same weights with exact activations (8-bit weight-only RTN). Issue #5 asks for at most 2x.
// Measured: 1.85x; one scale per token gave 2.8x on this tiny model (dim 64, feed-forward 172):
// the down_proj input (SwiGLU output, whose outliers differ from token to token) accounted for
// most of it, and SmoothQuant-style smoothing (alpha 0.3-0.8) did not help (docs/results.md).
TEST(Stories260K, DynamicW8A8AgainstWeightOnlyInt8) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  StoriesSetup s = load_stories(dir);
  const Checkpoint* ck = &s.ck;
  auto fp = s.fp;
  const auto& tokens = s.tokens;
  const EvalProtocol& protocol = s.protocol;
  Plan plan = *resolve_plan(uniform_recipe(*parse_format_spec("int8_sym"), "rtn"), quantizable_tensors(ck->config));
  auto weights = rtn_quantize_plan(*ck, plan, RtnOptions{});
  ASSERT_TRUE(weights.ok()) << weights.status().message();
  Checkpoint quantized = with_quantized_weights(*ck, *weights);
  auto weight_only = Model::from_checkpoint(quantized);
  quantized.dynamic_int8_activations = true;
  auto dynamic = Model::from_checkpoint(quantized);
  ASSERT_TRUE(weight_only.ok() && dynamic.ok());
  auto w = evaluate(*weight_only, fp, tokens, protocol);
  auto d = evaluate(*dynamic, fp, tokens, protocol);
  ASSERT_TRUE(w.ok() && d.ok());
  std::printf("int8_sym weight-only: KLD %.6f ppl %.4f top-1 %.4f\n", w->kld, w->perplexity, w->top1);
  std::printf("int8_sym + dynamic int8 activations: KLD %.6f ppl %.4f top-1 %.4f (%.2fx)\n", d->kld, d->perplexity,
              d->top1, d->kld / w->kld);
  EXPECT_GT(d->kld, w->kld);  // the activations really were rounded
  EXPECT_LE(d->kld, 2.0 * w->kld);  // issue #5: within 2x of 8-bit weight-only RTN
}

}  // namespace
}  // namespace lowbit
