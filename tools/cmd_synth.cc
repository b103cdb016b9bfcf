// lowbit synth --shape NAME --seed S -o DIR: a Llama-family checkpoint of a real model's exact
// shape (Hugging Face directory, F16 safetensors) with seeded random weights of trained-model
// scale (model/synthetic.h: std 1/sqrt(fan_in), norms near 1). For speed work only: the weights
// mean nothing.
//
// Memory stays small whatever the shape: tensors are generated chunk by chunk (each chunk has its
// own seeded generator, so the result does not depend on the thread count) straight into a
// scratch file in DIR, which is memory-mapped and handed to save_hf_checkpoint. llama-7b needs
// about 2 x 13.5 GB of disk while it runs (scratch + output) and 13.5 GB after.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "base/half.h"
#include "cli_common.h"
#include "commands.h"
#include "io/interrupt_cleanup.h"
#include "model/hf_checkpoint.h"
#include "model/synthetic.h"

namespace lowbit::cli {

namespace {

struct SynthOptions {
  std::string shape = "tinyllama-1.1b", output;
  uint64_t seed = 1;
  int threads = 0;
  bool force = false;
};

struct NamedShape {
  const char* name;
  ModelConfig (*make)();
};

ModelConfig llama_shape(const char* arch, int dim, int hidden, int layers, int heads, int kv_heads, int vocab,
                        int seq, float theta) {
  ModelConfig c;
  c.architecture = arch;
  c.dim = dim;
  c.hidden_dim = hidden;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = dim / heads;
  c.vocab_size = vocab;
  c.max_seq_len = seq;
  c.rope_theta = theta;
  c.tied_embeddings = false;
  // Random weights have no RoPE order to preserve; declaring the HF order saves a permuted copy.
  c.rope_style = RopeStyle::kHalf;
  return c;
}

// Shapes from each model's published config.json.
const NamedShape kShapes[] = {
    {"tiny", [] { auto c = tiny_test_config(); c.rope_style = RopeStyle::kHalf; return c; }},
    {"tinyllama-1.1b", [] { return llama_shape("llama", 2048, 5632, 22, 32, 4, 32000, 2048, 10000.0f); }},
    {"llama-7b", [] { return llama_shape("llama", 4096, 11008, 32, 32, 32, 32000, 4096, 10000.0f); }},
    {"llama-13b", [] { return llama_shape("llama", 5120, 13824, 40, 40, 40, 32000, 4096, 10000.0f); }},
    {"mistral-7b", [] { return llama_shape("mistral", 4096, 14336, 32, 32, 8, 32000, 32768, 1000000.0f); }},
    {"llama3-8b", [] { return llama_shape("llama", 4096, 14336, 32, 32, 8, 128256, 8192, 500000.0f); }},
};

std::string shape_names() {
  std::string s;
  for (const NamedShape& n : kShapes) s += (s.empty() ? "" : ", ") + std::string(n.name);
  return s;
}

constexpr int64_t kChunk = 1 << 20;  // elements per independently seeded chunk

// Fills [begin, end) of one tensor (F16) as make_random_checkpoint scales it.
void fill_chunk(uint64_t seed, size_t tensor, int64_t chunk, float mean, float stddev, uint16_t* out, int64_t n) {
  std::seed_seq seq{uint32_t(seed), uint32_t(seed >> 32), uint32_t(tensor), uint32_t(chunk)};
  std::mt19937_64 rng(seq);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_fp16(mean + stddev * normal(rng));
}

Status generate(const SynthOptions& o, const ModelConfig& config) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(fs::path(o.output) / "config.json", ec) && !o.force)
    return error(ErrorCode::kInvalidArgument, "{}: already holds a checkpoint (use --force to replace it)", o.output);
  fs::create_directories(o.output, ec);
  if (ec) return error(ErrorCode::kIo, "{}: cannot create directory: {}", o.output, ec.message());
  const std::string scratch = (fs::path(o.output) / ".synth-scratch.bin").string();
  // Removed by the interrupt handler too (io/interrupt_cleanup.h): no stray scratch on Ctrl-C.
  TempPathRegistration scratch_registration(scratch, /*directory=*/false);

