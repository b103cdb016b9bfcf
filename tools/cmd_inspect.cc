// lowbit inspect MODEL: architecture, parameter count, every tensor (dtype, shape, bytes), and
// the size of the whole model at FP32/FP16/INT8/INT4 with the arithmetic shown.
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "model/checkpoint.h"

namespace lowbit::cli {

namespace {

struct InspectOptions {
  std::string model, tokenizer;
  bool json = false;
};

const char* rope_name(RopeStyle s) { return s == RopeStyle::kInterleaved ? "interleaved pairs" : "rotate-half"; }

void run_inspect(const InspectOptions& o) {
  Checkpoint ck = unwrap(load_checkpoint(o.model, o.tokenizer));
  const ModelConfig& c = ck.config;
  int64_t stored_bytes = 0, params = 0;
  for (const auto& t : ck.tensors.tensors()) {
    stored_bytes += int64_t(t.data.size());
    params += t.numel();
  }
  for (const auto& [name, m] : ck.quantized) {
    stored_bytes += int64_t(format_bytes(m->spec, m->rows, m->cols));
    params += m->rows * m->cols;
  }
  if (o.json) {
    nlohmann::json j;
    j["model"] = o.model;
    j["format"] = ck.format;
    j["architecture"] = c.architecture;
    j["config"] = {{"dim", c.dim},           {"hidden_dim", c.hidden_dim}, {"n_layers", c.n_layers},
                   {"n_heads", c.n_heads},   {"n_kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
                   {"vocab_size", c.vocab_size}, {"max_seq_len", c.max_seq_len}, {"rope_theta", c.rope_theta},
                   {"norm_eps", c.norm_eps}, {"tied_embeddings", c.tied_embeddings},
                   {"attention_bias", c.attention_bias}};
    j["parameters"] = params;
    j["stored_bytes"] = stored_bytes;
    for (const auto& t : ck.tensors.tensors())
      j["tensors"].push_back({{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"shape", t.shape},
                              {"bytes", t.data.size()}, {"bits_per_weight", 8.0 * dtype_size(t.dtype)}});
    for (const auto& [name, m] : ck.quantized)
      j["tensors"].push_back({{"name", name},
                              {"format", format_spec_name(m->spec)},
                              {"shape", {m->rows, m->cols}},
                              {"bytes", format_bytes(m->spec, m->rows, m->cols)},
                              {"bits_per_weight", format_bits_per_weight(m->spec, m->rows, m->cols)}});
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }
  std::printf("model:        %s (%s)\n", o.model.c_str(), ck.format.c_str());
  std::printf("architecture: %s; dim %d, feed-forward %d, %d layers, %d heads (%d kv heads, head_dim %d)\n",
              c.architecture.c_str(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim);
  std::printf("              vocab %d, context %d, RoPE %s theta %g, RMSNorm eps %g, %s embeddings%s\n",
              c.vocab_size, c.max_seq_len, rope_name(c.rope_style), c.rope_theta, c.norm_eps,
              c.tied_embeddings ? "tied" : "separate output", c.attention_bias ? ", q/k/v biases" : "");
  if (ck.tokenizer)
    std::printf("tokenizer:    %d tokens (%s), BOS %d, EOS %d\n", ck.tokenizer->vocab_size(),
                ck.tokenizer->vocabulary().kind == Vocabulary::Kind::kSentencePiece ? "SentencePiece-style BPE"
                                                                                   : "byte-level BPE",
                ck.tokenizer->bos_id(), ck.tokenizer->eos_id());
  else
    std::printf("tokenizer:    none found (pass --tokenizer FILE for text input)\n");
  std::printf("parameters:   %s\n\n", with_commas(params).c_str());
  std::printf("%-48s %-12s %-14s %12s %8s\n", "tensor", "dtype/format", "shape", "bytes", "bits/w");
  for (const auto& t : ck.tensors.tensors())
    std::printf("%-48s %-12s %-14s %12s %8.3f\n", t.name.c_str(), dtype_name(t.dtype), shape_string(t.shape).c_str(),
                with_commas(int64_t(t.data.size())).c_str(), 8.0 * double(dtype_size(t.dtype)));
  for (const auto& [name, m] : ck.quantized)
    std::printf("%-48s %-12s %-14s %12s %8.3f\n", name.c_str(), format_spec_name(m->spec).c_str(),
                shape_string({m->rows, m->cols}).c_str(),
                with_commas(int64_t(format_bytes(m->spec, m->rows, m->cols))).c_str(),
                format_bits_per_weight(m->spec, m->rows, m->cols));
  std::printf("\nstored: %s bytes (%s) in %zu tensors, %.3f bits per parameter\n", with_commas(stored_bytes).c_str(),
              human_bytes(double(stored_bytes)).c_str(), ck.tensors.tensors().size() + ck.quantized.size(),
              8.0 * double(stored_bytes) / double(params));
  std::printf("size of all %s parameters at (weights only; group scales add e.g. 32 bits per group):\n",
              with_commas(params).c_str());
  const struct {
    const char* name;
    double bits;
  } precisions[] = {{"FP32", 32}, {"FP16/BF16", 16}, {"INT8", 8}, {"INT4", 4}};
  for (const auto& p : precisions)
    std::printf("  %-9s %s × %g bits / 8 = %s bytes (%s)\n", p.name, with_commas(params).c_str(), p.bits,
                with_commas(int64_t(double(params) * p.bits / 8)).c_str(),
                human_bytes(double(params) * p.bits / 8).c_str());
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  auto* cmd = app.add_subcommand("inspect", "Show a model's architecture, tensors, parameter count and sizes");
  cmd->add_option("model", o->model, "Model: llama2.c .bin, Hugging Face directory, or .gguf")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file for llama2.c models (default: tokenizer.bin beside)");
  cmd->add_flag("--json", o->json, "Print JSON instead of a table");
  cmd->footer("Example: lowbit inspect ../shared/models/stories260K/stories260K.bin");
  cmd->callback([o] { run_inspect(*o); });
}

}  // namespace lowbit::cli
