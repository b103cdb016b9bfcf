// Tokenizers: text <-> token ids. Three concrete kinds sit behind this interface:
//  - llama2.c tokenizer.bin (SentencePiece-style scores, byte fallback <0xNN>)
//  - Hugging Face tokenizer.json: BPE with byte fallback (Llama-2/Mistral/TinyLlama) or byte-level
//    BPE (GPT-2/Llama-3/Qwen2)
//  - the vocabulary embedded in a GGUF file (tokenizer.ggml.*)
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace lowbit {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;  // -1 when the vocabulary has none
  virtual int eos_id() const = 0;
  // Encodes text; prepends BOS when asked and the vocabulary has one.
  virtual std::vector<int> encode(std::string_view text, bool add_bos) const = 0;
  // The text of one token as it appears in decoded output (byte tokens give their raw byte,
  // the SentencePiece word marker becomes a space). `previous` is the token before it (-1 at
  // the start), so a leading space after BOS can be dropped as llama2.c does.
  virtual std::string decode_token(int previous, int id) const = 0;
  // The raw vocabulary entry (for inspect and GGUF export).
  virtual const std::string& token_text(int id) const = 0;
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