  const std::vector<ExpectedTensor> tensors = expected_tensors(config);
  std::vector<int64_t> offsets{0};
  for (const ExpectedTensor& e : tensors) {
    int64_t n = 1;
    for (int64_t d : e.shape) n *= d;
    offsets.push_back(offsets.back() + 2 * n);
  }
  const int fd = ::open(scratch.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return error(ErrorCode::kIo, "{}: cannot create scratch file", scratch);
  Status status;
  for (size_t t = 0; t < tensors.size() && status.ok(); ++t) {
    const std::string& name = tensors[t].name;
    const bool norm = name.size() >= 11 && name.compare(name.size() - 11, 11, "norm.weight") == 0;
    const bool bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    const int64_t n = (offsets[t + 1] - offsets[t]) / 2;
    const float fan_in = tensors[t].shape.size() == 2 ? float(tensors[t].shape[1]) : 1.0f;
    const float mean = norm ? 1.0f : 0.0f, stddev = norm ? 0.1f : bias ? 0.05f : 1.0f / std::sqrt(fan_in);
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    bool ok = true;
#pragma omp parallel for schedule(dynamic) reduction(&& : ok)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t len = std::min(kChunk, n - c * kChunk);
      std::vector<uint16_t> buf(static_cast<size_t>(len));
      fill_chunk(o.seed, t, c, mean, stddev, buf.data(), len);
      const ssize_t want = ssize_t(len * 2);
      ok = ok && ::pwrite(fd, buf.data(), size_t(want), offsets[t] + c * kChunk * 2) == want;
    }
    if (!ok) status = error(ErrorCode::kIo, "{}: write failed (disk full?)", scratch);
  }
  ::close(fd);
  if (status.ok()) {
    Result<std::shared_ptr<MappedFile>> file = MappedFile::open(scratch);
    if (!file.ok()) return file.status();
    Checkpoint ck;
    ck.path = "synth:" + o.shape;
    ck.format = "synthetic";
    ck.config = config;
    ck.tensors.add_file(*file);
    for (size_t t = 0; t < tensors.size() && status.ok(); ++t) {
      RawTensor raw;
      raw.name = tensors[t].name;
      raw.dtype = DType::kF16;
      raw.shape = tensors[t].shape;
      raw.data = (*file)->bytes().subspan(size_t(offsets[t]), size_t(offsets[t + 1] - offsets[t]));
      status = ck.tensors.add(std::move(raw));
    }
    HfSaveOptions save;
    save.dtype = DType::kF16;
    save.overwrite = o.force;
    if (status.ok()) status = save_hf_checkpoint(o.output, ck, save);
  }
  fs::remove(scratch, ec);
  return status;
}

void run_synth(const SynthOptions& o) {
  set_threads(o.threads);
  const NamedShape* shape = nullptr;
  for (const NamedShape& n : kShapes)
    if (o.shape == n.name) shape = &n;
  if (shape == nullptr)
    fail(error(ErrorCode::kInvalidArgument, "--shape {}: unknown (known: {})", o.shape, shape_names()));
  const ModelConfig config = shape->make();
  check(config.validate(o.shape));
  check(generate(o, config));
  std::printf("wrote %s: %s shape, %s parameters, F16 (%s), seed %llu\n", o.output.c_str(), o.shape.c_str(),
              with_commas(config.parameter_count()).c_str(), human_bytes(2.0 * double(config.parameter_count())).c_str(),
              (unsigned long long)o.seed);
}

}  // namespace

void add_synth_command(CLI::App& app) {
  auto o = std::make_shared<SynthOptions>();
  auto* cmd = app.add_subcommand("synth", "Write a random-weight checkpoint of a real model's shape (speed work only)");
  cmd->add_option("--shape", o->shape, "Model shape: " + shape_names())->capture_default_str();
  cmd->add_option("--seed", o->seed, "Random seed (same seed, same weights)")->capture_default_str();
  cmd->add_option("-o,--output", o->output, "Output directory (config.json + model.safetensors, F16)")->required();
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)");
  cmd->add_flag("--force", o->force, "Replace an existing checkpoint in the output directory");
  cmd->footer(
      "Example:\n  lowbit synth --shape tinyllama-1.1b --seed 1 -o /tmp/tinyllama-synth\n"
      "Weights are seeded Gaussians with std 1/sqrt(fan_in), norms 1 + 0.1*N(0,1); no tokenizer.\n"
      "Disk: the F16 size twice while writing (llama-7b: 2 x 13.5 GB), memory: a few MB per thread.");
  cmd->callback([o] { run_synth(*o); });
}

}  // namespace lowbit::cli
