// Seed inputs for the fuzz targets, all written by lowbit's own writers (see fuzz_entry_points.h).
// Small on purpose: libFuzzer mutates faster on small inputs, and every seed still reaches the
// deep parts of its parser (tensor tables, vocabularies, quantized layouts).
#include <random>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_entry_points.h"
#include "fuzz/scratch.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/hf_checkpoint.h"
#include "model/hf_config.h"
#include "model/quantized_tensors.h"
#include "model/synthetic.h"
#include "model/tokenizer_bpe.h"
#include "model/tokenizer_io.h"
#include "quant/recipe.h"

namespace lowbit::fuzz {

namespace {

void check_ok(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "lowbit fuzz seeds: %s: %s\n", what, s.message().c_str());
    std::abort();
  }
}
template <typename T>
T take(Result<T> r, const char* what) {
  check_ok(r.status(), what);
  return std::move(r).value();
}

std::vector<uint8_t> text_bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// dim 8, 2 heads of 4 (1 kv head), hidden 12, one layer: a complete Llama in a few KB.
ModelConfig small_config(int vocab, bool tied = true) {
  ModelConfig c;
  c.dim = 8, c.hidden_dim = 12, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.head_dim = 4;
  c.vocab_size = vocab, c.max_seq_len = 16, c.tied_embeddings = tied;
  return c;
}

// llama2.c layout: <unk> <s> </s> <0x00>..<0xFF>, then a few scored pieces.
Vocabulary sentencepiece_vocab() {
  Vocabulary v;
  v.tokens = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) v.tokens.push_back(fmt::format("<0x{:02X}>", b));
  v.scores.assign(v.tokens.size(), 0.0f);
  const std::pair<const char*, float> pieces[] = {
      {"▁", -10}, {"a", -11}, {"b", -12}, {"e", -13}, {"é", -14}, {"ab", -1}, {"ba", -1},
      {"▁a", -3}, {"▁ab", -4}, {"he", -5}, {"▁he", -6}, {"llo", -7}, {"l", -8},
  };
  for (auto [text, score] : pieces) v.tokens.push_back(text), v.scores.push_back(score);
  v.bos_id = 1, v.eos_id = 2, v.unk_id = 0;
  return v;
}

// Ids 0..255 are the byte alphabet, then merge results and two specials.
Vocabulary byte_level_vocab(const std::string& pre) {
  Vocabulary v;
  v.kind = Vocabulary::Kind::kByteLevelBpe;
  v.pre_tokenizer = pre;
  v.add_space_prefix = false;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_level_alphabet()[b]);
  v.merges = {"Ġ t", "h e", "e l", "l l", "Ġt he", "Ġ h"};
  for (const char* t : {"Ġt", "he", "el", "ll", "Ġthe", "Ġh"}) v.tokens.push_back(t);
  v.tokens.push_back("<|begin_of_text|>");
  v.tokens.push_back("<|end_of_text|>");
  v.types.assign(v.tokens.size(), 1);
  v.types[262] = v.types[263] = 3;
  v.bos_id = 262, v.eos_id = 263;
  return v;
}

std::shared_ptr<const Tokenizer> tokenizer_of(Vocabulary v) {
  return take(make_tokenizer(std::move(v), "seed"), "make_tokenizer");
}

std::vector<float> random_weights(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(n));
  for (float& x : w) x = normal(rng);
  return w;
}

std::shared_ptr<const QuantizedMatrix> quantized(int64_t rows, int64_t cols, const char* format, uint64_t seed) {
  const FormatSpec spec = take(parse_format_spec(format), "parse_format_spec");
  auto m = take(quantize_reference(random_weights(rows * cols, seed), rows, cols, spec), "quantize_reference");
  return std::make_shared<QuantizedMatrix>(std::move(m));
}

using QuantizedMap = std::map<std::string, std::shared_ptr<const QuantizedMatrix>>;

// A safetensors file holding `weights` as export lays them out, with quantization_config (the
// config.json block) copied into __metadata__ where fuzz_quantized_tensors looks for it.
std::vector<uint8_t> quantized_safetensors(const QuantizedMap& weights, const std::string& name) {
  const QuantizationConfig config = choose_quantization_config(weights);
  TensorSet set;
  for (const auto& [weight, m] : weights) check_ok(add_quantized_tensors(weight, *m, config, set), "add_quantized_tensors");
  check_ok(set.add_owned("model.norm.weight", DType::kF32, {4}, std::vector<uint8_t>(16, 0)), "add_owned");
  set.metadata()["format"] = "pt";
  set.metadata()["quantization_config"] = config.json;
  const std::string path = scratch_subdir("seeds") + "/" + name;
  check_ok(write_safetensors(path, set), "write_safetensors");
  return read_whole_file(path);
}

