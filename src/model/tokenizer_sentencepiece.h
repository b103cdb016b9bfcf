// SentencePiece-style BPE over UTF-8 characters with byte fallback (llama2.c tokenizer.bin,
// GGUF "llama", tokenizer.json BPE with byte_fallback such as Llama-2/Mistral/TinyLlama).
//
// Encoding follows llama2.c's encode(): a dummy-prefix space when add_space_prefix, spaces
// spelled "▁", one symbol per UTF-8 character (a character missing from the vocabulary becomes
// its byte tokens "<0xNN>"), then pair merges until none applies. Which pairs merge first:
//  - vocabulary without merges: the pair whose concatenation is the highest-scoring token
//    (ties: leftmost) — exactly llama2.c;
//  - vocabulary with merges (loaded from tokenizer.json): the lowest-ranked merge (ties:
//    leftmost) — exactly Hugging Face tokenizers' BPE model. For merges derived from scores
//    (LlamaConverter) both orders give the same ids.
// A literal "▁" in the input is the same as a space (as in SentencePiece and HF).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "model/tokenizer_bpe.h"

namespace lowbit {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  static Result<std::unique_ptr<Tokenizer>> create(Vocabulary vocab, const std::string& source);

  std::vector<int> encode(std::string_view text, bool add_bos) const override;
  // Byte tokens give their raw byte, "▁" gives a space, control tokens (BOS/EOS) give nothing,
  // and after BOS a token's leading "▁" is dropped (llama2.c).
  std::string decode_token(int previous, int id) const override;
  const Vocabulary& vocabulary() const override { return vocab_; }

 private:
  SentencePieceTokenizer() = default;
  void lookup_or_bytes(std::string_view character, std::vector<int>& out) const;
  Vocabulary vocab_;
  TokenIndex index_;
  MergeTable merges_;
  std::array<int, 256> byte_ids_{};
  std::vector<std::string> decoded_;
};

// The word marker SentencePiece uses for a space.
inline constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"

// Ranked merges from scores, as Hugging Face's LlamaConverter (generate_merges) builds them:
// every split of a token into two vocabulary tokens (at character boundaries), ordered by the
// token's score (descending), then longer left piece, longer right piece, token id, piece ids.
// Unknown, control and byte tokens are left out: Hugging Face splits those out of the text
// before BPE, so merges producing them never apply.
std::vector<std::string> derive_merges_from_scores(const Vocabulary& vocab);

// Scores from ranked merges so a vocabulary read from tokenizer.json can be written where
// scores are expected (tokenizer.bin, GGUF): a token made by a merge scores -(its best rank);
// other normal tokens score -1e10, which llama2.c's search never merges into (as no merge makes
// them); unknown/control/byte tokens score 0.
std::vector<float> derive_scores_from_merges(const Vocabulary& vocab);

// llama2.c spells the word marker as a plain space; these convert between the two spellings.
std::string spaces_to_markers(std::string_view text);
std::string markers_to_spaces(std::string_view text);

}  // namespace lowbit
