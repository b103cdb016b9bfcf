// The vocabulary embedded in a GGUF file (tokenizer.ggml.*), converted to and from Vocabulary
// (model/tokenizer.h) without building a tokenizer, so the conversion is testable on its own.
//
// Keys (as llama.cpp's convert_hf_to_gguf.py writes them):
//   tokenizer.ggml.model            string  "llama" -> kSentencePiece, "gpt2" -> kByteLevelBpe,
//                                           absent or "none"/"no" -> no vocabulary
//   tokenizer.ggml.tokens           array[string]
//   tokenizer.ggml.scores           array[f32]   (optional; kSentencePiece merge priorities)
//   tokenizer.ggml.token_type       array[i32]   (optional; 1 normal, 2 unknown, 3 control, 6 byte)
//   tokenizer.ggml.merges           array[string] ("left right", by rank; required for "gpt2")
//   tokenizer.ggml.pre              string  (pre-tokenizer name for "gpt2"; default "default")
//   tokenizer.ggml.bos_token_id / eos_token_id / unknown_token_id   u32 (optional; absent -> -1)
//   tokenizer.ggml.add_space_prefix bool    (optional; default true for "llama", false for "gpt2")
#pragma once

#include <optional>

#include "io/gguf.h"
#include "model/tokenizer.h"

namespace lowbit {

// Reads the vocabulary; std::nullopt when the file carries none. Errors (kFormat for wrong types,
// array lengths that disagree, ids out of range; kUnsupported for other tokenizer models) name
// metadata.source().
Result<std::optional<Vocabulary>> vocabulary_from_gguf(const gguf::Metadata& metadata);

// Writes `vocab` as tokenizer.ggml.* keys (replacing any already there). Fails with
// kInvalidArgument when scores/types lengths disagree with the tokens or an id is out of range.
Status vocabulary_to_gguf(const Vocabulary& vocab, gguf::Metadata* metadata);

}  // namespace lowbit
