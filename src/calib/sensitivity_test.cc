#include "calib/sensitivity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "calib/quantize_checkpoint.h"
#include "model/synthetic.h"
#include "testing/calib_testing.h"
#include "testing/quant_testing.h"

namespace lowbit {
namespace {

using testing::spec_of;

using testing::random_windows;

class Sensitivity : public ::testing::Test {
 protected:
  void SetUp() override {
    ckpt_ = make_random_checkpoint(tiny_test_config(), 3);
    fp_ = *Model::from_checkpoint(ckpt_);
    windows_ = random_windows(6, 48, fp_->config().vocab_size, 9);
  }
  SensitivityOptions options(const std::string& method, bool by_layer) const {
    SensitivityOptions o;
    o.formats = {spec_of("int8"), spec_of("int4g32"), spec_of("int2")};
    o.method = method;
    o.group_by_layer = by_layer;
    o.measure_windows = 4;
    return o;
  }
  Checkpoint ckpt_;
  std::shared_ptr<const Model> fp_;
  TokenWindows windows_;
};

TEST_F(Sensitivity, KldEqualsAFullEvaluationWithThatOneTensorQuantized) {
  auto table = measure_sensitivity(fp_, windows_, options("rtn", false));
  ASSERT_TRUE(table.ok()) << table.status().message();
  const int layers = fp_->config().n_layers;
  ASSERT_EQ(table->items.size(), size_t(7 * layers));
  EXPECT_EQ(table->tokens_scored, 4 * 47);
  const TokenWindows measured(windows_.begin(), windows_.begin() + 4);
  // Two items, one in each block: the shortcut (FP stream up to the item's block) must agree with
  // evaluating the whole model from the embedding.
  for (size_t index : {size_t(2), size_t(7 * layers - 1)}) {
    const SensitivityItem& item = table->items[index];
    for (size_t f = 0; f < table->formats.size(); ++f) {
      const FormatSpec spec = spec_of(table->formats[f]);
      Recipe recipe;
      recipe.rules.push_back({item.name, table->formats[f], spec, "rtn"});
      Plan plan = *resolve_plan(recipe, quantizable_tensors(ckpt_.config));
      auto weights = rtn_quantize_plan(ckpt_, plan, RtnOptions{});
      ASSERT_TRUE(weights.ok());
      auto model = Model::from_checkpoint(with_quantized_weights(ckpt_, *weights));
      ASSERT_TRUE(model.ok());
      auto full = evaluate_on_windows(*model, fp_, measured);
      ASSERT_TRUE(full.ok()) << full.status().message();
      // The table keeps FP log-probabilities in fp32: agreement to fp32 rounding of log p (~1e-7
      // relative of values of a few nats) summed over the vocabulary.
      EXPECT_NEAR(item.cells[f].kld, full->kld, 1e-5 * full->kld + 1e-7) << item.name << " " << table->formats[f];
      for (const auto& e : plan.entries) {
        if (e.name == item.name) {
          EXPECT_EQ(item.cells[f].bytes, e.bytes);
        }
      }
    }
  }
  // More bits, less damage, by both measures, for every tensor.
  for (const auto& item : table->items) {
    EXPECT_LT(item.cells[0].kld, item.cells[1].kld) << item.name;
    EXPECT_LT(item.cells[1].kld, item.cells[2].kld) << item.name;
    EXPECT_LT(item.cells[0].proxy, item.cells[1].proxy) << item.name;
    EXPECT_LT(item.cells[1].proxy, item.cells[2].proxy) << item.name;
  }
  EXPECT_GT(table->spearman, 0.5);  // across formats the proxy orders damage well
}

TEST_F(Sensitivity, InContextOfABaseFormatEachCellIsTheAllBaseModelWithOneItemChanged) {
  SensitivityOptions o = options("rtn", false);
  o.base = spec_of("int4g32");
  auto table = measure_sensitivity(fp_, windows_, o);
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_EQ(table->base_format, "int4g32");
  EXPECT_GT(table->base_kld, 0.0);
  const TokenWindows measured(windows_.begin(), windows_.begin() + 4);
  const size_t index = 9;  // a linear of block 1
  const SensitivityItem& item = table->items[index];
  for (size_t f = 0; f < table->formats.size(); ++f) {
    Recipe recipe;
    recipe.rules.push_back({item.name, table->formats[f], spec_of(table->formats[f]), "rtn"});
    recipe.rules.push_back({"model.layers.*_proj.weight", "int4g32", spec_of("int4g32"), "rtn"});
    Plan plan = *resolve_plan(recipe, quantizable_tensors(ckpt_.config));
    auto weights = rtn_quantize_plan(ckpt_, plan, RtnOptions{});
    ASSERT_TRUE(weights.ok());
    auto full = evaluate_on_windows(*Model::from_checkpoint(with_quantized_weights(ckpt_, *weights)), fp_, measured);
    ASSERT_TRUE(full.ok());
    EXPECT_NEAR(item.cells[f].kld, full->kld, 1e-5 * full->kld + 1e-7) << table->formats[f];
  }
  // Damage relative to the base: int8 removes some, int2 adds some.
  auto items = allocation_items(*table);
  for (const auto& a : items) {
    EXPECT_LT(a.candidates[0].damage, 0.0) << a.name;  // int8
    EXPECT_GT(a.candidates[2].damage, 0.0) << a.name;  // int2
  }
  o.base = spec_of("f16");
  EXPECT_FALSE(measure_sensitivity(fp_, windows_, o).ok());
}

TEST_F(Sensitivity, GptqLowersTheProxyItMinimises) {
  // tr(ΔW H ΔWᵀ) with H = 2/n Σ x xᵀ is 2/n Σ_t ‖ΔW x_t‖²; with GPTQ the proxy is the quantity
  // GPTQ minimises, so it is below RTN's for every tensor and format.
  auto rtn = measure_sensitivity(fp_, windows_, options("rtn", false));
  auto gptq = measure_sensitivity(fp_, windows_, options("gptq", false));
  ASSERT_TRUE(rtn.ok() && gptq.ok());
  int below = 0, cells = 0;
  for (size_t i = 0; i < rtn->items.size(); ++i)
    for (size_t f = 0; f < rtn->formats.size(); ++f) {
      ++cells;
      below += gptq->items[i].cells[f].proxy < rtn->items[i].cells[f].proxy;
    }
  // GPTQ minimises a dampened objective greedily, so a rare cell may not improve.
  EXPECT_GE(below, cells * 9 / 10) << below << " of " << cells;
}

// Asymmetric GPTQ (calib/gptq_driver.h) quantizes the base and every cell; the table says so.
TEST_F(Sensitivity, AsymmetricGptqIsRecordedAndChangesTheMeasurement) {
  SensitivityOptions o = options("gptq", false);
  o.base = spec_of("int2");
  auto symmetric = measure_sensitivity(fp_, windows_, o);
  o.asymmetric_calibration = true;
  auto asymmetric = measure_sensitivity(fp_, windows_, o);
  ASSERT_TRUE(symmetric.ok() && asymmetric.ok()) << asymmetric.status().message();
  EXPECT_FALSE(symmetric->asymmetric_calibration);
  EXPECT_TRUE(asymmetric->asymmetric_calibration);
  EXPECT_NE(symmetric->base_kld, asymmetric->base_kld);
  const std::string text = sensitivity_to_json(*asymmetric);
  auto back = parse_sensitivity_json(text, "t.json", fp_->config());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->asymmetric_calibration);
  auto symmetric_back = parse_sensitivity_json(sensitivity_to_json(*symmetric), "t.json", fp_->config());
  ASSERT_TRUE(symmetric_back.ok());
  EXPECT_FALSE(symmetric_back->asymmetric_calibration);
  std::string bad = text;
  bad.replace(bad.find("\"asymmetric_calibration\": true"), 30, "\"asymmetric_calibration\": 1");
  auto r = parse_sensitivity_json(bad, "t.json", fp_->config());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("\"asymmetric_calibration\" must be true or false"), std::string::npos)
      << r.status().message();
}

