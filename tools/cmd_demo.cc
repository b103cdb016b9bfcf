// lowbit demo: the main job (./run.sh). Runs every quantization method end to end on a real
// trained model and prints the measured trade-off: by default lowbit's own model
// (models/kjv/kjv.bin, trained by `lowbit train` on the King James Bible, committed with its
// tokenizer and held-out chapters), or with --stories the stories260K model from ../shared.
//
// Each method runs as the `lowbit` command a user would type (printed before it runs; its full
// output goes to OUT/logs/), writes a checkpoint under OUT/, and is then reloaded from disk and
// evaluated against the FP32 model on the same held-out tokens, so every figure in the table is
// what a user gets from those files.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "eval/metrics.h"
#include "eval/tradeoff.h"
#include "io/atomic_file.h"
#include "model/checkpoint.h"
#include "model/forward.h"
#include "eval/token_data.h"

namespace lowbit::cli {

namespace {

namespace fs = std::filesystem;

struct DemoOptions {
  std::string model = "models/kjv/kjv.bin", eval_tokens, calib, shared_dir, out = "demo-out", prompt;
  bool stories = false, quick = false;
  int threads = 0;
  int qat_steps = 200;
};

// What the demo runs on: a model, held-out tokens to evaluate on, calibration tokens.
struct DemoInput {
  std::string model, eval_tokens, calib, prompt, reference_json, description;
};

std::string find_stories(const DemoOptions& o) {
  std::vector<std::string> candidates;
  if (!o.shared_dir.empty()) candidates.push_back(o.shared_dir);
  if (const char* env = std::getenv("LOWBIT_SHARED_DIR")) candidates.push_back(env);
  candidates.push_back("../shared");
  for (const auto& c : candidates) {
    fs::path dir = fs::path(c) / "models" / "stories260K";
    if (fs::exists(dir / "stories260K.bin") && fs::exists(dir / "eval_tokens.bin")) return dir.string();
  }
  return "";
}

DemoInput choose_input(const DemoOptions& o) {
  DemoInput in;
  if (o.stories) {
    const std::string dir = find_stories(o);
    if (dir.empty())
      fail(error(ErrorCode::kNotFound, "--stories: no models/stories260K under --shared, $LOWBIT_SHARED_DIR or ../shared"));
    in.model = dir + "/stories260K.bin";
    in.eval_tokens = dir + "/eval_tokens.bin";
    in.calib = dir + "/calib_tokens.bin";
    in.reference_json = dir + "/reference.json";
    in.prompt = "Once upon a time";
    in.description = "stories260K (llama2.c TinyStories model from ../shared)";
    return in;
  }
  in.model = o.model;
  const fs::path dir = fs::path(o.model).parent_path();
  in.eval_tokens = !o.eval_tokens.empty() ? o.eval_tokens : (dir / "heldout_tokens.bin").string();
  in.calib = !o.calib.empty() ? o.calib : (dir / "calib_tokens.bin").string();
  in.prompt = "And God said";
  in.description = o.model == DemoOptions{}.model
                       ? "lowbit's own model: a Llama trained from scratch by `lowbit train` on the King James Bible "
                         "(models/kjv/README.md)"
                       : o.model;
  for (const std::string& f : {in.model, in.eval_tokens, in.calib})
    if (!fs::exists(f))
      fail(error(ErrorCode::kNotFound, "{}: not found (run the demo from the repository root, or pass --model, "
                                       "--eval-tokens and --calib)", f));
  if (!o.prompt.empty()) in.prompt = o.prompt;
  return in;
}

void section(const char* title) { std::printf("\n== %s ==\n", title); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs `lowbit ARGS…` (this same binary) with stdout and stderr going to `log`; exits with the
// child's status and the log's last lines when it fails.
void run_lowbit_step(const std::vector<std::string>& args, const std::string& log) {
  std::string shown = "lowbit";
  for (const auto& a : args) shown += " " + a;
  std::printf("$ %s\n", shown.c_str());
  std::fflush(stdout);
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) fail(error(ErrorCode::kResource, "fork failed: {}", std::strerror(errno)));
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    if (f == nullptr || dup2(fileno(stdout), STDERR_FILENO) < 0) _exit(3);
    std::vector<char*> argv;
    std::string self = "lowbit";
    argv.push_back(self.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 70;
  if (code != 0) {
    std::ifstream f(log);
    std::string line, last;
    while (std::getline(f, line))
      if (!line.empty()) last = line;
    fail(error(ErrorCode::kInternal, "the step above failed (exit {}): {} (full log: {})", code, last, log));
  }
  std::printf("  done in %.1f s (log: %s)\n", seconds_since(t0), log.c_str());
}

// bits/weight over the quantized tensors, as everywhere in lowbit: stored bytes of codes + scales
// + zero points × 8 / weights.
double quantized_bits_per_weight(const Checkpoint& ck) {
  uint64_t bytes = 0, weights = 0;
  for (const auto& [name, m] : ck.quantized) {
    bytes += format_bytes(m->spec, m->rows, m->cols);
    weights += uint64_t(m->rows * m->cols);
  }
  return weights ? 8.0 * double(bytes) / double(weights) : 32.0;
}

// Candidates of the mixed-precision rows: below and above the 3.0 / 3.5 bits/weight budgets.
constexpr const char* kMixedFormats = "int2g128,int3g128,int4g128,int8";

struct DemoStep {
  std::string label, dir;
  std::vector<std::string> args;  // without -o, --force, --threads
};

void run_demo(const DemoOptions& o) {
  set_threads(o.threads);
  const auto t_start = std::chrono::steady_clock::now();
  const DemoInput in = choose_input(o);
  std::error_code ec;
  fs::create_directories(fs::path(o.out) / "logs", ec);
  if (ec) fail(error(ErrorCode::kIo, "{}: cannot create ({})", o.out, ec.message()));

  section("input");
  std::printf("%s\n%s\n", in.model.c_str(), in.description.c_str());
  auto model = load_model(in.model);
  const ModelConfig& c = model->config();

  section("model");
  std::printf("%d layers, dim %d, feed-forward %d, %d heads / %d kv heads, vocab %d, %s parameters\n", c.n_layers,
              c.dim, c.hidden_dim, c.n_heads, c.n_kv_heads, c.vocab_size, with_commas(c.parameter_count()).c_str());
  const double p = double(c.parameter_count());
  std::printf("size = parameters × bits / 8: FP32 %s, FP16 %s, INT8 %s, INT4 %s\n", human_bytes(p * 4).c_str(),
              human_bytes(p * 2).c_str(), human_bytes(p).c_str(), human_bytes(p / 2).c_str());
  std::printf("(the same arithmetic for 7e9 parameters: FP32 28 GB, FP16 14 GB, INT8 7 GB, INT4 3.5 GB,\n"
              " plus the scales and zero points: int4 with a group of 128 stores 4.25 bits/weight = 3.7 GB)\n");

  section("generation (greedy)");
  if (model->tokenizer()) {
    std::vector<int> ids = model->tokenizer()->encode(in.prompt, /*add_bos=*/true);
    Session session(model);
    std::vector<float> logits;
    check(session.forward(ids, false, &logits));
    for (int i = 0; i < 40 && session.position() < session.capacity(); ++i) {
      const int next = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
      if (next == c.eos_id || next == c.bos_id) break;
      ids.push_back(next);
      check(session.forward(std::span<const int>(&ids.back(), 1), false, &logits));
    }
    std::printf("%s…\n", model->tokenizer()->decode(ids).c_str());
  }

  section("FP32 evaluation on held-out text");
  EvalProtocol protocol;
  protocol.windows.length = std::min(256, c.max_seq_len);
  protocol.source = in.eval_tokens;
  if (o.quick) protocol.windows.max_windows = 16;
  const std::vector<int32_t> tokens = unwrap(read_token_file(in.eval_tokens, c.vocab_size));
  const EvalResult fp = unwrap(evaluate(model, nullptr, tokens, protocol));
  std::printf("perplexity %.4f over %s tokens (%.1f s)\nprotocol: %s\n", fp.perplexity,
              with_commas(fp.tokens_scored).c_str(), fp.seconds, protocol.describe().c_str());
  if (!in.reference_json.empty()) {
    std::ifstream f(in.reference_json);
    auto j = nlohmann::json::parse(f, nullptr, false);
    if (!j.is_discarded() && j.contains("fp32"))
      std::printf("independent PyTorch reference: %.6f\n", j["fp32"]["ppl"].get<double>());
  }

  section("quantization: each method as the lowbit command that runs it");
  // GPTQ's reference protocol: up to 128 calibration windows of 256 tokens, true-sequential.
  const int seqlen = std::min(256, c.max_seq_len);
  const std::string windows = std::to_string(
      std::clamp<int64_t>(int64_t(fs::file_size(in.calib)) / (4 * int64_t(seqlen)), 1, 128));
  const std::vector<std::string> gptq = {"--method",    "gptq", "--calib", in.calib, "--nsamples", windows,
                                         "--seqlen", std::to_string(seqlen), "--true-sequential"};
  auto with = [](std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  std::vector<DemoStep> steps;
  for (const char* f : {"int8", "int4g128", "int4g32", "int3g32", "int2g32"})
    steps.push_back({std::string(f) + " rtn", std::string(f) + "-rtn", {"quantize", in.model, "--format", f}});
  for (const char* f : {"int4g128", "int3g32", "int2g32"})
    steps.push_back({std::string(f) + " gptq", std::string(f) + "-gptq", with({"quantize", in.model, "--format", f}, gptq)});
  // Asymmetric calibration: each layer also corrects what the layers before it got wrong.
  steps.push_back({"int2g32 gptq asym-calib", "int2g32-gptq-asym",
                   with(with({"quantize", in.model, "--format", "int2g32"}, gptq), {"--asymmetric-calibration"})});
  steps.push_back({"w8a8 dynamic", "w8a8-dynamic", {"quantize", in.model, "--method", "dynamic"}});
  // Mixed precision: the first budget measures the sensitivity table (written beside its
  // checkpoint), the second reuses it.
  const std::string table = o.out + "/mixed-3.0-gptq/lowbit-sensitivity.json";
  steps.push_back({"mixed 3.0 bpw gptq", "mixed-3.0-gptq",
                   with({"quantize", in.model, "--target-bpw", "3.0", "--formats", kMixedFormats, "--windows",
                         o.quick ? "4" : "8"},
                        gptq)});
  steps.push_back({"mixed 3.5 bpw gptq", "mixed-3.5-gptq",
                   with({"quantize", in.model, "--target-bpw", "3.5", "--sensitivity", table}, gptq)});
  steps.push_back({"int2g32 qat", "int2g32-qat",
                   {"qat", in.model, "--format", "int2g32", "--data", in.calib, "--windows", windows, "--steps",
                    std::to_string(o.quick ? 20 : o.qat_steps)}});

  std::vector<TradeoffPoint> points;
  const std::string threads = std::to_string(o.threads);
  for (size_t i = 0; i < steps.size(); ++i) {
    const DemoStep& s = steps[i];
    const std::string dir = o.out + "/" + s.dir;
    std::printf("[%zu/%zu] %s\n", i + 1, steps.size(), s.label.c_str());
    std::vector<std::string> args = with(s.args, {"-o", dir, "--force"});
    if (o.threads > 0) args = with(args, {"--threads", threads});
    run_lowbit_step(args, o.out + "/logs/" + s.dir + ".log");
    // Reloaded from disk: the figures are those of the files written.
    const Checkpoint ck = unwrap(load_checkpoint(dir));
    auto quantized = unwrap(Model::from_checkpoint(ck));
    const EvalResult e = unwrap(evaluate(quantized, model, tokens, protocol));
    points.push_back({s.label, quantized_bits_per_weight(ck), double(fs::file_size(dir + "/model.safetensors")),
                      e.perplexity, e.kld, e.top1});
    std::printf("  %.3f bits/weight, ppl %.4f, KLD %.5f, top-1 %.4f\n", points.back().bits_per_weight, e.perplexity,
                e.kld, e.top1);
  }

  section("trade-off (every checkpoint reloaded from disk, evaluated against FP32 on the same tokens)");
  std::printf("FP32: perplexity %.4f, %s of weights\n", fp.perplexity, human_bytes(p * 4).c_str());
  const std::string markdown = tradeoff_markdown(points, protocol.describe());
  std::printf("%s", markdown.c_str());
  check(write_text_file_atomic(o.out + "/report.md", "# lowbit demo: " + in.model + "\n\n" + markdown));
  check(write_text_file_atomic(o.out + "/tradeoff.svg", tradeoff_svg(points, "lowbit demo: " + in.model)));
  std::printf("wrote %s/report.md and %s/tradeoff.svg (open it in a browser); checkpoints under %s/\n", o.out.c_str(),
              o.out.c_str(), o.out.c_str());
  std::printf("demo finished in %.0f s\n", seconds_since(t_start));
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  auto* cmd = app.add_subcommand("demo", "The main job: every method end to end on a real model, with the trade-off");
  cmd->add_option("--model", o->model, "Model to run on (with heldout_tokens.bin and calib_tokens.bin beside it)")
      ->capture_default_str();
  cmd->add_option("--eval-tokens", o->eval_tokens, "Held-out int32 token file (default: beside the model)");
  cmd->add_option("--calib", o->calib, "Calibration int32 token file for GPTQ / QAT (default: beside the model)");
  cmd->add_flag("--stories", o->stories, "Use ../shared/models/stories260K (with its independent reference figures)");
  cmd->add_option("--shared", o->shared_dir, "Folder holding models/stories260K (default: $LOWBIT_SHARED_DIR, ../shared)");
  cmd->add_option("--prompt", o->prompt, "Prompt of the greedy sample");
  cmd->add_option("--qat-steps", o->qat_steps, "Steps of the QAT row")->capture_default_str();
  cmd->add_flag("--quick", o->quick, "Fewer evaluation windows and QAT steps (a smoke run)");
  cmd->add_option("--out", o->out, "Where the demo writes checkpoints, logs, report.md and tradeoff.svg")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)");
  cmd->footer(
      "Runs: RTN (int8, int4 g128/g32, int3 g32, int2 g32), GPTQ (int4 g128, int3 g32, int2 g32), dynamic\n"
      "W8A8, mixed precision at 3.0 and 3.5 bits/weight (GPTQ, formats from measured sensitivity), and\n"
      "QAT at int2 g32; prints each command, then the table of bits/weight, size, perplexity, KLD and\n"
      "top-1 agreement against FP32, and writes report.md + tradeoff.svg.");
  cmd->callback([o] { run_demo(*o); });
}

}  // namespace lowbit::cli
