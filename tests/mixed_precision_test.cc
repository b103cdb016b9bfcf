// Mixed precision end to end: rule recipes (attention and FFN at different formats) through
// quantize / inspect / eval / run; budgets from measured sensitivity (lowbit sensitivity, quantize
// --target-bpw / --max-size / --max-kld, the written recipe read back by --recipe); the report's
// mixed rows and SVG; and, with ../shared, GPTQ allocations on stories260K against uniform GPTQ.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "io/safetensors.h"
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
  // Refinement: damages measured with every other tensor at its format in that allocation (the
  // clipping search on, as quantize --clip would use); --base and --base-recipe exclude each other.
  r = run_lowbit("sensitivity " + model() + calib() + formats + "--clip --base-recipe " +
                 dir_.file("b45/lowbit-recipe.json") + " -o " + dir_.file("refined.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto refined = read_json(dir_.file("refined.json"));
  EXPECT_EQ(refined["base_format"], "recipe lowbit-recipe.json");
  EXPECT_GT(refined["base_kld"].get<double>(), 0.0);
  r = run_lowbit("sensitivity " + model() + calib() + formats + "--base int4 --base-recipe " +
                 dir_.file("b45/lowbit-recipe.json") + " -o " + dir_.file("both.json"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(std::filesystem::exists(dir_.file("both.json")));

  // --max-kld: the smallest allocation whose predicted KLD is within the limit.
  r = run_lowbit("quantize " + model() + " --sensitivity " + dir_.file("sens.json") + " --max-kld 0.05 --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(predicted KLD ([0-9.]+) \(sum)"))) << r.out;
  EXPECT_LE(std::stod(m[1].str()), 0.05);
  EXPECT_EQ(r.err.find("clipping search"), std::string::npos) << "same quantizer, no warning: " << r.err;
  // The table records the clipping search it was measured with; a different --clip is allowed but
  // named on stderr.
  r = run_lowbit("quantize " + model() + " --sensitivity " + dir_.file("sens.json") + " --max-kld 0.05 --clip --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("measured with clipping search off but this quantize uses 11 factors 1..0.5"),
            std::string::npos)
      << r.err;

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

// Double-quantized formats (_dq, and _dq4 with 4-bit scale codes) as budget candidates: measured,
// allocated, written in the lowbit layout with exactly the bytes the allocation counted, and evaluated.
TEST_F(MixedCli, DoubleQuantizedCandidatesAreAllocatedAndStoredAtTheirCountedSize) {
  auto r = run_lowbit("sensitivity " + model() + calib() + "--formats int2_dq,int3_sym_dq4,int4g32_dq -o " +
                      dir_.file("sens.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_lowbit("quantize " + model() + " --sensitivity " + dir_.file("sens.json") + " --target-bpw 3.5" + calib() +
                 "-o " + dir_.file("q"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> kinds;
  for (const auto& [name, f] : formats_of(dir_.file("q")))
    if (name.find("_proj") != std::string::npos) kinds.insert(f);
  EXPECT_GE(kinds.size(), 2u);
  for (const std::string& f : kinds) EXPECT_TRUE(f.ends_with("_dq") || f.ends_with("_dq4")) << f;
  EXPECT_TRUE(kinds.contains("int3_sym_dq4"));  // the 4-bit scale codes are stored and counted too
  // inspect's bytes are format_bytes; the stored lowbit pieces of the quantized weights add up to
  // exactly that (nothing else is stored for them).
  auto inspect = run_lowbit("inspect " + dir_.file("q") + " --json");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  uint64_t counted = 0;
  const auto listing = nlohmann::json::parse(inspect.out);  // alive for the loop (C++20 range-for)
  for (const auto& t : listing["tensors"])
    if (t.contains("format")) counted += t["bytes"].get<uint64_t>();
  auto st = read_safetensors(dir_.file("q/model.safetensors"));
  ASSERT_TRUE(st.ok()) << st.status().message();
  uint64_t stored = 0;
  for (const RawTensor& t : st->tensors())
    if (t.name.find(".lowbit_") != std::string::npos) stored += t.data.size();
  EXPECT_EQ(stored, counted);
  r = run_lowbit("eval " + dir_.file("q") + " --reference " + model() + " --tokens " + tokens_file() +
                 " --window 64 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double kld = nlohmann::json::parse(r.out)["kld"].get<double>();
  EXPECT_GT(kld, 0.0);
  EXPECT_LT(kld, 1.0);
}

TEST_F(MixedCli, ReportAddsMixedRowsAndWritesAWellFormedSvg) {
  auto r = run_lowbit("report " + model() + " --tokens " + tokens_file() + " --window 64 --formats int4,int8 --calib " +
                      tokens_file() + " --nsamples 8 --seqlen 64 --sensitivity-windows 4 --budgets 3,5,7 --mixed-formats int2,int4g32,int8 -o " + dir_.file("rep"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("clipping search"), std::string::npos) << "no --clip, no clipping line";
  // --clip reaches every fit: the sensitivity table and the uniform and mixed rows.
  auto clipped = run_lowbit("report " + model() + " --tokens " + tokens_file() + " --window 64 --formats int4 --calib " +
                            tokens_file() + " --nsamples 8 --seqlen 64 --sensitivity-windows 4 --budgets 5 "
                            "--mixed-formats int2,int8 --clip -o " + dir_.file("rep-clip"));
  ASSERT_EQ(clipped.exit_code, 0) << clipped.err;
  EXPECT_NE(clipped.out.find("Every fit uses the clipping search: 11 factors 1..0.5"), std::string::npos) << clipped.out;
  EXPECT_NE(clipped.out.find("mixed 5.00 rtn"), std::string::npos) << clipped.out;
  auto int4_row = [](const std::string& out) {
    const size_t at = out.find("| int4 rtn");
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  ASSERT_FALSE(int4_row(clipped.out).empty()) << clipped.out;
  EXPECT_NE(int4_row(clipped.out), int4_row(r.out)) << "the clipping search changes the int4 row";
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

// stories260K with the reference protocol: GPTQ (true-sequential, 128 calibration windows) with
// the clipping search (--clip: each group's range shrunk to the least diag-H-weighted squared
// error), allocations at 3.0, 3.5 and 4.0 bits/weight against uniform GPTQ of equal or more
// bits/weight: lowbit's own uniform runs with exactly the same settings, and the uniform GPTQ
// figures of reference.json (an independent implementation with plain min/max grids). Candidates
// are per-channel and g32 formats with 4-bit scale codes (_dq4: 4 + b bits per row on these 64-
// and 172-wide rows), asymmetric and midrise, and per-tensor formats; the sensitivity is measured
// on 64 calibration windows in the context of int3_dq4 (every other tensor at int3_dq4), where
// damages add up close to the measured total. docs/results.md ("Mixed precision") records these
// runs. About 4 minutes on the shared 2-core machine.
struct Measured {
  std::string name;
  double bpw = 0, kld = 0;
};

TEST(Stories260KMixed, GptqAllocationsAgainstUniformGptq) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  testing::TempDir tmp;
  const std::string model = dir + "/stories260K.bin --tokenizer " + dir + "/tok512.bin";
  const std::string gptq = " --method gptq --true-sequential --clip --calib " + dir + "/calib_tokens.bin ";
  auto bits_per_weight = [](const std::string& out) {  // quantize's exact figure over the block linears
    std::smatch m;
    EXPECT_TRUE(std::regex_search(out, m, std::regex(R"(bytes, ([0-9.]+) bits/weight \(codes)"))) << out;
    return m.empty() ? 0.0 : std::stod(m[1].str());
  };
  auto eval_kld = [&](const std::string& q) {
    auto e = run_lowbit("eval " + q + " --reference " + model + " --tokens " + dir + "/eval_tokens.bin --window 256 --json");
    EXPECT_EQ(e.exit_code, 0) << e.err;
    return e.exit_code == 0 ? nlohmann::json::parse(e.out)["kld"].get<double>() : 0.0;
  };

  // Uniform 2- and 3-bit GPTQ: lowbit's, same flags; reference.json's (act-order off).
  std::vector<Measured> uniform;
  for (const char* format : {"int2g32", "int3_sym", "int3", "int3g32", "int3g32_sym", "int3g32_midrise", "int3_dq",
                             "int3_dq4", "int3_midrise_dq4", "int3g32_midrise_dq4"}) {
    auto q = run_lowbit("quantize " + model + gptq + "--format " + format + " -o " + tmp.file(format));
    ASSERT_EQ(q.exit_code, 0) << q.err;
    uniform.push_back({std::string("lowbit ") + format, bits_per_weight(q.out), eval_kld(tmp.file(format))});
  }
  const auto reference = read_json(dir + "/reference.json");
  for (const auto& row : reference["gptq"])
    if (row["bits"].get<int>() <= 3 && !row.value("act_order", false))
      uniform.push_back({"reference int" + std::to_string(row["bits"].get<int>()) +
                             (row["group"].get<int>() > 0 ? "g" + std::to_string(row["group"].get<int>()) : ""),
                         row["bpw"].get<double>(), row["kld"].get<double>()});

  auto r = run_lowbit("sensitivity " + model + gptq +
                      "--formats int2_dq4,int2_midrise_dq4,int2g32_dq4,int2g32_midrise_dq4,int3_dq4,int3_midrise_dq4,"
                      "int3g32_dq4,int4_dq4,int4_midrise_dq4,int3_tensor,int4_tensor --base int3_dq4 --windows 64 -o " +
                      tmp.file("sens.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::printf("%s", r.out.substr(r.out.find("in context")).c_str());
  std::vector<Measured> mixed;
  for (const char* bpw : {"3.0", "3.5", "4.0"}) {
    auto q = run_lowbit("quantize " + model + gptq + "--sensitivity " + tmp.file("sens.json") + " --target-bpw " + bpw +
                        " -o " + tmp.file(bpw));
    ASSERT_EQ(q.exit_code, 0) << q.err;
    const size_t at = q.out.find("mixed precision");
    ASSERT_NE(at, std::string::npos) << q.out;
    std::printf("%s", q.out.substr(at, q.out.find('\n', q.out.find("formats chosen")) - at + 1).c_str());
    mixed.push_back({std::string("mixed ") + bpw, bits_per_weight(q.out), eval_kld(tmp.file(bpw))});
    EXPECT_LE(mixed.back().bpw, std::stod(bpw));
  }
  for (const auto& list : {uniform, mixed})
    for (const Measured& m : list) std::printf("%-22s %.4f bits/weight  eval KLD %.5f\n", m.name.c_str(), m.bpw, m.kld);

  // Each mixed allocation has lower KLD than every uniform 2-/3-bit configuration with at least
  // its bits/weight, except that 3.0 bits beats the per-channel 3-bit ones (int3_midrise_dq4 at
  // 3.06 bits up to int3 at 3.42) and the 2-bit ones, not the 3-bit g32 ones: int3g32_midrise_dq4
  // (3.13 bits) and int3g32 (4.03) stay ahead of it. Not claimed; docs/results.md gives the figures.
  auto claimed = [](const Measured& m, const Measured& u) {
    return m.name != "mixed 3.0" || u.name.find("int3g") == std::string::npos;
  };
  int compared = 0;
  for (const Measured& m : mixed)
    for (const Measured& u : uniform) {
      if (u.bpw < m.bpw || !claimed(m, u)) continue;
      ++compared;
      EXPECT_LT(m.kld, u.kld) << m.name << " (" << m.bpw << " bits/weight) vs uniform " << u.name << " (" << u.bpw
                              << " bits/weight)";
    }
  // 3.0 vs 6 lowbit + reference int2g32, int3; 3.5 vs int3g32_sym, int3g32_midrise (3.51 bits) and both
  // int3g32; 4.0 vs both int3g32
  EXPECT_EQ(compared, 14);
}

}  // namespace
}  // namespace lowbit
