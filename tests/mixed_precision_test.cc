// Mixed precision end to end: rule recipes (attention and FFN at different formats) through
// quantize / inspect / eval / run; budgets from measured sensitivity (lowbit sensitivity, quantize
// --target-bpw / --max-size / --max-kld, the written recipe read back by --recipe); the report's
// mixed rows and SVG; and, with ../shared, GPTQ allocations on stories260K against uniform GPTQ.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "model/checkpoint.h"
#include "model/synthetic.h"
#include "testing/xml_check.h"

namespace lowbit {
namespace {

using testing::run_lowbit;

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

// Tensor name -> format ("" when kept in floating point), from `lowbit inspect --json`.
std::map<std::string, std::string> formats_of(const std::string& dir) {
  auto r = run_lowbit("inspect " + dir + " --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, std::string> out;
  const auto j = nlohmann::json::parse(r.out);
  for (const auto& t : j["tensors"])
    out[t["name"]] = t.contains("format") ? t["format"].get<std::string>() : "";
  return out;
}

class MixedCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(save_llama2c_checkpoint(model(), make_random_checkpoint(tiny_test_config(), 5), false).ok());
    std::vector<int32_t> tokens(8 * 64);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 13 + 1 + i / 7) % 300);
    testing::write_bytes(tokens_file(), tokens.data(), tokens.size() * 4);
  }
  std::string model() const { return dir_.file("m.bin"); }
  std::string tokens_file() const { return dir_.file("t.bin"); }
  std::string calib() const { return " --calib " + tokens_file() + " --nsamples 8 --seqlen 64 --windows 4 "; }
  testing::TempDir dir_;
};

