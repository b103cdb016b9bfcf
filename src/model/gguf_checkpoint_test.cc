#include <cstring>
#include <functional>

#include "base/half.h"
#include "io/gguf.h"
#include "model/checkpoint.h"
#include "model/gguf_vocab.h"
#include "model/rope_permute.h"
#include "model/synthetic.h"
#include "testing/testing.h"

namespace lowbit {
namespace {

using ::lowbit::testing::read_bytes;
using ::lowbit::testing::TempDir;
using ::lowbit::testing::write_bytes;

// A Tokenizer that only carries a vocabulary: enough for save_gguf_checkpoint, which embeds
// vocabulary() and never encodes.
class VocabOnlyTokenizer : public Tokenizer {
 public:
  explicit VocabOnlyTokenizer(Vocabulary v) : v_(std::move(v)) {}
  std::vector<int> encode(std::string_view, bool) const override { return {}; }
  std::string decode_token(int, int) const override { return ""; }
  const Vocabulary& vocabulary() const override { return v_; }

 private:
  Vocabulary v_;
};

// A SentencePiece vocabulary of `n` tokens: <unk> <s> </s>, 256 byte tokens, then words.
Vocabulary sentencepiece_vocab(int n) {
  Vocabulary v;
  v.kind = Vocabulary::Kind::kSentencePiece;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(fmt::format("<0x{:02X}>", b));
    v.types.push_back(6);
  }
  while (int(v.tokens.size()) < n) {
    v.tokens.push_back("▁w" + std::to_string(v.tokens.size()));
    v.types.push_back(1);
  }
  for (size_t i = 0; i < v.tokens.size(); ++i) v.scores.push_back(-float(i) * 0.25f);
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  v.add_space_prefix = true;
  return v;
}

Vocabulary byte_level_vocab() {
  Vocabulary v;
  v.kind = Vocabulary::Kind::kByteLevelBpe;
  v.tokens = {"a", "b", "ab", "Ġab", "<|end|>"};
  v.merges = {"a b", "Ġ ab"};
  v.pre_tokenizer = "llama3";
  v.eos_id = 4;
  v.add_space_prefix = false;
  return v;
}

void expect_same_vocab(const Vocabulary& a, const Vocabulary& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.scores, b.scores);
  EXPECT_EQ(a.types, b.types);
  EXPECT_EQ(a.merges, b.merges);
  EXPECT_EQ(a.pre_tokenizer, b.pre_tokenizer);
  EXPECT_EQ(a.bos_id, b.bos_id);
  EXPECT_EQ(a.eos_id, b.eos_id);
  EXPECT_EQ(a.unk_id, b.unk_id);
  EXPECT_EQ(a.add_space_prefix, b.add_space_prefix);
}

void expect_same_bytes(const RawTensor& a, const RawTensor& b) {
  ASSERT_EQ(a.data.size(), b.data.size()) << a.name;
  EXPECT_EQ(std::memcmp(a.data.data(), b.data.data(), a.data.size()), 0) << a.name;
}

// Copies a GGUF file through `edit` (metadata) and `keep` (tensor filter), optionally adding
// one extra F32 tensor, to build files with one thing wrong.
void rewrite(const std::string& src, const std::string& dst, const std::function<void(gguf::Metadata&)>& edit,
             const std::function<bool(const std::string&)>& keep = nullptr, const std::string& extra_tensor = "") {
  auto f = gguf::GgufFile::open(src);
  ASSERT_TRUE(f.ok()) << f.status().message();
  gguf::GgufWriter w;
  for (const auto& [k, v] : f->metadata().entries()) w.metadata().set(k, v);
  if (edit) edit(w.metadata());
  for (const auto& info : f->tensor_infos()) {
    if (keep && !keep(info.name)) continue;
    ASSERT_TRUE(w.add_tensor(info.name, gguf::GgmlType(info.ggml_type), info.shape, f->tensor_bytes(info)).ok());
  }
  if (!extra_tensor.empty()) {
    ASSERT_TRUE(w.add_tensor_owned(extra_tensor, gguf::GgmlType::kF32, {2}, std::vector<uint8_t>(8, 0)).ok());
  }
  ASSERT_TRUE(w.write(dst).ok());
}

