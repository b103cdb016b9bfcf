#include "quantize_budget.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <map>
#include <set>

#include "base/progress.h"
#include "calib/quantize_checkpoint.h"
#include "cli_common.h"
#include "io/atomic_file.h"

namespace lowbit::cli {

namespace {

// "2.1GB" (decimal), "300MiB" (binary), "123456" or "123456B" (bytes).
uint64_t parse_size(const std::string& text) {
  size_t end = 0;
  double value = 0;
  try {
    value = std::stod(text, &end);
  } catch (const std::exception&) {
    end = 0;
  }
  std::string unit = text.substr(end);
  for (char& ch : unit) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  const std::pair<const char*, double> units[] = {{"", 1},        {"B", 1},         {"KB", 1e3},          {"MB", 1e6},
                                                  {"GB", 1e9},    {"TB", 1e12},     {"KIB", 1024.0},      {"MIB", 1048576.0},
                                                  {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
  for (const auto& [name, scale] : units)
    if (end > 0 && unit == name && std::isfinite(value) && value > 0 && value * scale < 1.8e19)
      return uint64_t(value * scale);
  fail(error(ErrorCode::kInvalidArgument, "--max-size {}: expected a positive size such as 2.1GB, 300MiB or 123456",
             text));
}

GptqOptions gptq_algorithm_options(const GptqCliOptions& g) {
  GptqOptions o;
  o.block_size = g.block;
  o.percdamp = g.damp;
  o.act_order = g.act_order;
  o.static_groups = g.static_groups;
  return o;
}

Recipe recipe_for(const SensitivityTable& table, const Allocation& a, const std::string& method) {
  Recipe r;
  r.method = method;
  for (size_t i = 0; i < table.items.size(); ++i) {
    const std::string& format = table.items[i].cells[size_t(a.choice[i])].format;
    for (const std::string& tensor : table.items[i].tensors)
      r.rules.push_back({tensor, format, unwrap(parse_format_spec(format)), ""});
  }
  return r;
}

uint64_t item_weights(const SensitivityTable& table) {
  uint64_t n = 0;
  for (const auto& item : table.items) n += item.weights;
  return n;
}

void describe(BudgetChoice& c, const std::string& budget_text) {
  const Allocation& a = c.allocation;
  c.summary.push_back(fmt::format("mixed precision: {} → {} bytes for {} weights = {:.4f} bits/weight; predicted KLD "
                                  "{:.5f} (sum of per-item KLDs, {} {}{}){}",
                                  budget_text, with_commas(int64_t(a.bytes)), with_commas(int64_t(c.weights)),
                                  c.bits_per_weight(), c.predicted_kld(), c.table.method, c.table.group_by,
                                  c.table.base_format.empty() ? "" : ", in context of " + c.table.base_format,
                                  a.unit_bytes == 0 ? ", greedy"
                                  : a.exact       ? ""
                                                  : fmt::format(", DP unit {} bytes", a.unit_bytes)));
  std::map<std::string, int> count;
  for (size_t i = 0; i < c.table.items.size(); ++i) ++count[c.table.items[i].cells[size_t(a.choice[i])].format];
  std::string formats;
  for (const auto& [f, n] : count) formats += fmt::format("{}{} × {}", formats.empty() ? "" : ", ", n, f);
  c.summary.push_back("formats chosen: " + formats);
}

}  // namespace

void add_sensitivity_options(CLI::App& cmd, SensitivityCliOptions& o) {
  auto* g = cmd.add_option_group("Sensitivity", "How per-tensor sensitivity is measured");
  g->add_option("--formats", o.formats, "Candidate formats")->delimiter(',')->capture_default_str();
  g->add_option("--windows", o.windows, "Calibration windows the KLD is measured on (0 = all)")->capture_default_str();
  g->add_option("--group-by", o.group_by, "tensor (each linear alone) or layer (a block's seven linears together)")
      ->capture_default_str()
      ->check(CLI::IsMember({"tensor", "layer"}));
  g->add_option("--base", o.base,
                "Measure each item with every other one at this format (e.g. int3) instead of FP: damages then "
                "include the compounding of errors near that bit width");
  g->add_option("--base-recipe", o.base_recipe,
                "Measure each item with every other one at its format in this recipe, e.g. the lowbit-recipe.json "
                "of an allocation near the budget: damages then include that allocation's interactions")
      ->excludes("--base");
}

SensitivityTable compute_sensitivity(const Checkpoint& ck, const SensitivityCliOptions& o, const std::string& method,
                                     const GptqCliOptions& gptq) {
  if (gptq.calib.empty())
    fail(error(ErrorCode::kInvalidArgument,
               "sensitivity needs calibration data: --calib FILE (token or text file) or --calib self"));
  if (o.windows < 0) fail(error(ErrorCode::kInvalidArgument, "--windows {}: use 0 (all) or more", o.windows));
  SensitivityOptions options;
  for (const std::string& f : o.formats) options.formats.push_back(unwrap(parse_format_spec(f)));
  options.method = method;
  options.group_by_layer = o.group_by == "layer";
  options.measure_windows = o.windows;
  if (!o.base.empty()) options.base = unwrap(parse_format_spec(o.base));
  if (!o.base_recipe.empty()) {
    const Recipe recipe = unwrap(parse_recipe(unwrap(read_text_file(o.base_recipe)), o.base_recipe));
    const Plan plan = unwrap(resolve_plan(recipe, quantizable_tensors(ck.config)));
    for (const PlanEntry& e : plan.entries)
      if (e.format.is_quantized()) options.base_by_tensor[e.name] = e.format;
    options.base_name = "recipe " + std::filesystem::path(o.base_recipe).filename().string();
  }
  options.gptq = gptq_algorithm_options(gptq);
  options.asymmetric_calibration = gptq.asymmetric_calibration;
  options.gptq.clip = o.clip;
  options.rtn_clip = o.clip;
  auto model = unwrap(Model::from_checkpoint(ck));
  const TokenWindows windows = calibration_token_windows(ck, model, gptq);
  std::unique_ptr<ProgressBar> bar;
  SensitivityTable table = unwrap(measure_sensitivity(model, windows, options,
                                                      [&](int64_t done, int64_t total, const std::string& what) {
                                                        if (!bar) bar = std::make_unique<ProgressBar>("sensitivity", total);
                                                        bar->update(done, what);
                                                      }));
  table.rotation_seed = o.rotation;
  if (bar) bar->finish();
  return table;
}

void add_budget_options(CLI::App& cmd, BudgetCliOptions& o) {
  auto* g = cmd.add_option_group("Mixed precision",
                                 "Choose a format per tensor from measured sensitivity under a budget "
                                 "(candidates: --formats)");
  g->add_option("--target-bpw", o.target_bpw, "Average bits per weight over the block linears (e.g. 3.5)");
  g->add_option("--max-size", o.max_size, "Largest model as stored: 2.1GB, 300MiB, or bytes");
  g->add_option("--max-kld", o.max_kld, "Smallest model whose predicted KLD (nats) is at most this");
  g->add_option("--sensitivity", o.sensitivity, "Table from `lowbit sensitivity` (measured now when not given)");
  g->add_option("--allocator", o.allocator, "dp (exact knapsack) or greedy (damage saved per byte)")
      ->capture_default_str()
      ->check(CLI::IsMember({"dp", "greedy"}));
  g->add_option("--formats", o.measure.formats, "Candidate formats")->delimiter(',')->capture_default_str();
  g->add_option("--windows", o.measure.windows, "Calibration windows the KLD is measured on (0 = all)")
      ->capture_default_str();
  g->add_option("--group-by", o.measure.group_by, "tensor or layer")
      ->capture_default_str()
      ->check(CLI::IsMember({"tensor", "layer"}));
  g->add_option("--base", o.measure.base, "Measure sensitivity with every other item at this format (see sensitivity)");
}

std::optional<BudgetChoice> choose_for_bpw(const SensitivityTable& table, double bpw, const std::string& method,
                                           const std::string& allocator) {
  BudgetChoice c;
  c.table = table;
  c.weights = item_weights(table);
  c.budget_bytes = uint64_t(std::floor(bpw * double(c.weights) / 8.0));
  const auto items = allocation_items(table);
  Result<Allocation> a = allocator == "greedy" ? allocate_greedy(items, c.budget_bytes) : allocate_dp(items, c.budget_bytes);
  if (!a.ok()) {
    std::fprintf(stderr, "lowbit: %.2f bits/weight: %s\n", bpw, a.status().message().c_str());
    return std::nullopt;
  }
  c.allocation = *a;
  c.recipe = recipe_for(table, c.allocation, method);
  describe(c, fmt::format("{:g} bits/weight ({} bytes)", bpw, with_commas(int64_t(c.budget_bytes))));
  return c;
}

BudgetChoice choose_budget_recipe(const Checkpoint& ck, const BudgetCliOptions& o, const std::string& method,
                                  const GptqCliOptions& gptq, const std::string& float_dtype, bool recipe_given) {
  const int budgets = (o.target_bpw > 0) + !o.max_size.empty() + (o.max_kld >= 0);
  if (budgets > 1) fail(error(ErrorCode::kInvalidArgument, "give one of --target-bpw, --max-size, --max-kld"));
  if (recipe_given) fail(error(ErrorCode::kInvalidArgument, "--recipe and a budget (--target-bpw/--max-size/--max-kld) "
                                                            "both choose formats; give one"));
  if (method != "rtn" && method != "gptq")
    fail(error(ErrorCode::kInvalidArgument, "--method {}: budgets allocate rtn or gptq formats", method));
  // A bits budget below every block linear at its smallest candidate is infeasible whatever the
  // measurement says: refuse it before spending minutes measuring.
  if (o.sensitivity.empty() && o.target_bpw > 0) {
    uint64_t smallest = 0, weights = 0;
    for (const TensorShape& t : quantizable_tensors(ck.config)) {
      if (t.name.rfind("model.layers.", 0) != 0) continue;  // the block linears only, as counted
      uint64_t least = UINT64_MAX;
      for (const std::string& f : o.measure.formats)
        least = std::min(least, format_bytes(unwrap(parse_format_spec(f)), t.rows, t.cols));
      smallest += least;
      weights += uint64_t(t.rows * t.cols);
    }
    if (weights > 0 && uint64_t(std::floor(o.target_bpw * double(weights) / 8.0)) < smallest)
      fail(error(ErrorCode::kInvalidArgument,
                 "--target-bpw {:g}: below the smallest candidate allocation ({:.4f} bits/weight with every tensor "
                 "at its smallest --formats); add a smaller format or raise the budget",
                 o.target_bpw, 8.0 * double(smallest) / double(weights)));
  }
  BudgetChoice c;
  if (!o.sensitivity.empty()) {
    c.table = unwrap(parse_sensitivity_json(unwrap(read_text_file(o.sensitivity)), o.sensitivity, ck.config));
    std::printf("sensitivity: %s (%s, %zu items × %zu formats)\n", o.sensitivity.c_str(), c.table.method.c_str(),
                c.table.items.size(), c.table.formats.size());
    // o.measure.clip is this quantize's own --clip (cmd_quantize.cc copies it in).
    if (c.table.clip && !(*c.table.clip == o.measure.clip))
      std::fprintf(stderr,
                   "warning: %s was measured with clipping search %s but this quantize uses %s: the allocation "
                   "ranks damages of a different quantizer (measure the table with the same --clip)\n",
                   o.sensitivity.c_str(), clip_search_name(*c.table.clip).c_str(),
                   clip_search_name(o.measure.clip).c_str());
    if (method == "gptq" && c.table.method == "gptq" && c.table.asymmetric_calibration != gptq.asymmetric_calibration)
      std::fprintf(stderr,
                   "warning: %s was measured %s asymmetric calibration but this quantize runs %s it: the "
                   "allocation ranks damages of a different quantizer (measure the table with the same "
                   "--asymmetric-calibration)\n",
                   o.sensitivity.c_str(), c.table.asymmetric_calibration ? "with" : "without",
                   gptq.asymmetric_calibration ? "with" : "without");
    if (c.table.rotation_seed != o.measure.rotation) {
      auto name = [](const std::optional<uint64_t>& seed) {
        return seed ? fmt::format("--rotate --rotate-seed {}", *seed) : std::string("no rotation");
      };
      std::fprintf(stderr,
                   "warning: %s was measured with %s but this quantize uses %s: the allocation ranks damages of "
                   "different weights (measure the table with the same rotation)\n",
                   o.sensitivity.c_str(), name(c.table.rotation_seed).c_str(), name(o.measure.rotation).c_str());
    }
  } else {
    c.table = compute_sensitivity(ck, o.measure, method, gptq);
    std::printf("sensitivity: measured %zu items × %zu formats with %s in %.1f s; proxy vs KLD rank correlation %.3f\n",
                c.table.items.size(), c.table.formats.size(), c.table.method.c_str(), c.table.seconds,
                c.table.spearman);
  }
  c.weights = item_weights(c.table);
  const auto items = allocation_items(c.table);
  std::string budget_text;
  Result<Allocation> a = Status(ErrorCode::kInternal, "no budget");
  if (o.max_kld >= 0) {
    a = allocate_dp_max_damage(items, o.max_kld - c.table.base_kld);
    budget_text = fmt::format("predicted KLD <= {:g}", o.max_kld);
  } else {
    if (o.target_bpw > 0) {
      c.budget_bytes = uint64_t(std::floor(o.target_bpw * double(c.weights) / 8.0));
      budget_text = fmt::format("{:g} bits/weight ({} bytes)", o.target_bpw, with_commas(int64_t(c.budget_bytes)));
    } else {
      // Everything that is not allocated is stored as it is, floats at --dtype.
      std::set<std::string> allocated;
      for (const auto& item : c.table.items) allocated.insert(item.tensors.begin(), item.tensors.end());
      const uint64_t per_float = float_dtype == "f32" ? 4 : 2;
      uint64_t fixed = 0;
      for (const auto& t : ck.tensors.tensors())
        if (!allocated.count(t.name)) fixed += uint64_t(t.numel()) * per_float;
      const uint64_t max_bytes = parse_size(o.max_size);
      if (max_bytes <= fixed)
        fail(error(ErrorCode::kInvalidArgument,
                   "--max-size {}: the tensors kept in floating point alone take {} bytes (at --dtype {})", o.max_size,
                   with_commas(int64_t(fixed)), float_dtype));
      c.budget_bytes = max_bytes - fixed;
      budget_text = fmt::format("model <= {} ({} bytes for the block linears after {} of other tensors)", o.max_size,
                                with_commas(int64_t(c.budget_bytes)), with_commas(int64_t(fixed)));
    }
    a = o.allocator == "greedy" ? allocate_greedy(items, c.budget_bytes) : allocate_dp(items, c.budget_bytes);
  }
  if (!a.ok()) fail(a.status().with_context(o.target_bpw > 0 ? fmt::format("--target-bpw {:g}", o.target_bpw)
                                            : o.max_kld >= 0 ? fmt::format("--max-kld {:g}", o.max_kld)
                                                             : "--max-size " + o.max_size));
  c.allocation = *a;
  c.recipe = recipe_for(c.table, c.allocation, method);
  describe(c, budget_text);
  for (const auto& line : c.summary) std::printf("%s\n", line.c_str());
  return c;
}

void report_budget_result(const Checkpoint& fp, const Checkpoint& quantized, const BudgetChoice& choice,
                          const GptqCliOptions& gptq, const std::string& output_dir) {
  std::printf("%-44s %-10s %12s %12s\n", "item", "format", "bytes", "pred. KLD");
  for (size_t i = 0; i < choice.table.items.size(); ++i) {
    const auto& cell = choice.table.items[i].cells[size_t(choice.allocation.choice[i])];
    std::printf("%-44s %-10s %12s %12.6f\n", choice.table.items[i].name.c_str(), cell.format.c_str(),
                with_commas(int64_t(cell.bytes)).c_str(), cell.kld);
  }
  if (!output_dir.empty())
    check(write_text_file_atomic(output_dir + "/lowbit-sensitivity.json", sensitivity_to_json(choice.table)));
  if (gptq.calib.empty()) return;  // a table from a file and no calibration data: nothing to measure on
  auto reference = unwrap(Model::from_checkpoint(fp));
  auto model = unwrap(Model::from_checkpoint(quantized));
  TokenWindows windows = calibration_token_windows(fp, reference, gptq);
  const size_t n = choice.table.measure_windows > 0 ? std::min(windows.size(), size_t(choice.table.measure_windows))
                                                     : windows.size();
  windows.resize(n);
  EvalResult r = unwrap(evaluate_on_windows(model, reference, windows));
  std::printf("KLD on %zu calibration windows: predicted %.5f (sum of per-item KLDs), measured %.5f (top-1 %.4f, "
              "ppl %.4f vs FP %.4f)\n",
              n, choice.predicted_kld(), r.kld, r.top1, r.perplexity, r.reference_perplexity);
}

}  // namespace lowbit::cli
