// lowbit quantize MODEL -o OUT: resolve a recipe (flags or a JSON file) into a per-tensor plan,
// quantize every planned tensor with its method, and write a quantized checkpoint.
#include <chrono>
#include <filesystem>
#include <optional>

#include "base/progress.h"
#include "cli_common.h"
#include "commands.h"
#include "export/quantized_checkpoint.h"
#include "export/streaming_writer.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"
#include "kernels/packed_weight.h"
#include "model/checkpoint.h"
#include "quant/recipe.h"
#include "quant/rtn.h"
#include "quantize_budget.h"
#include "quantize_methods.h"

namespace lowbit::cli {

namespace {

namespace fs = std::filesystem;

struct QuantizeOptions {
  std::string model, tokenizer, output, recipe, format, method = "rtn", dtype = "auto";
  int bits = 4;
  int group = 128;
  bool sym = false, dry_run = false, force = false;
  ClipCliOptions clip;
  RotateCliOptions rotate;
  bool format_flags_given = false;  // --bits/--group/--sym/--format on the command line
  int threads = 0;
  GptqCliOptions gptq;
  BudgetCliOptions budget;  // --target-bpw / --max-size / --max-kld (quantize_budget.h)
};

FormatSpec spec_from_flags(const QuantizeOptions& o) {
  if (!o.format.empty()) return unwrap(parse_format_spec(o.format));
  if (o.bits != 2 && o.bits != 3 && o.bits != 4 && o.bits != 8)
    fail(error(ErrorCode::kInvalidArgument, "--bits {}: lowbit quantizes to 8, 4, 3 or 2 bits", o.bits));
  if (o.group < -1)
    fail(error(ErrorCode::kInvalidArgument, "--group {}: use a group size > 0, 0 (per output channel) or -1 (per tensor)",
               o.group));
  std::string text = "int" + std::to_string(o.bits);
  if (o.group > 0) text += "g" + std::to_string(o.group);
  else if (o.group < 0) text += "_tensor";
  if (o.sym) text += "_sym";
  return unwrap(parse_format_spec(text));
}

// --dtype auto: the narrowest type that holds every floating-point tensor of the source exactly,
// so that the tensors a quantization keeps are stored as they were (an F16 model's head stays
// F16: half the bytes of f32 on disk and per decoded token, and no rounding).
std::string source_float_dtype(const Checkpoint& ck) {
  bool f16 = false, bf16 = false, other = false;
  for (const RawTensor& t : ck.tensors.tensors()) {
    if (t.dtype == DType::kF16) f16 = true;
    else if (t.dtype == DType::kBF16) bf16 = true;
    else if (t.dtype == DType::kF32 || t.dtype == DType::kF64) other = true;
  }
  if (f16 && !bf16 && !other) return "f16";
  if (bf16 && !f16 && !other) return "bf16";
  return "f32";
}

void print_plan(const Plan& plan) {
  std::printf("%-44s %-12s %-14s %12s %8s\n", "tensor", "shape", "format", "bytes", "bits/w");
  uint64_t weights = 0;
  for (const auto& e : plan.entries) {
    weights += uint64_t(e.rows * e.cols);
    std::printf("%-44s %-12s %-14s %12s %8.3f\n", e.name.c_str(), fmt::format("{}x{}", e.rows, e.cols).c_str(),
                e.format.is_quantized() ? (format_spec_name(e.format) + " " + e.method).c_str() : "keep",
                with_commas(int64_t(e.bytes)).c_str(), e.bits_per_weight());
  }
  std::printf("total: %s bytes for %s weights = %.4f bits/weight\n", with_commas(int64_t(plan.total_bytes())).c_str(),
              with_commas(int64_t(weights)).c_str(), 8.0 * double(plan.total_bytes()) / double(weights));
}

void run_quantize(const QuantizeOptions& o) {
  set_threads(o.threads);
  const auto t0 = std::chrono::steady_clock::now();
  Checkpoint ck = maybe_rotate(unwrap(load_checkpoint(o.model, o.tokenizer)), o.rotate);
  const std::string float_dtype = o.dtype == "auto" ? source_float_dtype(ck) : o.dtype;
  Recipe recipe;
  // Dynamic quantization is RTN on the weights (int8 per output channel, symmetric, unless told
  // otherwise) plus a flag in the checkpoint that makes the runtime quantize activations per token.
  const bool dynamic = o.method == "dynamic";
  const std::string weight_method = dynamic ? "rtn" : o.method;
  if (!o.recipe.empty()) {
    recipe = unwrap(parse_recipe(unwrap(read_text_file(o.recipe)), o.recipe));
  } else if (dynamic && !o.format_flags_given) {
    recipe = uniform_recipe(unwrap(parse_format_spec("int8_sym")), weight_method);
  } else {
    recipe = uniform_recipe(spec_from_flags(o), weight_method);
  }
  if (!o.recipe.empty() && recipe.method == "rtn" && weight_method != "rtn") recipe.method = weight_method;
  std::optional<BudgetChoice> budget;  // mixed precision: formats chosen from measured sensitivity
  if (o.budget.active()) {
    BudgetCliOptions budget_options = o.budget;
    budget_options.measure.clip = o.clip.search();  // a table measured now uses the same quantizer
    if (o.rotate.on) budget_options.measure.rotation = o.rotate.seed;  // and the same weights
    budget = choose_budget_recipe(ck, budget_options, weight_method, o.gptq, float_dtype, !o.recipe.empty());
    recipe = budget->recipe;
  }
  Plan plan = unwrap(resolve_plan(recipe, quantizable_tensors(ck.config)));
  for (const auto& w : plan.warnings) std::fprintf(stderr, "lowbit: warning: %s\n", w.c_str());
  for (const auto& e : plan.entries)
    if (e.format.is_quantized() && e.method != "rtn" && e.method != "gptq")
      fail(error(ErrorCode::kInvalidArgument, "tensor {}: unknown method \"{}\" (rtn, gptq)", e.name, e.method));
  if (dynamic)
    for (const auto& e : plan.entries)
      if (e.format.is_quantized() && !kernels::supports_qd8_format(e.format))
        std::fprintf(stderr,
                     "lowbit: warning: %s: no int8-activation kernel for %s; it runs on the (slow) reference "
                     "path with the same rounding\n",
                     e.name.c_str(), format_spec_name(e.format).c_str());
  if (o.dry_run) {
    print_plan(plan);
    if (dynamic) std::printf("activations: int8 per token, quantized at run time\n");
    return;
  }
  if (o.output.empty()) fail(error(ErrorCode::kInvalidArgument, "quantize needs -o OUT (or --dry-run)"));
  if (fs::exists(o.output) && !o.force)
    fail(error(ErrorCode::kInvalidArgument, "{}: output exists; use --force to replace it", o.output));

  uint64_t before = 0;
  for (const auto& t : ck.tensors.tensors()) before += t.data.size();
  QuantizedSaveOptions save;
  save.float_dtype = float_dtype == "f16" ? DType::kF16 : float_dtype == "bf16" ? DType::kBF16 : DType::kF32;
  save.overwrite = o.force;
  save.dynamic_int8_activations = dynamic;
  save.extra_files["lowbit-recipe.json"] = recipe_to_json(recipe);
  // Bounded memory: each weight is written as soon as it is quantized (export/streaming_writer.h)
  // and the directory is published complete at the end. Only the budget report keeps them all.
  auto writer = unwrap(QuantizedCheckpointWriter::create(
      o.output, ck, quantized_weight_plans(plan.entries, o.gptq.act_order, o.gptq.static_groups), save));
  check(writer->write_source_tensors());
  QuantizedWeights kept;
  QuantizedTensors quantized = quantize_planned_tensors(
      ck, plan, o.clip.search(), o.gptq, [&](const std::string& name, std::shared_ptr<const QuantizedMatrix> m) {
        if (budget) kept[name] = m;
        return writer->add(name, *m);
      });
  check(writer->commit());
  Checkpoint out = with_quantized_weights(ck, kept);
  out.dynamic_int8_activations = dynamic;

  uint64_t q_bytes = 0, q_weights = 0;
  for (const auto& e : plan.entries)
    if (e.format.is_quantized()) q_bytes += e.bytes, q_weights += uint64_t(e.rows * e.cols);
  const uint64_t after = uint64_t(fs::file_size(o.output + "/model.safetensors"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("quantized %lld tensors (%s weights) to %s\n", (long long)writer->weights_added(),
              with_commas(int64_t(q_weights)).c_str(), o.output.c_str());
  if (q_weights > 0)
    std::printf("quantized tensors: %s bytes, %.4f bits/weight (codes + scales + zero points)\n",
                with_commas(int64_t(q_bytes)).c_str(), 8.0 * double(q_bytes) / double(q_weights));
  std::printf("size: %s → %s (model.safetensors; %.2fx smaller)\n", human_bytes(double(before)).c_str(),
              human_bytes(double(after)).c_str(), double(before) / double(after));
  if (dynamic) std::printf("activations: int8 per token, quantized at run time (W8A8 / W4A8 / W3A8 / W2A8 kernels)\n");
  for (const auto& line : quantized.report) std::printf("%s\n", line.c_str());
  if (budget) report_budget_result(ck, out, *budget, o.gptq, o.output);
  std::printf("time: %.2f s\n", seconds);
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  auto* cmd = app.add_subcommand("quantize", "Quantize a model's weights and write a quantized checkpoint");
  cmd->add_option("model", o->model, "Input model (any supported format)")->required();
  cmd->add_option("-o,--output", o->output, "Output directory (config.json + model.safetensors)");
  cmd->add_option("--method", o->method,
                  "rtn (round-to-nearest), gptq (calibrated), or dynamic (int8 per-channel weights, activations "
                  "quantized to int8 per token at run time)")
      ->capture_default_str()
      ->check(CLI::IsMember({"rtn", "gptq", "dynamic"}));
  std::vector<CLI::Option*> format_flags;
  format_flags.push_back(cmd->add_option("--bits", o->bits, "Integer bits: 8, 4, 3 or 2")->capture_default_str());
  format_flags.push_back(
      cmd->add_option("--group", o->group, "Group size along in_features; 0 = per output channel, -1 = per tensor")
          ->capture_default_str());
  format_flags.push_back(
      cmd->add_flag("--sym", o->sym, "Symmetric grid (zero point fixed at 2^(bits-1)); default asymmetric"));
  format_flags.push_back(cmd->add_option(
      "--format", o->format,
      "A format spec instead of --bits/--group/--sym: e.g. int4g128, nf4, fp8_e4m3, int3_dq4 (4-bit scale codes), "
      "int3_midrise_dq4 (symmetric, no level at 0; docs/formats.md lists them all)"));
  cmd->add_option("--recipe", o->recipe, "JSON recipe: ordered rules \"pattern → format\" (first match wins)");
  add_clip_options(*cmd, o->clip);
  add_rotate_options(*cmd, o->rotate);
  cmd->add_flag("--dry-run", o->dry_run, "Print the resolved plan per tensor (bytes, bits/weight) and stop");
  cmd->add_flag("--force", o->force, "Replace an existing output directory");
  cmd->add_option("--dtype", o->dtype,
                  "Stored type of tensors kept in floating point (embeddings, norms, an unquantized head): f32, f16, "
                  "bf16, or auto = the source's (F16 and BF16 checkpoints keep theirs, exactly; anything else f32)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "f32", "f16", "bf16"}));
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file for llama2.c models");
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)");
  add_gptq_options(*cmd, o->gptq);
  add_budget_options(*cmd, o->budget);
  cmd->footer(
      "Examples:\n"
      "  lowbit quantize stories260K.bin --bits 4 --group 32 -o q4g32\n"
      "  lowbit quantize model/ --method gptq --bits 4 --group 128 --calib calib.bin -o q4-gptq\n"
      "  lowbit quantize model/ --method gptq --format int3_dq4 --true-sequential --clip --asymmetric-calibration \\\n"
      "      --calib calib.bin -o q3   (stories260K: KLD 0.40 -> 0.30 from asymmetric calibration)\n"
      "  lowbit quantize model/ --recipe mixed.json --dry-run\n"
      "  lowbit quantize model/ --method gptq --calib calib.bin --target-bpw 3.5 --formats int2,int3,int4,int8 -o q\n"
      "     (mixed precision: a format per tensor from measured sensitivity; --sensitivity reuses a table)\n"
      "  lowbit quantize model/ --method dynamic -o w8a8     (int8_sym weights + int8 activations)\n"
      "By default every linear layer of every block is quantized; embeddings, the output head and\n"
      "norms stay as they are unless a recipe rule names them, stored in the source's float type\n"
      "(--dtype auto).");
  cmd->callback([o, format_flags] {
    for (const CLI::Option* f : format_flags) o->format_flags_given = o->format_flags_given || f->count() > 0;
    run_quantize(*o);
  });
}

}  // namespace lowbit::cli