void expect_load_error(const std::string& path, ErrorCode code, const std::string& needle) {
  auto ck = load_gguf_checkpoint(path);
  ASSERT_FALSE(ck.ok()) << "expected an error mentioning " << needle;
  EXPECT_EQ(ck.status().code(), code) << ck.status().message();
  EXPECT_NE(ck.status().message().find(path), std::string::npos) << ck.status().message();
  EXPECT_NE(ck.status().message().find(needle), std::string::npos) << ck.status().message();
}

// ---------------------------------------------------------------------------------------------
// Checkpoint round trips

TEST(GgufCheckpointTest, F32RoundTripIsBitExact) {
  TempDir dir;
  for (bool tied : {true, false}) {
    ModelConfig config = tiny_test_config();
    config.tied_embeddings = tied;
    config.rope_theta = 500000.0f;
    config.norm_eps = 1e-6f;
    const Checkpoint src = make_random_checkpoint(config, 7, DType::kF32);
    const std::string path = dir.file(tied ? "tied.gguf" : "untied.gguf");
    ASSERT_TRUE(save_gguf_checkpoint(path, src, DType::kF32).ok());

    auto ck = load_gguf_checkpoint(path);
    ASSERT_TRUE(ck.ok()) << ck.status().message();
    EXPECT_EQ(ck->format, "gguf");
    EXPECT_EQ(ck->path, path);
    EXPECT_EQ(ck->tokenizer, nullptr);
    const ModelConfig& c = ck->config;
    EXPECT_EQ(c.architecture, "llama");
    EXPECT_EQ(c.dim, config.dim);
    EXPECT_EQ(c.hidden_dim, config.hidden_dim);
    EXPECT_EQ(c.n_layers, config.n_layers);
    EXPECT_EQ(c.n_heads, config.n_heads);
    EXPECT_EQ(c.n_kv_heads, config.n_kv_heads);
    EXPECT_EQ(c.head_dim, config.head_dim);
    EXPECT_EQ(c.vocab_size, config.vocab_size);
    EXPECT_EQ(c.max_seq_len, config.max_seq_len);
    EXPECT_EQ(c.rope_theta, config.rope_theta);  // stored as f32: exact
    EXPECT_EQ(c.norm_eps, config.norm_eps);
    EXPECT_EQ(c.tied_embeddings, tied);
    EXPECT_EQ(c.rope_style, RopeStyle::kInterleaved);
    EXPECT_TRUE(validate_checkpoint_tensors(*ck).ok());
    ASSERT_EQ(ck->tensors.tensors().size(), src.tensors.tensors().size());
    for (const RawTensor& t : src.tensors.tensors()) {
      const RawTensor* u = ck->tensors.find(t.name);
      ASSERT_NE(u, nullptr) << t.name;
      EXPECT_EQ(u->dtype, DType::kF32);
      EXPECT_EQ(u->shape, t.shape);
      expect_same_bytes(t, *u);
    }

    // Saving what was loaded reproduces the file byte for byte.
    ASSERT_TRUE(save_gguf_checkpoint(dir.file("again.gguf"), *ck, DType::kF32).ok());
    EXPECT_EQ(read_bytes(path), read_bytes(dir.file("again.gguf")));
  }
}

TEST(GgufCheckpointTest, HalfPrecisionSavesRoundEachValueOnceAndKeepNormsF32) {
  TempDir dir;
  const Checkpoint src = make_random_checkpoint(tiny_test_config(), 11, DType::kF32);
  for (DType dtype : {DType::kF16, DType::kBF16}) {
    const std::string path = dir.file("h.gguf");
    ASSERT_TRUE(save_gguf_checkpoint(path, src, dtype).ok());
    auto ck = load_gguf_checkpoint(path);
    ASSERT_TRUE(ck.ok()) << ck.status().message();
    for (const RawTensor& t : src.tensors.tensors()) {
      const RawTensor* u = ck->tensors.find(t.name);
      ASSERT_NE(u, nullptr);
      if (t.shape.size() == 1) {  // norms: F32 whatever the requested dtype
        EXPECT_EQ(u->dtype, DType::kF32) << t.name;
        expect_same_bytes(t, *u);
        continue;
      }
      ASSERT_EQ(u->dtype, dtype) << t.name;
      const float* x = reinterpret_cast<const float*>(t.data.data());
      for (int64_t i = 0; i < t.numel(); ++i) {
        uint16_t h;
        std::memcpy(&h, u->data.data() + 2 * i, 2);
        ASSERT_EQ(h, dtype == DType::kF16 ? f32_to_fp16(x[i]) : f32_to_bf16(x[i])) << t.name << "[" << i << "]";
      }
    }
  }
}

