// lowbit report MODEL --tokens FILE -o DIR: quantize the model in memory in every requested
// configuration, evaluate each against the FP model on the same tokens, and write the
// trade-off table (DIR/report.md) and plot (DIR/tradeoff.svg).
#include <filesystem>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "base/progress.h"
#include "cli_common.h"
#include "commands.h"
#include "eval/metrics.h"
#include "eval/tradeoff.h"
#include "io/atomic_file.h"
#include "quantize_budget.h"
#include "quantize_methods.h"

namespace lowbit::cli {

namespace {

struct ReportOptions {
  std::string model, tokens, output, reference_figures, tokenizer;
  std::vector<std::string> formats = {"int8", "int8g32", "int4", "int4g32", "int3", "int3g32", "int2", "int2g32"};
  std::vector<std::string> methods = {"rtn"};
  EvalProtocol protocol;
  int threads = 0;
  GptqCliOptions gptq;
  ClipCliOptions clip;            // every quantization and the sensitivity cells alike
  std::vector<double> budgets;    // mixed-precision rows at these bits/weight (needs --calib)
  SensitivityCliOptions measure;  // their candidate formats and measurement
};

// reference.json rows: {"rtn": [{"bits", "group", "kld", ...}], "gptq": [...]}.
double reference_kld(const nlohmann::json& ref, const std::string& method, const FormatSpec& f) {
  // reference.json has asymmetric fp16-parameter INTn only: no symmetric or double-quantized rows.
  if (!ref.is_object() || !ref.contains(method) || !f.info().integer_grid || f.symmetric || f.double_quant) return -1;
  const int group = f.granularity == Granularity::kGroup ? int(f.group_size) : -1;
  if (f.granularity == Granularity::kPerTensor) return -1;
  for (const auto& r : ref[method])
    if (r.value("bits", 0) == f.code_bits() && r.value("group", 0) == group) return r.value("kld", -1.0);
  return -1;
}

void run_report(ReportOptions& o) {
  set_threads(o.threads);
  Checkpoint ck = unwrap(load_checkpoint(o.model, o.tokenizer));
  auto fp = unwrap(Model::from_checkpoint(ck));
  std::vector<int32_t> tokens = unwrap(read_token_file(o.tokens, ck.config.vocab_size));
  o.protocol.source = o.tokens;
  o.measure.clip = o.clip.search();  // the sensitivity cells fit as the rows do
  nlohmann::json ref;
  if (!o.reference_figures.empty()) {
    std::ifstream f(o.reference_figures);
    ref = nlohmann::json::parse(f, nullptr, false);
    if (ref.is_discarded()) fail(error(ErrorCode::kFormat, "{}: not valid JSON", o.reference_figures));
  }
  uint64_t kept_bytes = 0;  // tensors no recipe touches (norms): stored as they are
  for (const auto& e : expected_tensors(ck.config))
    if (e.shape.size() == 1) kept_bytes += ck.tensors.find(e.name)->data.size();

  std::vector<TradeoffPoint> points;
  // Quantizes by `recipe`, evaluates, and adds a row. Bits/weight are over the planned block
  // linears (every one is quantized, uniform or mixed).
  auto add_point = [&](const std::string& label, const Recipe& recipe, double ref_kld) {
    Plan plan = unwrap(resolve_plan(recipe, quantizable_tensors(ck.config)));
    QuantizedTensors q = quantize_planned_tensors(ck, plan, o.clip.search(), o.gptq);
    auto model = unwrap(Model::from_checkpoint(with_quantized_weights(ck, q.matrices)));
    EvalResult r = unwrap(evaluate(model, fp, tokens, o.protocol));
    uint64_t qbytes = 0;
    for (const auto& e : plan.entries)
      if (e.format.is_quantized()) qbytes += e.bytes;
    points.push_back({label, 8.0 * double(qbytes) / double(plan.quantized_weights()),
                      double(plan.total_bytes() + kept_bytes), r.perplexity, r.kld, r.top1, ref_kld});
  };
  const size_t total = (o.formats.size() + o.budgets.size()) * o.methods.size();
  ProgressBar bar("report", int64_t(total));
  for (const std::string& method : o.methods) {
    for (const std::string& text : o.formats) {
      bar.update(int64_t(points.size()), method + " " + text);
      const FormatSpec spec = unwrap(parse_format_spec(text));
      add_point(text + " " + method, uniform_recipe(spec, method), reference_kld(ref, method, spec));
    }
    if (o.budgets.empty()) continue;
    // Mixed precision: one sensitivity table per method, one allocation per budget.
    const SensitivityTable table = compute_sensitivity(ck, o.measure, method, o.gptq);
    for (double bpw : o.budgets) {
      bar.update(int64_t(points.size()), fmt::format("{} mixed {:g}", method, bpw));
      std::optional<BudgetChoice> choice = choose_for_bpw(table, bpw, method);
      if (choice) add_point(fmt::format("mixed {:.2f} {}", bpw, method), choice->recipe, -1);
    }
  }
  bar.update(int64_t(total));
  bar.finish();
  std::error_code ec;
  std::filesystem::create_directories(o.output, ec);
  const std::string title = fmt::format("{}: size vs KL divergence", std::filesystem::path(o.model).filename().string());
  std::string md = "# Trade-off report: " + o.model + "\n\n";
  md += fmt::format("FP32 model: {} bytes; bits/weight counts the stored bytes (codes, scales, zero points) of the "
                    "quantized tensors (the 35 block linears by default); size is the whole model.\n\n",
                    uint64_t(ck.config.parameter_count()) * 4);
  if (o.clip.on) md += "Every fit uses the clipping search: " + clip_search_name(o.clip.search()) + ".\n\n";
  md += tradeoff_markdown(points, o.protocol.describe());
  md += "\n![size vs KLD](tradeoff.svg)\n\nMade by: `lowbit report " + o.model + " --tokens " + o.tokens + " ...`\n";
  check(write_text_file_atomic(o.output + "/report.md", md));
  check(write_text_file_atomic(o.output + "/tradeoff.svg", tradeoff_svg(points, title)));
  std::printf("%s", md.c_str());
  std::printf("\nwrote %s/report.md and %s/tradeoff.svg\n", o.output.c_str(), o.output.c_str());
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto o = std::make_shared<ReportOptions>();
  auto* cmd = app.add_subcommand("report", "Sweep quantization configurations; write a trade-off table and SVG plot");
  cmd->add_option("model", o->model, "FP model (any supported format)")->required();
  cmd->add_option("--tokens", o->tokens, "Evaluation token file (int32)")->required();
  cmd->add_option("-o,--output", o->output, "Output directory for report.md and tradeoff.svg")->required();
  cmd->add_option("--formats", o->formats, "Format specs to sweep")->delimiter(',')->capture_default_str();
  cmd->add_option("--methods", o->methods, "Methods to sweep: rtn, gptq")->delimiter(',')->capture_default_str();
  cmd->add_option("--reference-figures", o->reference_figures, "JSON with independent figures to compare (reference.json)");
  cmd->add_option("--window", o->protocol.windows.length, "Tokens per evaluation window")->capture_default_str();
  cmd->add_option("--max-windows", o->protocol.windows.max_windows, "Evaluate at most N windows (0 = all)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file for llama2.c models");
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)");
  add_gptq_options(*cmd, o->gptq);
  add_clip_options(*cmd, o->clip);
  cmd->add_option("--budgets", o->budgets,
                  "Also mixed-precision allocations at these bits/weight, e.g. 2.5,3,3.5,4 (needs --calib)")
      ->delimiter(',');
  cmd->add_option("--mixed-formats", o->measure.formats, "Candidate formats of the mixed rows")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--sensitivity-windows", o->measure.windows, "Calibration windows the sensitivity KLD uses")
      ->capture_default_str();
  cmd->add_option("--sensitivity-base", o->measure.base, "Measure sensitivity with the other items at this format");
  cmd->footer(
      "Examples:\n"
      "  lowbit report stories260K.bin --tokens eval_tokens.bin --reference-figures reference.json -o report/\n"
      "  lowbit report stories260K.bin --tokens eval_tokens.bin --methods gptq --calib calib_tokens.bin \\\n"
      "      --budgets 2.5,3,3.5,4 --mixed-formats int2,int3,int4,int8 -o report/\n"
      "  lowbit report stories260K.bin --tokens eval_tokens.bin --methods gptq --true-sequential --clip \\\n"
      "      --calib calib_tokens.bin --formats int3_dq4,int3_midrise_dq4 --budgets 3,3.5 \\\n"
      "      --mixed-formats int2_midrise_dq4,int3_dq4,int3_midrise_dq4,int4_dq4 --sensitivity-base int3_dq4 -o report/\n"
      "Mixed rows: per-tensor sensitivity measured once per method (lowbit sensitivity), then a format per\n"
      "tensor with the least predicted KLD at each budget (lowbit quantize --target-bpw).");
  cmd->callback([o] { run_report(*o); });
}

}  // namespace lowbit::cli