TEST_F(Sensitivity, LayerGroupsAndJsonRoundTrip) {
  SensitivityOptions with_clip = options("rtn", true);
  with_clip.rtn_clip = ClipSearch{4, 0.8f};
  auto table = measure_sensitivity(fp_, windows_, with_clip);
  ASSERT_TRUE(table.ok()) << table.status().message();
  table->rotation_seed = 17;  // set by the command that rotated the model (quantize_budget.cc)
  ASSERT_EQ(table->items.size(), size_t(fp_->config().n_layers));
  EXPECT_EQ(table->items[0].tensors.size(), 7u);
  const std::string text = sensitivity_to_json(*table);
  auto back = parse_sensitivity_json(text, "t.json", fp_->config());
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->items.size(), table->items.size());
  for (size_t i = 0; i < table->items.size(); ++i)
    for (size_t f = 0; f < table->formats.size(); ++f) {
      EXPECT_EQ(back->items[i].cells[f].bytes, table->items[i].cells[f].bytes);
      EXPECT_DOUBLE_EQ(back->items[i].cells[f].kld, table->items[i].cells[f].kld);
    }
  auto items = allocation_items(*back);
  ASSERT_EQ(items.size(), table->items.size());
  EXPECT_EQ(items[0].candidates[1].format, "int4g32");
  // The clipping search the cells were quantized with travels with the table.
  ASSERT_TRUE(back->clip.has_value());
  EXPECT_EQ(*back->clip, with_clip.rtn_clip);
  EXPECT_EQ(back->rotation_seed, std::optional<uint64_t>(17));

  // Hostile or mismatched tables fail with one line naming the file.
  auto expect_error = [&](std::string bad, const std::string& needle) {
    auto r = parse_sensitivity_json(bad, "t.json", fp_->config());
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.status().code(), ErrorCode::kFormat);
    EXPECT_NE(r.status().message().find("t.json"), std::string::npos);
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  std::string wrong_bytes = text;
  const std::string first = "\"bytes\": " + std::to_string(table->items[0].cells[0].bytes);
  wrong_bytes.replace(wrong_bytes.find(first), first.size(), "\"bytes\": 12");
  expect_error(wrong_bytes, "12 bytes stated");
  std::string unknown = text;
  unknown.replace(unknown.find("model.layers.0.self_attn.q_proj.weight"), 38, "model.layers.9.self_attn.q_proj.weight");
  expect_error(unknown, "not a block linear");
  std::string wrong_format = text;
  const std::string cell_format = "\"format\": \"int4g32\"";
  wrong_format.replace(wrong_format.find(cell_format), cell_format.size(), "\"format\": \"int9\"");
  expect_error(wrong_format, "is for format \"int9\"");
  std::string bad_clip = text;
  const std::string clip_steps = "\"steps\": " + std::to_string(table->clip->steps);
  bad_clip.replace(bad_clip.find(clip_steps), clip_steps.size(), "\"steps\": -3");
  expect_error(bad_clip, "\"clip\": clip search steps -3 outside [0, 1000]");
  std::string bad_rotation = text;
  bad_rotation.replace(bad_rotation.find("\"seed\": 17"), 10, "\"seed\": -1");
  expect_error(bad_rotation, "\"rotation\" must be {\"seed\": non-negative integer}");
  expect_error("[1, 2]", "not a JSON object");
  expect_error("{\"formats\": [\"int4\"], \"items\": [{\"name\": \"x\"}]}", "malformed");
}