TEST(GgufCheckpointTest, F16SourceSavedAsF16IsCopiedUnchanged) {
  TempDir dir;
  const Checkpoint src = make_random_checkpoint(tiny_test_config(), 3, DType::kF16);
  ASSERT_TRUE(save_gguf_checkpoint(dir.file("a.gguf"), src, DType::kF16).ok());
  auto ck = load_gguf_checkpoint(dir.file("a.gguf"));
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  for (const RawTensor& t : src.tensors.tensors()) {
    const RawTensor* u = ck->tensors.find(t.name);
    ASSERT_NE(u, nullptr);
    if (t.shape.size() == 2) {
      EXPECT_EQ(u->dtype, DType::kF16);
      expect_same_bytes(t, *u);
    } else {
      // fp16 -> f32 is exact, so the norm values are unchanged.
      const uint16_t* h = reinterpret_cast<const uint16_t*>(t.data.data());
      const float* f = reinterpret_cast<const float*>(u->data.data());
      for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(f[i], fp16_to_f32(h[i]));
    }
  }
}

TEST(GgufCheckpointTest, HalfRopeCheckpointIsPermutedToInterleaved) {
  TempDir dir;
  ModelConfig config = tiny_test_config();
  config.rope_style = RopeStyle::kHalf;
  config.attention_bias = true;  // q/k biases are rotated too
  const Checkpoint src = make_random_checkpoint(config, 5, DType::kF32);
  ASSERT_TRUE(save_gguf_checkpoint(dir.file("a.gguf"), src, DType::kF32).ok());
  auto ck = load_gguf_checkpoint(dir.file("a.gguf"));
  ASSERT_TRUE(ck.ok()) << ck.status().message();
  EXPECT_EQ(ck->config.rope_style, RopeStyle::kInterleaved);
  EXPECT_TRUE(ck->config.attention_bias);

  namespace tn = tensor_names;
  for (int layer = 0; layer < config.n_layers; ++layer) {
    struct Case {
      std::string name;
      int heads;
    };
    for (const Case& c : {Case{tn::layer(layer, tn::kQ), config.n_heads}, Case{tn::layer(layer, tn::kK), config.n_kv_heads},
                          Case{tn::layer(layer, tn::kQBias), config.n_heads},
                          Case{tn::layer(layer, tn::kKBias), config.n_kv_heads}}) {
      const RawTensor& t = *src.tensors.find(c.name);
      const RawTensor& u = *ck->tensors.find(c.name);
      const int64_t rows = t.shape[0], cols = t.shape.size() == 2 ? t.shape[1] : 1;
      ASSERT_EQ(rows, int64_t(c.heads) * config.head_dim);
      const float* x = reinterpret_cast<const float*>(t.data.data());
      const float* y = reinterpret_cast<const float*>(u.data.data());
      const auto expected = permute_rope_rows(x, rows, cols, config.head_dim, /*to_half=*/false);
      ASSERT_EQ(std::memcmp(expected.data(), y, expected.size() * 4), 0) << c.name;
      // And back: the loaded rows permuted to half order are the source rows.
      const auto back = permute_rope_rows(y, rows, cols, config.head_dim, /*to_half=*/true);
      ASSERT_EQ(std::memcmp(back.data(), x, back.size() * 4), 0) << c.name;
      // Spot-check the documented mapping: HF row r comes from interleaved row source(r).
      for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(x[r * cols], y[rope_half_row_source(r, config.head_dim) * cols]);
    }
    // v is not rotated: unchanged.
    expect_same_bytes(*src.tensors.find(tn::layer(layer, tn::kV)), *ck->tensors.find(tn::layer(layer, tn::kV)));
    expect_same_bytes(*src.tensors.find(tn::layer(layer, tn::kVBias)),
                      *ck->tensors.find(tn::layer(layer, tn::kVBias)));
  }
}

