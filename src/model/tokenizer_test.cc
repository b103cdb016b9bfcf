// SentencePiece-style tokenizers: llama2.c's algorithm on hand-built vocabularies, the
// stories260K oracle (tok512.bin on 556 KB of TinyStories), and tokenizer.bin round trips.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>

#include "model/tokenizer_io.h"
#include "model/tokenizer_sentencepiece.h"
#include "testing/testing.h"

namespace lowbit {
namespace {

constexpr int kFirstPiece = 259;  // after <unk>, <s>, </s> and 256 byte tokens

// llama2.c layout: <unk> <s> </s> <0x00>..<0xFF>, then pieces.
Vocabulary tiny_vocab() {
  Vocabulary v;
  v.tokens = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) v.tokens.push_back(fmt::format("<0x{:02X}>", b));
  v.scores.assign(v.tokens.size(), 0.0f);
  const std::pair<const char*, float> pieces[] = {
      {"▁", -10}, {"a", -11}, {"b", -12}, {"c", -13}, {"é", -14},  // 259..263
      {"ab", -1}, {"ba", -1}, {"bc", -2}, {"▁a", -3}, {"▁ab", -4},  // 264..268
      {"abc", -5}, {"▁é", -6}, {"cc", -7},                          // 269..271
  };
  for (auto [text, score] : pieces) v.tokens.push_back(text), v.scores.push_back(score);
  v.bos_id = 1, v.eos_id = 2, v.unk_id = 0;
  return v;
}
int id_of(const Vocabulary& v, std::string_view text) {
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i] == text) return int(i);
  return -1;
}

std::unique_ptr<Tokenizer> make(Vocabulary v) {
  auto t = make_tokenizer(std::move(v), "test");
  EXPECT_TRUE(t.ok()) << t.status().message();
  return std::move(t).value();
}

// llama2.c's encode() transcribed literally (quadratic rescan), as the oracle for the heap merge.
std::vector<int> llama2c_encode(const Vocabulary& v, std::string_view text) {
  std::map<std::string, int> lookup;
  for (size_t i = 0; i < v.tokens.size(); ++i) lookup.emplace(markers_to_spaces(v.tokens[i]), int(i));
  auto find = [&](const std::string& s) { auto it = lookup.find(s); return it == lookup.end() ? -1 : it->second; };
  std::vector<int> out;
  if (text.empty()) return out;
  out.push_back(find(" "));
  for (size_t i = 0; i < text.size();) {
    size_t j = i + 1;
    while (j < text.size() && (uint8_t(text[j]) & 0xC0) == 0x80 && j - i < 4) ++j;
    int id = find(std::string(text.substr(i, j - i)));
    if (id >= 0) out.push_back(id);
    else for (size_t k = i; k < j; ++k) out.push_back(uint8_t(text[k]) + 3);
    i = j;
  }
  for (;;) {
    float best = -1e10f;
    int best_id = -1, best_at = -1;
    for (size_t i = 0; i + 1 < out.size(); ++i) {
      int id = find(markers_to_spaces(v.tokens[out[i]] + v.tokens[out[i + 1]]));
      if (id >= kFirstPiece && v.scores[id] > best) best = v.scores[id], best_id = id, best_at = int(i);
    }
    if (best_at < 0) return out;
    out[best_at] = best_id;
    out.erase(out.begin() + best_at + 1);
  }
}

TEST(SentencePieceTokenizer, MergesHighestScoreFirstLeftmostOnTies) {
  Vocabulary v = tiny_vocab();
  auto tok = make(v);
  // ▁ a b c: "ab" (-1) beats "bc" (-2) and "▁a" (-3); then "▁ab" (-4) beats "abc" (-5).
  EXPECT_EQ(tok->encode("abc", false), (std::vector<int>{id_of(v, "▁ab"), id_of(v, "c")}));
  // ▁ a b a: "ab" and "ba" tie at -1, the leftmost ("ab") wins, then "▁ab".
  EXPECT_EQ(tok->encode("aba", false), (std::vector<int>{id_of(v, "▁ab"), id_of(v, "a")}));
  // ▁ b c: only "bc" applies; "▁b" is not a token.
  EXPECT_EQ(tok->encode("bc", true), (std::vector<int>{1, id_of(v, "▁"), id_of(v, "bc")}));
  // Spaces inside the text are "▁" too: "a a" -> ▁a ▁a.
  EXPECT_EQ(tok->encode("a a", false), (std::vector<int>{id_of(v, "▁a"), id_of(v, "▁a")}));
  EXPECT_EQ(tok->encode("", true), (std::vector<int>{1}));
  EXPECT_TRUE(tok->encode("", false).empty());
}

