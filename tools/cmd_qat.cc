// lowbit qat MODEL --bits 2 --group 32 --data FILE|self -o OUT: quantization-aware training.
// The FP model is the teacher; the student starts from GPTQ's (default) or RTN's quantized
// weights, trains its fp32 master weights through fake quantization with the straight-through
// estimator to match the teacher's full next-token distribution (KL distillation), and is
// quantized for real at the end into the same checkpoint format as `lowbit quantize`.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <numeric>
#include <random>

#include "base/progress.h"
#include "calib/calibration_data.h"
#include "calib/gptq_driver.h"
#include "calib/quantize_checkpoint.h"
#include "cli_common.h"
#include "commands.h"
#include "eval/token_data.h"
#include "export/quantized_checkpoint.h"
#include "train/qat.h"
#include "train/train_graph.h"
#include "train/trainer.h"

namespace lowbit::cli {

namespace {

namespace fs = std::filesystem;

struct QatOptions {
  std::string model, tokenizer, output, format, init = "auto", data;
  int bits = 2, group = 32;
  bool sym = false;
  // Defaults measured on stories260K (docs/results.md, "QAT"): 500 steps of 4 × 256 tokens, with
  // 384 teacher-sampled windows beside the 120 data windows, take 4-5 minutes there on 2 cores
  // and bring int2g32 to a sixth of GPTQ's KL divergence and int3g32 to a third. The starting
  // point that measured better differs with the bits (see --init auto below).
  int64_t steps = 500;
  int batch = 4, seq = 0, windows = 128, eval_windows = -1, self_windows = -1;
  double lr = 1e-3, min_lr_ratio = 0.05, weight_decay = 0.0, clip = 1.0;
  int64_t warmup = -1, eval_every = 0, save_every = 0;
  uint64_t seed = 1;
  bool freeze_float = false, resume = false, force = false;
  int threads = 0;
};

FormatSpec spec_from_flags(const QatOptions& o) {
  if (!o.format.empty()) {
    FormatSpec spec = unwrap(parse_format_spec(o.format));
    if (!spec.info().integer_grid)
      fail(error(ErrorCode::kUnsupported, "--format {}: QAT supports the integer grids (int2/3/4/8)", o.format));
    return spec;
  }
  if (o.bits != 2 && o.bits != 3 && o.bits != 4 && o.bits != 8)
    fail(error(ErrorCode::kInvalidArgument, "--bits {}: use 8, 4, 3 or 2", o.bits));
  std::string text = "int" + std::to_string(o.bits);
  if (o.group > 0) text += "g" + std::to_string(o.group);
  else if (o.group < 0) text += "_tensor";
  if (o.sym) text += "_sym";
  return unwrap(parse_format_spec(text));
}

TokenWindows load_windows(const Checkpoint& ck, std::shared_ptr<const Model> model, const QatOptions& o, int seq) {
  if (o.data.empty()) fail(error(ErrorCode::kInvalidArgument, "qat needs --data FILE (token or text file) or --data self"));
  TokenWindows w;
  if (o.data == "self") {
    SelfCalibrationOptions self;
    self.windows = o.windows;
    self.length = seq;
    self.seed = o.seed;
    return unwrap(sample_calibration_windows(model, self));
  }
  const bool text = o.data.size() > 4 && o.data.compare(o.data.size() - 4, 4, ".txt") == 0;
  if (text) {
    if (!ck.tokenizer) fail(error(ErrorCode::kInvalidArgument, "{}: a text file needs the model's tokenizer", o.data));
    w = cut_windows(unwrap(tokenize_text_file(o.data, *ck.tokenizer)), seq, o.windows);
  } else {
    w = unwrap(read_calibration_windows(o.data, ck.config.vocab_size, seq, o.windows));
  }
  if (w.size() < 2)
    fail(error(ErrorCode::kInvalidArgument, "{}: only {} window(s) of {} tokens; QAT needs at least 2", o.data,
               w.size(), seq));
  return w;
}

void run_qat(const QatOptions& o) {
  set_threads(o.threads);
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  if (o.output.empty()) fail(error(ErrorCode::kInvalidArgument, "qat needs -o OUT"));
  if (fs::exists(o.output) && !o.force)
    fail(error(ErrorCode::kInvalidArgument, "{}: output exists; use --force to replace it", o.output));
  const FormatSpec spec = spec_from_flags(o);
  // auto: GPTQ's result is a good start at 3 bits and more (int3g32 KLD 0.125 after QAT vs 0.147
  // from RTN), a poor one at 2 bits where it is far from the FP model (0.75 vs 0.58 from RTN).
  const std::string init = o.init != "auto" ? o.init : spec.code_bits() >= 3 ? "gptq" : "rtn";
  Checkpoint ck = unwrap(load_checkpoint(o.model, o.tokenizer));
  std::shared_ptr<const Model> teacher = unwrap(Model::from_checkpoint(ck));
  const ModelConfig& c = ck.config;
  const train::ParamLayout layout = unwrap(train::make_param_layout(c));
  const int seq = o.seq > 0 ? o.seq : std::min(256, c.max_seq_len);
  if (seq < 2 || seq > c.max_seq_len)
    fail(error(ErrorCode::kInvalidArgument, "--seq {}: need 2 <= seq <= {}", seq, c.max_seq_len));
  if (o.batch <= 0 || o.steps <= 0 || !(o.lr > 0) || o.windows <= 0)
    fail(error(ErrorCode::kInvalidArgument, "--batch, --steps, --windows and --lr must be positive"));

  // Data: windows from the file (or sampled by the teacher); the last few are held out.
  TokenWindows windows = load_windows(ck, teacher, o, seq);
  const int n_data = int(windows.size());
  const int held = o.eval_windows >= 0 ? std::min(o.eval_windows, n_data - 1) : std::max(1, n_data / 16);
  // Training windows: the data's first n_data - held, then any windows the teacher samples itself.
  std::vector<int> train_ids(static_cast<size_t>(n_data - held)), eval_ids(static_cast<size_t>(held));
  std::iota(train_ids.begin(), train_ids.end(), 0);
  std::iota(eval_ids.begin(), eval_ids.end(), n_data - held);
  // Default: three teacher-sampled windows per data window (none when the data is already
  // sampled), as far as the teacher's cached distributions stay within 1 GB.
  int self_windows = o.self_windows;
  if (self_windows < 0) {
    const double per_window = double(seq) * c.vocab_size * 4;
    self_windows = o.data == "self" ? 0 : std::max(0, std::min(3 * n_data, int(1e9 / per_window) - n_data));
  }
  if (self_windows > 0) {
    SelfCalibrationOptions self;
    self.windows = self_windows;
    self.length = seq;
    self.seed = o.seed + 1;  // not the windows of --data self
    TokenWindows sampled = unwrap(sample_calibration_windows(teacher, self));
    for (auto& w : sampled) {
      train_ids.push_back(int(windows.size()));
      windows.push_back(std::move(w));
    }
  }
  const int n_windows = int(windows.size());
  const int batch = std::min<int>(o.batch, int(train_ids.size()));
  const double cache_bytes = double(n_windows) * seq * c.vocab_size * 4;
  if (cache_bytes > 4e9)
    fail(error(ErrorCode::kResource, "the teacher's distributions for {} windows × {} tokens × {} vocab need {}; "
               "lower --windows or --seq", n_windows, seq, c.vocab_size, human_bytes(cache_bytes)));
  std::printf("qat: %s -> %s, init %s, data %s: %d windows × %d tokens (%d held out)%s, teacher = the FP model\n",
              o.model.c_str(), format_spec_name(spec).c_str(), init.c_str(), o.data.c_str(), n_data, seq, held,
              self_windows > 0 ? fmt::format(" + {} sampled by the teacher", self_windows).c_str() : "");

  const std::vector<float> teacher_params = train::params_from_model(layout, *teacher);
  const std::vector<float> teacher_lp = train::teacher_log_probs(layout, teacher_params, windows, seq);
  std::printf("teacher distributions: %s cached (%.1f s)\n", human_bytes(cache_bytes).c_str(), seconds());

  const std::string state_path = o.output + ".qat-state";
  const uint64_t fingerprint = train::run_fingerprint(
      layout, fmt::format("qat {} init {} data {} windows {} seq {} batch {} seed {} freeze {}", format_spec_name(spec),
                          init, o.data, n_windows, seq, batch, o.seed, o.freeze_float));
  train::TrainState state;
  if (o.resume && fs::exists(state_path)) {
    state = unwrap(train::load_train_state(state_path, fingerprint, layout.total));
    std::printf("resuming from %s at step %lld\n", state_path.c_str(), (long long)state.step);
  } else {
    state.params = teacher_params;
    if (init == "gptq") {
      // Start from GPTQ's result: master weights = GPTQ's dequantized weights (the windows the
      // training uses are its calibration set; true-sequential, damp 0.01, block 128).
      std::vector<std::pair<std::string, FormatSpec>> targets;
      for (const auto& s : layout.slots)
        if (s.is_block_linear) targets.emplace_back(s.name, spec);
      GptqModelOptions g;
      g.true_sequential = true;
      // GPTQ calibrates on the data's training windows only (self-sampled ones would slow it).
      TokenWindows calib(windows.begin(), windows.begin() + std::ptrdiff_t(n_data - held));
      ProgressBar bar("gptq init", int64_t(targets.size()));
      GptqModelResult r = unwrap(gptq_quantize_model(teacher, targets, calib, g,
                                                     [&](int, const std::string& name, int done, int) {
                                                       bar.update(done, name);
                                                     }));
      bar.finish();
      for (const auto& [name, m] : r.quantized) {
        const train::TensorSlot* s = layout.find(name);
        const std::vector<float> values = dequantize(*m);
        std::copy(values.begin(), values.end(), state.params.begin() + std::ptrdiff_t(s->offset));
      }
      std::printf("GPTQ initialisation: %zu layers in %.1f s\n", r.quantized.size(), r.total_seconds);
    }
  }

  std::vector<float> effective(layout.total);
  auto eval = [&](int64_t, const std::vector<float>& params) {
    check(train::fake_quantize_params(layout, spec, params, effective));
    const double kld = train::mean_kld(layout, effective, windows, eval_ids, teacher_lp, seq);
    return fmt::format("held-out KLD {:.5f} nats/token ({} windows, all positions, quantized weights)", kld, eval_ids.size());
  };
  if (state.step == 0) std::printf("before training: %s\n", eval(0, state.params).c_str());

  train::TrainGraph<float> graph(layout, batch, seq);
  std::vector<int32_t> tokens(size_t(batch) * seq);
  std::vector<float> teacher_batch(size_t(batch) * seq * c.vocab_size);
  std::vector<int> order = train_ids;
  auto loss_and_grad = [&](int64_t step, const std::vector<float>& params, std::vector<float>& grads) {
    // B distinct training windows, drawn from (seed, step) alone so a resumed run sees the same.
    std::mt19937_64 rng(train::step_seed(o.seed, step));
    for (int b = 0; b < batch; ++b) {
      std::uniform_int_distribution<size_t> pick(size_t(b), order.size() - 1);
      std::swap(order[size_t(b)], order[pick(rng)]);
      const int w = order[size_t(b)];
      std::copy_n(windows[size_t(w)].begin(), seq, tokens.begin() + std::ptrdiff_t(b) * seq);
      std::copy_n(teacher_lp.begin() + std::ptrdiff_t(size_t(w) * seq * c.vocab_size), size_t(seq) * c.vocab_size,
                  teacher_batch.begin() + std::ptrdiff_t(size_t(b) * seq * c.vocab_size));
    }
    std::sort(order.begin(), order.end());  // the draw depends on the step only, not on history
    check(train::fake_quantize_params(layout, spec, params, effective));
    graph.forward(effective.data(), tokens.data());
    const double loss = graph.distillation(teacher_batch.data());
    // Straight-through: the gradient w.r.t. the fake-quantized weights is the master's gradient.
    graph.backward(effective.data(), grads.data());
    if (o.freeze_float)
      for (const auto& s : layout.slots)
        if (!s.is_block_linear) std::fill_n(grads.begin() + std::ptrdiff_t(s.offset), s.size, 0.0f);
    return loss;
  };

  train::TrainLoopOptions loop;
  loop.steps = o.steps;
  loop.lr.peak = o.lr;
  loop.lr.min_ratio = o.min_lr_ratio;
  loop.lr.warmup = o.warmup >= 0 ? o.warmup : std::min<int64_t>(50, o.steps / 20);
  loop.adamw.weight_decay = o.weight_decay;
  loop.grad_clip = o.clip;
  loop.tokens_per_step = int64_t(batch) * seq;
  loop.eval_every = o.eval_every > 0 ? o.eval_every : std::max<int64_t>(1, o.steps / 5);
  loop.save_every = o.save_every > 0 ? o.save_every : std::max<int64_t>(25, o.steps / 10);
  loop.state_path = state_path;
  loop.label = "qat";
  std::vector<uint8_t> decay = train::weight_decay_mask(layout);
  const auto r = unwrap(train::run_train_loop(layout, loop, decay, fingerprint, state, loss_and_grad, eval));

  // Quantize for real and save like `lowbit quantize`.
  auto quantized = unwrap(train::quantize_block_linears(layout, spec, state.params));
  Checkpoint trained = train::checkpoint_from_params(layout, state.params);
  trained.path = o.output;
  trained.tokenizer = ck.tokenizer;
  Checkpoint out = with_quantized_weights(trained, quantized);
  QuantizedSaveOptions save;
  save.overwrite = o.force;
  check(save_quantized_checkpoint(o.output, out, save));
  uint64_t q_bytes = 0, q_weights = 0;
  for (const auto& [name, m] : quantized) q_bytes += format_bytes(spec, m->rows, m->cols), q_weights += uint64_t(m->rows * m->cols);
  std::printf("trained %lld steps (%.0f tokens/s); final distillation loss %.5f; %s\n", (long long)state.step,
              r.tokens_per_second, r.final_loss, r.last_eval.c_str());
  std::printf("quantized %zu tensors to %s: %.4f bits/weight; wrote %s in %.1f s total\n", quantized.size(),
              format_spec_name(spec).c_str(), 8.0 * double(q_bytes) / double(q_weights), o.output.c_str(), seconds());
}

}  // namespace

void add_qat_command(CLI::App& app) {
  auto o = std::make_shared<QatOptions>();
  auto* cmd = app.add_subcommand("qat", "Quantization-aware training: distil the FP model into a quantized one");
  cmd->add_option("model", o->model, "Input model (the teacher; any supported format)")->required();
  cmd->add_option("-o,--output", o->output, "Output directory (config.json + model.safetensors, as `quantize`)");
  cmd->add_option("--bits", o->bits, "Integer bits: 8, 4, 3 or 2")->capture_default_str();
  cmd->add_option("--group", o->group, "Group size; 0 = per output channel, -1 = per tensor")->capture_default_str();
  cmd->add_flag("--sym", o->sym, "Symmetric grid (default asymmetric)");
  cmd->add_option("--format", o->format, "A format spec instead of --bits/--group: e.g. int2g32, int3g32_sym");
  cmd->add_option("--init", o->init,
                  "Starting point: rtn (the FP weights), gptq (GPTQ's result on the data windows), or auto "
                  "(gptq at 3+ bits, rtn at 2 bits: what measured better)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "gptq", "rtn"}));
  cmd->add_option("--data", o->data, "Distillation data: int32 token file, .txt file, or 'self' (sampled by the teacher)");
  cmd->add_option("--windows", o->windows, "Most windows of --seq tokens to use (self: how many to sample)")
      ->capture_default_str();
  cmd->add_option("--self-windows", o->self_windows,
                  "Add N windows the teacher samples itself to the training data, against overfitting small data "
                  "(default: 3 per data window while the teacher cache stays under 1 GB; 0 = none)");
  cmd->add_option("--eval-windows", o->eval_windows, "Windows held out for the periodic KLD (default: windows/16)");
  cmd->add_option("--steps", o->steps, "Optimizer steps")->capture_default_str();
  cmd->add_option("--lr", o->lr, "Peak learning rate (AdamW; warm-up then cosine)")->capture_default_str();
  cmd->add_option("--min-lr-ratio", o->min_lr_ratio, "Cosine floor as a fraction of --lr")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Warm-up steps (default: min(50, steps/20))");
  cmd->add_option("--batch", o->batch, "Windows per step")->capture_default_str();
  cmd->add_option("--seq", o->seq, "Tokens per window (default: min(256, context))");
  cmd->add_option("--weight-decay", o->weight_decay, "Decoupled weight decay (not on norms)")->capture_default_str();
  cmd->add_option("--clip", o->clip, "Global gradient-norm clip (0 = off)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed for batch sampling and self-sampled data")->capture_default_str();
  cmd->add_flag("--freeze-float", o->freeze_float,
                "Train only the quantized linears (default: embedding and norms, kept in float, train too)");
  cmd->add_option("--eval-every", o->eval_every, "Held-out KLD every N steps (default: steps/5)");
  cmd->add_option("--save-every", o->save_every, "Save resumable state (OUT.qat-state) every N steps (default: steps/10)");
  cmd->add_flag("--resume", o->resume, "Continue from OUT.qat-state when it exists");
  cmd->add_flag("--force", o->force, "Replace an existing output directory");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file for llama2.c models");
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)");
  cmd->footer(
      "Examples:\n"
      "  lowbit qat stories260K.bin --bits 2 --group 32 --data calib_tokens.bin -o q2g32-qat\n"
      "  lowbit qat model/ --format int3g32 --init gptq --data self --steps 300 -o q3-qat\n"
      "  lowbit eval q2g32-qat --tokens eval_tokens.bin --reference stories260K.bin\n"
      "Forward passes use dq(q(W)) for the 7 linear weights of every block (the set `lowbit quantize`\n"
      "quantizes), re-fit on the min/max grid each step; gradients pass straight through to the fp32\n"
      "master weights (STE). The loss is KL(teacher ‖ student) over the full vocabulary at every\n"
      "position. The output loads in eval/run/bench/inspect like any quantized checkpoint.\n"
      "On a busy machine set OMP_WAIT_POLICY=passive: threads that spin between the many small\n"
      "parallel steps of a training step otherwise steal the cores from the working ones.");
  cmd->callback([o] { run_qat(*o); });
}

}  // namespace lowbit::cli
