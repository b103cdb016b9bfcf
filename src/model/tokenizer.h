// Tokenizers: text <-> token ids. Three concrete kinds sit behind this interface:
//  - llama2.c tokenizer.bin (SentencePiece-style scores, byte fallback <0xNN>)
//  - Hugging Face tokenizer.json: BPE with byte fallback (Llama-2/Mistral/TinyLlama) or byte-level
//    BPE (GPT-2/Llama-3/Qwen2)
//  - the vocabulary embedded in a GGUF file (tokenizer.ggml.*)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace lowbit {

// Everything needed to rebuild a tokenizer or to embed it in another file (GGUF, tokenizer.json).
struct Vocabulary {
  enum class Kind {
    kSentencePiece,  // score-based merges over UTF-8 characters, byte fallback tokens <0xNN>
                     // (llama2.c tokenizer.bin, GGUF "llama", tokenizer.json BPE with byte_fallback)
    kByteLevelBpe,   // GPT-2 byte-to-unicode alphabet + ranked merges (GGUF "gpt2", Llama-3, Qwen2)
  };
  Kind kind = Kind::kSentencePiece;
  std::vector<std::string> tokens;   // spelled with U+2581 "▁" for a space in kSentencePiece
  std::vector<float> scores;         // kSentencePiece: merge priority (higher merges first)
  std::vector<int32_t> types;        // GGUF token types: 1 normal, 2 unknown, 3 control, 6 byte
  std::vector<std::string> merges;   // kByteLevelBpe (and BPE tokenizer.json): "left right", by rank
  std::string pre_tokenizer = "default";  // kByteLevelBpe: "gpt2", "llama3", "qwen2"
  int bos_id = -1, eos_id = -1, unk_id = -1;
  bool add_space_prefix = true;      // kSentencePiece: prepend a space before encoding
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Everything about ids comes from the vocabulary; the kinds differ only in encode/decode.
  int vocab_size() const { return int(vocabulary().tokens.size()); }
  int bos_id() const { return vocabulary().bos_id; }  // -1 when the vocabulary has none
  int eos_id() const { return vocabulary().eos_id; }
  // Encodes text; prepends BOS when asked and the vocabulary has one.
  virtual std::vector<int> encode(std::string_view text, bool add_bos) const = 0;
  // The text of one token as it appears in decoded output (byte tokens give their raw byte,
  // the SentencePiece word marker becomes a space). `previous` is the token before it (-1 at
  // the start), so a leading space after BOS can be dropped as llama2.c does.
  virtual std::string decode_token(int previous, int id) const = 0;
  // The raw vocabulary entry (for inspect and GGUF export).
  const std::string& token_text(int id) const {
    static const std::string kEmpty;
    return id < 0 || id >= vocab_size() ? kEmpty : vocabulary().tokens[size_t(id)];
  }
  virtual const Vocabulary& vocabulary() const = 0;
  std::string decode(const std::vector<int>& ids) const {
    std::string out;
    int prev = -1;
    for (int id : ids) {
      out += decode_token(prev, id);
      prev = id;
    }
    return out;
  }
};

}  // namespace lowbit
