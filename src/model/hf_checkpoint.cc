// Loading and saving Hugging Face checkpoint directories (layout: model/hf_checkpoint.h).
#include "model/hf_checkpoint.h"
#include "model/quantized_tensors.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/half.h"
#include "io/atomic_directory.h"
#include "io/atomic_file.h"
#include "io/json_limits.h"
#include "io/safetensors.h"
#include "model/hf_config.h"
#include "model/rope_permute.h"
#include "model/tokenizer_io.h"

namespace lowbit {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kConfigFile = "config.json";
constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr const char* kTokenizerFile = "tokenizer.json";

std::string join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// ---------------------------------------------------------------------------------------------
// Loading

// Tensors that HF files may carry but the model does not use: old transformers saved the RoPE
// frequency buffer, and a tied model's lm_head is ignored by transformers when it loads.
bool is_ignored(const std::string& name, const ModelConfig& config) {
  return ends_with(name, ".rotary_emb.inv_freq") || (config.tied_embeddings && name == tensor_names::lm_head());
}

Status add_tensors(std::shared_ptr<MappedFile> file, SafetensorsContents contents, Checkpoint* ckpt) {
  for (RawTensor& t : contents.tensors)
    if (!is_ignored(t.name, ckpt->config))
      LOWBIT_RETURN_IF_ERROR(ckpt->tensors.add(std::move(t)).with_context(file->path()));
  for (auto& [key, value] : contents.metadata) ckpt->tensors.metadata()[key] = value;
  ckpt->tensors.add_file(std::move(file));
  return Status::Ok();
}

// A shard name from the index must stay inside the checkpoint directory. The check is lexical
// on purpose: the Hugging Face cache stores shards as symlinks into ../../blobs, which are fine.
Status check_shard_name(const std::string& file, const std::string& index_path) {
  const fs::path normal = fs::path(file).lexically_normal();
  const bool escapes = !normal.empty() && *normal.begin() == "..";
  if (file.empty() || file.find('\0') != std::string::npos || normal.is_absolute() || normal.has_root_name() ||
      escapes)
    return error(ErrorCode::kFormat, "{}: shard \"{}\" is not a file inside the checkpoint directory", index_path,
                 file);
  return Status::Ok();
}

Status load_sharded(const std::string& dir, Checkpoint* ckpt) {
  const std::string index_path = join(dir, kIndexFile);
  LOWBIT_ASSIGN_OR_RETURN(std::string text, read_text_file(index_path, kMaxJsonFileBytes));
  json index;
  try {
    index = json::parse(text);
  } catch (const std::exception& e) {
    return error(ErrorCode::kFormat, "{}: malformed JSON: {}", index_path, e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    return error(ErrorCode::kFormat, "{}: missing \"weight_map\" object", index_path);

  std::map<std::string, std::set<std::string>> names_by_shard;  // sorted: deterministic load order
  for (const auto& [name, file] : index["weight_map"].items()) {
    if (!file.is_string())
      return error(ErrorCode::kFormat, "{}: weight_map entry for \"{}\" is not a file name", index_path, name);
    LOWBIT_RETURN_IF_ERROR(check_shard_name(file.get<std::string>(), index_path));
    names_by_shard[file.get<std::string>()].insert(name);
  }
  for (const auto& [file, names] : names_by_shard) {
    const std::string path = join(dir, file);
    std::error_code ec;
    if (!fs::exists(path, ec))
      return error(ErrorCode::kNotFound, "{}: shard \"{}\" (holding \"{}\") does not exist", index_path, file,
                   *names.begin());
    LOWBIT_ASSIGN_OR_RETURN(auto mapped, MappedFile::open(path));
    LOWBIT_ASSIGN_OR_RETURN(SafetensorsContents contents, parse_safetensors(mapped->bytes(), path));
    std::set<std::string> present;
    for (const RawTensor& t : contents.tensors) {
      if (!names.count(t.name))
        return error(ErrorCode::kFormat, "{}: tensor \"{}\" is not listed for this shard in {}", path, t.name,
                     index_path);
      present.insert(t.name);
    }
    for (const std::string& name : names)
      if (!present.count(name))
        return error(ErrorCode::kNotFound, "{}: lists tensor \"{}\" in {}, which does not contain it", index_path,
                     name, file);
    LOWBIT_RETURN_IF_ERROR(add_tensors(std::move(mapped), std::move(contents), ckpt));
  }
  return Status::Ok();
}

Status load_tensors(const std::string& dir, Checkpoint* ckpt) {
  std::error_code ec;
  if (fs::exists(join(dir, kIndexFile), ec)) return load_sharded(dir, ckpt);
  const std::string single = join(dir, kSingleFile);
  if (fs::exists(single, ec)) {
    LOWBIT_ASSIGN_OR_RETURN(auto mapped, MappedFile::open(single));
    LOWBIT_ASSIGN_OR_RETURN(SafetensorsContents contents, parse_safetensors(mapped->bytes(), single));
    return add_tensors(std::move(mapped), std::move(contents), ckpt);
  }
  for (const char* pickle : {"pytorch_model.bin", "pytorch_model.bin.index.json"})
    if (fs::exists(join(dir, pickle), ec))
      return error(ErrorCode::kUnsupported, "{}: has {} but no safetensors; lowbit reads only safetensors", dir,
                   pickle);
  return error(ErrorCode::kNotFound, "{}: neither {} nor {} is present", dir, kSingleFile, kIndexFile);
}

// ---------------------------------------------------------------------------------------------
// Saving

float load_float(DType dtype, const uint8_t* p) {
  if (dtype == DType::kF32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return dtype == DType::kF16 ? fp16_to_f32(h) : bf16_to_f32(h);
}

void store_float(DType dtype, float f, uint8_t* p) {
  if (dtype == DType::kF32) {
    std::memcpy(p, &f, 4);
    return;
  }
  const uint16_t h = dtype == DType::kF16 ? f32_to_fp16(f) : f32_to_bf16(f);
  std::memcpy(p, &h, 2);
}

// Applies permute_rope_rows on the stored elements (their bits, so no value changes).
template <typename T>
void permute_in_place(std::vector<uint8_t>* bytes, int64_t rows, int head_dim) {
  const int64_t n = int64_t(bytes->size() / sizeof(T));
  std::vector<T> v(static_cast<size_t>(n));
  std::memcpy(v.data(), bytes->data(), bytes->size());
  std::vector<T> out = permute_rope_rows(v.data(), rows, n / rows, head_dim, /*to_half=*/true);
  std::memcpy(bytes->data(), out.data(), bytes->size());
}

// One tensor as it will be written: usually a view of the source; converted, permuted or
// generated tensors own their bytes in `storage`.
struct OutTensor {
  RawTensor raw;
  std::vector<uint8_t> storage;
};

// `out_config` is the config being written (kHalf); `ckpt.config` says how the source is ordered.
OutTensor prepare_tensor(const Checkpoint& ckpt, const ExpectedTensor& e, DType dtype) {
  namespace tn = tensor_names;
  OutTensor out;
  out.raw.name = e.name;
  out.raw.dtype = dtype;
  out.raw.shape = e.shape;
  const RawTensor* src = ckpt.tensors.find(e.name);
  if (src == nullptr) {
    // Only q/k/v biases can be absent (a biasless model written as Qwen2): zero is exact.
    LOWBIT_CHECK(ends_with(e.name, ".bias") && !ckpt.config.attention_bias);
    out.storage.assign(size_t(out.raw.numel()) * dtype_size(dtype), 0);
    out.raw.data = out.storage;
    return out;
  }
  const bool is_q = ends_with(e.name, tn::kQ) || ends_with(e.name, tn::kQBias);
  const bool is_k = ends_with(e.name, tn::kK) || ends_with(e.name, tn::kKBias);
  const bool permute = ckpt.config.rope_style == RopeStyle::kInterleaved && (is_q || is_k);
  if (src->dtype == dtype && !permute) {
    out.raw.data = src->data;
    return out;
  }
  const int64_t n = src->numel();
  out.storage.resize(size_t(n) * dtype_size(dtype));
  if (src->dtype == dtype) {
    std::memcpy(out.storage.data(), src->data.data(), out.storage.size());
  } else {
    const size_t in_size = dtype_size(src->dtype), out_size = dtype_size(dtype);
    for (int64_t i = 0; i < n; ++i)
      store_float(dtype, load_float(src->dtype, src->data.data() + size_t(i) * in_size),
                  out.storage.data() + size_t(i) * out_size);
  }
  if (permute) {
    // Rows = heads * head_dim (n_kv_heads heads for k); a bias is a matrix with one column.
    const int64_t rows = e.shape[0];
    if (dtype_size(dtype) == 4)
      permute_in_place<uint32_t>(&out.storage, rows, ckpt.config.head_dim);
    else
      permute_in_place<uint16_t>(&out.storage, rows, ckpt.config.head_dim);
  }
  out.raw.data = out.storage;
  return out;
}

// Groups tensors into shards of at most max_bytes (0: one shard), in order.
std::vector<std::vector<ExpectedTensor>> plan_shards(const std::vector<ExpectedTensor>& tensors, DType dtype,
                                                     int64_t max_bytes, uint64_t* total_bytes) {
  std::vector<std::vector<ExpectedTensor>> shards(1);
  uint64_t in_shard = 0;
  *total_bytes = 0;
  for (const ExpectedTensor& e : tensors) {
    uint64_t bytes = dtype_size(dtype);
    for (int64_t d : e.shape) bytes *= uint64_t(d);
    if (max_bytes > 0 && !shards.back().empty() && in_shard + bytes > uint64_t(max_bytes)) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(e);
    in_shard += bytes;
    *total_bytes += bytes;
  }
  return shards;
}

Status write_shard(const std::string& path, const Checkpoint& ckpt, const std::vector<ExpectedTensor>& tensors,
                   DType dtype) {
  std::vector<OutTensor> prepared;
  prepared.reserve(tensors.size());  // no reallocation: RawTensor views point into `storage`
  for (const ExpectedTensor& e : tensors) prepared.push_back(prepare_tensor(ckpt, e, dtype));
  std::vector<const RawTensor*> views;
  for (const OutTensor& t : prepared) views.push_back(&t.raw);
  return write_safetensors(path, views, {{"format", "pt"}});
}

std::string shard_name(size_t i, size_t n) { return fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, n); }

// What a previous save left that would mix with this one: the other layout's files and shards
// that are not part of the new set (removed when the new files are published).
Result<std::vector<std::string>> stale_files(const std::string& dir, const std::set<std::string>& written) {
  static const std::regex kShard(R"(model-\d{5}-of-\d{5}\.safetensors)");
  std::vector<std::string> stale;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return stale;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (written.count(name)) continue;
    if (name == kSingleFile || name == kIndexFile || std::regex_match(name, kShard)) stale.push_back(name);
  }
  if (ec) return error(ErrorCode::kIo, "{}: cannot list directory: {}", dir, ec.message());
  return stale;
}

// Checks that `dir` may receive a checkpoint. Nothing in it changes until the new files are
// complete (io/atomic_directory.h, merge mode: the user's other files there are kept).
Status check_destination(const std::string& dir, bool overwrite) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return Status::Ok();
  if (!fs::is_directory(dir, ec)) return error(ErrorCode::kInvalidArgument, "{}: exists and is not a directory", dir);
  if (fs::exists(join(dir, kConfigFile), ec) && !overwrite)
    return error(ErrorCode::kInvalidArgument, "{} exists; use --force to overwrite it", join(dir, kConfigFile));
  return Status::Ok();
}

}  // namespace

