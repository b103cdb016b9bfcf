// Byte-level BPE (GPT-2, Llama-3, Qwen2) and the pieces every BPE tokenizer here shares:
// a token index, the pair-merge table with its O(n log n) merge loop, and the pre-tokenizers.
//
// Pre-tokenizers are hand-written splitters equivalent to the Hugging Face regexes (see
// pre_tokenizer_regex()) for ASCII text. Approximation: Unicode categories come from a small
// table (kCharRanges in tokenizer_bpe.cc): common non-ASCII spaces, digits, punctuation,
// symbols, emoji and combining marks are classified; every other non-ASCII code point counts
// as a letter (\p{L}). Normalizers such as Qwen2's NFC are not applied, and added/special
// tokens written literally in the text are not split out (they encode as ordinary text).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "model/tokenizer.h"

namespace lowbit {

// Token text -> id. Transparent hashing lets encoders probe with string_views without copies.
struct TokenTextHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIndex = std::unordered_map<std::string, int, TokenTextHash, std::equal_to<>>;

// On duplicate spellings the lowest id wins (it is the one a lookup by text can reach).
TokenIndex build_token_index(const std::vector<std::string>& tokens);
inline int find_token(const TokenIndex& index, std::string_view text) {
  auto it = index.find(text);
  return it == index.end() ? -1 : it->second;
}

// "<0xNN>" (hex digits in either case) -> NN; anything else -> -1.
int parse_byte_token(std::string_view text);

// GGUF token types as used in Vocabulary::types.
namespace token_type {
inline constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5,
                         kByte = 6;
}

// Checks a vocabulary's internal consistency (sizes, ids in range, finite scores) and fills
// `types` when empty (unk -> unknown, bos/eos -> control, "<0xNN>" -> byte when kSentencePiece).
Status check_vocabulary(Vocabulary& vocab, const std::string& source);

// Which adjacent symbol pairs merge, into what, and in what order. Both BPE flavours reduce to
// this: SentencePiece scores (every split of a token into two tokens merges with the token's
// score) and ranked merges (priority = -rank).
class MergeTable {
 public:
  // Ranked "left right" merges. A token may itself contain spaces, so the split point is the
  // first space whose both sides are tokens. Like Hugging Face, a repeated pair keeps its last rank.
  static Result<MergeTable> from_ranked_merges(const Vocabulary& vocab, const TokenIndex& index,
                                               const std::string& source);
  // Score-based (llama2.c). Unknown, control and byte tokens are never merge results, and
  // neither is a token scoring <= -1e10 (llama2.c's search starts from that score).
  static MergeTable from_scores(const Vocabulary& vocab, const TokenIndex& index);

  // Repeatedly merges the adjacent pair with the highest priority, the leftmost among equals,
  // until no adjacent pair is in the table. Same result as llama2.c's quadratic rescan, using a
  // heap with lazily discarded stale candidates.
  void apply(std::vector<int>& symbols) const;
  size_t size() const { return pairs_.size(); }

 private:
  struct Merge {
    double priority;
    int merged;
  };
  static uint64_t key(int left, int right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }
  std::unordered_map<uint64_t, Merge> pairs_;
};

enum class PreTokenizer { kGpt2, kLlama3, kQwen2 };
// Accepts our names ("gpt2", "llama3", "qwen2") and llama.cpp's ("default", "gpt-2", "llama-bpe").
Result<PreTokenizer> parse_pre_tokenizer(std::string_view name, const std::string& source);
const char* pre_tokenizer_name(PreTokenizer kind);
// The Split regex Hugging Face uses for this pre-tokenizer (GPT-2's is implied by ByteLevel).
const char* pre_tokenizer_regex(PreTokenizer kind);
// Splits text into pre-tokens (views into `text`), emulating the regex; see the header comment.
std::vector<std::string_view> pre_tokenize(std::string_view text, PreTokenizer kind);

// GPT-2's bytes_to_unicode: each byte's stand-in character, UTF-8 encoded.
const std::array<std::string, 256>& byte_level_alphabet();
// Inverse: the byte a stand-in code point encodes, or -1 when it is not in the alphabet.
int byte_level_byte(uint32_t code_point);

// Decodes one UTF-8 code point at `pos` (pos < s.size()); an invalid or truncated sequence
// decodes as U+FFFD with length 1.
uint32_t decode_utf8(std::string_view s, size_t pos, int* length);

class ByteLevelBpeTokenizer final : public Tokenizer {
 public:
  static Result<std::unique_ptr<Tokenizer>> create(Vocabulary vocab, const std::string& source);

  std::vector<int> encode(std::string_view text, bool add_bos) const override;
  std::string decode_token(int previous, int id) const override;
  const Vocabulary& vocabulary() const override { return vocab_; }

 private:
  ByteLevelBpeTokenizer() = default;
  Vocabulary vocab_;
  TokenIndex index_;
  MergeTable merges_;
  PreTokenizer pre_ = PreTokenizer::kGpt2;
  // Llama-3's tokenizer.json sets ignore_merges: a pre-token that is itself a token is emitted
  // whole (llama.cpp does the same for its "llama-bpe" pre-tokenizer).
  bool ignore_merges_ = false;
  std::array<int, 256> byte_ids_{};
  std::vector<std::string> decoded_;  // bytes each token stands for
};

}  // namespace lowbit
