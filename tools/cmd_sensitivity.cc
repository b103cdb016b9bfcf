// lowbit sensitivity MODEL --calib FILE: for each block linear (or block) and each candidate
// format, the KL divergence of the model with only that item quantized, and the Hessian proxy
// tr(ΔW H ΔWᵀ); how well the proxy ranks like the measurement. The table feeds
// `lowbit quantize --target-bpw / --max-size / --max-kld --sensitivity table.json`.
#include "cli_common.h"
#include "commands.h"
#include "io/atomic_file.h"
#include "quantize_budget.h"

namespace lowbit::cli {

namespace {

struct SensitivityCommandOptions {
  std::string model, tokenizer, output, method = "rtn";
  bool json = false;
  int threads = 0;
  SensitivityCliOptions measure;
  GptqCliOptions gptq;
  ClipCliOptions clip;
  RotateCliOptions rotate;
};

void print_table(const SensitivityTable& t) {
  std::printf("%-40s", "item");
  for (const auto& f : t.formats) std::printf(" %12s %10s", (f + " KLD").c_str(), "proxy");
  std::printf("\n");
  for (const auto& item : t.items) {
    std::printf("%-40s", item.name.c_str());
    for (const auto& cell : item.cells) std::printf(" %12.6f %10.4g", cell.kld, cell.proxy);
    std::printf("\n");
  }
  std::printf("KLD: mean KL(P_fp || P_q) in nats over %lld positions of %lld calibration windows, only that item "
              "quantized (%s); proxy: tr(dW H dW^T), H from %lld windows\n",
              static_cast<long long>(t.tokens_scored), static_cast<long long>(t.measure_windows), t.method.c_str(),
              static_cast<long long>(t.calibration_windows));
  if (t.clip) std::printf("clipping search: %s\n", clip_search_name(*t.clip).c_str());
  if (t.asymmetric_calibration)
    std::printf("GPTQ with asymmetric calibration (each tensor fit to the original model's outputs)\n");
  if (!t.base_format.empty())
    std::printf("in context: every other item at %s (KLD of that model: %.6f); damage = KLD - that\n",
                t.base_format.c_str(), t.base_kld);
  std::printf("Spearman rank correlation, proxy vs KLD: %.3f over all %zu cells;", t.spearman,
              t.items.size() * t.formats.size());
  for (const auto& f : t.formats) std::printf(" %s %.3f", f.c_str(), t.spearman_by_format.at(f));
  std::printf(" (per format, across items)\ntime: %.1f s\n", t.seconds);
}

void run_sensitivity(const SensitivityCommandOptions& o) {
  set_threads(o.threads);
  Checkpoint ck = maybe_rotate(unwrap(load_checkpoint(o.model, o.tokenizer)), o.rotate);
  SensitivityCliOptions measure = o.measure;
  measure.clip = o.clip.search();
  if (o.rotate.on) measure.rotation = o.rotate.seed;
  SensitivityTable table = compute_sensitivity(ck, measure, o.method, o.gptq);
  const std::string json = sensitivity_to_json(table);
  if (!o.output.empty()) check(write_text_file_atomic(o.output, json));
  if (o.json) {
    std::printf("%s", json.c_str());
    return;
  }
  print_table(table);
  if (!o.output.empty()) std::printf("wrote %s\n", o.output.c_str());
}

}  // namespace

void add_sensitivity_command(CLI::App& app) {
  auto o = std::make_shared<SensitivityCommandOptions>();
  auto* cmd = app.add_subcommand("sensitivity",
                                 "Measure how much each linear layer's quantization costs (KLD and Hessian proxy)");
  cmd->add_option("model", o->model, "FP model (any supported format)")->required();
  cmd->add_option("-o,--output", o->output, "Write the table as JSON (input of quantize --sensitivity)");
  cmd->add_option("--method", o->method, "How each item is quantized: rtn or gptq (alone, FP-input Hessian)")
      ->capture_default_str()
      ->check(CLI::IsMember({"rtn", "gptq"}));
  cmd->add_flag("--json", o->json, "Print the JSON table instead of the text table");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file for llama2.c models");
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)");
  add_sensitivity_options(*cmd, o->measure);
  add_gptq_options(*cmd, o->gptq);
  add_clip_options(*cmd, o->clip);
  add_rotate_options(*cmd, o->rotate);
  cmd->footer(
      "Examples:\n"
      "  lowbit sensitivity stories260K.bin --calib calib_tokens.bin -o sens.json\n"
      "  lowbit sensitivity model/ --calib self --method gptq --formats int8,int4g128,int3g128,int2g32\n"
      "  lowbit quantize model/ --method gptq --calib calib.bin --sensitivity sens.json --target-bpw 3.5 -o q\n"
      "  lowbit sensitivity stories260K.bin --method gptq --clip --calib calib_tokens.bin --base int3 \\\n"
      "      --formats int2,int2_sym,int3,int3_sym,int4,int4_sym,int3_tensor,int4_tensor -o sens.json\n"
      "     (in the context of int3; quantize with the same --clip; --base-recipe q/lowbit-recipe.json\n"
      "      measures in the context of an earlier allocation instead)\n"
      "  lowbit sensitivity stories260K.bin --method gptq --clip --calib calib_tokens.bin --base int3_dq \\\n"
      "      --formats int2_dq,int2_sym_dq,int3_dq,int3_sym_dq,int3g32_dq,int4_dq,int4_sym_dq,int3_tensor -o sens.json\n"
      "     (_dq: 8-bit scale codes under one super-scale per tensor, b-bit zero points; docs/formats.md)\n"
      "Each item is quantized alone (everything else FP) and the model's output distribution on the first\n"
      "--windows calibration windows is compared with the FP model's; the Hessian H = 2/n X^T X of each\n"
      "layer's inputs comes from all --nsamples windows.");
  cmd->callback([o] { run_sensitivity(*o); });
}

}  // namespace lowbit::cli