std::vector<Seed> quantized_seeds() {
  std::vector<Seed> seeds;
  auto add = [&](const std::string& name, const QuantizedMap& weights) {
    seeds.push_back({name, quantized_safetensors(weights, name + ".safetensors")});
  };
  add("gptq_int4g32_sym", {{"model.layers.0.mlp.up_proj.weight", quantized(32, 64, "int4g32_sym", 1)}});
  add("gptq_int4g32_asym", {{"model.layers.0.self_attn.q_proj.weight", quantized(32, 64, "int4g32", 2)},
                            {"model.layers.0.self_attn.k_proj.weight", quantized(64, 64, "int4g32", 3)}});
  add("gptq_int8_channel", {{"model.layers.0.mlp.down_proj.weight", quantized(32, 32, "int8", 4)}});
  add("gptq_int2g16", {{"model.layers.1.mlp.gate_proj.weight", quantized(32, 32, "int2g16", 5)}});
  {
    // Act-order: the groups' columns are scattered (g_idx), as GPTQ with desc_act writes them.
    auto m = std::make_shared<QuantizedMatrix>(*quantized(32, 64, "int3g32_sym", 6));
    m->g_idx.resize(64);
    for (int64_t c = 0; c < 64; ++c) m->g_idx[size_t(c)] = int32_t(((c * 5) % 64) / 32);
    add("gptq_int3g32_act_order", {{"model.layers.0.self_attn.o_proj.weight", m}});
  }
  add("lowbit_mixed", {{"model.layers.0.self_attn.q_proj.weight", quantized(5, 40, "int4g32", 7)},
                       {"model.layers.0.self_attn.k_proj.weight", quantized(4, 64, "nf4", 8)},
                       {"model.layers.0.self_attn.v_proj.weight", quantized(3, 16, "fp8_e4m3", 9)},
                       {"model.layers.0.self_attn.o_proj.weight", quantized(4, 8, "int2_tensor", 10)},
                       {"model.layers.0.mlp.up_proj.weight", quantized(6, 20, "int3g16_sym", 11)},
                       {"model.layers.0.mlp.down_proj.weight", quantized(2, 12, "int8_asym", 12)}});
  add("lowbit_nf4g16", {{"model.layers.0.mlp.gate_proj.weight", quantized(3, 24, "nf4g16", 13)}});
  return seeds;
}

std::vector<Seed> safetensors_seeds() {
  std::vector<Seed> seeds;
  const Checkpoint ck = make_random_checkpoint(small_config(16, false), 1);
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    const std::string dir = scratch_subdir(fmt::format("seeds/hf_{}", dtype_name(dtype)));
    HfSaveOptions options;
    options.dtype = dtype;
    options.overwrite = true;
    check_ok(save_hf_checkpoint(dir, ck, options), "save_hf_checkpoint");
    seeds.push_back({fmt::format("hf_checkpoint_{}", dtype_name(dtype)), read_whole_file(dir + "/model.safetensors")});
  }
  // Every dtype, a scalar, an empty tensor and free-form metadata.
  TensorSet set;
  const DType dtypes[] = {DType::kF32, DType::kF16,  DType::kBF16, DType::kF64, DType::kI8,
                          DType::kU8,  DType::kI16,  DType::kI32,  DType::kI64, DType::kU16,
                          DType::kU32, DType::kU64,  DType::kBool, DType::kF8E4M3};
  int i = 0;
  for (DType d : dtypes) {
    std::vector<uint8_t> bytes(6 * dtype_size(d));
    for (size_t k = 0; k < bytes.size(); ++k) bytes[k] = uint8_t(k * 7 + i);
    check_ok(set.add_owned(fmt::format("t{}.{}", i++, dtype_name(d)), d, {2, 3}, bytes), "add_owned");
  }
  check_ok(set.add_owned("scalar", DType::kF32, {}, std::vector<uint8_t>(4, 1)), "add_owned");
  check_ok(set.add_owned("empty", DType::kF16, {0, 4}, {}), "add_owned");
  set.metadata() = {{"format", "pt"}, {"note", "lowbit fuzz seed"}};
  const std::string path = scratch_subdir("seeds") + "/dtypes.safetensors";
  check_ok(write_safetensors(path, set), "write_safetensors");
  seeds.push_back({"every_dtype", read_whole_file(path)});
  seeds.push_back(quantized_seeds()[5]);
  return seeds;
}