// A context per tensor (an allocation to refine): each cell is that mixed model with one item
// changed, and a cell at the item's own base format is the base model itself (damage 0, up to
// the fp32 rounding of the per-block shortcut).
TEST_F(Sensitivity, InContextOfAPerTensorBaseEachCellIsThatModelWithOneItemChanged) {
  SensitivityOptions o = options("rtn", false);
  std::map<std::string, FormatSpec> base;
  Recipe base_recipe;
  for (const TensorShape& t : quantizable_tensors(ckpt_.config)) {
    if (t.name.rfind("model.layers.", 0) != 0) continue;
    const char* format = t.name.find("mlp") != std::string::npos ? "int2" : "int4g32";
    base[t.name] = spec_of(format);
    base_recipe.rules.push_back({t.name, format, spec_of(format), "rtn"});
  }
  o.base_by_tensor = base;
  o.base_name = "mix.json";
  auto table = measure_sensitivity(fp_, windows_, o);
  ASSERT_TRUE(table.ok()) << table.status().message();
  EXPECT_EQ(table->base_format, "mix.json");
  const TokenWindows measured(windows_.begin(), windows_.begin() + 4);
  auto weights = rtn_quantize_plan(ckpt_, *resolve_plan(base_recipe, quantizable_tensors(ckpt_.config)), RtnOptions{});
  ASSERT_TRUE(weights.ok());
  auto all_base = evaluate_on_windows(*Model::from_checkpoint(with_quantized_weights(ckpt_, *weights)), fp_, measured);
  ASSERT_TRUE(all_base.ok());
  EXPECT_NEAR(table->base_kld, all_base->kld, 1e-5 * all_base->kld + 1e-7);
  for (const SensitivityItem& item : table->items)
    for (size_t f = 0; f < table->formats.size(); ++f)
      if (table->formats[f] == format_spec_name(base.at(item.name))) {
        EXPECT_NEAR(item.cells[f].kld, table->base_kld, 1e-5 * table->base_kld + 1e-7) << item.name;
      }
  const SensitivityItem& item = table->items[9];  // a linear of block 1
  Recipe recipe = base_recipe;
  recipe.rules.insert(recipe.rules.begin(), {item.name, "int8", spec_of("int8"), "rtn"});
  weights = rtn_quantize_plan(ckpt_, *resolve_plan(recipe, quantizable_tensors(ckpt_.config)), RtnOptions{});
  ASSERT_TRUE(weights.ok());
  auto full = evaluate_on_windows(*Model::from_checkpoint(with_quantized_weights(ckpt_, *weights)), fp_, measured);
  ASSERT_TRUE(full.ok());
  EXPECT_NEAR(item.cells[0].kld, full->kld, 1e-5 * full->kld + 1e-7);  // formats[0] is int8
  o.base = spec_of("int4g32");  // both kinds of base at once
  EXPECT_FALSE(measure_sensitivity(fp_, windows_, o).ok());
}

