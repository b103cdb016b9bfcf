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

TEST(Stories260K, RtnMatchesReferenceFigures) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  std::ifstream f(dir + "/reference.json");
  auto ref = nlohmann::json::parse(f);
  auto ck = load_llama2c_checkpoint(dir + "/stories260K.bin", dir + "/tok512.bin");
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  auto fp = *Model::from_checkpoint(*ck);
  auto tokens = *read_token_file(dir + "/eval_tokens.bin", 512);
  EvalProtocol protocol;
  protocol.windows.length = 256;

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

}  // namespace
}  // namespace lowbit
