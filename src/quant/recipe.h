// A recipe says what to quantize and how: an ordered list of rules "tensor-name pattern →
// format", resolved against a model's tensors into a plan (one line per tensor, with exact
// bytes and bits/weight).
//
// Recipe file (JSON):
//   {
//     "method": "rtn",                    // optional default method for every rule ("rtn", "gptq")
//     "rules": [
//       {"pattern": "model.layers.[0-1].*",  "format": "int8"},
//       {"pattern": "*.mlp.down_proj.weight", "format": "int4g32"},
//       {"pattern": "*", "format": "int4g128_sym", "method": "gptq"}
//     ]
//   }
// Matching: the FIRST rule whose pattern matches a tensor's canonical name decides its format
// (later rules never override). Patterns are globs: `*` matches any run of characters, `?` one
// character, and `[a-b]` an integer in the inclusive range a..b (for layer indices).
// Format "keep" (or "f32"/"f16"/"bf16") leaves the tensor in floating point.
// Scope: rules are tried on every 2-D weight; a tensor that matches no rule stays as it is.
// A pattern that matches nothing produces a warning; a malformed file is an error with
// its line and column.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "formats/format.h"

namespace lowbit {

struct RecipeRule {
  std::string pattern;
  std::string format_text;  // as written
  FormatSpec format;        // parsed; f32 for "keep"
  std::string method;       // "" = the recipe's / CLI's default
};

struct Recipe {
  std::string method = "rtn";
  std::vector<RecipeRule> rules;
};

// The CLI's shorthand: every linear layer of every block ("model.layers.*_proj.weight").
Recipe uniform_recipe(const FormatSpec& format, const std::string& method);

// `source` names the file in errors (quant/ never opens files; the CLI reads it).
Result<Recipe> parse_recipe(const std::string& json_text, const std::string& source);
std::string recipe_to_json(const Recipe& recipe);

// Glob match as documented above.
bool pattern_matches(const std::string& pattern, const std::string& name);

struct PlanEntry {
  std::string name;
  int64_t rows = 0, cols = 0;
  FormatSpec format;       // f32 when kept
  std::string method;
  int rule = -1;           // index of the rule that matched, -1 = none
  uint64_t bytes = 0;      // exact stored bytes in that format
  double bits_per_weight() const { return 8.0 * double(bytes) / double(rows * cols); }
};

struct Plan {
  std::vector<PlanEntry> entries;
  std::vector<std::string> warnings;  // rules that matched nothing
  uint64_t total_bytes() const;
  uint64_t quantized_weights() const;  // elements of entries whose format is quantized
};

struct TensorShape {
  std::string name;
  int64_t rows, cols;
};

// Resolves every 2-D tensor; fails when a rule's format cannot hold a tensor (naming both).
// A group size larger than a tensor's row is allowed: the row is then one (shorter) group.
Result<Plan> resolve_plan(const Recipe& recipe, const std::vector<TensorShape>& tensors);

}  // namespace lowbit
