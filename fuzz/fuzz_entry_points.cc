// Fuzz entry points (see fuzz_entry_points.h). After a parser accepts an input, the checks below
// are the oracle: anything they flag aborts, which libFuzzer and the regression test report.
#include "fuzz/fuzz_entry_points.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "eval/token_data.h"
#include "fuzz/scratch.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/hf_config.h"
#include "model/quantized_tensors.h"
#include "model/tokenizer_io.h"
#include "quant/recipe.h"

namespace lowbit::fuzz {

namespace {

[[noreturn]] void invariant_failed(const std::string& what) {
  std::fprintf(stderr, "lowbit fuzz: invariant violated: %s\n", what.c_str());
  std::abort();
}
#define FUZZ_CHECK(cond, ...) \
  do {                        \
    if (!(cond)) invariant_failed(fmt::format("{} ({})", fmt::format(__VA_ARGS__), #cond)); \
  } while (0)

std::string as_text(Bytes data) { return std::string(reinterpret_cast<const char*>(data.data()), data.size()); }

bool inside(std::span<const uint8_t> part, std::span<const uint8_t> whole) {
  if (part.empty()) return true;
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

uint64_t expected_bytes(const RawTensor& t) {
  uint64_t n = dtype_size(t.dtype);
  for (int64_t d : t.shape) n *= uint64_t(d);
  return n;
}

// Texts that reach the tokenizers' merge loops, byte fallback, specials and invalid UTF-8.
constexpr const char* kTexts[] = {
    "", "a", "Hello world", " leading  and  double spaces\n\nnew paragraph\t tab",
    "h\xC3\xA9llo w\xC3\xB6rld \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 12345 it's",
    "\xFF\xFE\xC3 bad utf8 \xE2\x82", "<s></s><unk><|begin_of_text|> <0x41>",
};

// Every id that encode() returns is a token, and decoding never fails.
void exercise_tokenizer(const Tokenizer& t) {
  const int n = t.vocab_size();
  FUZZ_CHECK(n > 0, "tokenizer with {} tokens", n);
  FUZZ_CHECK(t.bos_id() < n && t.eos_id() < n, "bos {} / eos {} outside {} tokens", t.bos_id(), t.eos_id(), n);
  for (const char* text : kTexts) {
    for (bool bos : {false, true}) {
      const std::vector<int> ids = t.encode(text, bos);
      for (int id : ids) FUZZ_CHECK(id >= 0 && id < n, "encode(\"{}\") gave id {} of {}", text, id, n);
      (void)t.decode(ids);
    }
  }
  for (int id : {0, n / 2, n - 1}) (void)t.token_text(id);
}

// Same encodings for the fixed texts: a tokenizer written and read back is the same tokenizer.
void check_same_encodings(const Tokenizer& a, const Tokenizer& b, const char* what) {
  FUZZ_CHECK(a.vocab_size() == b.vocab_size(), "{}: vocabulary {} became {}", what, a.vocab_size(), b.vocab_size());
  for (const char* text : kTexts) {
    FUZZ_CHECK(a.encode(text, true) == b.encode(text, true), "{}: encode(\"{}\") differs after a round trip", what,
               text);
  }
}

void check_tensor_sets_equal(const std::vector<RawTensor>& a, const TensorSet& b, const char* what) {
  FUZZ_CHECK(a.size() == b.tensors().size(), "{}: {} tensors became {}", what, a.size(), b.tensors().size());
  for (const RawTensor& t : a) {
    const RawTensor* u = b.find(t.name);
    FUZZ_CHECK(u != nullptr, "{}: tensor \"{}\" lost", what, t.name);
    FUZZ_CHECK(u->dtype == t.dtype && u->shape == t.shape, "{}: tensor \"{}\" changed type or shape", what, t.name);
    FUZZ_CHECK(u->data.size() == t.data.size() && std::equal(t.data.begin(), t.data.end(), u->data.begin()),
               "{}: tensor \"{}\" changed bytes", what, t.name);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

bool fuzz_safetensors(Bytes data) {
  auto parsed = parse_safetensors(data, "fuzz.safetensors");
  if (!parsed.ok()) return false;
  uint64_t covered = 0;
  for (const RawTensor& t : parsed->tensors) {
    FUZZ_CHECK(inside(t.data, data), "tensor \"{}\" points outside the file", t.name);
    FUZZ_CHECK(t.data.size() == expected_bytes(t), "tensor \"{}\" has {} bytes for {} {}", t.name, t.data.size(),
               dtype_name(t.dtype), shape_string(t.shape));
    FUZZ_CHECK(t.numel() >= 0, "tensor \"{}\" has a negative element count", t.name);
    covered += t.data.size();
  }
  FUZZ_CHECK(parsed->tensors.empty() || covered <= data.size(), "tensors cover {} bytes of a {}-byte file", covered,
             data.size());
  TensorSet set;
  for (const RawTensor& t : parsed->tensors) FUZZ_CHECK(set.add(t).ok(), "tensor \"{}\" accepted twice", t.name);

  // What lowbit's writer makes of the parsed tensors reads back identically.
  std::vector<const RawTensor*> views;
  for (const RawTensor& t : parsed->tensors) views.push_back(&t);
  const std::string path = scratch_subdir("safetensors") + "/round_trip.safetensors";
  if (write_safetensors(path, views, parsed->metadata).ok()) {
    auto back = read_safetensors(path);
    FUZZ_CHECK(back.ok(), "written file does not read back: {}", back.status().message());
    check_tensor_sets_equal(parsed->tensors, *back, "safetensors round trip");
    FUZZ_CHECK(back->metadata() == parsed->metadata, "safetensors round trip changed __metadata__");
  }
  return true;
}

bool fuzz_gguf(Bytes data) {
  const std::string path = write_scratch_file("gguf/model.gguf", data);
  bool accepted = false;
  if (auto file = gguf::GgufFile::open(path); file.ok()) {
    accepted = true;
    const std::span<const uint8_t> whole = file->file()->bytes();
    gguf::GgufWriter writer;
    bool writable = true;
    for (const auto& [key, value] : file->metadata().entries()) {
      (void)value.type_string();
      (void)value.size();
      writer.metadata().set(key, value);
    }
    for (const gguf::TensorInfo& info : file->tensor_infos()) {
      const std::span<const uint8_t> bytes = file->tensor_bytes(info);
      FUZZ_CHECK(inside(bytes, whole) && bytes.size() == info.size_bytes, "tensor \"{}\" lies outside the file",
                 info.name);
      FUZZ_CHECK(info.numel() >= 0, "tensor \"{}\" has a negative element count", info.name);
      if (auto raw = file->raw_tensor(info); raw.ok())
        FUZZ_CHECK(raw->data.size() == expected_bytes(*raw), "tensor \"{}\" has a wrong byte count", info.name);
      writable = writable && writer.add_tensor(info.name, gguf::GgmlType(info.ggml_type), info.shape, bytes).ok();
    }
    const std::string rt = scratch_subdir("gguf_rt") + "/round_trip.gguf";
    if (writable && writer.write(rt).ok()) {
      auto back = gguf::GgufFile::open(rt);
      FUZZ_CHECK(back.ok(), "written GGUF does not read back: {}", back.status().message());
      FUZZ_CHECK(back->metadata().entries().size() == file->metadata().entries().size(), "GGUF round trip lost keys");
      FUZZ_CHECK(back->tensor_infos().size() == file->tensor_infos().size(), "GGUF round trip lost tensors");
      for (const gguf::TensorInfo& info : file->tensor_infos()) {
        const gguf::TensorInfo* other = back->find_tensor(info.name);
        FUZZ_CHECK(other != nullptr && other->shape == info.shape && other->ggml_type == info.ggml_type,
                   "GGUF round trip changed tensor \"{}\"", info.name);
        const auto a = file->tensor_bytes(info), b = back->tensor_bytes(*other);
        FUZZ_CHECK(a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin()),
                   "GGUF round trip changed the bytes of \"{}\"", info.name);
      }
    }
  }
  if (auto ck = load_gguf_checkpoint(path); ck.ok()) {
    FUZZ_CHECK(validate_checkpoint_tensors(*ck).ok(), "loaded GGUF checkpoint fails validation");
    if (ck->tokenizer) exercise_tokenizer(*ck->tokenizer);
  }
  return accepted;
}

bool fuzz_llama2c(Bytes data) {
  // A directory of its own, so the loader's search for a tokenizer beside the model finds none.
  const std::string dir = scratch_subdir("llama2c");
  const std::string path = write_scratch_file("llama2c/model.bin", data);
  auto ck = load_llama2c_checkpoint(path, "");
  // The directory form goes through the header sniffing of load_checkpoint first.
  auto by_dir = load_checkpoint(dir);
  FUZZ_CHECK(!by_dir.ok() || ck.ok(), "load_checkpoint accepts a file load_llama2c_checkpoint refuses");
  if (!ck.ok()) return false;
  FUZZ_CHECK(validate_checkpoint_tensors(*ck).ok(), "loaded llama2.c checkpoint fails validation");
  for (const RawTensor& t : ck->tensors.tensors())
    FUZZ_CHECK(t.data.size() == expected_bytes(t), "tensor \"{}\" has a wrong byte count", t.name);
  for (bool version1 : {false, true}) {
    const std::string rt = scratch_subdir("llama2c_rt") + "/round_trip.bin";
    FUZZ_CHECK(save_llama2c_checkpoint(rt, *ck, version1).ok(), "an accepted checkpoint cannot be written back");
    auto back = load_llama2c_checkpoint(rt, "");
    FUZZ_CHECK(back.ok(), "written llama2.c file does not read back: {}", back.status().message());
    FUZZ_CHECK(back->config.dim == ck->config.dim && back->config.vocab_size == ck->config.vocab_size &&
                   back->config.n_layers == ck->config.n_layers && back->config.max_seq_len == ck->config.max_seq_len &&
                   back->config.tied_embeddings == ck->config.tied_embeddings,
               "llama2.c round trip changed the config");
    check_tensor_sets_equal(ck->tensors.tensors(), back->tensors, "llama2.c round trip");
  }
  return true;
}

bool fuzz_hf_config(Bytes data) {
  auto parsed = parse_hf_config(as_text(data), "config.json");
  if (!parsed.ok()) return false;
  const ModelConfig& c = parsed->model;
  FUZZ_CHECK(c.validate("config.json").ok(), "an accepted config does not validate");
  auto text = hf_config_json(c, DType::kF16);
  if (text.ok()) {
    auto back = parse_hf_config(*text, "round trip");
    FUZZ_CHECK(back.ok(), "written config.json does not read back: {}", back.status().message());
    const ModelConfig& b = back->model;
    FUZZ_CHECK(b.architecture == c.architecture && b.dim == c.dim && b.hidden_dim == c.hidden_dim &&
                   b.n_layers == c.n_layers && b.n_heads == c.n_heads && b.n_kv_heads == c.n_kv_heads &&
                   b.head_dim == c.head_dim && b.vocab_size == c.vocab_size && b.max_seq_len == c.max_seq_len &&
                   b.rope_theta == c.rope_theta && b.norm_eps == c.norm_eps &&
                   b.tied_embeddings == c.tied_embeddings && b.attention_bias == c.attention_bias,
               "config.json round trip changed the config");
  }
  return true;
}

bool fuzz_tokenizer_json(Bytes data) {
  const std::string path = write_scratch_file("tokenizer_json/tokenizer.json", data);
  auto tok = load_tokenizer_json(path);
  if (!tok.ok()) return false;
  exercise_tokenizer(**tok);
  const std::string rt = scratch_subdir("tokenizer_json_rt") + "/tokenizer.json";
  if (save_tokenizer_json(rt, (*tok)->vocabulary()).ok()) {
    auto back = load_tokenizer_json(rt);
    FUZZ_CHECK(back.ok(), "written tokenizer.json does not read back: {}", back.status().message());
    check_same_encodings(**tok, **back, "tokenizer.json round trip");
  }
  return true;
}

bool fuzz_tokenizer_bin(Bytes data) {
  const std::string path = write_scratch_file("tokenizer_bin/tokenizer.bin", data);
  auto tok = load_llama2c_tokenizer(path, 0);
  if (!tok.ok()) return false;
  exercise_tokenizer(**tok);
  const std::string rt = scratch_subdir("tokenizer_bin_rt") + "/tokenizer.bin";
  if (save_llama2c_tokenizer(rt, (*tok)->vocabulary()).ok()) {
    auto back = load_llama2c_tokenizer(rt, (*tok)->vocab_size());
    FUZZ_CHECK(back.ok(), "written tokenizer.bin does not read back: {}", back.status().message());
    check_same_encodings(**tok, **back, "tokenizer.bin round trip");
  }
  return true;
}

bool fuzz_recipe(Bytes data) {
  auto recipe = parse_recipe(as_text(data), "recipe.json");
  if (!recipe.ok()) return false;
  auto back = parse_recipe(recipe_to_json(*recipe), "round trip");
  FUZZ_CHECK(back.ok(), "written recipe does not read back: {}", back.status().message());
  FUZZ_CHECK(back->method == recipe->method && back->rules.size() == recipe->rules.size(), "recipe round trip");
  for (size_t i = 0; i < recipe->rules.size(); ++i)
    FUZZ_CHECK(back->rules[i].pattern == recipe->rules[i].pattern && back->rules[i].format == recipe->rules[i].format &&
                   back->rules[i].method == recipe->rules[i].method,
               "recipe round trip changed rule {}", i + 1);
  // Matching every rule against a model's weight names (globs with ranges).
  ModelConfig c;
  c.dim = 64, c.hidden_dim = 172, c.n_layers = 12, c.n_heads = 8, c.n_kv_heads = 4, c.head_dim = 8;
  c.vocab_size = 300, c.max_seq_len = 128, c.tied_embeddings = false;
  std::vector<TensorShape> shapes;
  for (const ExpectedTensor& e : expected_tensors(c))
    if (e.shape.size() == 2) shapes.push_back({e.name, e.shape[0], e.shape[1]});
  shapes.push_back({"model.layers.99999999999.self_attn.q_proj.weight", 8, 8});
  if (auto plan = resolve_plan(*recipe, shapes); plan.ok()) {
    FUZZ_CHECK(plan->entries.size() == shapes.size(), "the plan lost tensors");
    (void)plan->total_bytes();
  }
  return true;
}

bool fuzz_token_file(Bytes data) {
  constexpr int kVocab = 512;
  const std::string path = write_scratch_file("token_file/tokens.bin", data);
  auto tokens = read_token_file(path, kVocab);
  if (!tokens.ok()) return false;
  FUZZ_CHECK(tokens->size() * 4 == data.size(), "{} tokens from {} bytes", tokens->size(), data.size());
  for (int32_t t : *tokens) FUZZ_CHECK(t >= 0 && t < kVocab, "token {} accepted", t);
  for (WindowSpec spec : {WindowSpec{8, 0, 0}, WindowSpec{3, 1, 5}, WindowSpec{2, 7, 0}}) {
    int64_t dropped = 0;
    auto starts = window_starts(int64_t(tokens->size()), spec, &dropped);
    if (!starts.ok()) continue;
    for (int64_t s : *starts) FUZZ_CHECK(s >= 0 && s + spec.length <= int64_t(tokens->size()), "window at {}", s);
    FUZZ_CHECK(dropped >= 0, "dropped {} tokens", dropped);
  }
  return true;
}

bool fuzz_quantized_tensors(Bytes data) {
  auto parsed = parse_safetensors(data, "model.safetensors");
  if (!parsed.ok()) return false;
  TensorSet set;
  for (RawTensor& t : parsed->tensors)
    if (!set.add(std::move(t)).ok()) return false;
  set.metadata() = parsed->metadata;
  std::string qc;
  if (auto it = set.metadata().find("quantization_config"); it != set.metadata().end()) qc = it->second;
  auto quantized = extract_quantized_tensors(set, qc, "fuzz");
  if (!quantized.ok()) return false;
  for (const auto& [name, m] : *quantized) {
    FUZZ_CHECK(validate_matrix(*m).ok(), "extracted \"{}\" does not validate: {}", name, validate_matrix(*m).message());
    const std::vector<float> values = dequantize(*m);
    FUZZ_CHECK(values.size() == size_t(m->rows * m->cols), "\"{}\" dequantizes to {} values", name, values.size());
  }
  // Written back with lowbit's writer (layout chosen as export does), the matrices read back equal.
  const QuantizationConfig config = choose_quantization_config(*quantized);
  TensorSet out;
  bool writable = true;
  for (const auto& [name, m] : *quantized)
    writable = writable && add_quantized_tensors(name, *m, config, out).ok();
  if (writable) {
    auto back = extract_quantized_tensors(out, config.json, "round trip");
    FUZZ_CHECK(back.ok(), "written quantized tensors do not read back: {}", back.status().message());
    FUZZ_CHECK(back->size() == quantized->size(), "quantized round trip lost weights");
    for (const auto& [name, m] : *quantized) {
      auto it = back->find(name);
      FUZZ_CHECK(it != back->end(), "quantized round trip lost \"{}\"", name);
      const QuantizedMatrix& b = *it->second;
      FUZZ_CHECK(b.rows == m->rows && b.cols == m->cols && b.codes == m->codes && b.g_idx == m->g_idx,
                 "quantized round trip changed the codes of \"{}\"", name);
      FUZZ_CHECK(b.params.size() == m->params.size(), "quantized round trip changed \"{}\"", name);
      for (size_t i = 0; i < b.params.size(); ++i)
        FUZZ_CHECK(b.params[i].scale == m->params[i].scale && b.params[i].zero == m->params[i].zero,
                   "quantized round trip changed parameter set {} of \"{}\"", i, name);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------

const std::vector<FuzzTarget>& fuzz_targets() {
  static const std::vector<FuzzTarget> targets = {
      {"safetensors", fuzz_safetensors},       {"gguf", fuzz_gguf},
      {"llama2c", fuzz_llama2c},               {"hf_config", fuzz_hf_config},
      {"tokenizer_json", fuzz_tokenizer_json}, {"tokenizer_bin", fuzz_tokenizer_bin},
      {"recipe", fuzz_recipe},                 {"token_file", fuzz_token_file},
      {"quantized_tensors", fuzz_quantized_tensors},
  };
  return targets;
}

const FuzzTarget* find_fuzz_target(std::string_view name) {
  for (const FuzzTarget& t : fuzz_targets())
    if (name == t.name) return &t;
  return nullptr;
}

}  // namespace lowbit::fuzz