Result<Checkpoint> load_hf_checkpoint(const std::string& dir_arg) {
  // parent_path() of a bare "model.safetensors" is "", meaning the current directory.
  const std::string dir = dir_arg.empty() ? "." : dir_arg;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return error(ErrorCode::kIo, "{}: not a directory", dir);
  const std::string config_path = join(dir, kConfigFile);
  if (!fs::exists(config_path, ec)) return error(ErrorCode::kNotFound, "{}: no {} in the directory", dir, kConfigFile);
  LOWBIT_ASSIGN_OR_RETURN(std::string config_text, read_text_file(config_path, kMaxJsonFileBytes));
  LOWBIT_ASSIGN_OR_RETURN(HfConfig hf, parse_hf_config(config_text, config_path));

  Checkpoint ckpt;
  ckpt.path = dir;
  ckpt.format = "safetensors";
  ckpt.config = hf.model;
  LOWBIT_RETURN_IF_ERROR(load_tensors(dir, &ckpt));
  // Quantized weights (GPTQ or lowbit layout) become Checkpoint::quantized entries.
  LOWBIT_ASSIGN_OR_RETURN(ckpt.quantized,
                          extract_quantized_tensors(ckpt.tensors, hf.quantization_config_json, dir));
  ckpt.dynamic_int8_activations = hf.dynamic_int8_activations;
  if (ckpt.dynamic_int8_activations && ckpt.quantized.empty())
    return error(ErrorCode::kFormat, "{}: config.json asks for dynamic int8 activations but no weight is quantized", dir);
  LOWBIT_RETURN_IF_ERROR(validate_checkpoint_tensors(ckpt));

  const std::string tokenizer_path = join(dir, kTokenizerFile);
  if (fs::exists(tokenizer_path, ec)) {
    LOWBIT_ASSIGN_OR_RETURN(auto tokenizer, load_tokenizer_json(tokenizer_path));
    // A tokenizer may be smaller than the embedding (padded vocabularies) but never larger:
    // its ids index the embedding rows.
    if (tokenizer->vocab_size() > ckpt.config.vocab_size)
      return error(ErrorCode::kFormat, "{}: {} tokens but config.json has vocab_size {}", tokenizer_path,
                   tokenizer->vocab_size(), ckpt.config.vocab_size);
    ckpt.tokenizer = std::move(tokenizer);
  }
  return ckpt;
}

