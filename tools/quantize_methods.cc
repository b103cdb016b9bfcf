#include "quantize_methods.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "base/progress.h"
#include "calib/calibration_data.h"
#include "calib/gptq_driver.h"
#include "calib/rotate_checkpoint.h"
#include "calib/streamed_model.h"
#include "eval/token_data.h"
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
  g->add_flag("--asymmetric-calibration", o.asymmetric_calibration,
              "Asymmetric calibration (GPTAQ): fit each layer to the original model's outputs on the original "
              "inputs, so it also corrects the error of the layers quantized before it (runs the original model "
              "beside the quantized one: twice the calibration forwards and residual streams)");
}

void add_clip_options(CLI::App& cmd, ClipCliOptions& o) {
  cmd.add_flag("--clip", o.on,
               "Search a clipping ratio per group (least squared error; GPTQ weighs it by the Hessian diagonal) "
               "instead of plain min/max");
  cmd.add_option("--clip-steps", o.steps, "With --clip: shrink factors tried besides 1 (1 - k (1 - min)/steps)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd.add_option("--clip-min", o.min_shrink, "With --clip: smallest shrink factor of the min/max range")
      ->capture_default_str()
      ->check(CLI::Range(0.01f, 1.0f));
}

void add_rotate_options(CLI::App& cmd, RotateCliOptions& o) {
  cmd.add_flag("--rotate", o.on,
               "Rotate the model first (QuaRot-style, same function, no run-time cost): a random orthogonal "
               "(Hadamard) rotation of the residual stream and of each value head folded into the weights, "
               "which spreads outliers so that low-bit grids fit better; the head is then stored untied");
  cmd.add_option("--rotate-seed", o.seed, "Seed of the rotation")->capture_default_str();
}

Checkpoint maybe_rotate(Checkpoint ck, const RotateCliOptions& o) {
  if (!o.on) return ck;
  RotationOptions options;
  options.seed = o.seed;
  ProgressBar bar("rotate", ck.config.n_layers);
  Checkpoint rotated = unwrap(rotate_checkpoint(ck, options, [&](int done, int) { bar.update(done); }));
  bar.finish();
  std::fprintf(stderr, "lowbit: rotated: residual stream (%d) and value heads (%d), seed %llu; norms folded, head untied\n",
              ck.config.dim, ck.config.head_dim, (unsigned long long)o.seed);
  return rotated;
}

namespace {

// Calibration windows for GPTQ: a token file, a text file (tokenized, paragraphs = BOS + tokens),
// or "self" (sampled from the FP model). Too few windows is an error that says how many there are.
TokenWindows calibration_windows(const Checkpoint& ck, std::shared_ptr<const Model> model, const GptqCliOptions& o) {
  if (o.calib.empty())
    fail(error(ErrorCode::kInvalidArgument, "--method gptq needs --calib FILE (token or text file) or --calib self"));
  if (o.nsamples <= 0 || o.seqlen < 2 || o.seqlen > ck.config.max_seq_len)
    fail(error(ErrorCode::kInvalidArgument, "--nsamples {} / --seqlen {}: need nsamples > 0 and 2 <= seqlen <= {}",
               o.nsamples, o.seqlen, ck.config.max_seq_len));
  if (o.calib == "self") {
    SelfCalibrationOptions self;
    self.windows = o.nsamples;
    self.length = o.seqlen;
    self.seed = o.seed;
    return unwrap(sample_calibration_windows(model, self));
  }
  TokenWindows windows;
  const bool text = o.calib.size() > 4 && o.calib.compare(o.calib.size() - 4, 4, ".txt") == 0;
  if (text) {
    if (!ck.tokenizer) fail(error(ErrorCode::kInvalidArgument, "{}: a text calibration file needs a tokenizer", o.calib));
    windows = cut_windows(unwrap(tokenize_text_file(o.calib, *ck.tokenizer)), o.seqlen);
  } else {
    windows = unwrap(read_calibration_windows(o.calib, ck.config.vocab_size, o.seqlen));
  }
  if (int(windows.size()) < o.nsamples)
    fail(error(ErrorCode::kInvalidArgument, "{}: has only {} windows of {} tokens but --nsamples is {}", o.calib,
               windows.size(), o.seqlen, o.nsamples));
  if (o.seed != 0) {  // a seeded random subset; seed 0 keeps the first windows in file order
    std::mt19937_64 rng(o.seed);
    std::shuffle(windows.begin(), windows.end(), rng);
  }
  windows.resize(size_t(o.nsamples));
  return windows;
}

// Rough peak memory of GPTQ: residual stream of all windows, one window's activations, the
// Hessians of one stage (double), and the fp32 model as loaded.
double gptq_memory_estimate(const ModelConfig& c, const GptqCliOptions& o) {
  const double tokens = double(o.nsamples) * o.seqlen;
  const double residual = tokens * c.dim * 4;
  const double hessians = 2.0 * std::pow(double(std::max(c.dim, c.hidden_dim)), 2) * 8 + 2.0 * c.dim * c.dim * 8;
  const double window = double(o.seqlen) * (c.dim * 6 + c.hidden_dim * 2 + c.vocab_size) * 4;
  if (!o.asymmetric_calibration) return residual + hessians + window + double(c.parameter_count()) * 4;
  // Asymmetric: the original model's stream and sessions too, and one stage's original inputs.
  const double stage_inputs = tokens * std::max(c.dim, c.hidden_dim) * 4;
  return 2 * (residual + window) + hessians * 1.5 + stage_inputs + double(c.parameter_count()) * 4;
}

}  // namespace

QuantizedTensors quantize_planned_tensors(const Checkpoint& ck, const Plan& plan, const ClipSearch& clip,
                                          const GptqCliOptions& gptq, const QuantizedSink& sink) {
  RtnOptions options;
  options.clip = clip;
  std::unique_ptr<ProgressBar> bar;
  QuantizedTensors out;
  auto rtn_progress = [&](const QuantizeProgress& p) {
    if (!bar) bar = std::make_unique<ProgressBar>("rtn", p.total);
    bar->update(p.done, p.tensor);
  };
  if (sink) check(rtn_quantize_plan_to(ck, plan, options, sink, rtn_progress));
  else out.matrices = unwrap(rtn_quantize_plan(ck, plan, options, rtn_progress));
  bar.reset();

  std::vector<std::pair<std::string, FormatSpec>> targets;
  for (const auto& e : plan.entries)
    if (e.format.is_quantized() && e.method == "gptq") {
      if (e.name.rfind("model.layers.", 0) != 0)
        fail(error(ErrorCode::kUnsupported, "tensor {}: GPTQ quantizes block linear layers only; use rtn for it", e.name));
      targets.emplace_back(e.name, e.format);
    }
  if (targets.empty()) return out;
  const double need = gptq_memory_estimate(ck.config, gptq);
  const double avail = double(sysconf(_SC_AVPHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  if (avail > 0 && need > avail)
    fail(error(ErrorCode::kResource, "GPTQ needs about {} of memory ({} windows × {} tokens) but {} is available; "
               "lower --nsamples or --seqlen", human_bytes(need), gptq.nsamples, gptq.seqlen, human_bytes(avail)));
  // Streaming: blocks are converted as GPTQ reaches them (bounded memory). Self-calibration
  // samples from the whole fp32 model first, so it takes the full model.
  std::shared_ptr<const Model> model;
  GptqModelOptions options_gptq;
  if (sink && gptq.calib != "self") {
    StreamedModel streamed = unwrap(make_streamed_model(ck));
    model = streamed.model;
    options_gptq.load_block = streamed.load_block;
    options_gptq.release_block = streamed.release_block;
    options_gptq.sink = sink;
  } else {
    model = unwrap(Model::from_checkpoint(ck));
    options_gptq.sink = sink;
  }
  TokenWindows windows = calibration_windows(ck, model, gptq);
  options_gptq.gptq.block_size = gptq.block;
  options_gptq.gptq.percdamp = gptq.damp;
  options_gptq.gptq.act_order = gptq.act_order;
  options_gptq.gptq.static_groups = gptq.static_groups;
  options_gptq.gptq.clip = clip;
  options_gptq.true_sequential = gptq.true_sequential;
  options_gptq.asymmetric_calibration = gptq.asymmetric_calibration;
  ProgressBar gbar("gptq", int64_t(targets.size()));
  GptqModelResult r = unwrap(gptq_quantize_model(model, targets, windows, options_gptq,
                                                 [&](int block, const std::string& name, int done, int total) {
                                                   gbar.update(done, fmt::format("block {} {}", block, name));
                                                 }));
  gbar.finish();
  for (auto& [name, m] : r.quantized) out.matrices[name] = m;
  out.report.push_back(fmt::format("GPTQ: {} windows × {} tokens, damp {}, block {}{}{}{}; {:.2f} s total "
                                   "(Hessian forwards {:.2f} s, quantization {:.2f} s, propagation {:.2f} s)",
                                   windows.size(), gptq.seqlen, gptq.damp, gptq.block,
                                   gptq.act_order ? ", act-order" : "", gptq.true_sequential ? ", true-sequential" : "",
                                   gptq.asymmetric_calibration ? ", asymmetric calibration" : "", r.total_seconds,
                                   r.hessian_forward_seconds, r.quantize_seconds, r.propagate_seconds));
  out.report.push_back("GPTQ proxy loss per layer (Σ err²/d²):");
  for (const auto& l : r.layers)
    out.report.push_back(fmt::format("  {:<44} {:.6g}{}", l.name, l.proxy_loss,
                                     l.percdamp_used > gptq.damp ? fmt::format(" (damp raised to {})", l.percdamp_used) : ""));
  return out;
}

TokenWindows calibration_token_windows(const Checkpoint& ck, std::shared_ptr<const Model> model,
                                       const GptqCliOptions& gptq) {
  return calibration_windows(ck, std::move(model), gptq);
}

}  // namespace lowbit::cli