TEST_F(MixedCli, RuleRecipeWithAttentionAndFfnAtDifferentFormatsSavesLoadsEvaluatesAndRuns) {
  // First match wins: layer 0's attention stays FP, other attention int8, the FFN int4g128 except
  // layer 1's down projection at int3g32.
  testing::write_text(dir_.file("mixed.json"), R"({"method": "rtn", "rules": [
    {"pattern": "model.layers.0.self_attn.*", "format": "keep"},
    {"pattern": "*.self_attn.*", "format": "int8"},
    {"pattern": "model.layers.[1-1].mlp.down_proj.weight", "format": "int3g32"},
    {"pattern": "*.mlp.*", "format": "int4g128"}]})");
  auto r = run_lowbit("quantize " + model() + " --recipe " + dir_.file("mixed.json") + " -o " + dir_.file("q"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto formats = formats_of(dir_.file("q"));
  EXPECT_EQ(formats["model.layers.0.self_attn.q_proj.weight"], "");
  EXPECT_EQ(formats["model.layers.1.self_attn.k_proj.weight"], "int8");
  EXPECT_EQ(formats["model.layers.0.mlp.down_proj.weight"], "int4g128");
  EXPECT_EQ(formats["model.layers.1.mlp.down_proj.weight"], "int3g32");
  EXPECT_EQ(formats["model.layers.1.mlp.up_proj.weight"], "int4g128");
  r = run_lowbit("eval " + dir_.file("q") + " --reference " + model() + " --tokens " + tokens_file() +
                 " --window 64 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["kld"].get<double>(), 0.0);
  EXPECT_LT(j["kld"].get<double>(), 0.5);
  r = run_lowbit("run " + dir_.file("q") + " --ids 1,5,9 --steps 5");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(MixedCli, BudgetsFromMeasuredSensitivity) {
  const std::string formats = " --formats int2,int4g32,int8 ";
  auto r = run_lowbit("sensitivity " + model() + calib() + formats + "-o " + dir_.file("sens.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Spearman"), std::string::npos) << r.out;
  const auto table = read_json(dir_.file("sens.json"));
  ASSERT_EQ(table["items"].size(), 14u);  // 2 layers × 7 linears

  // Bits/weight over the block linears: exact byte budget.
  uint64_t weights = 0;
  for (const auto& item : table["items"]) weights += item["weights"].get<uint64_t>();
  r = run_lowbit("quantize " + model() + " --sensitivity " + dir_.file("sens.json") + " --target-bpw 4.5" + calib() +
                 "-o " + dir_.file("b45"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("predicted"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("measured"), std::string::npos) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(→ ([0-9,]+) bytes for)"))) << r.out;
  const uint64_t bytes = std::stoull(std::regex_replace(m[1].str(), std::regex(","), ""));
  EXPECT_LE(bytes, uint64_t(4.5 * double(weights) / 8));
  // Some tensors above and some below 4.5 bits: a real mix.
  auto chosen = formats_of(dir_.file("b45"));
  std::set<std::string> kinds;
  for (const auto& [name, f] : chosen)
    if (name.find("_proj") != std::string::npos) kinds.insert(f);
  EXPECT_GE(kinds.size(), 2u);
  // The written recipe is an ordinary recipe: --recipe reproduces the same formats.
  ASSERT_TRUE(std::filesystem::exists(dir_.file("b45/lowbit-recipe.json")));
  ASSERT_TRUE(std::filesystem::exists(dir_.file("b45/lowbit-sensitivity.json")));
  r = run_lowbit("quantize " + model() + " --recipe " + dir_.file("b45/lowbit-recipe.json") + " -o " + dir_.file("again"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(formats_of(dir_.file("again")), chosen);

  // --max-kld: the smallest allocation whose predicted KLD is within the limit.
  r = run_lowbit("quantize " + model() + " --sensitivity " + dir_.file("sens.json") + " --max-kld 0.05 --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(predicted KLD ([0-9.]+) \(sum)"))) << r.out;
  EXPECT_LE(std::stod(m[1].str()), 0.05);
  // --max-size counts the whole model; a size below the FP-kept tensors alone is an error.
  r = run_lowbit("quantize " + model() + " --sensitivity " + dir_.file("sens.json") + " --max-size 120kB --dry-run");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run_lowbit("quantize " + model() + " --sensitivity " + dir_.file("sens.json") + " --max-size 10kB --dry-run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err_lines(), 1) << r.err;

  // Infeasible budgets and conflicting flags: one clear line, exit 2.
  r = run_lowbit("quantize " + model() + " --sensitivity " + dir_.file("sens.json") + " --target-bpw 2.1 --dry-run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("below the smallest allocation"), std::string::npos) << r.err;
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  r = run_lowbit("quantize " + model() + " --sensitivity " + dir_.file("sens.json") + " --max-kld 0 --dry-run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  r = run_lowbit("quantize " + model() + " --sensitivity " + dir_.file("sens.json") +
                 " --target-bpw 4 --max-kld 0.1 --dry-run");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  testing::write_text(dir_.file("bad.json"), "{\"formats\": [\"int4\"], \"items\": 3}");
  r = run_lowbit("quantize " + model() + " --sensitivity " + dir_.file("bad.json") + " --target-bpw 4 --dry-run");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("bad.json"), std::string::npos) << r.err;
}

TEST_F(MixedCli, ReportAddsMixedRowsAndWritesAWellFormedSvg) {
  auto r = run_lowbit("report " + model() + " --tokens " + tokens_file() + " --window 64 --formats int4,int8 --calib " +
                      tokens_file() + " --nsamples 8 --seqlen 64 --sensitivity-windows 4 --budgets 3,5,7 --mixed-formats int2,int4g32,int8 -o " + dir_.file("rep"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* label : {"mixed 3.00 rtn", "mixed 5.00 rtn", "mixed 7.00 rtn", "int4 rtn"})
    EXPECT_NE(r.out.find(label), std::string::npos) << label << "\n" << r.out;
  std::ifstream f(dir_.file("rep/tradeoff.svg"));
  const std::string svg((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  testing::XmlSummary summary;
  EXPECT_EQ(testing::check_xml(svg, &summary), "");
  EXPECT_EQ(summary.root, "svg");
  EXPECT_EQ(summary.elements["circle"], 5);  // 2 uniform + 3 mixed points
  EXPECT_EQ(summary.elements["polyline"], 1);  // the Pareto frontier
}

// stories260K with the reference protocol: GPTQ (true-sequential, 128 calibration windows)
// allocations at 3.0, 3.5 and 4.0 bits/weight against the uniform GPTQ figures of
// reference.json (an independent implementation of the same algorithm; lowbit's own uniform GPTQ
// runs, in docs/results.md, are within 2 % of them). The sensitivity is measured in the context of
// int3 (every other tensor at int3), where damages add up close to the measured total.
// docs/results.md ("Mixed precision") records these runs. 4 min 41 s on the shared 2-core machine.
TEST(Stories260KMixed, GptqAllocationsAgainstUniformGptq) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  testing::TempDir tmp;
  const auto reference = read_json(dir + "/reference.json");
  auto uniform = [&](int bits, int group) {
    for (const auto& row : reference["gptq"])
      if (row["bits"] == bits && row["group"] == group && !row.value("act_order", false)) return row["kld"].get<double>();
    ADD_FAILURE() << "reference.json has no GPTQ row for " << bits << " bits, group " << group;
    return 0.0;
  };
  const std::string model = dir + "/stories260K.bin --tokenizer " + dir + "/tok512.bin";
  const std::string gptq = " --method gptq --true-sequential --calib " + dir + "/calib_tokens.bin ";
  auto r = run_lowbit("sensitivity " + model + gptq + "--formats int2,int2_sym,int3,int3_sym,int4,int4_sym --base int3 -o " +
                      tmp.file("sens.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::printf("%s", r.out.substr(r.out.find("in context")).c_str());

  std::map<std::string, double> kld;
  for (const char* bpw : {"3.0", "3.5", "4.0"}) {
    auto q = run_lowbit("quantize " + model + gptq + "--sensitivity " + tmp.file("sens.json") + " --target-bpw " + bpw +
                        " -o " + tmp.file(bpw));
    ASSERT_EQ(q.exit_code, 0) << q.err;
    const size_t at = q.out.find("mixed precision");
    ASSERT_NE(at, std::string::npos) << q.out;
    std::printf("%s", q.out.substr(at, q.out.find('\n', q.out.find("formats chosen")) - at + 1).c_str());
    auto e = run_lowbit("eval " + tmp.file(bpw) + " --reference " + model + " --tokens " + dir +
                        "/eval_tokens.bin --window 256 --json");
    ASSERT_EQ(e.exit_code, 0) << e.err;
    kld[bpw] = nlohmann::json::parse(e.out)["kld"].get<double>();
    std::printf("mixed %s bits/weight: eval KLD %.5f\n", bpw, kld[bpw]);
  }
  // Uniform bits/weight (README): int2g32 3.03, int3 3.42, int3g32 4.03.
  EXPECT_LT(kld["3.0"], uniform(2, 32));  // more bits
  EXPECT_LT(kld["3.5"], uniform(3, -1));  // fewer bits
  EXPECT_LT(kld["4.0"], uniform(3, 32));  // more bits
  // Not asserted, because it does not hold with these formats: mixed 3.5 vs int3g32 (4.03 bits);
  // docs/results.md gives the figures.
}

}  // namespace
}  // namespace lowbit
