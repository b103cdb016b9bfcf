#include "eval/token_data.h"

#include <cstring>

#include "io/mapped_file.h"

namespace lowbit {

Result<std::vector<int32_t>> read_token_file(const std::string& path, int vocab_size) {
  LOWBIT_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  if (file->size() == 0) return error(ErrorCode::kFormat, "{}: empty token file", path);
  if (file->size() % 4 != 0)
    return error(ErrorCode::kFormat, "{}: {} bytes is not a whole number of int32 tokens", path, file->size());
  std::vector<int32_t> tokens(file->size() / 4);
  std::memcpy(tokens.data(), file->data(), file->size());
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab_size)
      return error(ErrorCode::kFormat, "{}: token {} at position {} is outside the vocabulary [0, {})", path,
                   tokens[i], i, vocab_size);
  return tokens;
}

Result<std::vector<int32_t>> tokenize_text_file(const std::string& path, const Tokenizer& tokenizer) {
  LOWBIT_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  std::vector<int32_t> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    std::string paragraph = text.substr(pos, end - pos);
    // Trim surrounding newlines so "\n\n\n" separators do not produce empty paragraphs.
    while (!paragraph.empty() && paragraph.front() == '\n') paragraph.erase(paragraph.begin());
    while (!paragraph.empty() && paragraph.back() == '\n') paragraph.pop_back();
    if (!paragraph.empty()) {
      std::vector<int> ids = tokenizer.encode(paragraph, /*add_bos=*/true);
      out.insert(out.end(), ids.begin(), ids.end());
    }
    pos = end + 2;
  }
  if (out.empty()) return error(ErrorCode::kFormat, "{}: no text to tokenize", path);
  return out;
}

Result<std::vector<int64_t>> window_starts(int64_t n_tokens, const WindowSpec& spec, int64_t* dropped_tokens) {
  if (spec.length < 2) return error(ErrorCode::kInvalidArgument, "window length {} must be at least 2", spec.length);
  const int64_t stride = spec.stride > 0 ? spec.stride : spec.length;
  if (n_tokens < spec.length)
    return error(ErrorCode::kInvalidArgument, "{} tokens are fewer than one window of {}", n_tokens, spec.length);
  std::vector<int64_t> starts;
  for (int64_t s = 0; s + spec.length <= n_tokens; s += stride) {
    if (spec.max_windows > 0 && int64_t(starts.size()) >= spec.max_windows) break;
    starts.push_back(s);
  }
  if (dropped_tokens) *dropped_tokens = n_tokens - (starts.back() + spec.length);
  return starts;
}

}  // namespace lowbit
