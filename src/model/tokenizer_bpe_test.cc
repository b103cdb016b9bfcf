// Byte-level BPE (GPT-2/Llama-3/Qwen2): pre-tokenizer splits, ranked merges on a tiny table with
// hand-computed ids, and tokenizer.json reading/writing for both BPE flavours.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/tokenizer_bpe.h"
#include "model/tokenizer_io.h"
#include "testing/testing.h"

namespace lowbit {
namespace {

using Pieces = std::vector<std::string_view>;

TEST(TokenizerPreTokenize, Gpt2) {
  EXPECT_EQ(pre_tokenize("Hello world's 123 !!  x\n", PreTokenizer::kGpt2),
            (Pieces{"Hello", " world", "'s", " 123", " !!", " ", " x", "\n"}));
  EXPECT_EQ(pre_tokenize("I'M you're", PreTokenizer::kGpt2), (Pieces{"I", "'", "M", " you", "'re"}));
  EXPECT_EQ(pre_tokenize("a\tb", PreTokenizer::kGpt2), (Pieces{"a", "\t", "b"}));
  EXPECT_EQ(pre_tokenize("   ", PreTokenizer::kGpt2), (Pieces{"   "}));
  EXPECT_TRUE(pre_tokenize("", PreTokenizer::kGpt2).empty());
}

TEST(TokenizerPreTokenize, Llama3AndQwen2) {
  EXPECT_EQ(pre_tokenize("Hello world's 12345 !!\n\nx", PreTokenizer::kLlama3),
            (Pieces{"Hello", " world", "'s", " ", "123", "45", " !!\n\n", "x"}));
  EXPECT_EQ(pre_tokenize("Hello world's 12345 !!\n\nx", PreTokenizer::kQwen2),
            (Pieces{"Hello", " world", "'s", " ", "1", "2", "3", "4", "5", " !!\n\n", "x"}));
  EXPECT_EQ(pre_tokenize("I'M", PreTokenizer::kLlama3), (Pieces{"I", "'M"}));  // case-insensitive
  EXPECT_EQ(pre_tokenize("  hi\n  there", PreTokenizer::kLlama3), (Pieces{" ", " hi", "\n", " ", " there"}));
  EXPECT_EQ(pre_tokenize("(hello) x", PreTokenizer::kLlama3), (Pieces{"(hello", ")", " x"}));
  EXPECT_EQ(pre_tokenize("a \n\n b", PreTokenizer::kLlama3), (Pieces{"a", " \n\n", " b"}));
}

TEST(TokenizerPreTokenize, NonAsciiApproximation) {
  // Accented and CJK letters are \p{L}; the em dash is punctuation; NBSP is whitespace.
  EXPECT_EQ(pre_tokenize("héllo wörld 日本語", PreTokenizer::kGpt2), (Pieces{"héllo", " wörld", " 日本語"}));
  EXPECT_EQ(pre_tokenize("a—b", PreTokenizer::kGpt2), (Pieces{"a", "—", "b"}));
  EXPECT_EQ(pre_tokenize("a\u00A0\u00A0b", PreTokenizer::kGpt2), (Pieces{"a", "\u00A0", "\u00A0", "b"}));
  EXPECT_EQ(pre_tokenize("x²", PreTokenizer::kLlama3), (Pieces{"x", "²"}));
  // Invalid UTF-8 never stalls and loses no bytes.
  const std::string bad = "a\xFF\xC3 b";
  std::string joined;
  for (auto p : pre_tokenize(bad, PreTokenizer::kLlama3)) joined += p;
  EXPECT_EQ(joined, bad);
}

TEST(TokenizerByteLevel, AlphabetMatchesGpt2) {
  EXPECT_EQ(byte_level_alphabet()['A'], "A");
  EXPECT_EQ(byte_level_alphabet()[' '], "Ġ");   // U+0120
  EXPECT_EQ(byte_level_alphabet()['\n'], "Ċ");  // U+010A
  EXPECT_EQ(byte_level_alphabet()[0xAD], "Ń");  // U+0143: the last shifted byte
  for (int b = 0; b < 256; ++b) {
    int len = 0;
    EXPECT_EQ(byte_level_byte(decode_utf8(byte_level_alphabet()[b], 0, &len)), b);
  }
}

// Ids 0..255 are the byte alphabet (id == byte), then merge results and specials.
Vocabulary tiny_byte_level(const std::string& pre) {
  Vocabulary v;
  v.kind = Vocabulary::Kind::kByteLevelBpe;
  v.pre_tokenizer = pre;
  v.add_space_prefix = false;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_level_alphabet()[b]);
  v.merges = {"Ġ t", "h e", "e l", "l l", "Ġt he", "Ġ h"};
  for (const char* t : {"Ġt", "he", "el", "ll", "Ġthe", "Ġh"}) v.tokens.push_back(t);  // 256..261
  v.tokens.push_back("<|begin_of_text|>");  // 262
  v.tokens.push_back("<|end_of_text|>");    // 263
  v.tokens.push_back("Ġhello");             // 264: in the vocabulary, unreachable by merges
  v.types.assign(v.tokens.size(), 1);
  v.types[262] = v.types[263] = 3;
  v.bos_id = 262, v.eos_id = 263;
  return v;
}

std::unique_ptr<Tokenizer> make(Vocabulary v) {
  auto t = make_tokenizer(std::move(v), "test");
  EXPECT_TRUE(t.ok()) << t.status().message();
  return std::move(t).value();
}

TEST(TokenizerByteLevel, RankedMergesHandComputed) {
  auto tok = make(tiny_byte_level("gpt2"));
  // "the" | " hello": t h e -> t he;  Ġ h e l l o -> "h e" (rank 1) before "Ġ h" (rank 5) and
  // "e l" (rank 2), so Ġ he l l o -> Ġ he ll o.
  EXPECT_EQ(tok->encode("the hello", false), (std::vector<int>{'t', 257, ' ', 257, 259, 'o'}));
  // Ġ t h e -> Ġt h e -> Ġt he -> Ġthe.
  EXPECT_EQ(tok->encode(" the", true), (std::vector<int>{262, 260}));
  // y e l l: "e l" (rank 2) beats "l l" (rank 3).
  EXPECT_EQ(tok->encode("yell", false), (std::vector<int>{'y', 258, 'l'}));
  EXPECT_EQ(tok->encode("\n", false), (std::vector<int>{'\n'}));
}

TEST(TokenizerByteLevel, Llama3EmitsWholeVocabularyWords) {
  // ignore_merges: " hello" is a token, so Llama-3 takes it whole where GPT-2 merges pieces.
  EXPECT_EQ(make(tiny_byte_level("llama3"))->encode(" hello", false), (std::vector<int>{264}));
  EXPECT_EQ(make(tiny_byte_level("gpt2"))->encode(" hello", false), (std::vector<int>{' ', 257, 259, 'o'}));
  EXPECT_EQ(make(tiny_byte_level("llama-bpe"))->encode(" hello", false), (std::vector<int>{264}));
}

TEST(TokenizerByteLevel, DecodeRoundTripsArbitraryBytes) {
  auto tok = make(tiny_byte_level("llama3"));
  for (const std::string& text : std::vector<std::string>{"héllo wörld 🙂\n", "the hello\r\n\tx", std::string("\x00\xFF\x80z", 4)}) {
    EXPECT_EQ(tok->decode(tok->encode(text, true)), text);
  }
  EXPECT_EQ(tok->decode_token(-1, 262), "");  // BOS prints nothing
  EXPECT_EQ(tok->decode_token(-1, 260), " the");
  EXPECT_EQ(tok->token_text(260), "Ġthe");
}

TEST(TokenizerByteLevel, RejectsBadVocabularies) {
  Vocabulary v = tiny_byte_level("gpt2");
  v.merges.push_back("Ġ zzz");
  EXPECT_EQ(make_tokenizer(v, "m.gguf").status().code(), ErrorCode::kFormat);
  v = tiny_byte_level("gpt2");
  v.merges.push_back("x y");  // "xy" is not a token
  EXPECT_EQ(make_tokenizer(v, "m.gguf").status().code(), ErrorCode::kFormat);
  v = tiny_byte_level("deepseek-coder");
  auto r = make_tokenizer(v, "m.gguf");
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(r.status().message().find("m.gguf"), std::string::npos);
}

// ---- tokenizer.json ---------------------------------------------------------------------------

TEST(TokenizerJson, ByteLevelRoundTrip) {
  testing::TempDir dir;
  for (const char* pre : {"gpt2", "llama3", "qwen2"}) {
    const Vocabulary v = tiny_byte_level(pre);
    const std::string path = dir.file(std::string(pre) + ".json");
    ASSERT_TRUE(save_tokenizer_json(path, v).ok());
    auto loaded = load_tokenizer_json(path);
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    const Vocabulary& w = (*loaded)->vocabulary();
    EXPECT_EQ(w.kind, Vocabulary::Kind::kByteLevelBpe);
    EXPECT_EQ(w.pre_tokenizer, pre);
    EXPECT_EQ(w.tokens, v.tokens);
    EXPECT_EQ(w.merges, v.merges);
    EXPECT_EQ(w.bos_id, 262);
    EXPECT_EQ(w.eos_id, 263);
    auto original = make(v);
    for (const char* text : {"the hello yell", " hello 12345 I'M", "héllo\n\n wörld"})
      EXPECT_EQ((*loaded)->encode(text, true), original->encode(text, true)) << pre << ": " << text;
  }
}

// A Llama-3-style file written by hand: Split with Meta's regex, specials only in added_tokens.
TEST(TokenizerJson, ReadsLlama3StyleFile) {
  testing::TempDir dir;
  const Vocabulary v = tiny_byte_level("llama3");
  nlohmann::json vocab = nlohmann::json::object();
  for (int id = 0; id < 262; ++id) vocab[v.tokens[id]] = id;
  vocab["Ġhello"] = 264;
  nlohmann::json root = {
      {"added_tokens",
       {{{"id", 262}, {"content", "<|begin_of_text|>"}, {"special", true}},
        {{"id", 263}, {"content", "<|end_of_text|>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex",
              R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
      {"model",
       {{"type", "BPE"}, {"ignore_merges", true}, {"vocab", vocab},
        {"merges", nlohmann::json::array()}}}};
  // Newer files list merges as pairs (nlohmann would read {{"a", "b"}} as an object, hence array()).
  for (auto [a, b] : {std::pair{"Ġ", "t"}, {"h", "e"}, {"e", "l"}, {"l", "l"}, {"Ġt", "he"}, {"Ġ", "h"}})
    root["model"]["merges"].push_back(nlohmann::json::array({a, b}));
  testing::write_text(dir.file("tokenizer.json"), root.dump());
  auto tok = load_tokenizer_json(dir.file("tokenizer.json"));
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ((*tok)->vocabulary().pre_tokenizer, "llama3");
  EXPECT_EQ((*tok)->bos_id(), 262);
  EXPECT_EQ((*tok)->vocabulary().types[262], 3);
  EXPECT_EQ((*tok)->encode(" hello the", true), (std::vector<int>{262, 264, 260}));
}

// Llama-2/TinyLlama style: SentencePiece spelling, byte_fallback, merges ranked against what
// scores would say ("b c" before "a b"), so the ids show that ranks are used as HF does.
nlohmann::json llama2_style(bool metaspace) {
  nlohmann::json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
  int id = 259;
  for (const char* t : {"▁", "a", "b", "c", "ab", "bc", "▁a"}) vocab[t] = id++;
  nlohmann::json root = {
      {"added_tokens",
       {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
        {{"id", 1}, {"content", "<s>"}, {"special", true}},
        {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
      {"model",
       {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"fuse_unk", true},
        {"vocab", vocab}, {"merges", {"b c", "a b", "▁ a"}}}}};
  if (metaspace) {
    root["normalizer"] = nullptr;
    root["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", false}};
  } else {
    root["normalizer"] = {{"type", "Sequence"},
                          {"normalizers",
                           {{{"type", "Prepend"}, {"prepend", "▁"}},
                            {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}};
    root["pre_tokenizer"] = nullptr;
  }
  return root;
}

TEST(TokenizerJson, ReadsLlama2StyleFilesUsingMergeRanks) {
  testing::TempDir dir;
  for (bool metaspace : {false, true}) {
    testing::write_text(dir.file("tokenizer.json"), llama2_style(metaspace).dump());
    auto tok = load_tokenizer_json(dir.file("tokenizer.json"));
    ASSERT_TRUE(tok.ok()) << tok.status().message();
    const Vocabulary& v = (*tok)->vocabulary();
    EXPECT_EQ(v.kind, Vocabulary::Kind::kSentencePiece);
    EXPECT_TRUE(v.add_space_prefix);
    EXPECT_EQ(v.bos_id, 1);
    EXPECT_EQ(v.eos_id, 2);
    EXPECT_EQ(v.unk_id, 0);
    EXPECT_EQ(v.types[3 + 'z'], 6);
    // ▁ a b c ▁ <0x7A>: "b c" (rank 0), then "▁ a" (rank 2); "z" falls back to its byte.
    EXPECT_EQ((*tok)->encode("abc z", true), (std::vector<int>{1, 265, 264, 259, 3 + 'z'}));
    EXPECT_EQ((*tok)->decode((*tok)->encode("abc z", true)), "abc z");
  }
}

#define expect_error(...) do { SCOPED_TRACE(__LINE__); expect_error_impl(__VA_ARGS__); } while (0)
void expect_error_impl(const Status& s, ErrorCode code, const std::string& path) {
  EXPECT_EQ(s.code(), code) << s.message();
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
}

TEST(TokenizerJson, RejectsHostileAndUnsupportedFiles) {
  testing::TempDir dir;
  const std::string path = dir.file("tokenizer.json");
  auto load_text = [&](const std::string& text) {
    testing::write_text(path, text);
    return load_tokenizer_json(path).status();
  };
  auto load = [&](const nlohmann::json& j) { return load_text(j.dump()); };
  expect_error(load_text("{\"model\": {\"type\": \"BPE\", "), ErrorCode::kFormat, path);
  expect_error(load_text(""), ErrorCode::kFormat, path);
  expect_error(load_text("[1, 2]"), ErrorCode::kFormat, path);
  expect_error(load(nlohmann::json{{"version", "1.0"}}), ErrorCode::kFormat, path);
  nlohmann::json j = llama2_style(false);
  j["model"]["type"] = "WordPiece";
  expect_error(load(j), ErrorCode::kUnsupported, path);
  j = llama2_style(false);
  j["model"]["vocab"]["a"] = "sixty";
  expect_error(load(j), ErrorCode::kFormat, path);
  j = llama2_style(false);
  j["model"]["vocab"]["a"] = -4;
  expect_error(load(j), ErrorCode::kFormat, path);
  j = llama2_style(false);
  j["model"]["vocab"]["a"] = 1LL << 40;  // would allocate a huge vocabulary
  expect_error(load(j), ErrorCode::kFormat, path);
  j = llama2_style(false);
  j["model"]["vocab"]["a"] = 3000000;  // in range, but a vocabulary of almost only holes
  expect_error(load(j), ErrorCode::kFormat, path);
  j = llama2_style(false);
  for (int i = 0; i < 100; ++i) j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {j["normalizer"]}}};
  // Nesting is bounded, not recursed into: refused as unsupported (Sequence depth) or as
  // malformed (JSON depth limit), either way cleanly and naming the file.
  EXPECT_FALSE(load(j).ok());
  EXPECT_NE(load(j).message().find(path), std::string::npos);
  j = llama2_style(false);
  j["model"]["vocab"] = nlohmann::json::array();
  expect_error(load(j), ErrorCode::kFormat, path);
  j = llama2_style(false);
  j["model"]["merges"].push_back("a zzz");
  expect_error(load(j), ErrorCode::kFormat, path);
  j = llama2_style(false);
  j["model"]["merges"] = {{"a", "b"}};  // an object, not a list
  expect_error(load(j), ErrorCode::kFormat, path);
  j = llama2_style(false);
  j["model"]["merges"].push_back(42);
  expect_error(load(j), ErrorCode::kFormat, path);
  j = llama2_style(false);
  j["added_tokens"][0]["content"] = 5;
  expect_error(load(j), ErrorCode::kFormat, path);
  j = llama2_style(false);
  j["model"]["unk_token"] = "<nope>";
  expect_error(load(j), ErrorCode::kFormat, path);
  j = llama2_style(false);
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_error(load(j), ErrorCode::kUnsupported, path);
  j = llama2_style(false);
  j["normalizer"] = nullptr;  // no "▁" spelling and no ByteLevel: neither flavour
  expect_error(load(j), ErrorCode::kUnsupported, path);
  j = llama2_style(false);
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}},
                          {{"type", "ByteLevel"}, {"use_regex", false}}}}};
  expect_error(load(j), ErrorCode::kUnsupported, path);
  EXPECT_EQ(load_tokenizer_json(dir.file("missing.json")).status().code(), ErrorCode::kIo);
}

}  // namespace
}  // namespace lowbit