TEST(SentencePieceTokenizer, ByteFallbackAndMultibyteCharacters) {
  Vocabulary v = tiny_vocab();
  auto tok = make(v);
  // "é" is a vocabulary character (2 bytes) and merges with the dummy prefix; "z" and "€"
  // (3 bytes) are not in the vocabulary and fall back to byte tokens id = byte + 3.
  EXPECT_EQ(tok->encode("éz€", false),
            (std::vector<int>{id_of(v, "▁é"), 'z' + 3, 0xE2 + 3, 0x82 + 3, 0xAC + 3}));
  EXPECT_EQ(tok->decode(tok->encode("éz€ abc", true)), "éz€ abc");
  // Invalid UTF-8 (a stray continuation byte, a truncated sequence) still round-trips via bytes.
  const std::string bad = "a\x80 b\xE2\x82";
  EXPECT_EQ(tok->decode(tok->encode(bad, true)), bad);
}

TEST(SentencePieceTokenizer, DecodeTokenRules) {
  Vocabulary v = tiny_vocab();
  auto tok = make(v);
  const int space_a = id_of(v, "▁a");
  EXPECT_EQ(tok->decode_token(-1, space_a), " a");
  EXPECT_EQ(tok->decode_token(1, space_a), "a");     // leading space dropped after BOS
  EXPECT_EQ(tok->decode_token(1, 0x20 + 3), " ");    // but not a byte token's space
  EXPECT_EQ(tok->decode_token(-1, 'A' + 3), "A");    // byte tokens give their raw byte
  EXPECT_EQ(tok->decode_token(-1, 1), "");           // BOS/EOS print nothing
  EXPECT_EQ(tok->decode_token(-1, 2), "");
  EXPECT_EQ(tok->decode_token(-1, 100000), "");      // out of range (padded model vocabulary)
  EXPECT_EQ(tok->token_text(space_a), "▁a");
  EXPECT_EQ(tok->token_text(-5), "");
}

TEST(SentencePieceTokenizer, HeapMergeEqualsLlama2cOnRandomText) {
  Vocabulary v = tiny_vocab();
  auto tok = make(v);
  const char* alphabet[] = {"a", "b", "c", "é", " ", "z", "€", "ab"};
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text;
    const int len = int(rng() % 24);
    for (int i = 0; i < len; ++i) text += alphabet[rng() % std::size(alphabet)];
    ASSERT_EQ(tok->encode(text, false), llama2c_encode(v, text)) << "text: \"" << text << "\"";
    ASSERT_EQ(tok->decode(tok->encode(text, true)), text);
  }
}

TEST(SentencePieceTokenizer, NoDummyPrefixWhenDisabled) {
  Vocabulary v = tiny_vocab();
  v.add_space_prefix = false;
  auto tok = make(v);
  EXPECT_EQ(tok->encode("abc", false), (std::vector<int>{id_of(v, "abc")}));
}

TEST(SentencePieceTokenizer, RejectsInconsistentVocabularies) {
  Vocabulary v = tiny_vocab();
  v.scores.pop_back();
  auto r = make_tokenizer(v, "vocab.gguf");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kFormat);
  EXPECT_NE(r.status().message().find("vocab.gguf"), std::string::npos);
  v = tiny_vocab();
  v.bos_id = 5000;
  EXPECT_EQ(make_tokenizer(v, "x").status().code(), ErrorCode::kFormat);
  v = tiny_vocab();
  v.scores[kFirstPiece + 2] = std::nanf("");
  EXPECT_EQ(make_tokenizer(v, "x").status().code(), ErrorCode::kFormat);
}