Status save_hf_checkpoint(const std::string& dir, const Checkpoint& ckpt, DType dtype, int64_t max_shard_bytes) {
  HfSaveOptions options;
  options.dtype = dtype;
  options.max_shard_bytes = max_shard_bytes;
  return save_hf_checkpoint(dir, ckpt, options);
}

Status save_hf_checkpoint(const std::string& dir, const Checkpoint& ckpt, const HfSaveOptions& options) {
  const DType dtype = options.dtype;
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16)
    return error(ErrorCode::kInvalidArgument, "{}: cannot store weights as {}; use F32, F16 or BF16", dir,
                 dtype_name(dtype));
  if (options.max_shard_bytes < 0)
    return error(ErrorCode::kInvalidArgument, "{}: negative max shard size {}", dir, options.max_shard_bytes);
  // Quantized weights belong in export/'s GPTQ-convention writer.
  LOWBIT_RETURN_IF_ERROR(require_float_checkpoint(ckpt, dir, "Hugging Face"));
  LOWBIT_RETURN_IF_ERROR(ckpt.config.validate(ckpt.path));
  LOWBIT_RETURN_IF_ERROR(validate_checkpoint_tensors(ckpt));

  // What the files will say: HF row order, and Qwen2 always has biases (zeros when the source
  // has none).
  ModelConfig out_config = ckpt.config;
  out_config.rope_style = RopeStyle::kHalf;
  if (out_config.architecture == "qwen2") out_config.attention_bias = true;
  LOWBIT_ASSIGN_OR_RETURN(std::string config_text, hf_config_json(out_config, dtype));
  LOWBIT_RETURN_IF_ERROR(check_destination(dir, options.overwrite));
  // Everything is written into a staging directory beside `dir`, then published in one
  // signal-deferred step with config.json last: an interrupted or failed save (disk full) leaves
  // the previous checkpoint as it was and no partial files.
  LOWBIT_ASSIGN_OR_RETURN(AtomicDirectory staging, AtomicDirectory::create(dir, AtomicDirectory::Mode::kMerge));

  uint64_t total_bytes = 0;
  const auto shards = plan_shards(expected_tensors(out_config), dtype, options.max_shard_bytes, &total_bytes);
  std::set<std::string> written;
  if (shards.size() == 1) {
    LOWBIT_RETURN_IF_ERROR(write_shard(staging.file(kSingleFile), ckpt, shards[0], dtype));
    written.insert(kSingleFile);
  } else {
    json weight_map = json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string name = shard_name(i, shards.size());
      LOWBIT_RETURN_IF_ERROR(write_shard(staging.file(name), ckpt, shards[i], dtype));
      for (const ExpectedTensor& e : shards[i]) weight_map[e.name] = name;
      written.insert(name);
    }
    json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    LOWBIT_RETURN_IF_ERROR(write_text_file_atomic(staging.file(kIndexFile), index.dump(2) + "\n"));
    written.insert(kIndexFile);
  }
  LOWBIT_ASSIGN_OR_RETURN(std::vector<std::string> stale, stale_files(dir, written));
  if (ckpt.tokenizer != nullptr)
    LOWBIT_RETURN_IF_ERROR(save_tokenizer_json(staging.file(kTokenizerFile), ckpt.tokenizer->vocabulary()));
  else
    stale.push_back(kTokenizerFile);  // a stale one would not match
  LOWBIT_RETURN_IF_ERROR(write_text_file_atomic(staging.file(kConfigFile), config_text));
  // Last: a directory with config.json is a complete checkpoint.
  return staging.commit(kConfigFile, stale);
}

}  // namespace lowbit
