// The speed tools end to end on small models: `lowbit synth` writes a checkpoint of a named shape,
// `lowbit quantize --method dynamic` marks int8 activations in the checkpoint (and eval/run/bench
// honour it), `lowbit bench --json` reports one object per model with the documented keys.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "model/checkpoint.h"
#include "model/synthetic.h"

namespace lowbit {
namespace {

using testing::run_lowbit;

class SpeedCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(save_llama2c_checkpoint(model(), make_random_checkpoint(tiny_test_config(), 7), false).ok());
    std::vector<int32_t> tokens(256);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 29 + 3) % 300);
    testing::write_bytes(dir_.file("t.bin"), tokens.data(), tokens.size() * 4);
  }
  std::string model() const { return dir_.file("m.bin"); }
  nlohmann::json config_of(const std::string& dir) const {
    std::ifstream f(dir + "/config.json");
    return nlohmann::json::parse(f);
  }
  testing::TempDir dir_;
};

TEST_F(SpeedCli, DynamicMethodWritesInt8WeightsAndTheActivationFlag) {
  auto r = run_lowbit("quantize " + model() + " --method dynamic -o " + dir_.file("dyn"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("activations: int8 per token"), std::string::npos) << r.out;
  const auto qc = config_of(dir_.file("dyn"))["quantization_config"];
  EXPECT_EQ(qc["activation_quantization"], "int8_dynamic_per_token") << qc.dump();
  // int8 per channel, symmetric: GPTQ layout ("lowbit_format") or lowbit's (one format per tensor).
  if (qc.contains("lowbit_format")) {
    EXPECT_EQ(qc["lowbit_format"], "int8_sym") << qc.dump();
  } else {
    ASSERT_EQ(qc["formats"].size(), 7u * 2) << qc.dump();
    for (const auto& [name, format] : qc["formats"].items()) EXPECT_EQ(format, "int8_sym") << name;
  }

  // The same weights without the flag (weight-only int8): eval must differ, since the dynamic
  // checkpoint rounds its activations.
  r = run_lowbit("quantize " + model() + " --format int8_sym -o " + dir_.file("w8"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(config_of(dir_.file("w8"))["quantization_config"].contains("activation_quantization"));
  auto eval = [&](const std::string& m) {
    auto e = run_lowbit("eval " + m + " --reference " + model() + " --tokens " + dir_.file("t.bin") +
                        " --window 64 --json");
    EXPECT_EQ(e.exit_code, 0) << e.err;
    return nlohmann::json::parse(e.out);
  };
  const auto dynamic = eval(dir_.file("dyn")), weight_only = eval(dir_.file("w8"));
  EXPECT_GT(dynamic["kld"].get<double>(), 0.0);
  EXPECT_NE(dynamic["kld"].get<double>(), weight_only["kld"].get<double>());
  r = run_lowbit("run " + dir_.file("dyn") + " --ids 1,5,9 --steps 4");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(SpeedCli, UnknownMethodFailsAndFormatsWithoutInt8KernelsWarn) {
  auto r = run_lowbit("quantize " + model() + " --method dynamic --format nf4 --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("no int8-activation kernel for nf4"), std::string::npos) << r.err;
  r = run_lowbit("quantize " + model() + " --method bogus -o " + dir_.file("x"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(std::filesystem::exists(dir_.file("x")));
}

TEST_F(SpeedCli, BenchJsonHasOneObjectPerModelWithTheDocumentedKeys) {
  ASSERT_EQ(run_lowbit("quantize " + model() + " --method dynamic -o " + dir_.file("dyn")).exit_code, 0);
  ASSERT_EQ(run_lowbit("quantize " + model() + " --bits 3 --group 32 -o " + dir_.file("q3")).exit_code, 0);
  auto r = run_lowbit("bench " + model() + " " + dir_.file("dyn") + " " + dir_.file("q3") +
                      " --threads 1 --prompt-tokens 8 --decode-tokens 4 --repeats 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 3u);
  // The dequant share applies to weight-only kernels only: what decoding int3 adds over the same
  // product on fp16 weights, as a share of decode time (timing: only its range is checked).
  EXPECT_TRUE(j[0]["dequant_share"].is_null());
  EXPECT_TRUE(j[1]["dequant_share"].is_null());
  ASSERT_TRUE(j[2]["dequant_share"].is_number()) << j[2].dump();
  EXPECT_GE(j[2]["dequant_share"].get<double>(), 0.0);
  for (const auto& m : j) {
    for (const char* key : {"model", "prefill_tokens_per_s", "decode_tokens_per_s", "weight_bytes", "peak_rss_bytes",
                            "roof_tokens_per_s", "decode_cpu_utilization"})
      EXPECT_TRUE(m.contains(key)) << key << " in " << m.dump();
    EXPECT_GT(m["prefill_tokens_per_s"].get<double>(), 0.0);
    EXPECT_GT(m["decode_tokens_per_s"].get<double>(), 0.0);
    EXPECT_GT(m["roof_tokens_per_s"].get<double>(), 0.0);
    EXPECT_GT(m["peak_rss_bytes"].get<double>(), 0.0);
    // Every kind of product timed during decode; shares of one wall time sum to 1 with "other".
    const auto& b = m["decode_breakdown"];
    double total = 0;
    // q, k, v run as one product in decode, and so do gate and up.
    for (const char* name : {"q+k+v", "o", "gate+up", "down", "head", "other"}) {
      ASSERT_TRUE(b.contains(name)) << name << " in " << b.dump();
      total += b[name]["share"].get<double>();
      if (std::string(name) != "other") {
        EXPECT_GT(b[name]["bytes_per_s"].get<double>(), 0.0) << name;
      }
    }
    EXPECT_NEAR(total, 1.0, 1e-9) << b.dump();
  }
  // int8 layer weights are about a quarter of their fp32 bytes (plus scales and the padding of
  // rows to 32 inputs and of W8A8 panels to 16 rows); the fp32 embedding and the tied fp32 head
  // (2 x 76,800 bytes of this model's ~517,000) are the same in both.
  const double fp = j[0]["weight_bytes"].get<double>(), q8 = j[1]["weight_bytes"].get<double>();
  EXPECT_LT(q8, 0.55 * fp);
  EXPECT_NE(j[1]["decode_path"].get<std::string>().find("qd8"), std::string::npos) << j[1].dump();
}

TEST_F(SpeedCli, SynthWritesTheNamedShape) {
  auto r = run_lowbit("synth --shape tiny --seed 3 -o " + dir_.file("s"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = config_of(dir_.file("s"));
  EXPECT_TRUE(c.contains("hidden_size")) << c.dump();
  r = run_lowbit("inspect " + dir_.file("s") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Same seed, same bytes; another seed, other bytes.
  ASSERT_EQ(run_lowbit("synth --shape tiny --seed 3 -o " + dir_.file("s2")).exit_code, 0);
  ASSERT_EQ(run_lowbit("synth --shape tiny --seed 4 -o " + dir_.file("s3")).exit_code, 0);
  const auto a = testing::read_bytes(dir_.file("s/model.safetensors"));
  EXPECT_EQ(a, testing::read_bytes(dir_.file("s2/model.safetensors")));
  EXPECT_NE(a, testing::read_bytes(dir_.file("s3/model.safetensors")));
  r = run_lowbit("synth --shape no-such-model -o " + dir_.file("bad"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err_lines(), 1) << r.err;
}

}  // namespace
}  // namespace lowbit
