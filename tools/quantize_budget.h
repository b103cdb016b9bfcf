// Mixed precision under a budget, for `lowbit quantize --target-bpw | --max-size | --max-kld`,
// `lowbit sensitivity` and the mixed rows of `lowbit report`:
//   1. a sensitivity table (calib/sensitivity.h): measured, or read from --sensitivity FILE;
//   2. an allocation (quant/mixed_allocation.h): one format per item, least predicted KLD under
//      the byte budget, or the smallest size under --max-kld;
//   3. a recipe with one exact-name rule per tensor, which the ordinary recipe path quantizes
//      (RTN or GPTQ, each tensor at its own format) and writes next to the checkpoint.
//
// Bits per weight are counted as everywhere else in lowbit (README, `lowbit report`): stored bytes
// of the block linear weights (codes + fp16 scales + fp16 zero points, or for _dq formats 8-bit
// scale codes + b-bit zero points + a super-scale per tensor: format_bytes) × 8 divided by
// their number of weights; embeddings, norms and the output head are not counted.
// --target-bpw B gives the budget floor(B × weights / 8) bytes for those tensors. --max-size S
// counts the whole model as stored: the block linears at their formats plus every other tensor at
// the output --dtype (the safetensors header, a few kB, is not counted).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "calib/sensitivity.h"
#include "model/checkpoint.h"
#include "quant/mixed_allocation.h"
#include "quant/recipe.h"
#include "quantize_methods.h"

namespace lowbit::cli {

// Candidate formats when none are given (the set; small models with narrow rows may want
// per-channel formats too, e.g. int2,int3,int4).
inline const std::vector<std::string> kDefaultSensitivityFormats = {"int8", "int4g128", "int3g128", "int2g32"};

struct SensitivityCliOptions {
  std::vector<std::string> formats = kDefaultSensitivityFormats;
  int windows = 32;                // calibration windows the KLD is measured on
  std::string group_by = "tensor"; // tensor | layer
  std::string base;                // measure with every other item at this format ("" = FP)
  std::string base_recipe;         // or with every tensor at its format in this recipe (refinement)
  ClipSearch clip;                 // clipping search of RTN and GPTQ fits (quantize's --clip)
  std::optional<uint64_t> rotation;  // the seed when the model was rotated first (--rotate)
};

// Registers --formats, --windows, --group-by, --base, --base-recipe on a command.
void add_sensitivity_options(CLI::App& cmd, SensitivityCliOptions& o);

// Measures a sensitivity table with progress + ETA on stderr. `method` is rtn or gptq; the
// calibration windows come from gptq.calib (token file, text file or "self").
SensitivityTable compute_sensitivity(const Checkpoint& ck, const SensitivityCliOptions& o, const std::string& method,
                                     const GptqCliOptions& gptq);

struct BudgetCliOptions {
  double target_bpw = 0;      // > 0: budget in bits per weight of the block linears
  std::string max_size;       // "2.1GB", "300MiB", "123456" (bytes): whole model as stored
  double max_kld = -1;        // >= 0: smallest model whose predicted KLD is at most this
  std::string sensitivity;    // a table from `lowbit sensitivity` (measured when empty)
  std::string allocator = "dp";  // dp (exact) | greedy
  SensitivityCliOptions measure;
  bool active() const { return target_bpw > 0 || !max_size.empty() || max_kld >= 0; }
};

void add_budget_options(CLI::App& cmd, BudgetCliOptions& o);

struct BudgetChoice {
  Recipe recipe;
  SensitivityTable table;
  Allocation allocation;
  uint64_t budget_bytes = 0;  // for the block linears (0 with --max-kld)
  uint64_t weights = 0;       // block linear weights the bits/weight are over
  std::vector<std::string> summary;  // lines to print
  double bits_per_weight() const { return weights ? 8.0 * double(allocation.bytes) / double(weights) : 0; }
  // base_kld + Σ damages: the KLD the additive model predicts for the whole allocation.
  double predicted_kld() const { return table.base_kld + allocation.damage; }
};

// Exits with a clear error on conflicting flags (a budget with --recipe, two budgets at once) or
// an infeasible budget.
BudgetChoice choose_budget_recipe(const Checkpoint& ck, const BudgetCliOptions& o, const std::string& method,
                                  const GptqCliOptions& gptq, const std::string& float_dtype, bool recipe_given);

// The allocation for a table and a budget in bits per weight (report sweeps), or nullopt with a
// message on stderr when the budget is infeasible for the table's formats.
std::optional<BudgetChoice> choose_for_bpw(const SensitivityTable& table, double bpw, const std::string& method,
                                           const std::string& allocator = "dp");

// Prints the chosen formats and predicted vs measured KLD (measured on the table's calibration
// windows against the FP model), and writes DIR/lowbit-sensitivity.json when `output_dir` is set.
void report_budget_result(const Checkpoint& fp, const Checkpoint& quantized, const BudgetChoice& choice,
                          const GptqCliOptions& gptq, const std::string& output_dir);

}  // namespace lowbit::cli
