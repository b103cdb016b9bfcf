// `lowbit quantize` end to end: plans, errors with exit statuses, and the written checkpoint
// working with inspect / eval / run.
#include <gtest/gtest.h>

#include <filesystem>
#include <tuple>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "model/checkpoint.h"
#include "model/hf_checkpoint.h"
#include "model/synthetic.h"

namespace lowbit {
namespace {

using testing::run_lowbit;

class QuantizeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(save_llama2c_checkpoint(model(), make_random_checkpoint(tiny_test_config(), 5), false).ok());
    std::vector<int32_t> tokens(256);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 13 + 1) % 300);
    testing::write_bytes(dir_.file("t.bin"), tokens.data(), tokens.size() * 4);
  }
  std::string model() const { return dir_.file("m.bin"); }
  testing::TempDir dir_;
};

TEST_F(QuantizeCli, DryRunPrintsThePlanAndWritesNothing) {
  auto r = run_lowbit("quantize " + model() + " --bits 4 --group 32 --dry-run -o " + dir_.file("out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("model.layers.1.mlp.down_proj.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("int4g32 rtn"), std::string::npos);
  EXPECT_NE(r.out.find("keep"), std::string::npos);  // the embedding stays as it is
  EXPECT_FALSE(std::filesystem::exists(dir_.file("out")));
}

TEST_F(QuantizeCli, WritesACheckpointThatInspectEvalAndRunUse) {
  auto r = run_lowbit("quantize " + model() + " --bits 3 --group 32 -o " + dir_.file("q3"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("bits/weight"), std::string::npos) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir_.file("q3/lowbit-recipe.json")));
  r = run_lowbit("inspect " + dir_.file("q3") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  int quantized = 0;
  for (const auto& t : j["tensors"])
    if (t.contains("format") && t["format"] == "int3g32") {
      ++quantized;
      EXPECT_GT(t["bits_per_weight"].get<double>(), 3.0);
    }
  EXPECT_EQ(quantized, 7 * 2);
  r = run_lowbit("eval " + dir_.file("q3") + " --reference " + model() + " --tokens " + dir_.file("t.bin") +
                 " --window 64 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["kld"].get<double>(), 0.0);
  EXPECT_LT(j["top1"].get<double>(), 1.0);
  r = run_lowbit("run " + dir_.file("q3") + " --ids 1,5,9 --steps 5");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Tensors a quantization keeps in floating point are stored as the source stored them by default
// (an F16 model's embedding stays F16, exactly); --dtype overrides, and a float32 source stays f32.
TEST_F(QuantizeCli, KeptTensorsKeepTheSourceFloatTypeByDefault) {
  HfSaveOptions save;
  save.dtype = DType::kF16;
  ASSERT_TRUE(save_hf_checkpoint(dir_.file("hf16"), make_random_checkpoint(tiny_test_config(), 6), save).ok());
  auto embedding_dtype = [&](const std::string& dir) {
    auto r = run_lowbit("inspect " + dir + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    for (const auto& t : j["tensors"])
      if (t["name"] == "model.embed_tokens.weight") return t["dtype"].get<std::string>();
    return std::string("none");
  };
  for (auto [source, flags, expected] : {std::tuple{dir_.file("hf16"), "", "F16"},
                                         {dir_.file("hf16"), " --dtype f32", "F32"},
                                         {dir_.file("hf16"), " --dtype bf16", "BF16"},
                                         {model(), "", "F32"}}) {
    const std::string out = dir_.file("q" + std::to_string(std::hash<std::string>()(source + flags)));
    auto r = run_lowbit("quantize " + source + " --bits 4 --group 32" + flags + " -o " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(embedding_dtype(out), expected) << source << flags;
  }
}

// --rotate keeps the function: at int8 the rotated checkpoint is as close to the float model as
// the plain one (KLD of the same order), its head is stored apart from the embedding, and a
// quantized input is refused.
TEST_F(QuantizeCli, RotateKeepsTheModelAndUntiesTheHead) {
  auto kld_of = [&](const std::string& flags, const std::string& out) {
    auto r = run_lowbit("quantize " + model() + " --bits 8 " + flags + " -o " + dir_.file(out));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    r = run_lowbit("eval " + dir_.file(out) + " --reference " + model() + " --tokens " + dir_.file("t.bin") +
                   " --window 64 --json");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out)["kld"].get<double>();
  };
  const double plain = kld_of("", "q8"), rotated = kld_of("--rotate --rotate-seed 3", "q8r");
  EXPECT_GT(rotated, 0.0);
  EXPECT_LT(rotated, 4 * plain + 1e-6) << plain;
  auto r = run_lowbit("inspect " + dir_.file("q8r") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["config"]["tied_embeddings"], false) << r.out;
  r = run_lowbit("quantize " + dir_.file("q8r") + " --bits 4 --rotate -o " + dir_.file("twice"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("already quantized"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_.file("twice")));
}

TEST_F(QuantizeCli, BadRequestsFailWithOneClearLine) {
  auto r = run_lowbit("quantize " + model() + " --bits 5 -o " + dir_.file("x"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--bits 5"), std::string::npos) << r.err;
  EXPECT_EQ(r.err_lines(), 1) << r.err;

  r = run_lowbit("quantize " + model() + " --bits 4 --group -3 -o " + dir_.file("x"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--group -3"), std::string::npos) << r.err;
  r = run_lowbit("quantize " + model() + " --format nf4g0 -o " + dir_.file("x"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err_lines(), 1) << r.err;

  testing::write_text(dir_.file("bad.json"), "{\"rules\": [\n  {\"pattern\": \"*\", \"format\": int4}\n]}");
  r = run_lowbit("quantize " + model() + " --recipe " + dir_.file("bad.json") + " -o " + dir_.file("x"));
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("bad.json:2:"), std::string::npos) << "line and column: " << r.err;

  testing::write_text(dir_.file("warn.json"),
                      R"({"rules": [{"pattern": "nothing.*", "format": "int8"}, {"pattern": "*proj*", "format": "int8"}]})");
  r = run_lowbit("quantize " + model() + " --recipe " + dir_.file("warn.json") + " -o " + dir_.file("w"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: rule 1"), std::string::npos) << r.err;

  r = run_lowbit("quantize " + model() + " --bits 8 -o " + dir_.file("w"));
  EXPECT_EQ(r.exit_code, 2) << "existing output without --force: " << r.err;
  r = run_lowbit("quantize " + model() + " --bits 8 --force -o " + dir_.file("w"));
  EXPECT_EQ(r.exit_code, 0) << r.err;

  r = run_lowbit("quantize " + model() + " --bits 8 -o " + dir_.file("no/such/dir/out"));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_.file("no")));
}

}  // namespace
}  // namespace lowbit