std::vector<Seed> gguf_seeds() {
  std::vector<Seed> seeds;
  struct Case {
    const char* name;
    DType dtype;
    std::optional<Vocabulary> vocab;
  };
  const Case cases[] = {
      {"llama_f32_sentencepiece", DType::kF32, sentencepiece_vocab()},
      {"llama_f16_gpt2", DType::kF16, byte_level_vocab("gpt2")},
      {"llama_bf16_llama3", DType::kBF16, byte_level_vocab("llama3")},
      {"llama_f16_no_tokenizer", DType::kF16, std::nullopt},
  };
  int seed = 10;
  for (const Case& c : cases) {
    const int vocab = c.vocab ? int(c.vocab->tokens.size()) : 16;
    Checkpoint ck = make_random_checkpoint(small_config(vocab, c.vocab.has_value()), uint64_t(seed++));
    if (c.vocab) ck.tokenizer = tokenizer_of(*c.vocab);
    const std::string path = scratch_subdir("seeds") + "/" + c.name + ".gguf";
    check_ok(save_gguf_checkpoint(path, ck, c.dtype), "save_gguf_checkpoint");
    seeds.push_back({c.name, read_whole_file(path)});
  }
  // Every metadata value type, arrays, a non-default alignment and quantized ggml types.
  gguf::GgufWriter w;
  using gguf::Value;
  using gguf::ValueType;
  w.metadata().set("general.architecture", Value::string("llama"));
  w.metadata().set(gguf::kAlignmentKey, Value::u32(64));
  w.metadata().set("t.u8", Value::u8(7));
  w.metadata().set("t.i8", Value::scalar(ValueType::kI8, int64_t{-7}));
  w.metadata().set("t.u16", Value::scalar(ValueType::kU16, uint64_t{65535}));
  w.metadata().set("t.i16", Value::scalar(ValueType::kI16, int64_t{-300}));
  w.metadata().set("t.u32", Value::u32(123456));
  w.metadata().set("t.i32", Value::i32(-123456));
  w.metadata().set("t.u64", Value::u64(1ull << 40));
  w.metadata().set("t.i64", Value::i64(-(1ll << 40)));
  w.metadata().set("t.f32", Value::f32(0.5f));
  w.metadata().set("t.f64", Value::f64(-2.25));
  w.metadata().set("t.bool", Value::boolean(true));
  w.metadata().set("t.string", Value::string("h\xC3\xA9llo"));
  w.metadata().set("t.strings", Value::strings({"a", "", "bc"}));
  w.metadata().set("t.f32s", Value::f32s({1.0f, -1.0f}));
  w.metadata().set("t.i32s", Value::i32s({1, -2, 3}));
  w.metadata().set("t.bools", Value::array(ValueType::kBool, std::vector<bool>{true, false}));
  w.metadata().set("t.u8s", Value::array(ValueType::kU8, std::vector<uint64_t>{1, 2, 255}));
  check_ok(w.add_tensor_owned("q8", gguf::GgmlType::kQ8_0, {2, 32}, std::vector<uint8_t>(2 * 34, 3)), "add_tensor");
  check_ok(w.add_tensor_owned("q4", gguf::GgmlType::kQ4_0, {1, 64}, std::vector<uint8_t>(2 * 18, 5)), "add_tensor");
  check_ok(w.add_tensor_owned("f32", gguf::GgmlType::kF32, {3}, std::vector<uint8_t>(12, 0)), "add_tensor");
  check_ok(w.add_tensor_owned("bf16", gguf::GgmlType::kBF16, {2, 2}, std::vector<uint8_t>(8, 0x3f)), "add_tensor");
  const std::string path = scratch_subdir("seeds") + "/every_type.gguf";
  check_ok(w.write(path), "GgufWriter::write");
  seeds.push_back({"every_value_type", read_whole_file(path)});
  return seeds;
}

std::vector<Seed> llama2c_seeds() {
  std::vector<Seed> seeds;
  for (bool tied : {true, false}) {
    const Checkpoint ck = make_random_checkpoint(small_config(16, tied), tied ? 20 : 21);
    for (bool version1 : {false, true}) {
      const std::string name = fmt::format("{}_{}", version1 ? "v1" : "legacy", tied ? "shared" : "classifier");
      const std::string path = scratch_subdir("seeds") + "/" + name + ".bin";
      check_ok(save_llama2c_checkpoint(path, ck, version1), "save_llama2c_checkpoint");
      seeds.push_back({name, read_whole_file(path)});
    }
  }
  return seeds;
}

