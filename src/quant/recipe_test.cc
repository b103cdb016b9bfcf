#include "quant/recipe.h"

#include <gtest/gtest.h>

namespace lowbit {
namespace {

std::vector<TensorShape> tiny_tensors() {
  std::vector<TensorShape> t = {{"model.embed_tokens.weight", 512, 64}};
  for (int l = 0; l < 3; ++l)
    for (const char* s : {"self_attn.q_proj.weight", "mlp.down_proj.weight"})
      t.push_back({"model.layers." + std::to_string(l) + "." + s, 64, s[0] == 'm' ? 172 : 64});
  return t;
}

TEST(Recipe, GlobsAndIntegerRanges) {
  EXPECT_TRUE(pattern_matches("model.layers.*_proj.weight", "model.layers.3.mlp.up_proj.weight"));
  EXPECT_FALSE(pattern_matches("model.layers.*_proj.weight", "model.embed_tokens.weight"));
  EXPECT_TRUE(pattern_matches("model.layers.[0-9].*", "model.layers.7.x"));
  EXPECT_FALSE(pattern_matches("model.layers.[0-9].*", "model.layers.10.x"));
  EXPECT_TRUE(pattern_matches("model.layers.[10-31].*", "model.layers.10.x"));
  EXPECT_TRUE(pattern_matches("a?c", "abc"));
  EXPECT_FALSE(pattern_matches("a?c", "ac"));
}

TEST(Recipe, FirstMatchWinsAndUnmatchedTensorsStay) {
  auto r = parse_recipe(R"({"rules": [
      {"pattern": "model.layers.[0-1].mlp.*", "format": "int8"},
      {"pattern": "model.layers.*", "format": "int4g32", "method": "gptq"},
      {"pattern": "model.layers.1.*", "format": "int2"}]})",
                        "r.json");
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto plan = resolve_plan(*r, tiny_tensors());
  ASSERT_TRUE(plan.ok());
  const auto& e = plan->entries;
  EXPECT_FALSE(e[0].format.is_quantized());  // embedding: no rule matched
  EXPECT_EQ(e[0].rule, -1);
  EXPECT_EQ(format_spec_name(e[1].format), format_spec_name(*parse_format_spec("int4g32")));  // layer 0 q
  EXPECT_EQ(e[1].method, "gptq");
  EXPECT_EQ(e[2].format.id, FormatId::kInt8);  // layer 0 down: rule 1
  EXPECT_EQ(e[2].method, "rtn");
  EXPECT_EQ(e[4].format.id, FormatId::kInt8);  // layer 1 down: rule 1 still first
  EXPECT_EQ(e[6].format.id, FormatId::kInt4);  // layer 2 down: rule 2
  // Rule 3 never decides anything: every layer-1 tensor was claimed by rule 1 or 2 first.
  ASSERT_EQ(plan->warnings.size(), 1u);
  EXPECT_NE(plan->warnings[0].find("rule 3"), std::string::npos);
}

TEST(Recipe, WarnsOnRulesThatMatchNothing) {
  auto r = parse_recipe(R"({"rules": [{"pattern": "*", "format": "int8"}, {"pattern": "nothing*", "format": "int4"}]})",
                        "r.json");
  ASSERT_TRUE(r.ok());
  auto plan = resolve_plan(*r, tiny_tensors());
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->warnings.size(), 1u);
  EXPECT_NE(plan->warnings[0].find("nothing*"), std::string::npos);
}

TEST(Recipe, MalformedFilesNameLineAndColumn) {
  auto r = parse_recipe("{\"rules\": [\n  {\"pattern\": \"*\", \"format\": int8}\n]}", "bad.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kFormat);
  EXPECT_EQ(r.status().message().rfind("bad.json:2:", 0), 0u) << r.status().message();
  EXPECT_FALSE(parse_recipe(R"({"rules": [{"pattern": "*", "format": "int5"}]})", "f").ok());
  EXPECT_FALSE(parse_recipe(R"({"rules": [{"pattern": "[a-3]", "format": "int4"}]})", "f").ok());
  EXPECT_FALSE(parse_recipe(R"({"rules": []})", "f").ok());
  EXPECT_FALSE(parse_recipe(R"([1, 2])", "f").ok());
}

TEST(Recipe, GroupLargerThanRowIsOneShorterGroup) {
  auto r = parse_recipe(R"({"rules": [{"pattern": "*q_proj*", "format": "int4g128"}]})", "r.json");
  ASSERT_TRUE(r.ok());
  auto plan = resolve_plan(*r, tiny_tensors());
  ASSERT_TRUE(plan.ok());
  // [64, 64] in groups of 128: one group per row, the same bytes as per-channel.
  EXPECT_EQ(plan->entries[1].bytes, format_bytes(*parse_format_spec("int4"), 64, 64));
}

TEST(Recipe, RoundTripsThroughJson) {
  Recipe r = uniform_recipe(*parse_format_spec("int4g128_sym"), "gptq");
  auto back = parse_recipe(recipe_to_json(r), "x");
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->rules.size(), 1u);
  EXPECT_EQ(back->rules[0].format, r.rules[0].format);
  EXPECT_EQ(back->rules[0].pattern, r.rules[0].pattern);
  EXPECT_EQ(back->method, "gptq");
}

TEST(Recipe, PlanCountsExactBytes) {
  Recipe r = uniform_recipe(*parse_format_spec("int4g32"), "rtn");
  auto plan = resolve_plan(r, tiny_tensors());
  ASSERT_TRUE(plan.ok());
  for (const auto& e : plan->entries) {
    EXPECT_EQ(e.bytes, format_bytes(e.format, e.rows, e.cols));
    if (e.format.is_quantized()) {
      EXPECT_GT(e.bits_per_weight(), 4.0);
    }
  }
  EXPECT_EQ(plan->quantized_weights(), uint64_t(3 * (64 * 64 + 64 * 172)));
}

}  // namespace
}  // namespace lowbit
