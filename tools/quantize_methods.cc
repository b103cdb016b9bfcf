#include "quantize_methods.h"

#include "base/progress.h"
#include "cli_common.h"
#include "model/float_values.h"
#include "quant/rtn.h"

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
  QuantizedTensors out;
  std::vector<const PlanEntry*> rtn;
  bool any_gptq = false;
  for (const auto& e : plan.entries) {
    if (!e.format.is_quantized()) continue;
    if (e.method == "gptq") any_gptq = true;
    else rtn.push_back(&e);
  }
  if (any_gptq)
    fail(error(ErrorCode::kUnsupported, "--method gptq is not available in this build yet"));
  ProgressBar bar("rtn", int64_t(rtn.size()));
  RtnOptions options;
  if (clip) options.clip = kDefaultClipSearch;
  for (size_t i = 0; i < rtn.size(); ++i) {
    const PlanEntry& e = *rtn[i];
    bar.update(int64_t(i), e.name);
    std::vector<float> w = float_values(*ck.tensors.find(e.name));
    auto m = rtn_quantize(w, e.rows, e.cols, e.format, options);
    if (!m.ok()) fail(m.status().with_context(e.name));
    out.matrices[e.name] = std::make_shared<QuantizedMatrix>(std::move(*m));
  }
  bar.update(int64_t(rtn.size()));
  return out;
}

}  // namespace lowbit::cli
