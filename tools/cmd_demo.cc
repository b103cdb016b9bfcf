// lowbit demo: the main job. Runs lowbit end to end on a default input and prints what it
// measured: ../shared/models/stories260K when present (a real pretrained model with real text),
// otherwise a small random model that it writes itself (for a fresh clone without ../shared).
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "eval/metrics.h"
#include "eval/tradeoff.h"
#include "export/quantized_checkpoint.h"
#include "quantize_methods.h"
#include "model/checkpoint.h"
#include "model/forward.h"
#include "model/synthetic.h"

namespace lowbit::cli {

namespace {

namespace fs = std::filesystem;

struct DemoOptions {
  std::string shared_dir, out = "demo-out";
  int threads = 0;
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

void section(const char* title) { std::printf("\n== %s ==\n", title); }

void run_demo(const DemoOptions& o) {
  set_threads(o.threads);
  std::error_code ec;
  fs::create_directories(o.out, ec);
  std::string model_path, eval_tokens, reference_json;
  const std::string stories = find_stories(o);
  section("input");
  if (!stories.empty()) {
    model_path = stories + "/stories260K.bin";
    eval_tokens = stories + "/eval_tokens.bin";
    reference_json = stories + "/reference.json";
    std::printf("using the real pretrained model %s (found ../shared/models/stories260K)\n", model_path.c_str());
  } else {
    model_path = o.out + "/synthetic-tiny.bin";
    Checkpoint ck = make_random_checkpoint(tiny_test_config(), 2026);
    check(save_llama2c_checkpoint(model_path, ck, /*version1=*/false));
    std::printf("../shared/models/stories260K not found: wrote a small random model %s and use it instead\n"
                "(random weights: its perplexity is meaningless; the pipeline is what this shows)\n",
                model_path.c_str());
  }
  auto model = load_model(model_path);
  const ModelConfig& c = model->config();

  section("model");
  std::printf("%s: %d layers, dim %d, feed-forward %d, %d heads / %d kv heads, vocab %d, %s parameters\n",
              model_path.c_str(), c.n_layers, c.dim, c.hidden_dim, c.n_heads, c.n_kv_heads, c.vocab_size,
              with_commas(c.parameter_count()).c_str());
  std::printf("FP32 %s, FP16 %s, INT8 %s, INT4 %s (parameters × bits / 8)\n",
              human_bytes(c.parameter_count() * 4.0).c_str(), human_bytes(c.parameter_count() * 2.0).c_str(),
              human_bytes(c.parameter_count() * 1.0).c_str(), human_bytes(c.parameter_count() * 0.5).c_str());

  section("generation (greedy from BOS)");
  Session session(model);
  std::vector<float> logits;
  int token = c.bos_id;
  std::vector<int> ids;
  for (int i = 0; i < 48; ++i) {
    check(session.forward(std::span<const int>(&token, 1), false, &logits));
    token = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (token == c.eos_id) break;
    ids.push_back(token);
  }
  ids.insert(ids.begin(), c.bos_id);  // decoding after BOS drops the dummy-prefix space
  if (model->tokenizer()) std::printf("%s…\n", model->tokenizer()->decode(ids).c_str());
  else {
    for (size_t i = 1; i < ids.size(); ++i) std::printf("%d ", ids[i]);
    std::printf("(ids; no tokenizer)\n");
  }

  section("evaluation of the FP32 model");
  std::vector<int32_t> tokens;
  EvalProtocol protocol;
  if (!eval_tokens.empty()) {
    tokens = unwrap(read_token_file(eval_tokens, c.vocab_size));
    protocol.source = eval_tokens;
  } else {
    // Score the model on text it wrote itself (sampled at temperature 1): 8 windows of 64.
    protocol.windows.length = 64;
    protocol.source = "8 windows the model sampled itself";
    Session gen(model);
    std::mt19937 rng(1);
    for (int w = 0; w < 8; ++w) {
      gen.reset();
      int t = c.bos_id;
      for (int i = 0; i < 64; ++i) {
        tokens.push_back(t);
        check(gen.forward(std::span<const int>(&t, 1), false, &logits));
        std::discrete_distribution<int> d(logits.begin(), logits.end());
        std::vector<double> p(logits.size());
        float mx = *std::max_element(logits.begin(), logits.end());
        for (size_t k = 0; k < p.size(); ++k) p[k] = std::exp(double(logits[k] - mx));
        t = std::discrete_distribution<int>(p.begin(), p.end())(rng);
      }
    }
  }
  EvalResult r = unwrap(evaluate(model, nullptr, tokens, protocol));
  std::printf("perplexity %.6f over %s tokens (%.2f s)\nprotocol: %s\n", r.perplexity,
              with_commas(r.tokens_scored).c_str(), r.seconds, protocol.describe().c_str());
  if (!reference_json.empty()) {
    std::ifstream f(reference_json);
    auto j = nlohmann::json::parse(f, nullptr, false);
    if (!j.is_discarded() && j.contains("fp32")) {
      double ref = j["fp32"]["ppl"].get<double>();
      std::printf("independent PyTorch reference: %.6f (difference %.4f %%)\n", ref, 100.0 * (r.perplexity / ref - 1));
    }
  }

  section("quantization (RTN and GPTQ): written, reloaded from disk, evaluated against FP32");
  Checkpoint ck = unwrap(load_checkpoint(model_path));
  std::vector<TradeoffPoint> points;
  for (const char* text : {"int8", "int4g32", "int4", "int3g32", "int2g32"}) {
    const FormatSpec spec = unwrap(parse_format_spec(text));
    Plan plan = unwrap(resolve_plan(uniform_recipe(spec, "rtn"), quantizable_tensors(c)));
    QuantizedTensors q = quantize_planned_tensors(ck, plan, false, GptqCliOptions{});
    const std::string dir = o.out + "/" + text + "-rtn";
    QuantizedSaveOptions save;
    save.overwrite = true;
    check(save_quantized_checkpoint(dir, with_quantized_weights(ck, q.matrices), save));
    auto reloaded = load_model(dir);
    EvalResult e = unwrap(evaluate(reloaded, model, tokens, protocol));
    uint64_t qbytes = 0;
    for (const auto& pe : plan.entries)
      if (pe.format.is_quantized()) qbytes += pe.bytes;
    points.push_back({std::string(text) + " rtn", 8.0 * double(qbytes) / double(plan.quantized_weights()),
                      double(std::filesystem::file_size(dir + "/model.safetensors")), e.perplexity, e.kld, e.top1});
  }
  // GPTQ at the format where it matters most here (3 bits): the reference protocol on
  // stories260K (all 128 calibration windows, true-sequential), self-calibration otherwise.
  {
    GptqCliOptions g;
    g.true_sequential = true;
    if (!stories.empty()) {
      g.calib = stories + "/calib_tokens.bin";
    } else {
      g.calib = "self";
      g.nsamples = 16;
      g.seqlen = 64;
    }
    std::printf("GPTQ int3g32 (calibration: %s, %d windows × %d tokens, true-sequential)…\n", g.calib.c_str(),
                g.nsamples, g.seqlen);
    const FormatSpec spec = unwrap(parse_format_spec("int3g32"));
    Plan plan = unwrap(resolve_plan(uniform_recipe(spec, "gptq"), quantizable_tensors(c)));
    QuantizedTensors q = quantize_planned_tensors(ck, plan, false, g);
    const std::string dir = o.out + "/int3g32-gptq";
    QuantizedSaveOptions save;
    save.overwrite = true;
    check(save_quantized_checkpoint(dir, with_quantized_weights(ck, q.matrices), save));
    EvalResult e = unwrap(evaluate(load_model(dir), model, tokens, protocol));
    uint64_t qbytes = 0;
    for (const auto& pe : plan.entries)
      if (pe.format.is_quantized()) qbytes += pe.bytes;
    points.push_back({"int3g32 gptq", 8.0 * double(qbytes) / double(plan.quantized_weights()),
                      double(std::filesystem::file_size(dir + "/model.safetensors")), e.perplexity, e.kld, e.top1});
  }
  std::printf("%s", tradeoff_markdown(points, protocol.describe()).c_str());
  std::printf("(size = the model.safetensors written to %s/<format>-rtn; FP32 weights: %s bytes)\n", o.out.c_str(),
              with_commas(c.parameter_count() * 4).c_str());
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  auto* cmd = app.add_subcommand("demo", "The main job: run lowbit end to end on the default model and report");
  cmd->add_option("--shared", o->shared_dir, "Folder holding models/stories260K (default: $LOWBIT_SHARED_DIR, ../shared)");
  cmd->add_option("--out", o->out, "Where the demo writes its files")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)");
  cmd->callback([o] { run_demo(*o); });
}

}  // namespace lowbit::cli
