#include "quantize_methods.h"

#include "base/progress.h"
#include "cli_common.h"

namespace lowbit::cli {

void add_gptq_options(CLI::App& cmd, GptqCliOptions& o) {
  auto* g = cmd.add_option_group("GPTQ", "Options of --method gptq");
  g->add_option("--calib", o.calib, "Calibration data: int32 token file, text file, or 'self' (sampled from the model)");
  g->add_option("--nsamples", o.nsamples, "Calibration windows")->capture_default_str();
  g->add_option("--seqlen", o.seqlen, "Tokens per calibration window")->capture_default_str();
  g->add_option("--seed", o.seed, "Seed for window sampling")->capture_default_str();
  g->add_option("--damp", o.damp, "Dampening as a fraction of mean(diag H)")->capture_default_str();
  g->add_option("--block", o.block, "Lazy batch size (columns updated together)")->capture_default_str();
  g->add_flag("--act-order", o.act_order, "Quantize columns by descending Hessian diagonal (records g_idx)");
  g->add_flag("--static-groups", o.static_groups, "With --act-order: fit group parameters before reordering");
  g->add_flag("--true-sequential", o.true_sequential,
              "Quantize q/k/v, then o, then gate/up, then down, each seeing already-quantized inputs");
}

QuantizedTensors quantize_planned_tensors(const Checkpoint& ck, const Plan& plan, bool clip,
                                          const GptqCliOptions& gptq) {
  for (const auto& e : plan.entries)
    if (e.format.is_quantized() && e.method == "gptq")
      fail(error(ErrorCode::kUnsupported, "--method gptq is not available in this build yet"));
  RtnOptions options;
  if (clip) options.clip = kDefaultClipSearch;
  std::unique_ptr<ProgressBar> bar;
  QuantizedTensors out;
  out.matrices = unwrap(rtn_quantize_plan(ck, plan, options, [&](const QuantizeProgress& p) {
    if (!bar) bar = std::make_unique<ProgressBar>("rtn", p.total);
    bar->update(p.done, p.tensor);
  }));
  return out;
}

}  // namespace lowbit::cli