TEST_F(Sensitivity, BadOptionsAreErrors) {
  SensitivityOptions o = options("rtn", false);
  o.formats.clear();
  EXPECT_FALSE(measure_sensitivity(fp_, windows_, o).ok());
  o = options("awq", false);
  EXPECT_FALSE(measure_sensitivity(fp_, windows_, o).ok());
  o = options("rtn", false);
  o.formats.push_back(spec_of("f16"));
  EXPECT_FALSE(measure_sensitivity(fp_, windows_, o).ok());
  EXPECT_FALSE(measure_sensitivity(fp_, {}, options("rtn", false)).ok());
}

TEST(Spearman, RanksWithTies) {
  EXPECT_DOUBLE_EQ(spearman_correlation({1, 2, 3, 4}, {10, 20, 30, 400}), 1.0);
  EXPECT_DOUBLE_EQ(spearman_correlation({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
  EXPECT_EQ(spearman_correlation({1, 1, 1}, {1, 2, 3}), 0.0);
  // Ties get average ranks: x ranks (0, 1.5, 1.5, 3), y ranks (0, 1, 2, 3) -> r = 0.9486832980505138.
  EXPECT_NEAR(spearman_correlation({1, 2, 2, 3}, {1, 2, 3, 4}), 0.9486832980505138, 1e-12);
}

}  // namespace
}  // namespace lowbit