TEST(Llama2cTokenizerFile, SaveLoadRoundTrip) {
  testing::TempDir dir;
  const std::string path = dir.file("tokenizer.bin");
  Vocabulary v = tiny_vocab();
  ASSERT_TRUE(save_llama2c_tokenizer(path, v).ok());
  // On disk: spaces, and BOS/EOS wrapped in newlines, as llama2.c's export writes them.
  const auto bytes = testing::read_bytes(path);
  const std::string raw(bytes.begin(), bytes.end());
  EXPECT_NE(raw.find("\n<s>\n"), std::string::npos);
  EXPECT_EQ(raw.find("▁"), std::string::npos);
  auto loaded = load_llama2c_tokenizer(path, int(v.tokens.size()));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const Vocabulary& w = (*loaded)->vocabulary();
  EXPECT_EQ(w.tokens, v.tokens);
  EXPECT_EQ(w.scores, v.scores);
  EXPECT_EQ(w.types[0], 2);
  EXPECT_EQ(w.types[1], 3);
  EXPECT_EQ(w.types[3 + 0x41], 6);
  EXPECT_EQ(w.types[kFirstPiece], 1);
  auto original = make(v);
  for (const char* text : {"abc aba", "éz€ cc bc", "a\nb"})
    EXPECT_EQ((*loaded)->encode(text, true), original->encode(text, true)) << text;
}

// Writes a tokenizer.bin from (length, bytes) records with a given max_token_length.
void write_records(const std::string& path, int32_t max_len, const std::vector<std::pair<int32_t, std::string>>& recs,
                   size_t truncate_to = SIZE_MAX) {
  std::vector<uint8_t> b(4);
  std::memcpy(b.data(), &max_len, 4);
  for (const auto& [len, text] : recs) {
    const float score = 0;
    const size_t at = b.size();
    b.resize(at + 8);
    std::memcpy(b.data() + at, &score, 4);
    std::memcpy(b.data() + at + 4, &len, 4);
    b.insert(b.end(), text.begin(), text.end());
  }
  if (truncate_to < b.size()) b.resize(truncate_to);
  testing::write_bytes(path, b);
}

void expect_error(const Status& s, ErrorCode code, const std::string& path, const std::string& fragment) {
  EXPECT_EQ(s.code(), code) << s.message();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
}

TEST(Llama2cTokenizerFile, RejectsHostileFiles) {
  testing::TempDir dir;
  const std::string path = dir.file("tok.bin");
  const std::vector<std::pair<int32_t, std::string>> good = {{5, "<unk>"}, {5, "\n<s>\n"}, {6, "\n</s>\n"}, {1, "a"}};
  write_records(path, 6, good);
  ASSERT_TRUE(load_llama2c_tokenizer(path, 4).ok());

  expect_error(load_llama2c_tokenizer(path, 512).status(), ErrorCode::kFormat, path,
               "tokenizer has 4 tokens but the model's vocab_size is 512");
  write_records(path, 6, good, 4 + 3 * 8 + 16 + 8 + 0);  // last token's bytes cut off
  expect_error(load_llama2c_tokenizer(path, 4).status(), ErrorCode::kFormat, path, "truncated");
  write_records(path, 6, good, 4 + 8 + 5 + 3);  // cut inside a token header
  expect_error(load_llama2c_tokenizer(path, 4).status(), ErrorCode::kFormat, path, "truncated");
  write_records(path, 6, {{5, "<unk>"}, {-7, ""}});
  expect_error(load_llama2c_tokenizer(path, 4).status(), ErrorCode::kFormat, path, "negative length -7");
  write_records(path, 6, {{5, "<unk>"}, {2000000000, "xx"}});
  expect_error(load_llama2c_tokenizer(path, 4).status(), ErrorCode::kFormat, path, "more than max_token_length");
  write_records(path, INT32_MAX, {{5, "<unk>"}, {2000000000, "xx"}});
  expect_error(load_llama2c_tokenizer(path, 4).status(), ErrorCode::kFormat, path, "declares 2000000000 bytes");
  write_records(path, -1, {});
  expect_error(load_llama2c_tokenizer(path, 4).status(), ErrorCode::kFormat, path, "max_token_length");
  testing::write_bytes(path, std::vector<uint8_t>{1, 2});
  expect_error(load_llama2c_tokenizer(path, 4).status(), ErrorCode::kFormat, path, "truncated");
  write_records(path, 6, {{5, "<unk>"}, {1, "a"}});
  expect_error(load_llama2c_tokenizer(path, 0).status(), ErrorCode::kFormat, path, "at least");
  EXPECT_EQ(load_llama2c_tokenizer(dir.file("missing.bin"), 4).status().code(), ErrorCode::kIo);
}