TEST(GgufCheckpointTest, WritesLlamaCppNamesAndKeys) {
  TempDir dir;
  ModelConfig config = tiny_test_config();
  config.tied_embeddings = false;
  ASSERT_TRUE(save_gguf_checkpoint(dir.file("a.gguf"), make_random_checkpoint(config, 1), DType::kF16).ok());
  auto f = gguf::GgufFile::open(dir.file("a.gguf"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  const gguf::Metadata& m = f->metadata();
  EXPECT_EQ(*m.get_string("general.architecture"), "llama");
  EXPECT_EQ(*m.get_u32("general.alignment"), 32u);
  EXPECT_EQ(*m.get_u32("general.file_type"), 1u);
  EXPECT_EQ(*m.get_u32("llama.embedding_length"), 64u);
  EXPECT_EQ(*m.get_u32("llama.feed_forward_length"), 172u);
  EXPECT_EQ(*m.get_u32("llama.block_count"), 2u);
  EXPECT_EQ(*m.get_u32("llama.attention.head_count"), 8u);
  EXPECT_EQ(*m.get_u32("llama.attention.head_count_kv"), 4u);
  EXPECT_EQ(*m.get_u32("llama.rope.dimension_count"), 8u);
  EXPECT_EQ(*m.get_u32("llama.context_length"), 128u);
  EXPECT_EQ(*m.get_u32("llama.vocab_size"), 300u);
  EXPECT_EQ(m.find("llama.rope.freq_base")->type(), gguf::ValueType::kF32);
  for (const char* name : {"token_embd.weight", "output_norm.weight", "output.weight", "blk.0.attn_norm.weight",
                           "blk.1.attn_q.weight", "blk.1.attn_k.weight", "blk.1.attn_v.weight",
                           "blk.1.attn_output.weight", "blk.1.ffn_norm.weight", "blk.1.ffn_gate.weight",
                           "blk.1.ffn_up.weight", "blk.1.ffn_down.weight"})
    EXPECT_NE(f->find_tensor(name), nullptr) << name;
  // ggml order on disk: ffn_down is [dim, hidden] in PyTorch order, {hidden, dim} in the file.
  EXPECT_EQ(f->find_tensor("blk.0.ffn_down.weight")->shape, (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(f->find_tensor("blk.0.ffn_norm.weight")->ggml_type, uint32_t(gguf::GgmlType::kF32));
  EXPECT_EQ(f->find_tensor("blk.0.ffn_up.weight")->ggml_type, uint32_t(gguf::GgmlType::kF16));
}

// ---------------------------------------------------------------------------------------------
// Bad files

class GgufCheckpointErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    good_ = dir_.file("good.gguf");
    ASSERT_TRUE(save_gguf_checkpoint(good_, make_random_checkpoint(tiny_test_config(), 2), DType::kF32).ok());
  }
  std::string bad() const { return dir_.file("bad.gguf"); }
  TempDir dir_;
  std::string good_;
};

TEST_F(GgufCheckpointErrors, UnsupportedArchitecture) {
  rewrite(good_, bad(), [](gguf::Metadata& m) { m.set("general.architecture", gguf::Value::string("qwen2")); });
  expect_load_error(bad(), ErrorCode::kUnsupported, "unsupported architecture \"qwen2\"");
}

TEST_F(GgufCheckpointErrors, MissingArchitecture) {
  rewrite(good_, bad(), [](gguf::Metadata& m) { m.erase("general.architecture"); });
  expect_load_error(bad(), ErrorCode::kNotFound, "general.architecture");
}

TEST_F(GgufCheckpointErrors, MissingTensorIsNamedAsInTheFile) {
  rewrite(good_, bad(), nullptr, [](const std::string& n) { return n != "blk.1.ffn_up.weight"; });
  expect_load_error(bad(), ErrorCode::kNotFound, "blk.1.ffn_up.weight");
}

TEST_F(GgufCheckpointErrors, MissingEmbedding) {
  rewrite(good_, bad(), nullptr, [](const std::string& n) { return n != "token_embd.weight"; });
  expect_load_error(bad(), ErrorCode::kNotFound, "token_embd.weight");
}

TEST_F(GgufCheckpointErrors, UnknownTensor) {
  rewrite(good_, bad(), nullptr, nullptr, "rope_freqs.weight");
  expect_load_error(bad(), ErrorCode::kUnsupported, "rope_freqs.weight");
}

TEST_F(GgufCheckpointErrors, ExtraLayerTensor) {
  rewrite(good_, bad(), nullptr, nullptr, "blk.9.attn_norm.weight");
  expect_load_error(bad(), ErrorCode::kFormat, "model.layers.9.input_layernorm.weight");
}

TEST_F(GgufCheckpointErrors, MissingKey) {
  rewrite(good_, bad(), [](gguf::Metadata& m) { m.erase("llama.attention.layer_norm_rms_epsilon"); });
  expect_load_error(bad(), ErrorCode::kNotFound, "llama.attention.layer_norm_rms_epsilon");
}

TEST_F(GgufCheckpointErrors, KeyOfWrongType) {
  rewrite(good_, bad(), [](gguf::Metadata& m) { m.set("llama.block_count", gguf::Value::string("2")); });
  expect_load_error(bad(), ErrorCode::kFormat, "llama.block_count");
}

TEST_F(GgufCheckpointErrors, PerLayerHeadCountsAreUnsupported) {
  rewrite(good_, bad(), [](gguf::Metadata& m) {
    m.set("llama.attention.head_count_kv", gguf::Value::i32s({4, 4}));
  });
  expect_load_error(bad(), ErrorCode::kUnsupported, "per-layer");
}

TEST_F(GgufCheckpointErrors, ShapeDisagreesWithConfig) {
  rewrite(good_, bad(), [](gguf::Metadata& m) { m.set("llama.feed_forward_length", gguf::Value::u32(128)); });
  expect_load_error(bad(), ErrorCode::kFormat, "shape");
}

TEST_F(GgufCheckpointErrors, VocabSizeKeyDisagreesWithEmbedding) {
  rewrite(good_, bad(), [](gguf::Metadata& m) { m.set("llama.vocab_size", gguf::Value::u32(301)); });
  expect_load_error(bad(), ErrorCode::kFormat, "llama.vocab_size = 301");
}

TEST_F(GgufCheckpointErrors, RopeScalingIsUnsupported) {
  rewrite(good_, bad(), [](gguf::Metadata& m) { m.set("llama.rope.scaling.type", gguf::Value::string("linear")); });
  expect_load_error(bad(), ErrorCode::kUnsupported, "linear");
}

TEST_F(GgufCheckpointErrors, VocabularySizeDisagreesWithEmbedding) {
  rewrite(good_, bad(), [](gguf::Metadata& m) { ASSERT_TRUE(vocabulary_to_gguf(sentencepiece_vocab(299), &m).ok()); });
  expect_load_error(bad(), ErrorCode::kFormat, "the vocabulary has 299 tokens");
}

TEST_F(GgufCheckpointErrors, TruncatedFile) {
  const auto bytes = read_bytes(good_);
  for (size_t n : {size_t(0), size_t(3), size_t(24), bytes.size() / 3, bytes.size() - 40}) {
    write_bytes(bad(), bytes.data(), n);
    auto ck = load_gguf_checkpoint(bad());
    ASSERT_FALSE(ck.ok()) << n;
    EXPECT_EQ(ck.status().code(), ErrorCode::kFormat) << n << ": " << ck.status().message();
    EXPECT_NE(ck.status().message().find(bad()), std::string::npos);
  }
}

TEST_F(GgufCheckpointErrors, QuantizedTensorIsUnsupported) {
  auto f = gguf::GgufFile::open(good_);
  ASSERT_TRUE(f.ok());
  gguf::GgufWriter w;
  for (const auto& [k, v] : f->metadata().entries()) w.metadata().set(k, v);
  for (const auto& info : f->tensor_infos()) {
    if (info.name == "blk.0.attn_q.weight") {  // [64, 64] as Q8_0: 2 blocks of 34 bytes per row
      ASSERT_TRUE(w.add_tensor_owned(info.name, gguf::GgmlType::kQ8_0, info.shape, std::vector<uint8_t>(64 * 2 * 34)).ok());
    } else {
      ASSERT_TRUE(w.add_tensor(info.name, gguf::GgmlType(info.ggml_type), info.shape, f->tensor_bytes(info)).ok());
    }
  }
  ASSERT_TRUE(w.write(bad()).ok());
  expect_load_error(bad(), ErrorCode::kUnsupported, "blk.0.attn_q.weight");
}

TEST(GgufCheckpointSaveTest, RejectsWhatGgufLlamaCannotHold) {
  TempDir dir;
  Checkpoint ck = make_random_checkpoint(tiny_test_config(), 4);
  EXPECT_EQ(save_gguf_checkpoint(dir.file("a.gguf"), ck, DType::kI8).code(), ErrorCode::kInvalidArgument);
  ck.config.architecture = "qwen2";
  EXPECT_EQ(save_gguf_checkpoint(dir.file("a.gguf"), ck, DType::kF32).code(), ErrorCode::kUnsupported);
  ck.config.architecture = "llama";
  ck.tokenizer = std::make_shared<VocabOnlyTokenizer>(sentencepiece_vocab(301));
  auto s = save_gguf_checkpoint(dir.file("a.gguf"), ck, DType::kF32);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("301"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.gguf")));
}

TEST(GgufCheckpointSaveTest, EmbedsTheTokenizerVocabulary) {
  TempDir dir;
  Checkpoint ck = make_random_checkpoint(tiny_test_config(), 4);
  const Vocabulary vocab = sentencepiece_vocab(300);
  ck.tokenizer = std::make_shared<VocabOnlyTokenizer>(vocab);
  ASSERT_TRUE(save_gguf_checkpoint(dir.file("a.gguf"), ck, DType::kF32).ok());
  auto f = gguf::GgufFile::open(dir.file("a.gguf"));
  ASSERT_TRUE(f.ok());
  auto back = vocabulary_from_gguf(f->metadata());
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_TRUE(back->has_value());
  expect_same_vocab(vocab, **back);
}

// Needs make_tokenizer (model/tokenizer_io.h) to build the loaded tokenizer.
TEST(GgufCheckpointSaveTest, TokenizerSurvivesSaveAndLoad) {
  TempDir dir;
  Checkpoint ck = make_random_checkpoint(tiny_test_config(), 4);
  Vocabulary vocab = sentencepiece_vocab(300);
  vocab.bos_id = 2;  // differs from the config default so the copy into the config is visible
  vocab.eos_id = 1;
  ck.tokenizer = std::make_shared<VocabOnlyTokenizer>(vocab);
  ASSERT_TRUE(save_gguf_checkpoint(dir.file("a.gguf"), ck, DType::kF16).ok());
  auto loaded = load_gguf_checkpoint(dir.file("a.gguf"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  ASSERT_NE(loaded->tokenizer, nullptr);
  EXPECT_EQ(loaded->tokenizer->vocab_size(), 300);
  expect_same_vocab(vocab, loaded->tokenizer->vocabulary());
  EXPECT_EQ(loaded->config.bos_id, 2);
  EXPECT_EQ(loaded->config.eos_id, 1);
}

// ---------------------------------------------------------------------------------------------
// Vocabulary <-> metadata

TEST(GgufVocabTest, SentencePieceRoundTrip) {
  gguf::Metadata m("v.gguf");
  const Vocabulary v = sentencepiece_vocab(300);
  ASSERT_TRUE(vocabulary_to_gguf(v, &m).ok());
  EXPECT_EQ(*m.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(m.find("tokenizer.ggml.scores")->element_type(), gguf::ValueType::kF32);
  EXPECT_EQ(m.find("tokenizer.ggml.token_type")->element_type(), gguf::ValueType::kI32);
  EXPECT_EQ(*m.get_u32("tokenizer.ggml.unknown_token_id"), 0u);
  auto back = vocabulary_from_gguf(m);
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_TRUE(back->has_value());
  expect_same_vocab(v, **back);
}

TEST(GgufVocabTest, ByteLevelRoundTrip) {
  gguf::Metadata m("v.gguf");
  const Vocabulary v = byte_level_vocab();
  ASSERT_TRUE(vocabulary_to_gguf(v, &m).ok());
  EXPECT_EQ(*m.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*m.get_string("tokenizer.ggml.pre"), "llama3");
  EXPECT_FALSE(m.contains("tokenizer.ggml.bos_token_id"));  // -1 is written as absent
  auto back = vocabulary_from_gguf(m);
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_TRUE(back->has_value());
  expect_same_vocab(v, **back);
}

TEST(GgufVocabTest, DefaultsWhenOptionalKeysAreAbsent) {
  gguf::Metadata m("v.gguf");
  m.set("tokenizer.ggml.model", gguf::Value::string("llama"));
  m.set("tokenizer.ggml.tokens", gguf::Value::strings({"a", "b"}));
  auto v = vocabulary_from_gguf(m);
  ASSERT_TRUE(v.ok()) << v.status().message();
  ASSERT_TRUE(v->has_value());
  EXPECT_TRUE((*v)->scores.empty());
  EXPECT_TRUE((*v)->types.empty());
  EXPECT_EQ((*v)->bos_id, -1);
  EXPECT_TRUE((*v)->add_space_prefix);

  m.set("tokenizer.ggml.model", gguf::Value::string("gpt2"));
  EXPECT_EQ(vocabulary_from_gguf(m).status().code(), ErrorCode::kNotFound);  // gpt2 needs merges
  m.set("tokenizer.ggml.merges", gguf::Value::strings({"a b"}));
  v = vocabulary_from_gguf(m);
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_FALSE((*v)->add_space_prefix);
  EXPECT_EQ((*v)->pre_tokenizer, "default");
}

TEST(GgufVocabTest, NoVocabulary) {
  gguf::Metadata m("v.gguf");
  auto v = vocabulary_from_gguf(m);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->has_value());
  m.set("tokenizer.ggml.model", gguf::Value::string("none"));
  v = vocabulary_from_gguf(m);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->has_value());
}

TEST(GgufVocabTest, RejectsInconsistentMetadata) {
  auto base = [] {
    gguf::Metadata m("v.gguf");
    EXPECT_TRUE(vocabulary_to_gguf(sentencepiece_vocab(300), &m).ok());
    return m;
  };
  auto expect = [](const gguf::Metadata& m, ErrorCode code, const std::string& needle) {
    auto v = vocabulary_from_gguf(m);
    ASSERT_FALSE(v.ok()) << needle;
    EXPECT_EQ(v.status().code(), code) << v.status().message();
    EXPECT_NE(v.status().message().find("v.gguf"), std::string::npos) << v.status().message();
    EXPECT_NE(v.status().message().find(needle), std::string::npos) << v.status().message();
  };
  gguf::Metadata m = base();
  m.set("tokenizer.ggml.model", gguf::Value::string("bert"));
  expect(m, ErrorCode::kUnsupported, "\"bert\"");
  m = base();
  m.set("tokenizer.ggml.scores", gguf::Value::f32s({1.0f}));
  expect(m, ErrorCode::kFormat, "tokenizer.ggml.scores has 1 entries");
  m = base();
  m.set("tokenizer.ggml.token_type", gguf::Value::i32s({1, 1}));
  expect(m, ErrorCode::kFormat, "tokenizer.ggml.token_type has 2 entries");
  m = base();
  m.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(300));
  expect(m, ErrorCode::kFormat, "bos_token_id = 300");
  m = base();
  m.set("tokenizer.ggml.tokens", gguf::Value::strings({}));
  expect(m, ErrorCode::kFormat, "empty");
  m = base();
  m.set("tokenizer.ggml.tokens", gguf::Value::f32s({1.0f}));
  expect(m, ErrorCode::kFormat, "tokenizer.ggml.tokens");
}

TEST(GgufVocabTest, WriterRejectsInconsistentVocabulary) {
  gguf::Metadata m;
  Vocabulary v = sentencepiece_vocab(300);
  v.scores.pop_back();
  EXPECT_EQ(vocabulary_to_gguf(v, &m).code(), ErrorCode::kInvalidArgument);
  v = sentencepiece_vocab(300);
  v.eos_id = 300;
  EXPECT_EQ(vocabulary_to_gguf(v, &m).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(vocabulary_to_gguf(Vocabulary{}, &m).code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(m.entries().empty());  // nothing written on failure
}

}  // namespace
}  // namespace lowbit
