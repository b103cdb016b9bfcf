// lowbit eval MODEL --tokens FILE: perplexity, and KL divergence + top-1 agreement against a
// reference model, with the protocol printed beside the numbers.
#include <nlohmann/json.hpp>

#include "base/progress.h"
#include "cli_common.h"
#include "commands.h"
#include "eval/metrics.h"

namespace lowbit::cli {

namespace {

struct EvalOptions {
  std::string model, reference, tokens, text, tokenizer;
  EvalProtocol protocol;
  bool json = false;
  int threads = 0;
};

void run_eval(EvalOptions& o) {
  set_threads(o.threads);
  auto model = load_model(o.model, o.tokenizer);
  std::shared_ptr<Model> reference = o.reference.empty() ? nullptr : load_model(o.reference, o.tokenizer);
  std::vector<int32_t> tokens;
  if (!o.tokens.empty()) {
    tokens = unwrap(read_token_file(o.tokens, model->config().vocab_size));
    o.protocol.source = o.tokens;
  } else {
    if (model->tokenizer() == nullptr)
      fail(error(ErrorCode::kInvalidArgument, "{}: --text needs a tokenizer; this model has none", o.model));
    tokens = unwrap(tokenize_text_file(o.text, *model->tokenizer()));
    o.protocol.source = o.text + " (tokenized; each paragraph = BOS + tokens)";
  }
  std::unique_ptr<ProgressBar> bar;
  auto r = unwrap(evaluate(model, reference, tokens, o.protocol, [&](int64_t done, int64_t total) {
    if (!bar) bar = std::make_unique<ProgressBar>("eval windows", total);
    bar->update(done);
  }));
  bar.reset();
  const std::string protocol = o.protocol.describe();
  if (o.json) {
    nlohmann::json j = {{"model", o.model},
                        {"perplexity", r.perplexity},
                        {"mean_nll", r.mean_nll},
                        {"tokens_scored", r.tokens_scored},
                        {"windows", r.windows},
                        {"seconds", r.seconds},
                        {"protocol",
                         {{"description", protocol},
                          {"source", o.protocol.source},
                          {"window", o.protocol.windows.length},
                          {"stride", o.protocol.windows.stride > 0 ? o.protocol.windows.stride : o.protocol.windows.length},
                          {"score_from", o.protocol.score_from},
                          {"bos_added", false},
                          {"dropped_tail_tokens", r.dropped_tokens}}}};
    if (r.has_reference) {
      j["reference"] = o.reference;
      j["kld"] = r.kld;
      j["top1"] = r.top1;
      j["reference_perplexity"] = r.reference_perplexity;
    } else {
      j["kld"] = nullptr;
      j["top1"] = nullptr;
    }
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }
  std::printf("model:      %s\n", o.model.c_str());
  std::printf("protocol:   %s\n", protocol.c_str());
  std::printf("scored:     %s tokens in %lld windows (%lld tail tokens unused), %.2f s\n",
              with_commas(r.tokens_scored).c_str(), (long long)r.windows, (long long)r.dropped_tokens, r.seconds);
  std::printf("perplexity: %.6f (mean NLL %.6f nats)\n", r.perplexity, r.mean_nll);
  if (r.has_reference) {
    std::printf("reference:  %s, perplexity %.6f\n", o.reference.c_str(), r.reference_perplexity);
    std::printf("KLD:        %.6g nats per token, KL(P_reference ‖ P_model) over the full vocabulary\n", r.kld);
    std::printf("top-1:      %.4f agreement of the argmax with the reference\n", r.top1);
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  auto* cmd = app.add_subcommand("eval", "Perplexity, KL divergence and top-1 agreement on the same tokens");
  cmd->add_option("model", o->model, "Model to evaluate (any supported format, quantized or not)")->required();
  auto* tok = cmd->add_option("--tokens", o->tokens, "Raw little-endian int32 token file (one stream, cut into windows)");
  auto* txt = cmd->add_option("--text", o->text, "Text file, tokenized with the model's tokenizer");
  tok->excludes(txt);
  cmd->add_option("--reference", o->reference, "Reference model (e.g. the FP32 original) for KLD and top-1");
  cmd->add_option("--window", o->protocol.windows.length, "Tokens per window (evaluated independently)")
      ->capture_default_str();
  cmd->add_option("--stride", o->protocol.windows.stride, "Distance between window starts (default: --window)");
  cmd->add_option("--max-windows", o->protocol.windows.max_windows, "Evaluate at most N windows (0 = all)");
  cmd->add_option("--score-from", o->protocol.score_from,
                  "First scored position in a window (default 0: every position after the first token)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file for llama2.c models");
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)");
  cmd->add_flag("--json", o->json, "Print JSON: perplexity, kld, top1, tokens_scored, protocol");
  cmd->footer(
      "Example:\n  lowbit eval q4/ --reference stories260K.bin --tokens eval_tokens.bin --window 256\n"
      "Each window is evaluated from position 0 with no BOS added; position t predicts token t+1.");
  cmd->callback([o, tok, txt] {
    if (tok->count() == 0 && txt->count() == 0)
      fail(error(ErrorCode::kInvalidArgument, "eval needs --tokens FILE or --text FILE"));
    run_eval(*o);
  });
}

}  // namespace lowbit::cli