TEST(Llama2cTokenizerFile, SaveRejectsWhatLlama2cCannotHold) {
  testing::TempDir dir;
  Vocabulary v = tiny_vocab();
  v.bos_id = 5;
  EXPECT_EQ(save_llama2c_tokenizer(dir.file("t.bin"), v).code(), ErrorCode::kUnsupported);
  v = tiny_vocab();
  v.kind = Vocabulary::Kind::kByteLevelBpe;
  EXPECT_EQ(save_llama2c_tokenizer(dir.file("t.bin"), v).code(), ErrorCode::kUnsupported);
}

TEST(SentencePieceTokenizerJson, DerivesMergesLikeLlamaConverter) {
  // Score descending; equal scores keep token order ("ab" before "ba"); within one token the
  // longer left piece first ("▁a b" before "▁ ab", "ab c" before "a bc").
  EXPECT_EQ(derive_merges_from_scores(tiny_vocab()),
            (std::vector<std::string>{"a b", "b a", "b c", "▁ a", "▁a b", "▁ ab", "ab c", "a bc", "▁ é", "c c"}));
}

TEST(SentencePieceTokenizerJson, SaveLoadRoundTrip) {
  testing::TempDir dir;
  const std::string path = dir.file("tokenizer.json");
  // Distinct scores: with ties ("ab" and "ba" both -1) ranked merges order the tied pairs by token
  // id where llama2.c takes the leftmost position; Hugging Face's converted tokenizers share that
  // difference, so "bab" legitimately encodes differently there.
  Vocabulary v = tiny_vocab();
  v.scores[id_of(v, "ba")] = -1.5f;
  ASSERT_TRUE(save_tokenizer_json(path, v).ok());
  auto loaded = load_tokenizer_json(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const Vocabulary& w = (*loaded)->vocabulary();
  EXPECT_EQ(w.kind, Vocabulary::Kind::kSentencePiece);
  EXPECT_EQ(w.tokens, v.tokens);
  EXPECT_EQ(w.merges, derive_merges_from_scores(v));
  EXPECT_TRUE(w.add_space_prefix);
  EXPECT_EQ(w.bos_id, 1);
  EXPECT_EQ(w.eos_id, 2);
  EXPECT_EQ(w.unk_id, 0);
  EXPECT_EQ(w.types[3 + 0x41], 6);
  auto original = make(v);
  std::mt19937 rng(99);
  const char* alphabet[] = {"a", "b", "c", "é", " ", "z", "€"};
  for (int trial = 0; trial < 500; ++trial) {
    std::string text;
    for (int i = int(rng() % 20); i > 0; --i) text += alphabet[rng() % std::size(alphabet)];
    ASSERT_EQ((*loaded)->encode(text, true), original->encode(text, true)) << text;
  }
  // Scores derived back from the ranks keep the merge order, so tokenizer.bin from it agrees too.
  ASSERT_TRUE(save_llama2c_tokenizer(dir.file("tokenizer.bin"), w).ok());
  auto bin = load_llama2c_tokenizer(dir.file("tokenizer.bin"), int(v.tokens.size()));
  ASSERT_TRUE(bin.ok()) << bin.status().message();
  for (const char* text : {"abc aba", "éz€ cc bc", "a a"})
    EXPECT_EQ((*bin)->encode(text, true), original->encode(text, true)) << text;
}

// ---- stories260K: the real tokenizer against the oracle token stream --------------------------

std::vector<std::string> paragraphs(const std::string& text) {
  std::vector<std::string> out;
  for (size_t pos = 0;;) {
    size_t end = text.find("\n\n", pos);
    out.push_back(text.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
    if (end == std::string::npos) return out;
    pos = end + 2;
  }
}

struct Stories {
  std::unique_ptr<Tokenizer> tok;
  std::vector<std::string> paras;
  std::vector<int32_t> expected;
};

Stories load_stories(const std::string& dir) {
  Stories s;
  auto tok = load_llama2c_tokenizer(dir + "/tok512.bin", 512);
  EXPECT_TRUE(tok.ok()) << tok.status().message();
  if (tok.ok()) s.tok = std::move(tok).value();
  const auto text = testing::read_bytes(dir + "/tinystories_val_part.txt");
  s.paras = paragraphs(std::string(text.begin(), text.end()));
  const auto raw = testing::read_bytes(dir + "/tinystories_val_part_tokens.bin");
  s.expected.resize(raw.size() / 4);
  std::memcpy(s.expected.data(), raw.data(), s.expected.size() * 4);
  return s;
}

void expect_reproduces_oracle(const Tokenizer& tok, const Stories& s) {
  std::vector<int32_t> got;
  for (const std::string& p : s.paras) {
    const std::vector<int> ids = tok.encode(p, true);
    got.insert(got.end(), ids.begin(), ids.end());
  }
  ASSERT_EQ(got.size(), 269979u);
  ASSERT_EQ(got.size(), s.expected.size());
  size_t first_diff = 0;
  while (first_diff < got.size() && got[first_diff] == s.expected[first_diff]) ++first_diff;
  EXPECT_EQ(first_diff, got.size()) << "first difference at token " << first_diff;
}

TEST(TokenizerStories260K, Tok512ReproducesTheOracleTokenStream) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  const Stories s = load_stories(dir);
  ASSERT_TRUE(s.tok);
  EXPECT_EQ(s.tok->vocab_size(), 512);
  EXPECT_EQ(s.tok->bos_id(), 1);
  EXPECT_EQ(s.tok->token_text(1), "<s>");
  ASSERT_EQ(s.paras.size(), 3090u);
  expect_reproduces_oracle(*s.tok, s);
  for (const std::string& p : s.paras) ASSERT_EQ(s.tok->decode(s.tok->encode(p, true)), p);
}

TEST(TokenizerStories260K, Tok512SavesByteIdentically) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  testing::TempDir tmp;
  auto tok = load_llama2c_tokenizer(dir + "/tok512.bin", 512);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  ASSERT_TRUE(save_llama2c_tokenizer(tmp.file("tok.bin"), (*tok)->vocabulary()).ok());
  EXPECT_EQ(testing::read_bytes(tmp.file("tok.bin")), testing::read_bytes(dir + "/tok512.bin"));
}

TEST(TokenizerStories260K, TokenizerJsonWithDerivedMergesReproducesTheOracle) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  testing::TempDir tmp;
  const Stories s = load_stories(dir);
  ASSERT_TRUE(s.tok);
  ASSERT_TRUE(save_tokenizer_json(tmp.file("tokenizer.json"), s.tok->vocabulary()).ok());
  auto json_tok = load_tokenizer_json(tmp.file("tokenizer.json"));
  ASSERT_TRUE(json_tok.ok()) << json_tok.status().message();
  EXPECT_FALSE((*json_tok)->vocabulary().merges.empty());  // ranked merges, as HF would use
  EXPECT_EQ((*json_tok)->vocabulary().tokens, s.tok->vocabulary().tokens);
  expect_reproduces_oracle(**json_tok, s);
}

}  // namespace
}  // namespace lowbit
