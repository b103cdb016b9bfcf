#include "model/hf_checkpoint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <nlohmann/json.hpp>

#include "base/half.h"
#include "io/safetensors.h"
#include "model/hf_config.h"
#include "model/rope_permute.h"
#include "model/synthetic.h"
#include "model/tokenizer_io.h"
#include "testing/testing.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
namespace tn = tensor_names;
using ::lowbit::testing::TempDir;
using json = nlohmann::json;

std::vector<uint8_t> bytes_of(const RawTensor& t) { return {t.data.begin(), t.data.end()}; }

std::vector<float> floats_of(const RawTensor& t) {
  std::vector<float> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t.dtype == DType::kF32) {
      std::memcpy(&v[i], t.data.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, t.data.data() + 2 * i, 2);
      v[i] = t.dtype == DType::kF16 ? fp16_to_f32(h) : bf16_to_f32(h);
    }
  }
  return v;
}

std::vector<uint8_t> encode(const std::vector<float>& v, DType dtype) {
  std::vector<uint8_t> out(v.size() * dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = dtype == DType::kF16 ? f32_to_fp16(v[i]) : f32_to_bf16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

bool is_q_or_k(const std::string& name) {
  for (const char* s : {tn::kQ, tn::kK, tn::kQBias, tn::kKBias})
    if (name.size() >= std::strlen(s) && name.compare(name.size() - std::strlen(s), std::string::npos, s) == 0)
      return true;
  return false;
}

// What an interleaved-order F32/F16/BF16 source tensor must look like after save as `dtype`:
// q/k rows in HF order (rope_permute.h), values rounded to `dtype`.
std::vector<uint8_t> expected_saved(const Checkpoint& src, const RawTensor& t, DType dtype) {
  std::vector<float> v = floats_of(t);
  if (src.config.rope_style == RopeStyle::kInterleaved && is_q_or_k(t.name))
    v = permute_rope_rows(v.data(), t.shape[0], t.numel() / t.shape[0], src.config.head_dim, /*to_half=*/true);
  return encode(v, dtype);
}

void expect_config_matches(const ModelConfig& got, const ModelConfig& want) {
  EXPECT_EQ(got.architecture, want.architecture);
  EXPECT_EQ(got.dim, want.dim);
  EXPECT_EQ(got.hidden_dim, want.hidden_dim);
  EXPECT_EQ(got.n_layers, want.n_layers);
  EXPECT_EQ(got.n_heads, want.n_heads);
  EXPECT_EQ(got.n_kv_heads, want.n_kv_heads);
  EXPECT_EQ(got.head_dim, want.head_dim);
  EXPECT_EQ(got.vocab_size, want.vocab_size);
  EXPECT_EQ(got.max_seq_len, want.max_seq_len);
  EXPECT_EQ(got.rope_theta, want.rope_theta);
  EXPECT_EQ(got.norm_eps, want.norm_eps);
  EXPECT_EQ(got.tied_embeddings, want.tied_embeddings);
  EXPECT_EQ(got.attention_bias, want.attention_bias);
  EXPECT_EQ(got.bos_id, want.bos_id);
  EXPECT_EQ(got.eos_id, want.eos_id);
  EXPECT_EQ(got.rope_style, RopeStyle::kHalf);
}

// Saves `src` as `dtype`, loads it back and checks config and every tensor's bytes.
void expect_round_trip(const Checkpoint& src, DType dtype, int64_t max_shard_bytes = 0) {
  TempDir dir;
  const std::string out = dir.file("model");
  Status s = save_hf_checkpoint(out, src, dtype, max_shard_bytes);
  ASSERT_TRUE(s.ok()) << s.message();
  auto loaded = load_hf_checkpoint(out);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->format, "safetensors");
  EXPECT_EQ(loaded->path, out);
  EXPECT_EQ(loaded->tokenizer, nullptr);
  expect_config_matches(loaded->config, src.config);
  ASSERT_EQ(loaded->tensors.tensors().size(), src.tensors.tensors().size());
  for (const RawTensor& t : src.tensors.tensors()) {
    const RawTensor* got = loaded->tensors.find(t.name);
    ASSERT_NE(got, nullptr) << t.name;
    EXPECT_EQ(got->dtype, dtype) << t.name;
    EXPECT_EQ(got->shape, t.shape) << t.name;
    EXPECT_EQ(bytes_of(*got), expected_saved(src, t, dtype)) << t.name;
  }
}

ModelConfig qwen2_gqa_config() {
  ModelConfig c = tiny_test_config();
  c.architecture = "qwen2";
  c.attention_bias = true;
  c.n_kv_heads = 2;  // 8 query heads share 2 kv heads
  c.rope_theta = 1e6f;
  c.norm_eps = 1e-6f;
  c.bos_id = 5;
  c.eos_id = 7;
  return c;
}

json read_json(const std::string& path) { return json::parse(testing::read_bytes(path)); }
void write_json(const std::string& path, const json& j) { testing::write_text(path, j.dump(2)); }

// Saves a tiny checkpoint (F32) into `dir`.
void save_tiny(const std::string& dir, const ModelConfig& config, int64_t max_shard_bytes = 0) {
  Status s = save_hf_checkpoint(dir, make_random_checkpoint(config, 7), DType::kF32, max_shard_bytes);
  ASSERT_TRUE(s.ok()) << s.message();
}

// Rewrites dir/model.safetensors with `edit` applied to its tensor list.
void rewrite_tensors(const std::string& dir, const std::function<void(TensorSet&, std::vector<const RawTensor*>&)>& edit) {
  auto set = read_safetensors(dir + "/model.safetensors");
  ASSERT_TRUE(set.ok()) << set.status().message();
  std::vector<const RawTensor*> list;
  for (const RawTensor& t : set->tensors()) list.push_back(&t);
  edit(*set, list);
  ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", list, set->metadata()).ok());
}

void expect_load_error(const std::string& dir, ErrorCode code, const std::string& fragment) {
  auto r = load_hf_checkpoint(dir);
  ASSERT_FALSE(r.ok()) << "loaded a bad checkpoint; expected an error mentioning " << fragment;
  EXPECT_EQ(r.status().code(), code) << r.status().message();
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
}

// --- round trips ------------------------------------------------------------------------------

TEST(HfCheckpoint, RoundTripF32IsBitExactWithPermutedQK) {
  expect_round_trip(make_random_checkpoint(tiny_test_config(), 1), DType::kF32);
}

TEST(HfCheckpoint, RoundTripF16AndBF16RoundTheSource) {
  const Checkpoint src = make_random_checkpoint(tiny_test_config(), 2);
  expect_round_trip(src, DType::kF16);
  expect_round_trip(src, DType::kBF16);
  // And from a half-precision source to the other half type (goes through exact f32).
  expect_round_trip(make_random_checkpoint(tiny_test_config(), 3, DType::kF16), DType::kBF16);
}

TEST(HfCheckpoint, RoundTripUntiedHasLmHead) {
  ModelConfig c = tiny_test_config();
  c.tied_embeddings = false;
  const Checkpoint src = make_random_checkpoint(c, 4);
  ASSERT_NE(src.tensors.find(tn::lm_head()), nullptr);
  expect_round_trip(src, DType::kF32);
  TempDir dir;
  ASSERT_TRUE(save_hf_checkpoint(dir.file("m"), src, DType::kF32).ok());
  EXPECT_EQ(read_json(dir.file("m/config.json"))["tie_word_embeddings"], false);
}

TEST(HfCheckpoint, RoundTripQwen2BiasesWithGqa) {
  const Checkpoint src = make_random_checkpoint(qwen2_gqa_config(), 5);
  expect_round_trip(src, DType::kF32);
  expect_round_trip(src, DType::kBF16);

  TempDir dir;
  ASSERT_TRUE(save_hf_checkpoint(dir.file("m"), src, DType::kF32).ok());
  const json config = read_json(dir.file("m/config.json"));
  EXPECT_EQ(config["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(config["model_type"], "qwen2");
  EXPECT_EQ(config["num_key_value_heads"], 2);
  EXPECT_EQ(config["rope_theta"], 1e6);
  // The k bias (2 kv heads of 8 dims) is permuted within each kv head, as the k rows are.
  auto loaded = load_hf_checkpoint(dir.file("m"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const RawTensor* kb_src = src.tensors.find(tn::layer(1, tn::kKBias));
  const RawTensor* kb = loaded->tensors.find(tn::layer(1, tn::kKBias));
  ASSERT_NE(kb, nullptr);
  ASSERT_EQ(kb->shape, std::vector<int64_t>{16});
  const std::vector<float> s = floats_of(*kb_src), got = floats_of(*kb);
  for (int64_t r = 0; r < 16; ++r) EXPECT_EQ(got[size_t(r)], s[size_t(rope_half_row_source(r, 8))]) << r;
  EXPECT_EQ(got[1], s[2]);  // spelled out: HF row 1 of head 0 is interleaved row 2
  EXPECT_EQ(got[4], s[1]);  // HF row 4 (second half, i = 0) is interleaved row 1
  EXPECT_EQ(got[9], s[10]);  // head 1 is permuted within itself
  // v is not rotated, so not permuted.
  EXPECT_EQ(bytes_of(*loaded->tensors.find(tn::layer(0, tn::kVBias))),
            bytes_of(*src.tensors.find(tn::layer(0, tn::kVBias))));
}

TEST(HfCheckpoint, Qwen2WithoutBiasesIsWrittenWithZeroBiases) {
  ModelConfig c = qwen2_gqa_config();
  c.attention_bias = false;
  const Checkpoint src = make_random_checkpoint(c, 6);
  TempDir dir;
  Status s = save_hf_checkpoint(dir.file("m"), src, DType::kF16);
  ASSERT_TRUE(s.ok()) << s.message();
  auto loaded = load_hf_checkpoint(dir.file("m"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_TRUE(loaded->config.attention_bias);
  const RawTensor* qb = loaded->tensors.find(tn::layer(0, tn::kQBias));
  ASSERT_NE(qb, nullptr);
  for (float v : floats_of(*qb)) EXPECT_EQ(v, 0.0f);
}

TEST(HfCheckpoint, ShardedRoundTripAndIndex) {
  const Checkpoint src = make_random_checkpoint(tiny_test_config(), 8);
  const int64_t max_shard = 30000;  // a [300, 64] F32 embedding (76800 bytes) gets its own shard
  expect_round_trip(src, DType::kF32, max_shard);
  expect_round_trip(src, DType::kF16, max_shard);

  TempDir dir;
  const std::string out = dir.file("m");
  ASSERT_TRUE(save_hf_checkpoint(out, src, DType::kF32, max_shard).ok());
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
  const json index = read_json(out + "/model.safetensors.index.json");
  uint64_t expected_total = 0;
  for (const RawTensor& t : src.tensors.tensors()) expected_total += t.data.size();
  EXPECT_EQ(index["metadata"]["total_size"], expected_total);
  std::set<std::string> shard_files;
  for (const auto& [name, file] : index["weight_map"].items()) shard_files.insert(file.get<std::string>());
  EXPECT_EQ(index["weight_map"].size(), src.tensors.tensors().size());
  ASSERT_GT(shard_files.size(), 2u);
  for (const std::string& f : shard_files) {
    EXPECT_EQ(f.size(), std::string("model-00001-of-00009.safetensors").size()) << f;
    auto shard = read_safetensors(out + "/" + f);
    ASSERT_TRUE(shard.ok()) << shard.status().message();
    EXPECT_EQ(shard->metadata().at("format"), "pt");
    uint64_t bytes = 0;
    for (const RawTensor& t : shard->tensors()) bytes += t.data.size();
    EXPECT_TRUE(bytes <= uint64_t(max_shard) || shard->tensors().size() == 1) << f << " holds " << bytes;
  }
  // A limit larger than the model gives a single file, as transformers does.
  TempDir dir2;
  ASSERT_TRUE(save_hf_checkpoint(dir2.file("m"), src, DType::kF32, int64_t(1) << 40).ok());
  EXPECT_TRUE(fs::exists(dir2.file("m/model.safetensors")));
  EXPECT_FALSE(fs::exists(dir2.file("m/model.safetensors.index.json")));
}

TEST(HfCheckpoint, HalfOrderSourceIsNotPermutedAgain) {
  TempDir dir;
  ASSERT_TRUE(save_hf_checkpoint(dir.file("a"), make_random_checkpoint(tiny_test_config(), 9), DType::kF32).ok());
  auto first = load_hf_checkpoint(dir.file("a"));
  ASSERT_TRUE(first.ok()) << first.status().message();
  ASSERT_EQ(first->config.rope_style, RopeStyle::kHalf);
  ASSERT_TRUE(save_hf_checkpoint(dir.file("b"), *first, DType::kF32).ok());
  EXPECT_EQ(testing::read_bytes(dir.file("a/model.safetensors")), testing::read_bytes(dir.file("b/model.safetensors")));
  EXPECT_EQ(testing::read_bytes(dir.file("a/config.json")), testing::read_bytes(dir.file("b/config.json")));
}

TEST(HfCheckpoint, WritesAReadableConfigJson) {
  TempDir dir;
  ModelConfig c = tiny_test_config();
  c.norm_eps = 1e-5f;
  ASSERT_TRUE(save_hf_checkpoint(dir.file("m"), make_random_checkpoint(c, 1), DType::kBF16).ok());
  const std::vector<uint8_t> bytes = testing::read_bytes(dir.file("m/config.json"));
  const std::string text(bytes.begin(), bytes.end());
  EXPECT_NE(text.find("\"rms_norm_eps\": 1e-05"), std::string::npos) << text;  // not 9.99999974e-06
  const json j = json::parse(text);
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(j["model_type"], "llama");
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  EXPECT_EQ(j["hidden_size"], 64);
  EXPECT_EQ(j["intermediate_size"], 172);
  EXPECT_EQ(j["head_dim"], 8);
  EXPECT_EQ(j["tie_word_embeddings"], true);
  EXPECT_EQ(j["attention_bias"], false);
  EXPECT_EQ(j["hidden_act"], "silu");
}

TEST(HfCheckpoint, RefusesAnExistingCheckpointUnlessOverwriting) {
  TempDir dir;
  const std::string out = dir.file("m");
  const Checkpoint src = make_random_checkpoint(tiny_test_config(), 10);
  ASSERT_TRUE(save_hf_checkpoint(out, src, DType::kF32, 30000).ok());
  ASSERT_TRUE(fs::exists(out + "/model.safetensors.index.json"));

  Status s = save_hf_checkpoint(out, src, DType::kF32);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("exists; use --force"), std::string::npos) << s.message();

  // Overwriting with a single file removes the old index and shards, which would otherwise win.
  HfSaveOptions options;
  options.dtype = DType::kF16;
  options.overwrite = true;
  s = save_hf_checkpoint(out, src, options);
  ASSERT_TRUE(s.ok()) << s.message();
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(out)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"config.json", "model.safetensors"}));
  auto loaded = load_hf_checkpoint(out);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->tensors.find(tn::embed())->dtype, DType::kF16);

  // An existing directory without config.json is fine to write into.
  fs::create_directories(dir.file("empty"));
  EXPECT_TRUE(save_hf_checkpoint(dir.file("empty"), src, DType::kF32).ok());
}

TEST(HfCheckpoint, RefusesBadSaveArguments) {
  TempDir dir;
  const Checkpoint src = make_random_checkpoint(tiny_test_config(), 11);
  EXPECT_EQ(save_hf_checkpoint(dir.file("m"), src, DType::kI8).code(), ErrorCode::kInvalidArgument);
  Checkpoint missing = make_random_checkpoint(tiny_test_config(), 11);
  missing.tensors = TensorSet();
  EXPECT_EQ(save_hf_checkpoint(dir.file("m2"), missing, DType::kF32).code(), ErrorCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir.file("m2/config.json")));
  Checkpoint quantized = make_random_checkpoint(tiny_test_config(), 11);
  quantized.quantized[tn::layer(0, tn::kQ)] = std::make_shared<QuantizedMatrix>();
  Status s = save_hf_checkpoint(dir.file("m3"), quantized, DType::kF32);
  EXPECT_EQ(s.code(), ErrorCode::kUnsupported);
  EXPECT_NE(s.message().find("model.layers.0.self_attn.q_proj.weight\" is quantized"), std::string::npos) << s.message();
}

TEST(HfCheckpoint, SavesAndLoadsTheTokenizer) {
  Vocabulary vocab;
  vocab.kind = Vocabulary::Kind::kSentencePiece;
  vocab.tokens = {"<unk>", "<s>", "</s>"};
  vocab.scores = {0, 0, 0};
  vocab.types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    vocab.tokens.push_back(fmt::format("<0x{:02X}>", b));
    vocab.scores.push_back(0);
    vocab.types.push_back(6);
  }
  for (const char* t : {"\u2581", "a", "b", "\u2581a", "ab"}) {
    vocab.tokens.push_back(t);
    vocab.scores.push_back(-float(vocab.tokens.size()));
    vocab.types.push_back(1);
  }
  vocab.unk_id = 0, vocab.bos_id = 1, vocab.eos_id = 2;
  auto tokenizer = make_tokenizer(vocab, "test");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  Checkpoint src = make_random_checkpoint(tiny_test_config(), 12);
  ASSERT_LE(int(vocab.tokens.size()), src.config.vocab_size);
  src.tokenizer = std::move(tokenizer).value();

  TempDir dir;
  Status s = save_hf_checkpoint(dir.file("m"), src, DType::kF32);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(fs::exists(dir.file("m/tokenizer.json")));
  auto loaded = load_hf_checkpoint(dir.file("m"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  ASSERT_NE(loaded->tokenizer, nullptr);
  EXPECT_EQ(loaded->tokenizer->vocab_size(), int(vocab.tokens.size()));
  EXPECT_EQ(loaded->tokenizer->vocabulary().tokens, vocab.tokens);
  EXPECT_EQ(loaded->tokenizer->encode("ab a", true), src.tokenizer->encode("ab a", true));

  // Overwriting with a tokenizer-less checkpoint removes the stale tokenizer.json.
  HfSaveOptions options;
  options.overwrite = true;
  src.tokenizer = nullptr;
  ASSERT_TRUE(save_hf_checkpoint(dir.file("m"), src, options).ok());
  EXPECT_FALSE(fs::exists(dir.file("m/tokenizer.json")));
}

// --- config.json parsing ----------------------------------------------------------------------

json minimal_config(const std::string& arch) {
  return {{"architectures", {arch}}, {"hidden_size", 64},        {"intermediate_size", 172},
          {"num_hidden_layers", 2},  {"num_attention_heads", 8}, {"vocab_size", 300},
          {"max_position_embeddings", 128}};
}

TEST(HfConfig, Defaults) {
  auto llama = parse_hf_config(minimal_config("LlamaForCausalLM").dump(), "config.json");
  ASSERT_TRUE(llama.ok()) << llama.status().message();
  EXPECT_EQ(llama->model.architecture, "llama");
  EXPECT_EQ(llama->model.n_kv_heads, 8);  // = heads
  EXPECT_EQ(llama->model.head_dim, 8);    // = hidden / heads
  EXPECT_EQ(llama->model.rope_theta, 10000.0f);
  EXPECT_EQ(llama->model.norm_eps, 1e-6f);
  EXPECT_FALSE(llama->model.tied_embeddings);
  EXPECT_FALSE(llama->model.attention_bias);
  EXPECT_EQ(llama->model.rope_style, RopeStyle::kHalf);
  EXPECT_EQ(llama->torch_dtype, "");

  auto qwen = parse_hf_config(minimal_config("Qwen2ForCausalLM").dump(), "config.json");
  ASSERT_TRUE(qwen.ok()) << qwen.status().message();
  EXPECT_EQ(qwen->model.architecture, "qwen2");
  EXPECT_EQ(qwen->model.rope_theta, 1e6f);
  EXPECT_TRUE(qwen->model.attention_bias);

  auto mistral = parse_hf_config(minimal_config("MistralForCausalLM").dump(), "config.json");
  ASSERT_TRUE(mistral.ok()) << mistral.status().message();
  EXPECT_EQ(mistral->model.architecture, "mistral");
}

TEST(HfConfig, ExplicitFields) {
  json j = minimal_config("LlamaForCausalLM");
  j["num_key_value_heads"] = 2;
  j["head_dim"] = 16;  // explicit, not hidden / heads
  j["rope_theta"] = 500000.0;
  j["rms_norm_eps"] = 1e-5;
  j["tie_word_embeddings"] = true;
  j["attention_bias"] = true;
  j["bos_token_id"] = 128000;
  j["eos_token_id"] = {128001, 128008, 128009};  // Llama 3 lists several: the first is used
  j["torch_dtype"] = "bfloat16";
  j["vocab_size"] = 128256;
  auto c = parse_hf_config(j.dump(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model.n_kv_heads, 2);
  EXPECT_EQ(c->model.head_dim, 16);
  EXPECT_EQ(c->model.rope_theta, 500000.0f);
  EXPECT_EQ(c->model.norm_eps, 1e-5f);
  EXPECT_TRUE(c->model.tied_embeddings);
  EXPECT_TRUE(c->model.attention_bias);
  EXPECT_EQ(c->model.bos_id, 128000);
  EXPECT_EQ(c->model.eos_id, 128001);
  EXPECT_EQ(c->torch_dtype, "bfloat16");

  // null means "absent" (transformers writes "head_dim": null).
  j["head_dim"] = nullptr;
  j["bos_token_id"] = nullptr;
  auto n = parse_hf_config(j.dump(), "config.json");
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(n->model.head_dim, 8);
  EXPECT_EQ(n->model.bos_id, ModelConfig().bos_id);
}

TEST(HfConfig, SlidingWindowCapsTheContext) {
  json j = minimal_config("MistralForCausalLM");
  j["sliding_window"] = 64;
  auto c = parse_hf_config(j.dump(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model.max_seq_len, 64);
  j = minimal_config("Qwen2ForCausalLM");
  j["sliding_window"] = 64;  // ignored unless use_sliding_window is true
  c = parse_hf_config(j.dump(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model.max_seq_len, 128);
}

TEST(HfConfig, Refusals) {
  auto expect = [](const json& j, ErrorCode code, const std::string& fragment) {
    auto r = parse_hf_config(j.dump(), "/x/config.json");
    ASSERT_FALSE(r.ok()) << fragment;
    EXPECT_EQ(r.status().code(), code) << r.status().message();
    EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("/x/config.json"), std::string::npos) << r.status().message();
  };
  expect(minimal_config("GPT2LMHeadModel"), ErrorCode::kUnsupported, "unsupported architecture GPT2LMHeadModel");
  json j = minimal_config("LlamaForCausalLM");
  j.erase("hidden_size");
  expect(j, ErrorCode::kFormat, "missing \"hidden_size\"");
  j = minimal_config("LlamaForCausalLM");
  j["num_attention_heads"] = "8";
  expect(j, ErrorCode::kFormat, "\"num_attention_heads\" must be an integer");
  j = minimal_config("LlamaForCausalLM");
  j["vocab_size"] = 1e12;
  expect(j, ErrorCode::kFormat, "\"vocab_size\"");
  j = minimal_config("LlamaForCausalLM");
  j["num_key_value_heads"] = 3;  // 8 heads are not a multiple of 3
  expect(j, ErrorCode::kFormat, "n_kv_heads");
  j = minimal_config("LlamaForCausalLM");
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  expect(j, ErrorCode::kUnsupported, "rope_scaling");
  j = minimal_config("LlamaForCausalLM");
  j["hidden_act"] = "gelu";
  expect(j, ErrorCode::kUnsupported, "hidden_act");
  expect(json::array({1, 2}), ErrorCode::kFormat, "not a JSON object");
  auto r = parse_hf_config("{\"architectures\": [", "/x/config.json");
  EXPECT_EQ(r.status().code(), ErrorCode::kFormat);
  EXPECT_NE(r.status().message().find("/x/config.json: malformed JSON"), std::string::npos);
}

// --- hostile or broken directories ------------------------------------------------------------

TEST(HfCheckpointBad, MissingTensor) {
  TempDir dir;
  save_tiny(dir.path(), tiny_test_config());
  rewrite_tensors(dir.path(), [](TensorSet&, std::vector<const RawTensor*>& list) {
    std::erase_if(list, [](const RawTensor* t) { return t->name == tn::layer(1, tn::kUp); });
  });
  expect_load_error(dir.path(), ErrorCode::kNotFound, "missing tensor \"model.layers.1.mlp.up_proj.weight\"");
}

TEST(HfCheckpointBad, WrongShape) {
  TempDir dir;
  save_tiny(dir.path(), tiny_test_config());
  RawTensor reshaped;
  rewrite_tensors(dir.path(), [&](TensorSet&, std::vector<const RawTensor*>& list) {
    for (auto& t : list)
      if (t->name == tn::layer(0, tn::kGate)) {
        reshaped = *t;
        reshaped.shape = {64, 172};  // transposed: same bytes, wrong shape
        t = &reshaped;
      }
  });
  expect_load_error(dir.path(), ErrorCode::kFormat, "\"model.layers.0.mlp.gate_proj.weight\" has shape [64, 172]");
}

TEST(HfCheckpointBad, ExtraTensors) {
  TempDir dir;
  save_tiny(dir.path(), tiny_test_config());
  const std::vector<uint8_t> inv_freq(4 * 4, 0);
  RawTensor rotary{tn::layer(0, "self_attn.rotary_emb.inv_freq"), DType::kF32, {4}, inv_freq};
  rewrite_tensors(dir.path(), [&](TensorSet&, std::vector<const RawTensor*>& list) { list.push_back(&rotary); });
  auto ok = load_hf_checkpoint(dir.path());
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->tensors.find(rotary.name), nullptr) << "the RoPE buffer is dropped";

  RawTensor stray{"model.layers.0.mystery.weight", DType::kF32, {4}, inv_freq};
  rewrite_tensors(dir.path(), [&](TensorSet&, std::vector<const RawTensor*>& list) { list.push_back(&stray); });
  expect_load_error(dir.path(), ErrorCode::kFormat, "unexpected tensor \"model.layers.0.mystery.weight\"");
}

TEST(HfCheckpointBad, TiedAndUntiedHeads) {
  // tie_word_embeddings true with an lm_head present: transformers ignores the head, so do we.
  TempDir dir;
  ModelConfig untied = tiny_test_config();
  untied.tied_embeddings = false;
  save_tiny(dir.path(), untied);
  json config = read_json(dir.file("config.json"));
  config["tie_word_embeddings"] = true;
  write_json(dir.file("config.json"), config);
  auto tied = load_hf_checkpoint(dir.path());
  ASSERT_TRUE(tied.ok()) << tied.status().message();
  EXPECT_TRUE(tied->config.tied_embeddings);
  EXPECT_EQ(tied->tensors.find(tn::lm_head()), nullptr);

  // tie_word_embeddings absent (default false) and no lm_head: the head is missing.
  config.erase("tie_word_embeddings");
  write_json(dir.file("config.json"), config);
  rewrite_tensors(dir.path(), [](TensorSet&, std::vector<const RawTensor*>& list) {
    std::erase_if(list, [](const RawTensor* t) { return t->name == tn::lm_head(); });
  });
  expect_load_error(dir.path(), ErrorCode::kNotFound, "missing tensor \"lm_head.weight\"");
}

TEST(HfCheckpointBad, ConfigProblemsNameTheFile) {
  TempDir dir;
  save_tiny(dir.path(), tiny_test_config());
  json config = read_json(dir.file("config.json"));
  config["architectures"] = {"FalconForCausalLM"};
  write_json(dir.file("config.json"), config);
  expect_load_error(dir.path(), ErrorCode::kUnsupported, "unsupported architecture FalconForCausalLM");
  testing::write_text(dir.file("config.json"), "{\"hidden_size\": 64,");
  expect_load_error(dir.path(), ErrorCode::kFormat, dir.file("config.json") + ": malformed JSON");
  fs::remove(dir.file("config.json"));
  expect_load_error(dir.path(), ErrorCode::kNotFound, "config.json");
  expect_load_error(dir.file("nowhere"), ErrorCode::kIo, "not a directory");
}

TEST(HfCheckpointBad, NoWeights) {
  TempDir dir;
  save_tiny(dir.path(), tiny_test_config());
  fs::remove(dir.file("model.safetensors"));
  expect_load_error(dir.path(), ErrorCode::kNotFound, "neither model.safetensors nor model.safetensors.index.json");
  testing::write_text(dir.file("pytorch_model.bin"), "x");
  expect_load_error(dir.path(), ErrorCode::kUnsupported, "pytorch_model.bin");
}

TEST(HfCheckpointBad, CorruptSafetensorsNamesTheFile) {
  TempDir dir;
  save_tiny(dir.path(), tiny_test_config());
  std::vector<uint8_t> bytes = testing::read_bytes(dir.file("model.safetensors"));
  bytes.resize(bytes.size() - 1);  // truncated: the last tensor no longer fits
  testing::write_bytes(dir.file("model.safetensors"), bytes);
  expect_load_error(dir.path(), ErrorCode::kFormat, dir.file("model.safetensors"));
}

class ShardedBad : public ::testing::Test {
 protected:
  void SetUp() override {
    save_tiny(dir_.path(), tiny_test_config(), 30000);
    index_ = read_json(dir_.file("model.safetensors.index.json"));
  }
  void write_index() { write_json(dir_.file("model.safetensors.index.json"), index_); }
  std::string shard_of(const std::string& name) { return index_["weight_map"][name].get<std::string>(); }
  TempDir dir_;
  json index_;
};

TEST_F(ShardedBad, LoadsWhenIntact) { ASSERT_TRUE(load_hf_checkpoint(dir_.path()).ok()); }

TEST_F(ShardedBad, IndexPointsOutsideTheDirectory) {
  for (const char* evil : {"../model-00001-of-00004.safetensors", "/etc/passwd", "a/../../x.safetensors"}) {
    index_["weight_map"][tn::embed()] = evil;
    write_index();
    expect_load_error(dir_.path(), ErrorCode::kFormat, "is not a file inside the checkpoint directory");
  }
}

TEST_F(ShardedBad, MissingShard) {
  const std::string shard = shard_of(tn::final_norm());
  fs::remove(dir_.file(shard));
  expect_load_error(dir_.path(), ErrorCode::kNotFound, "shard \"" + shard + "\"");
}

TEST_F(ShardedBad, IndexListsATensorTheShardLacks) {
  const std::string shard = shard_of(tn::embed());
  index_["weight_map"]["model.layers.0.extra.weight"] = shard;
  write_index();
  expect_load_error(dir_.path(), ErrorCode::kNotFound,
                    "lists tensor \"model.layers.0.extra.weight\" in " + shard + ", which does not contain it");
}

TEST_F(ShardedBad, ShardHoldsATensorTheIndexDoesNotList) {
  // A small tensor, so its shard holds others and is still referenced by the index.
  index_["weight_map"].erase(tn::layer(1, tn::kAttnNorm));
  write_index();
  expect_load_error(dir_.path(), ErrorCode::kFormat, "\"model.layers.1.input_layernorm.weight\" is not listed");
}

TEST_F(ShardedBad, MalformedIndex) {
  testing::write_text(dir_.file("model.safetensors.index.json"), "{\"weight_map\": [}");
  expect_load_error(dir_.path(), ErrorCode::kFormat, "model.safetensors.index.json: malformed JSON");
  testing::write_text(dir_.file("model.safetensors.index.json"), "{\"metadata\": {}}");
  expect_load_error(dir_.path(), ErrorCode::kFormat, "missing \"weight_map\"");
}

}  // namespace
}  // namespace lowbit
