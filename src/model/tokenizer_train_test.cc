// BPE tokenizer training: the learned vocabulary loads through tokenizer.bin, the existing
// SentencePiece encoder reproduces the training segmentation, round trips are exact, output is
// deterministic, and bad arguments fail with a clear Status.
#include "model/tokenizer_train.h"

#include <gtest/gtest.h>

#include <random>

#include "model/tokenizer_io.h"
#include "model/tokenizer_sentencepiece.h"
#include "testing/testing.h"

namespace lowbit {
namespace {

constexpr int kFirstPiece = 259;

// Paragraphs of pseudo-English from a seeded generator: repeated words and words built from
// overlapping syllables (so merges have much to learn, including tokens that split several
// ways), punctuation, digits, newlines, double spaces, non-ASCII letters, a control byte and an
// invalid UTF-8 byte.
std::vector<std::string> corpus(int paragraphs, uint32_t seed) {
  const char* words[] = {"the", "and", "of", "LORD", "said", "unto", "them", "thee", "thou", "shalt",
                         "there", "these", "other", "brother", "mother", "earth", "heaven", "théâtre",
                         "naïve", "—", "42", "1999", "a", "I", "is", "it's", "abc", "bc", "abcabc"};
  const char* syllables[] = {"th", "e", "the", "an", "d", "er", "ab", "bc", "abc", "c", "o", "ou", "ing", "é", "s"};
  const char* seps[] = {" ", " ", " ", " ", ", ", ". ", ": ", "; ", "\n", "  ", "? ", " (", ") ", "\t", "\x01",
                        "\xff"};
  std::mt19937 rng(seed);
  std::vector<std::string> docs;
  for (int p = 0; p < paragraphs; ++p) {
    std::string doc;
    const int n = 5 + int(rng() % 60);
    for (int i = 0; i < n; ++i) {
      if (rng() % 2 == 0) {
        doc += words[rng() % std::size(words)];
      } else {
        for (int k = 1 + int(rng() % 3); k > 0; --k) doc += syllables[rng() % std::size(syllables)];
      }
      doc += seps[rng() % std::size(seps)];
    }
    docs.push_back(doc);
  }
  return docs;
}

std::unique_ptr<Tokenizer> save_and_load(const Vocabulary& vocab, const testing::TempDir& tmp) {
  const std::string path = tmp.file("tokenizer.bin");
  Status s = save_llama2c_tokenizer(path, vocab);
  EXPECT_TRUE(s.ok()) << s.message();
  auto t = load_llama2c_tokenizer(path, int(vocab.tokens.size()));
  EXPECT_TRUE(t.ok()) << t.status().message();
  return std::move(t).value();
}

TEST(TokenizerTrain, LearnsMergesInCountOrderWithByteTies) {
  // Words: "▁ab" x3, "▁abc" x1. (▁,a) and (a,b) both occur 4 times; "a" < "▁" in bytes, so
  // "ab" comes first, then "▁ab" (4), then "▁abc" (1); then every word is one token.
  BpeTrainOptions o;
  o.vocab_size = 512;
  auto r = train_bpe_tokenizer({"ab ab ab abc"}, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Vocabulary& v = r->vocab;
  ASSERT_EQ(r->merges, 3);
  ASSERT_EQ(r->base_characters, 4);
  const std::vector<std::string> expected = {"ab", "▁ab", "▁abc", "▁", "a", "b", "c"};
  ASSERT_EQ(v.tokens.size(), size_t(kFirstPiece) + expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(v.tokens[kFirstPiece + i], expected[i]) << i;
    EXPECT_EQ(v.scores[kFirstPiece + i], -float(i)) << i;  // merges -rank, characters below them
  }
  EXPECT_EQ(v.tokens[0], "<unk>");
  EXPECT_EQ(v.tokens[1], "<s>");
  EXPECT_EQ(v.tokens[2], "</s>");
  EXPECT_EQ(v.tokens[3], "<0x00>");
  EXPECT_EQ(v.tokens[258], "<0xFF>");
  testing::TempDir tmp;
  auto tok = save_and_load(v, tmp);
  EXPECT_EQ(tok->encode("ab abc", true), (std::vector<int>{1, 260, 261}));
}

TEST(TokenizerTrain, EncoderReproducesTrainingSegmentation) {
  const std::vector<std::string> docs = corpus(300, 7);
  for (int vocab : {260, 300, 500, 800}) {
    BpeTrainOptions o;
    o.vocab_size = vocab;
    o.keep_word_pieces = true;
    auto r = train_bpe_tokenizer(docs, o);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(int(r->vocab.tokens.size()), vocab);  // the corpus has enough to learn
    testing::TempDir tmp;
    auto tok = save_and_load(r->vocab, tmp);  // through the file, as lowbit uses it
    ASSERT_EQ(r->document_words.size(), docs.size());
    for (size_t d = 0; d < docs.size(); ++d) {
      std::vector<int> expected{tok->bos_id()};
      for (int w : r->document_words[d])
        expected.insert(expected.end(), r->word_pieces[size_t(w)].begin(), r->word_pieces[size_t(w)].end());
      ASSERT_EQ(tok->encode(docs[d], true), expected) << "vocab " << vocab << ", document " << d;
    }
    // Each distinct word alone (those the encoder sees as such: a leading space, no byte fallback).
    const int space = kFirstPiece + r->merges;  // "▁" is the first character
    ASSERT_EQ(r->vocab.tokens[size_t(space)], "▁");
    int checked = 0;
    for (size_t w = 0; w < r->word_symbols.size(); ++w) {
      const std::vector<int>& s = r->word_symbols[w];
      if (s.empty() || s[0] != space) continue;
      bool plain = true;
      std::string text;
      for (size_t i = 1; i < s.size(); ++i) {
        plain = plain && s[i] >= kFirstPiece;
        text += markers_to_spaces(r->vocab.tokens[size_t(s[i])]);
      }
      if (!plain || text.empty()) continue;
      EXPECT_EQ(tok->encode(text, false), r->word_pieces[w]) << "\"" << text << "\"";
      ++checked;
    }
    if (vocab > kMinTrainedVocab) {
      EXPECT_GT(checked, 20);
    }
  }
}

TEST(TokenizerTrain, RoundTripOfArbitraryBytesIsExact) {
  BpeTrainOptions o;
  o.vocab_size = 400;
  auto r = train_bpe_tokenizer(corpus(200, 3), o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  testing::TempDir tmp;
  auto tok = save_and_load(r->vocab, tmp);
  std::mt19937 rng(11);
  const std::string pieces[] = {"the ", " ", "  ", "\n", "é", "—", "\xC3", "\x80", "\xF0\x9F\x98\x80", "\x00",
                                "\x1b[0m", "earth.", "\xff\xfe", "LORD", "\t", "a"};
  for (int trial = 0; trial < 500; ++trial) {
    std::string text;
    const int n = int(rng() % 40);
    for (int i = 0; i < n; ++i) {
      if (rng() % 3 == 0) text += char(rng() % 256);  // any byte
      else text += pieces[rng() % std::size(pieces)];
    }
    // A literal "▁" encodes as a space (SentencePiece's convention), the one lossy input.
    for (size_t p; (p = text.find(kSpaceMarker)) != std::string::npos;) text.erase(p, kSpaceMarker.size());
    const std::vector<int> ids = tok->encode(text, true);
    ASSERT_EQ(tok->decode(ids), text) << "trial " << trial;
    for (int id : ids) ASSERT_TRUE(id >= 0 && id < tok->vocab_size());
  }
}

TEST(TokenizerTrain, TokenizerJsonExportEncodesTheSame) {
  // Hugging Face-style ranked merges derived from the scores (LlamaConverter) give the same ids.
  const std::vector<std::string> docs = corpus(100, 9);
  BpeTrainOptions o;
  o.vocab_size = 450;
  auto r = train_bpe_tokenizer(docs, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  testing::TempDir tmp;
  auto bin = save_and_load(r->vocab, tmp);
  ASSERT_TRUE(save_tokenizer_json(tmp.file("tokenizer.json"), r->vocab).ok());
  auto json = load_tokenizer_json(tmp.file("tokenizer.json"));
  ASSERT_TRUE(json.ok()) << json.status().message();
  for (const std::string& d : docs) ASSERT_EQ((*json)->encode(d, true), bin->encode(d, true)) << d;
}

TEST(TokenizerTrain, SmallestVocabularyStillRoundTrips) {
  BpeTrainOptions o;
  o.vocab_size = kMinTrainedVocab;  // only "▁": every other character is bytes
  auto r = train_bpe_tokenizer({"héllo wörld"}, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->vocab.tokens.size(), size_t(kMinTrainedVocab));
  EXPECT_EQ(r->merges, 0);
  testing::TempDir tmp;
  auto tok = save_and_load(r->vocab, tmp);
  EXPECT_EQ(tok->decode(tok->encode("héllo wörld\n", true)), "héllo wörld\n");
}

TEST(TokenizerTrain, StopsWhenEveryWordIsOneToken) {
  BpeTrainOptions o;
  o.vocab_size = 1024;
  auto r = train_bpe_tokenizer({"to be or not to be"}, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_LT(r->vocab.tokens.size(), size_t(1024));
  testing::TempDir tmp;
  auto tok = save_and_load(r->vocab, tmp);
  EXPECT_EQ(tok->encode("to be or not to be", true).size(), 7u);  // BOS + one token per word
}

TEST(TokenizerTrain, Deterministic) {
  BpeTrainOptions o;
  o.vocab_size = 500;
  const std::vector<std::string> docs = corpus(150, 5);
  auto a = train_bpe_tokenizer(docs, o), b = train_bpe_tokenizer(docs, o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->vocab.tokens, b->vocab.tokens);
  EXPECT_EQ(a->vocab.scores, b->vocab.scores);
  testing::TempDir tmp;
  ASSERT_TRUE(save_llama2c_tokenizer(tmp.file("a.bin"), a->vocab).ok());
  ASSERT_TRUE(save_llama2c_tokenizer(tmp.file("b.bin"), b->vocab).ok());
  EXPECT_EQ(testing::read_bytes(tmp.file("a.bin")), testing::read_bytes(tmp.file("b.bin")));
}

TEST(TokenizerTrain, RejectsBadArguments) {
  BpeTrainOptions o;
  for (int bad : {-1, 0, 258, 259, kMaxTrainedVocab + 1}) {
    o.vocab_size = bad;
    auto r = train_bpe_tokenizer({"some text"}, o);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("vocabulary size"), std::string::npos) << r.status().message();
  }
  o.vocab_size = 512;
  for (const std::vector<std::string>& empty : {std::vector<std::string>{}, std::vector<std::string>{"", ""}}) {
    auto r = train_bpe_tokenizer(empty, o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("no text"), std::string::npos) << r.status().message();
  }
}

TEST(TokenizerTrain, SplitParagraphsLikeTokenizeTextFile) {
  EXPECT_EQ(split_paragraphs("\n\nIn the beginning\nGod\n\n\nAnd the earth\n"),
            (std::vector<std::string>{"In the beginning\nGod", "And the earth"}));
  EXPECT_TRUE(split_paragraphs("\n\n\n").empty());
  EXPECT_TRUE(split_paragraphs("").empty());
}

}  // namespace
}  // namespace lowbit
