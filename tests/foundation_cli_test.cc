// End-to-end tests of the foundation through the lowbit binary: every supported container
// loads to identical logits, bad input fails with one line and a documented exit status, and
// on stories260K the numbers match the independent reference.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "model/checkpoint.h"
#include "model/forward.h"
#include "model/synthetic.h"

namespace lowbit {
namespace {

using testing::run_lowbit;
using testing::TempDir;

std::vector<float> logits_of(const std::string& path, const std::vector<int>& tokens) {
  auto ck = load_checkpoint(path);
  EXPECT_TRUE(ck.ok()) << ck.status().message();
  if (!ck.ok()) return {};
  auto model = Model::from_checkpoint(*ck);
  EXPECT_TRUE(model.ok()) << model.status().message();
  Session s(*model);
  std::vector<float> logits;
  EXPECT_TRUE(s.forward(tokens, true, &logits).ok());
  return logits;
}

TEST(Formats, SameModelInEveryContainerGivesIdenticalLogits) {
  TempDir dir;
  Checkpoint ck = make_random_checkpoint(tiny_test_config(), 11);
  ASSERT_TRUE(save_llama2c_checkpoint(dir.file("legacy.bin"), ck, false).ok());
  ASSERT_TRUE(save_llama2c_checkpoint(dir.file("v1.bin"), ck, true).ok());
  ASSERT_TRUE(save_hf_checkpoint(dir.file("hf"), ck, DType::kF32).ok());
  ASSERT_TRUE(save_gguf_checkpoint(dir.file("m.gguf"), ck, DType::kF32).ok());
  std::vector<int> tokens = {1, 5, 99, 250, 7, 7, 13, 200};
  auto base = logits_of(dir.file("legacy.bin"), tokens);
  ASSERT_FALSE(base.empty());
  // Same fp32 weights, same operations: the llama2.c and GGUF files (interleaved RoPE) match
  // exactly; the HF directory holds permuted q/k rows and uses rotate-half, which reorders the
  // same products, so it matches to rounding.
  EXPECT_EQ(logits_of(dir.file("v1.bin"), tokens), base);
  EXPECT_EQ(logits_of(dir.file("m.gguf"), tokens), base);
  auto hf = logits_of(dir.file("hf"), tokens);
  ASSERT_EQ(hf.size(), base.size());
  double scale = 0, err = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    scale = std::max(scale, double(std::abs(base[i])));
    err = std::max(err, double(std::abs(base[i] - hf[i])));
  }
  EXPECT_LE(err, scale * 64 * std::ldexp(1.0, -24) * 8);
  // And back from HF (kHalf) to llama2.c: the permutation is undone exactly.
  auto hf_ck = load_checkpoint(dir.file("hf"));
  ASSERT_TRUE(hf_ck.ok());
  ASSERT_TRUE(save_llama2c_checkpoint(dir.file("back.bin"), *hf_ck, false).ok());
  EXPECT_EQ(testing::read_bytes(dir.file("back.bin")), testing::read_bytes(dir.file("legacy.bin")));
}

struct BadCase {
  const char* what;
  std::string path;
  int exit_code;
};

TEST(BadInput, EachFailsWithOneLineAndDocumentedStatus) {
  TempDir dir;
  Checkpoint ck = make_random_checkpoint(tiny_test_config(), 3);
  ASSERT_TRUE(save_llama2c_checkpoint(dir.file("good.bin"), ck, false).ok());
  ASSERT_TRUE(save_gguf_checkpoint(dir.file("good.gguf"), ck, DType::kF32).ok());
  auto good = testing::read_bytes(dir.file("good.bin"));
  auto gguf = testing::read_bytes(dir.file("good.gguf"));

  // Truncated llama2.c file.
  testing::write_bytes(dir.file("truncated.bin"), good.data(), good.size() / 2);
  // Header too short.
  testing::write_bytes(dir.file("tiny.bin"), good.data(), 10);
  // Absurd header value.
  auto absurd = good;
  int32_t huge = 1 << 30;
  std::memcpy(absurd.data(), &huge, 4);
  testing::write_bytes(dir.file("absurd.bin"), absurd);
  // Trailing garbage (mis-sized tensors).
  auto longer = good;
  longer.resize(good.size() + 12);
  testing::write_bytes(dir.file("longer.bin"), longer);
  // GGUF with a wrong version / truncated.
  auto gguf_bad = gguf;
  gguf_bad[4] = 99;
  testing::write_bytes(dir.file("version.gguf"), gguf_bad);
  testing::write_bytes(dir.file("trunc.gguf"), gguf.data(), gguf.size() - 100);
  // HF directory with an unsupported architecture.
  ASSERT_TRUE(save_hf_checkpoint(dir.file("hf"), ck, DType::kF32).ok());
  {
    auto cfg = testing::read_bytes(dir.file("hf/config.json"));
    std::string s(cfg.begin(), cfg.end());
    s.replace(s.find("LlamaForCausalLM"), 16, "GPT2LMHeadModel0");
    testing::write_text(dir.file("hf/config.json"), s);
  }
  const std::vector<BadCase> cases = {
      {"truncated llama2.c", dir.file("truncated.bin"), 4},
      {"short header", dir.file("tiny.bin"), 4},
      {"absurd header", dir.file("absurd.bin"), 4},
      {"trailing bytes", dir.file("longer.bin"), 4},
      {"gguf version", dir.file("version.gguf"), 4},
      {"truncated gguf", dir.file("trunc.gguf"), 4},
      {"unsupported architecture", dir.file("hf"), 5},
      {"missing file", dir.file("nope.bin"), 3},
  };
  for (const auto& c : cases) {
    auto r = run_lowbit("inspect " + c.path);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.what << ": " << r.err;
    EXPECT_EQ(r.err_lines(), 1) << c.what << ": " << r.err;
    EXPECT_NE(r.err.find(c.path), std::string::npos) << c.what << " error must name the file: " << r.err;
  }
}

TEST(BadInput, EmptyTokenFileAndBadFlags) {
  TempDir dir;
  Checkpoint ck = make_random_checkpoint(tiny_test_config(), 3);
  ASSERT_TRUE(save_llama2c_checkpoint(dir.file("m.bin"), ck, false).ok());
  testing::write_bytes(dir.file("empty.bin"), "", 0);
  auto r = run_lowbit("eval " + dir.file("m.bin") + " --tokens " + dir.file("empty.bin") + " --window 16");
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("empty token file"), std::string::npos) << r.err;
  r = run_lowbit("eval " + dir.file("m.bin"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_lowbit("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  r = run_lowbit("convert " + dir.file("m.bin") + " --to gguf -o " + dir.file("m.bin"));
  EXPECT_EQ(r.exit_code, 2) << "refuses to overwrite without --force: " << r.err;
}

// The float containers cannot hold a quantized weight: convert refuses with one line naming the
// output (it used to dereference the missing float tensor for GGUF and llama2.c) and writes nothing.
TEST(BadInput, ConvertRefusesQuantizedCheckpoints) {
  TempDir dir;
  Checkpoint ck = make_random_checkpoint(tiny_test_config(), 5);
  ASSERT_TRUE(save_llama2c_checkpoint(dir.file("m.bin"), ck, false).ok());
  auto r = run_lowbit("quantize " + dir.file("m.bin") + " --bits 4 --group 32 -o " + dir.file("q4"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* to : {"gguf", "llama2c", "llama2c-v1", "hf"}) {
    const std::string out = dir.file(std::string("out-") + to);
    r = run_lowbit("convert " + dir.file("q4") + " --to " + to + " -o " + out);
    EXPECT_EQ(r.exit_code, 5) << to << ": " << r.err;
    EXPECT_EQ(r.err_lines(), 1) << to << ": " << r.err;
    EXPECT_NE(r.err.find("is quantized"), std::string::npos) << to << ": " << r.err;
    EXPECT_NE(r.err.find(out), std::string::npos) << to << ": " << r.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << to;
  }
}

TEST(Cli, ConvertThenEvalAgreesAcrossFormats) {
  TempDir dir;
  Checkpoint ck = make_random_checkpoint(tiny_test_config(), 8);
  ASSERT_TRUE(save_llama2c_checkpoint(dir.file("m.bin"), ck, false).ok());
  std::vector<int32_t> tokens(256);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 7 + 3) % 300);
  testing::write_bytes(dir.file("t.bin"), tokens.data(), tokens.size() * 4);
  ASSERT_EQ(run_lowbit("convert " + dir.file("m.bin") + " --to gguf -o " + dir.file("m.gguf")).exit_code, 0);
  auto r = run_lowbit("eval " + dir.file("m.gguf") + " --reference " + dir.file("m.bin") + " --tokens " +
                      dir.file("t.bin") + " --window 64 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens_scored"].get<int>(), 4 * 63);
  EXPECT_NEAR(j["kld"].get<double>(), 0.0, 1e-12);
  EXPECT_EQ(j["top1"].get<double>(), 1.0);
  EXPECT_TRUE(j["protocol"].contains("window"));
}

TEST(Stories260K, InspectAndEvalThroughTheCli) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  auto r = run_lowbit("inspect " + dir + "/stories260K.bin");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("parameters:   260,032"), std::string::npos) << r.out;
  for (const char* name : {"model.embed_tokens.weight", "model.layers.4.mlp.down_proj.weight", "model.norm.weight"})
    EXPECT_NE(r.out.find(name), std::string::npos) << name;
  r = run_lowbit("inspect " + dir + "/stories260K.bin --json");
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parameters"].get<int64_t>(), 260032);
  EXPECT_EQ(j["tensors"].size(), 1u + 5 * 9 + 1);

  r = run_lowbit("eval " + dir + "/stories260K.bin --tokens " + dir + "/eval_tokens.bin --window 256 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["perplexity"].get<double>(), 4.044226770917576, 4.044226770917576 * 1e-3);
  EXPECT_EQ(j["tokens_scored"].get<int>(), 16320);

  r = run_lowbit("run " + dir + "/stories260K.bin --steps 20");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << r.out;
}

}  // namespace
}  // namespace lowbit
