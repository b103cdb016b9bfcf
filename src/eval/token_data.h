// Evaluation and calibration token data: raw little-endian int32 token files, or text
// tokenized with the model's tokenizer, cut into fixed-length windows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "model/tokenizer.h"

namespace lowbit {

// Reads a raw int32 little-endian token file. Fails on an empty file, a size that is not a
// multiple of 4, or ids outside [0, vocab_size) (naming the first bad position).
Result<std::vector<int32_t>> read_token_file(const std::string& path, int vocab_size);

// Tokenizes a text file as one stream: each blank-line-separated paragraph becomes BOS + its
// tokens (the same convention as the stories260K token files).
Result<std::vector<int32_t>> tokenize_text_file(const std::string& path, const Tokenizer& tokenizer);

struct WindowSpec {
  int length = 256;      // tokens per window
  int stride = 0;        // distance between window starts; 0 = length (disjoint windows)
  int max_windows = 0;   // 0 = all
};

// Window start offsets into a stream of n tokens (only whole windows; a shorter tail is
// dropped and counted in *dropped_tokens).
Result<std::vector<int64_t>> window_starts(int64_t n_tokens, const WindowSpec& spec, int64_t* dropped_tokens);

}  // namespace lowbit
