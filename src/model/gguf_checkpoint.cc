// GGUF "llama" checkpoints <-> Checkpoint: llama.cpp's key and tensor names mapped onto the
// canonical (Hugging Face) names of model/config.h, and the q/k RoPE row order converted.
//
// llama.cpp's converter stores q/k rows in the interleaved RoPE order (model/rope_permute.h), so
// loads always give RopeStyle::kInterleaved and saves permute kHalf checkpoints into it.
// 1-D tensors (norms, biases) are always stored as F32, as llama.cpp's converter does.
#include <charconv>
#include <cstring>
#include <limits>
#include <optional>

#include "base/half.h"
#include "io/gguf.h"
#include "model/checkpoint.h"
#include "model/gguf_vocab.h"
#include "model/rope_permute.h"
#include "model/tokenizer_io.h"

namespace lowbit {

namespace {

namespace tn = tensor_names;
using gguf::Value;

constexpr const char* kArchKey = "general.architecture";

// Per-layer tensors: "blk.N.<gguf suffix>" <-> "model.layers.N.<canonical suffix>".
struct LayerTensorName {
  const char* gguf;
  const char* canonical;
};
constexpr LayerTensorName kLayerTensors[] = {
    {"attn_norm.weight", tn::kAttnNorm}, {"attn_q.weight", tn::kQ},       {"attn_k.weight", tn::kK},
    {"attn_v.weight", tn::kV},           {"attn_output.weight", tn::kO},  {"attn_q.bias", tn::kQBias},
    {"attn_k.bias", tn::kKBias},         {"attn_v.bias", tn::kVBias},     {"ffn_norm.weight", tn::kFfnNorm},
    {"ffn_gate.weight", tn::kGate},      {"ffn_up.weight", tn::kUp},      {"ffn_down.weight", tn::kDown},
};

// Splits "<prefix>N.<suffix>" into N and suffix.
bool split_layer_name(std::string_view name, std::string_view prefix, int* layer, std::string_view* suffix) {
  if (name.substr(0, prefix.size()) != prefix) return false;
  name.remove_prefix(prefix.size());
  const size_t dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos) return false;
  auto [end, ec] = std::from_chars(name.data(), name.data() + dot, *layer);
  if (ec != std::errc() || end != name.data() + dot) return false;
  *suffix = name.substr(dot + 1);
  return true;
}

std::optional<std::string> canonical_from_gguf(const std::string& name) {
  if (name == "token_embd.weight") return tn::embed();
  if (name == "output_norm.weight") return tn::final_norm();
  if (name == "output.weight") return tn::lm_head();
  int layer = 0;
  std::string_view suffix;
  if (!split_layer_name(name, "blk.", &layer, &suffix)) return std::nullopt;
  for (const auto& t : kLayerTensors)
    if (suffix == t.gguf) return tn::layer(layer, t.canonical);
  return std::nullopt;
}

std::optional<std::string> gguf_from_canonical(const std::string& name) {
  if (name == tn::embed()) return "token_embd.weight";
  if (name == tn::final_norm()) return "output_norm.weight";
  if (name == tn::lm_head()) return "output.weight";
  int layer = 0;
  std::string_view suffix;
  if (!split_layer_name(name, "model.layers.", &layer, &suffix)) return std::nullopt;
  for (const auto& t : kLayerTensors)
    if (suffix == t.canonical) return "blk." + std::to_string(layer) + "." + t.gguf;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Config

// A size key: a non-negative integer that fits an int. llama.cpp allows per-layer arrays for
// some of these (variable head counts); lowbit's ModelConfig does not.
Result<int> read_size(const gguf::Metadata& md, const std::string& key) {
  if (const Value* v = md.find(key); v != nullptr && v->is_array())
    return error(ErrorCode::kUnsupported, "{}: {} is a per-layer array, which lowbit does not support", md.source(),
                 key);
  LOWBIT_ASSIGN_OR_RETURN(uint64_t v, md.get_uint(key));
  if (v > uint64_t(std::numeric_limits<int>::max()))
    return error(ErrorCode::kFormat, "{}: {} = {} is out of range", md.source(), key, v);
  return int(v);
}

Result<int> read_size_or(const gguf::Metadata& md, const std::string& key, int fallback) {
  if (!md.contains(key)) return fallback;
  return read_size(md, key);
}

Result<ModelConfig> config_from_gguf(const gguf::Metadata& md) {
  const std::string& src = md.source();
  ModelConfig c;
  c.architecture = "llama";
  c.rope_style = RopeStyle::kInterleaved;
  LOWBIT_ASSIGN_OR_RETURN(c.max_seq_len, read_size(md, "llama.context_length"));
  LOWBIT_ASSIGN_OR_RETURN(c.dim, read_size(md, "llama.embedding_length"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_layers, read_size(md, "llama.block_count"));
  LOWBIT_ASSIGN_OR_RETURN(c.hidden_dim, read_size(md, "llama.feed_forward_length"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_heads, read_size(md, "llama.attention.head_count"));
  // Absent means no grouped-query attention (llama.cpp's default).
  LOWBIT_ASSIGN_OR_RETURN(c.n_kv_heads, read_size_or(md, "llama.attention.head_count_kv", c.n_heads));
  if (c.n_heads == 0) return error(ErrorCode::kFormat, "{}: llama.attention.head_count is 0", src);
  LOWBIT_ASSIGN_OR_RETURN(c.head_dim, read_size_or(md, "llama.rope.dimension_count", c.dim / c.n_heads));
  // lowbit rotates whole heads: the key/value head size must be the rotated size.
  for (const char* key : {"llama.attention.key_length", "llama.attention.value_length"}) {
    LOWBIT_ASSIGN_OR_RETURN(int n, read_size_or(md, key, c.head_dim));
    if (n != c.head_dim)
      return error(ErrorCode::kUnsupported, "{}: {} = {} differs from llama.rope.dimension_count = {}", src, key, n,
                   c.head_dim);
  }
  if (md.contains("llama.rope.scaling.type")) {
    LOWBIT_ASSIGN_OR_RETURN(std::string scaling, md.get_string("llama.rope.scaling.type"));
    if (scaling != "none")
      return error(ErrorCode::kUnsupported, "{}: RoPE scaling \"{}\" is not supported", src, scaling);
  }
  if (md.contains("llama.rope.freq_base")) {
    LOWBIT_ASSIGN_OR_RETURN(double theta, md.get_float("llama.rope.freq_base"));
    c.rope_theta = float(theta);
  }
  LOWBIT_ASSIGN_OR_RETURN(double eps, md.get_float("llama.attention.layer_norm_rms_epsilon"));
  c.norm_eps = float(eps);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Tensor conversion for saving

float load_value(const RawTensor& t, size_t i) {
  switch (t.dtype) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, t.data.data() + 4 * i, 4);
      return f;
    }
    case DType::kF16:
    case DType::kBF16: {
      uint16_t h;
      std::memcpy(&h, t.data.data() + 2 * i, 2);
      return t.dtype == DType::kF16 ? fp16_to_f32(h) : bf16_to_f32(h);
    }
    default: LOWBIT_CHECK(false);  // validate_checkpoint_tensors admits only these
  }
  return 0.0f;
}

std::vector<uint8_t> convert(const RawTensor& t, DType to) {
  const size_t n = size_t(t.numel()), size = dtype_size(to);
  std::vector<uint8_t> out(n * size);
  for (size_t i = 0; i < n; ++i) {
    const float v = load_value(t, i);
    if (to == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &v, 4);
    } else {
      const uint16_t h = to == DType::kF16 ? f32_to_fp16(v) : f32_to_bf16(v);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

uint32_t llama_file_type(DType dtype) {
  switch (dtype) {
    case DType::kF16: return 1;    // LLAMA_FTYPE_MOSTLY_F16
    case DType::kBF16: return 32;  // LLAMA_FTYPE_MOSTLY_BF16
    default: return 0;             // LLAMA_FTYPE_ALL_F32
  }
}

void put_config(const ModelConfig& c, DType dtype, gguf::Metadata* md) {
  md->set(kArchKey, Value::string("llama"));
  md->set("general.file_type", Value::u32(llama_file_type(dtype)));
  md->set(gguf::kAlignmentKey, Value::u32(gguf::kDefaultAlignment));
  md->set("llama.context_length", Value::u32(uint32_t(c.max_seq_len)));
  md->set("llama.embedding_length", Value::u32(uint32_t(c.dim)));
  md->set("llama.block_count", Value::u32(uint32_t(c.n_layers)));
  md->set("llama.feed_forward_length", Value::u32(uint32_t(c.hidden_dim)));
  md->set("llama.attention.head_count", Value::u32(uint32_t(c.n_heads)));
  md->set("llama.attention.head_count_kv", Value::u32(uint32_t(c.n_kv_heads)));
  md->set("llama.rope.freq_base", Value::f32(c.rope_theta));
  md->set("llama.attention.layer_norm_rms_epsilon", Value::f32(c.norm_eps));
  md->set("llama.rope.dimension_count", Value::u32(uint32_t(c.head_dim)));
  // Written explicitly because llama.cpp otherwise assumes dim / n_heads.
  md->set("llama.attention.key_length", Value::u32(uint32_t(c.head_dim)));
  md->set("llama.attention.value_length", Value::u32(uint32_t(c.head_dim)));
  md->set("llama.vocab_size", Value::u32(uint32_t(c.vocab_size)));
}

// How many heads a RoPE-rotated tensor (q/k weight or bias) spans; 0 for every other tensor.
int rope_heads(const std::string& name, const ModelConfig& c) {
  int layer = 0;
  std::string_view suffix;
  if (!split_layer_name(name, "model.layers.", &layer, &suffix)) return 0;
  if (suffix == tn::kQ || suffix == tn::kQBias) return c.n_heads;
  if (suffix == tn::kK || suffix == tn::kKBias) return c.n_kv_heads;
  return 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Result<Checkpoint> load_gguf_checkpoint(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(gguf::GgufFile file, gguf::GgufFile::open(path));
  const gguf::Metadata& md = file.metadata();
  LOWBIT_ASSIGN_OR_RETURN(std::string arch, md.get_string(kArchKey));
  if (arch != "llama")
    return error(ErrorCode::kUnsupported, "{}: unsupported architecture \"{}\" (lowbit reads GGUF \"llama\" models)",
                 path, arch);

  Checkpoint ck;
  ck.path = path;
  ck.format = "gguf";
  LOWBIT_ASSIGN_OR_RETURN(ck.config, config_from_gguf(md));
  ck.tensors.add_file(file.file());
  for (const gguf::TensorInfo& info : file.tensor_infos()) {
    std::optional<std::string> name = canonical_from_gguf(info.name);
    if (!name)
      return error(ErrorCode::kUnsupported, "{}: tensor \"{}\" is not part of a llama model as lowbit reads it",
                   path, info.name);
    LOWBIT_ASSIGN_OR_RETURN(RawTensor t, file.raw_tensor(info));
    t.name = std::move(*name);
    LOWBIT_RETURN_IF_ERROR(ck.tensors.add(std::move(t)).with_context(path));
  }

  // The vocabulary size and head tying come from the tensors themselves.
  const RawTensor* embed = ck.tensors.find(tn::embed());
  if (embed == nullptr) return error(ErrorCode::kNotFound, "{}: missing tensor \"token_embd.weight\"", path);
  if (embed->shape.size() != 2 || embed->shape[0] > std::numeric_limits<int>::max())
    return error(ErrorCode::kFormat, "{}: token_embd.weight has shape {}", path, shape_string(embed->shape));
  ck.config.vocab_size = int(embed->shape[0]);
  if (md.contains("llama.vocab_size")) {
    LOWBIT_ASSIGN_OR_RETURN(int n, read_size(md, "llama.vocab_size"));
    if (n != ck.config.vocab_size)
      return error(ErrorCode::kFormat, "{}: llama.vocab_size = {} but token_embd.weight has {} rows", path, n,
                   ck.config.vocab_size);
  }
  ck.config.tied_embeddings = ck.tensors.find(tn::lm_head()) == nullptr;
  ck.config.attention_bias = ck.tensors.find(tn::layer(0, tn::kQBias)) != nullptr;
  LOWBIT_RETURN_IF_ERROR(ck.config.validate(path));
  // Name a missing tensor by its GGUF name, the one the user can look for in the file.
  for (const ExpectedTensor& e : expected_tensors(ck.config))
    if (ck.tensors.find(e.name) == nullptr)
      return error(ErrorCode::kNotFound, "{}: missing tensor \"{}\"", path, gguf_from_canonical(e.name).value_or(e.name));
  LOWBIT_RETURN_IF_ERROR(validate_checkpoint_tensors(ck));

  LOWBIT_ASSIGN_OR_RETURN(std::optional<Vocabulary> vocab, vocabulary_from_gguf(md));
  if (vocab) {
    if (vocab->tokens.size() != size_t(ck.config.vocab_size))
      return error(ErrorCode::kFormat, "{}: the vocabulary has {} tokens but token_embd.weight has {} rows", path,
                   vocab->tokens.size(), ck.config.vocab_size);
    if (vocab->bos_id >= 0) ck.config.bos_id = vocab->bos_id;
    if (vocab->eos_id >= 0) ck.config.eos_id = vocab->eos_id;
    LOWBIT_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, make_tokenizer(std::move(*vocab), path));
    ck.tokenizer = std::move(tokenizer);
  }
  return ck;
}

Status save_gguf_checkpoint(const std::string& path, const Checkpoint& ck, DType dtype) {
  const ModelConfig& c = ck.config;
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16)
    return error(ErrorCode::kInvalidArgument, "{}: GGUF float checkpoints are F32, F16 or BF16, not {}", path,
                 dtype_name(dtype));
  // Mistral is the llama graph under another name; llama.cpp's converter writes it as "llama".
  if (c.architecture != "llama" && c.architecture != "mistral")
    return error(ErrorCode::kUnsupported, "{}: cannot write architecture \"{}\" as a GGUF llama model", path,
                 c.architecture);
  LOWBIT_RETURN_IF_ERROR(require_float_checkpoint(ck, path, "GGUF"));
  LOWBIT_RETURN_IF_ERROR(c.validate(ck.path));
  LOWBIT_RETURN_IF_ERROR(validate_checkpoint_tensors(ck));

  gguf::GgufWriter writer;
  put_config(c, dtype, &writer.metadata());
  if (ck.tokenizer != nullptr) {
    const Vocabulary& vocab = ck.tokenizer->vocabulary();
    if (vocab.tokens.size() != size_t(c.vocab_size))
      return error(ErrorCode::kInvalidArgument, "{}: the tokenizer has {} tokens but the model's vocab_size is {}",
                   path, vocab.tokens.size(), c.vocab_size);
    LOWBIT_RETURN_IF_ERROR(vocabulary_to_gguf(vocab, &writer.metadata()).with_context(path));
  }

  for (const ExpectedTensor& e : expected_tensors(c)) {
    const RawTensor& t = *ck.tensors.find(e.name);  // present: validated above
    const DType to = e.shape.size() == 1 ? DType::kF32 : dtype;
    const int n_heads = rope_heads(e.name, c);
    const bool permute = c.rope_style == RopeStyle::kHalf && n_heads > 0;
    LOWBIT_ASSIGN_OR_RETURN(gguf::GgmlType type, gguf::ggml_type_from_dtype(to));
    const std::string name = *gguf_from_canonical(e.name);
    if (t.dtype == to && !permute) {  // stored as is: no copy
      LOWBIT_RETURN_IF_ERROR(writer.add_tensor(name, type, t.shape, t.data).with_context(path));
      continue;
    }
    std::vector<uint8_t> bytes = t.dtype == to ? std::vector<uint8_t>(t.data.begin(), t.data.end()) : convert(t, to);
    if (permute) {
      // Rows move whole, so permuting bytes works for any element type.
      const int64_t rows = e.shape[0], row_bytes = (e.shape.size() == 2 ? e.shape[1] : 1) * int64_t(dtype_size(to));
      LOWBIT_CHECK(rows == int64_t(n_heads) * c.head_dim);
      bytes = permute_rope_rows<uint8_t>(bytes.data(), rows, row_bytes, c.head_dim, /*to_half=*/false);
    }
    LOWBIT_RETURN_IF_ERROR(writer.add_tensor_owned(name, type, e.shape, std::move(bytes)).with_context(path));
  }
  return writer.write(path);
}

}  // namespace lowbit
