// Learning a small SentencePiece-style BPE vocabulary from text, for models lowbit trains itself.
//
// The result is a llama2.c tokenizer.bin vocabulary that SentencePieceTokenizer (model/
// tokenizer_sentencepiece.h) encodes with, laid out as Llama 2's:
//   0 <unk>, 1 <s>, 2 </s>, 3..258 byte fallback <0x00>..<0xFF>,
//   259.. learned merges in the order they were learned (merge rank r scores -r),
//   then the base characters (each scores below every merge; no merge makes them).
// The encoder merges "the adjacent pair whose merged token has the highest score" (every split
// of a token into two tokens counts), so training simulates exactly that encoder: after each new
// token, every word holding a pair that now merges is re-run through the same greedy loop
// (highest score first, leftmost among equals). The segmentation training ends with is therefore
// the encoder's output on every training word, not an approximation of it.
//
// Words. The encoder has no pre-tokenizer; merges cannot cross word boundaries only because no
// learned token spans one. Training cuts each document (after the encoder's dummy-prefix space)
// into words: a run of letters (ASCII letters and any non-ASCII character), a run of digits, or
// a run of other characters (punctuation, control characters), each with at most one preceding
// space attached; a space before another space, a newline or the end stands alone; newline runs
// are words. A learned token is a substring of a word, so "▁" only ever starts a token and no
// token mixes classes; hence two adjacent tokens across a boundary never concatenate to a token.
//
// Characters. The base alphabet is the valid UTF-8 characters of the text (a space spelled "▁",
// which is always included), most frequent first (ties by bytes), at most half of the room
// after the 259 fixed tokens (so merges always get the other half). Other characters (rarer
// ones, invalid UTF-8) encode as byte tokens, which never merge.
//
// Determinism: the most frequent pair wins, ties broken by the bytes of its left then right
// token; nothing depends on hash order or threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "model/tokenizer.h"

namespace lowbit {

inline constexpr int kMinTrainedVocab = 260;  // <unk> <s> </s>, 256 bytes, "▁"
inline constexpr int kMaxTrainedVocab = 1 << 18;

struct BpeTrainOptions {
  int vocab_size = 512;
  // Keep every distinct word's initial symbols and final pieces (tests compare them with the
  // encoder); costs memory proportional to the text.
  bool keep_word_pieces = false;
};

struct BpeTrainResult {
  Vocabulary vocab;          // kSentencePiece, llama2.c ids; may be smaller than asked (see merges)
  int base_characters = 0;   // characters in the vocabulary
  int merges = 0;            // learned merges (fewer than asked once every word is one token)
  int64_t documents = 0, characters = 0, words = 0, distinct_words = 0;
  // With keep_word_pieces: per distinct word, its initial symbols and the pieces training left
  // it as (final vocabulary ids; byte fallback as <0xNN> ids), and per document its word indexes.
  std::vector<std::vector<int>> word_symbols, word_pieces;
  std::vector<std::vector<int32_t>> document_words;
};

// Learns merges until the vocabulary reaches options.vocab_size tokens or no pair occurs any more.
// Each document is encoded on its own with a dummy-prefix space (as Tokenizer::encode does).
// Fails on a vocabulary size outside [kMinTrainedVocab, kMaxTrainedVocab] or no text at all.
Result<BpeTrainResult> train_bpe_tokenizer(const std::vector<std::string>& documents, const BpeTrainOptions& options);

// The documents of a text file as eval/token_data.h's tokenize_text_file sees them: paragraphs
// separated by a blank line ("\n\n"), leading/trailing newlines trimmed, empty ones dropped.
std::vector<std::string> split_paragraphs(std::string_view text);

}  // namespace lowbit
