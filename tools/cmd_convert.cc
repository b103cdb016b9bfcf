// lowbit convert MODEL --to FORMAT -o OUT: rewrite a checkpoint in another container
// (llama2.c legacy or version 1, Hugging Face safetensors directory, GGUF), permuting q/k rows
// for the target's RoPE convention so the logits stay identical.
#include <filesystem>

#include "cli_common.h"
#include "commands.h"
#include "model/checkpoint.h"
#include "model/hf_checkpoint.h"

namespace lowbit::cli {

namespace {

struct ConvertOptions {
  std::string model, tokenizer, to, dtype = "f32", out;
  bool force = false;
};

void run_convert(const ConvertOptions& o) {
  Checkpoint ck = unwrap(load_checkpoint(o.model, o.tokenizer));
  DType dtype = o.dtype == "f16" ? DType::kF16 : o.dtype == "bf16" ? DType::kBF16 : DType::kF32;
  namespace fs = std::filesystem;
  if (fs::exists(o.out) && !o.force)
    fail(error(ErrorCode::kInvalidArgument, "{}: output exists; use --force to replace it", o.out));
  if (o.to == "hf") {
    // The previous checkpoint stays whole until the new one is complete (io/atomic_directory.h).
    HfSaveOptions save;
    save.dtype = dtype;
    save.overwrite = o.force;
    check(save_hf_checkpoint(o.out, ck, save));
  } else if (o.to == "gguf") {
    check(save_gguf_checkpoint(o.out, ck, dtype));
  } else {
    if (dtype != DType::kF32) fail(error(ErrorCode::kInvalidArgument, "llama2.c checkpoints are fp32 only"));
    check(save_llama2c_checkpoint(o.out, ck, o.to == "llama2c-v1"));
  }
  std::printf("wrote %s (%s, %s)\n", o.out.c_str(), o.to.c_str(), o.dtype.c_str());
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  auto* cmd = app.add_subcommand("convert", "Rewrite a floating-point checkpoint in another format");
  cmd->add_option("model", o->model, "Input model (any supported format)")->required();
  cmd->add_option("--to", o->to, "Target: llama2c (legacy header), llama2c-v1 (\"ak42\"), hf, gguf")
      ->required()
      ->check(CLI::IsMember({"llama2c", "llama2c-v1", "hf", "gguf"}));
  cmd->add_option("--dtype", o->dtype, "Stored float type: f32, f16, bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  cmd->add_option("-o,--output", o->out, "Output file (llama2c, gguf) or directory (hf)")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file for llama2.c models");
  cmd->add_flag("--force", o->force, "Replace an existing output");
  cmd->footer("Example: lowbit convert stories260K.bin --to gguf --dtype f16 -o stories260K-f16.gguf");
  cmd->callback([o] { run_convert(*o); });
}

}  // namespace lowbit::cli
