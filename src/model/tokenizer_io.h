// Loading and saving tokenizers in their file formats (see model/tokenizer.h for the kinds).
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "model/tokenizer.h"

namespace lowbit {

// Builds a tokenizer from a vocabulary (from GGUF metadata, or converted from another format).
Result<std::unique_ptr<Tokenizer>> make_tokenizer(Vocabulary vocab, const std::string& source);

// llama2.c tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length, bytes.
// Tokens there spell a space as ' ' (export replaced "▁"); they are converted to "▁" on load.
Result<std::unique_ptr<Tokenizer>> load_llama2c_tokenizer(const std::string& path, int expected_vocab_size);
Status save_llama2c_tokenizer(const std::string& path, const Vocabulary& vocab);

// Hugging Face tokenizer.json (model.type "BPE"; byte_fallback SentencePiece-style or ByteLevel).
Result<std::unique_ptr<Tokenizer>> load_tokenizer_json(const std::string& path);
// Writes tokenizer.json; a kSentencePiece vocabulary without merges gets merges derived from its
// scores (every split of a token into two vocabulary tokens, ranked by the token's score), as
// Hugging Face's LlamaConverter does.
Status save_tokenizer_json(const std::string& path, const Vocabulary& vocab);

}  // namespace lowbit