std::vector<Seed> hf_config_seeds() {
  std::vector<Seed> seeds;
  auto add = [&](const char* name, const ModelConfig& c, DType dtype, const std::string& quantization = "") {
    std::string text = take(hf_config_json(c, dtype), "hf_config_json");
    if (!quantization.empty()) {
      nlohmann::ordered_json j = nlohmann::ordered_json::parse(text);
      j["quantization_config"] = nlohmann::ordered_json::parse(quantization);
      text = j.dump(2) + "\n";
    }
    seeds.push_back({name, text_bytes(text)});
  };
  ModelConfig llama = tiny_test_config();
  add("llama_tied_f16", llama, DType::kF16);
  llama.tied_embeddings = false, llama.attention_bias = true, llama.eos_id = -1;
  add("llama_bias_f32", llama, DType::kF32);
  ModelConfig mistral = tiny_test_config();
  mistral.architecture = "mistral", mistral.rope_theta = 1e6f, mistral.norm_eps = 1e-6f;
  add("mistral_bf16", mistral, DType::kBF16);
  ModelConfig qwen2 = tiny_test_config();
  qwen2.architecture = "qwen2", qwen2.attention_bias = true, qwen2.head_dim = 16;
  add("qwen2_f16", qwen2, DType::kF16);
  const QuantizedMap gptq = {{"model.layers.0.mlp.up_proj.weight", quantized(32, 64, "int4g32_sym", 1)}};
  add("llama_gptq", tiny_test_config(), DType::kF16, choose_quantization_config(gptq).json);
  return seeds;
}

std::vector<Seed> tokenizer_json_seeds() {
  std::vector<Seed> seeds;
  auto add = [&](const std::string& name, const Vocabulary& v) {
    const std::string path = scratch_subdir("seeds") + "/" + name + ".json";
    check_ok(save_tokenizer_json(path, v), "save_tokenizer_json");
    seeds.push_back({name, read_whole_file(path)});
  };
  add("sentencepiece", sentencepiece_vocab());
  for (const char* pre : {"gpt2", "llama3", "qwen2"}) add(fmt::format("byte_level_{}", pre), byte_level_vocab(pre));
  return seeds;
}

std::vector<Seed> tokenizer_bin_seeds() {
  std::vector<Seed> seeds;
  auto add = [&](const std::string& name, const Vocabulary& v) {
    const std::string path = scratch_subdir("seeds") + "/" + name + ".bin";
    check_ok(save_llama2c_tokenizer(path, v), "save_llama2c_tokenizer");
    seeds.push_back({name, read_whole_file(path)});
  };
  add("sentencepiece", sentencepiece_vocab());
  Vocabulary bytes_only = sentencepiece_vocab();
  bytes_only.tokens.resize(259);
  bytes_only.scores.resize(259);
  add("bytes_only", bytes_only);
  return seeds;
}

std::vector<Seed> recipe_seeds() {
  std::vector<Seed> seeds;
  auto add = [&](const std::string& name, const Recipe& r) { seeds.push_back({name, text_bytes(recipe_to_json(r))}); };
  add("uniform_int4g32", uniform_recipe(take(parse_format_spec("int4g32"), "spec"), "rtn"));
  Recipe r;
  r.method = "gptq";
  const std::pair<const char*, const char*> rules[] = {
      {"model.layers.[0-1].*", "int8"},        {"*.mlp.down_proj.weight", "int4g32_sym"},
      {"*.self_attn.?_proj.weight", "nf4g32"}, {"lm_head.weight", "keep"},
      {"model.layers.[10-11].mlp.*", "fp8_e4m3"}, {"*", "int3_tensor_asym"},
  };
  for (auto [pattern, format] : rules) {
    const std::string f = format;
    r.rules.push_back({pattern, f, f == "keep" ? FormatSpec{} : take(parse_format_spec(f), "spec"), ""});
  }
  r.rules[2].method = "rtn";
  add("mixed_rules", r);
  return seeds;
}

std::vector<Seed> token_file_seeds() {
  std::vector<Seed> seeds;
  for (int n : {9, 64}) {
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) tokens[size_t(i)] = (i * 37 + 1) % 512;
    std::vector<uint8_t> bytes(tokens.size() * 4);
    std::memcpy(bytes.data(), tokens.data(), bytes.size());
    seeds.push_back({fmt::format("tokens_{}", n), bytes});
  }
  return seeds;
}

}  // namespace

std::vector<Seed> generate_seeds(std::string_view target) {
  if (target == "safetensors") return safetensors_seeds();
  if (target == "gguf") return gguf_seeds();
  if (target == "llama2c") return llama2c_seeds();
  if (target == "hf_config") return hf_config_seeds();
  if (target == "tokenizer_json") return tokenizer_json_seeds();
  if (target == "tokenizer_bin") return tokenizer_bin_seeds();
  if (target == "recipe") return recipe_seeds();
  if (target == "token_file") return token_file_seeds();
  if (target == "quantized_tensors") return quantized_seeds();
  return {};
}

}  // namespace lowbit::fuzz
