// lowbit run MODEL: generate text from a prompt or token ids (greedy or sampled, seeded).
#include <chrono>

#include "cli_common.h"
#include "commands.h"
#include "model/forward.h"
#include "model/sampler.h"

namespace lowbit::cli {

namespace {

struct RunOptions {
  std::string model, tokenizer, prompt, ids;
  int steps = 128;
  bool no_bos = false, show_ids = false;
  SamplerOptions sampler;
  int threads = 0;
};

std::vector<int> parse_ids(const std::string& s) {
  std::vector<int> ids;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    try {
      ids.push_back(std::stoi(s.substr(pos, end - pos)));
    } catch (...) {
      fail(error(ErrorCode::kInvalidArgument, "--ids: \"{}\" is not a token id", s.substr(pos, end - pos)));
    }
    pos = end + 1;
  }
  return ids;
}

void run_generate(const RunOptions& o) {
  set_threads(o.threads);
  auto model = load_model(o.model, o.tokenizer);
  const Tokenizer* tok = model->tokenizer();
  std::vector<int> prompt;
  if (!o.ids.empty()) {
    prompt = parse_ids(o.ids);
  } else if (tok != nullptr) {
    prompt = tok->encode(o.prompt, !o.no_bos);
  } else if (!o.prompt.empty()) {
    fail(error(ErrorCode::kInvalidArgument, "{}: --prompt needs a tokenizer; use --ids or --tokenizer", o.model));
  }
  if (prompt.empty()) prompt.push_back(model->config().bos_id);
  Session session(model);
  Sampler sampler(o.sampler);
  std::vector<float> logits;
  const auto t0 = std::chrono::steady_clock::now();
  check(session.forward(prompt, false, &logits));
  const auto t1 = std::chrono::steady_clock::now();
  if (tok) std::printf("%s", tok->decode(prompt).c_str());
  std::vector<int> generated;
  int prev = prompt.back();
  for (int i = 0; i < o.steps && session.position() < session.capacity(); ++i) {
    int next = sampler.sample(logits.data(), model->config().vocab_size);
    if (next == model->config().eos_id || next == model->config().bos_id) break;
    generated.push_back(next);
    if (tok) std::printf("%s", tok->decode_token(prev, next).c_str());
    std::fflush(stdout);
    prev = next;
    if (session.position() >= session.capacity()) break;
    check(session.forward(std::span<const int>(&next, 1), false, &logits));
  }
  const auto t2 = std::chrono::steady_clock::now();
  std::printf("\n");
  if (o.show_ids || tok == nullptr) {
    std::printf("ids:");
    for (int id : generated) std::printf(" %d", id);
    std::printf("\n");
  }
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr, "prompt %zu tokens in %.3f s (%.1f tok/s); generated %zu tokens in %.3f s (%.1f tok/s)\n",
               prompt.size(), prefill_s, double(prompt.size()) / prefill_s, generated.size(), decode_s,
               generated.empty() ? 0.0 : double(generated.size()) / decode_s);
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt (greedy, or temperature/top-p sampling)");
  cmd->add_option("model", o->model, "Model (any supported format, quantized or not)")->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text (BOS is prepended unless --no-bos)");
  cmd->add_option("--ids", o->ids, "Prompt as comma-separated token ids instead of text");
  cmd->add_option("-n,--steps", o->steps, "Tokens to generate at most")->capture_default_str();
  cmd->add_option("-t,--temperature", o->sampler.temperature, "0 = greedy; e.g. 0.8 to sample")->capture_default_str();
  cmd->add_option("--top-p", o->sampler.top_p, "Nucleus sampling mass in (0, 1]")->capture_default_str()
      ->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--seed", o->sampler.seed, "Random seed for sampling")->capture_default_str();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file for llama2.c models");
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)");
  cmd->add_flag("--no-bos", o->no_bos, "Do not prepend BOS to the prompt");
  cmd->add_flag("--show-ids", o->show_ids, "Also print the generated token ids");
  cmd->footer("Example: lowbit run stories260K.bin -p \"Once upon a time\" -n 100 -t 0.8 --seed 1");
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace lowbit::cli
