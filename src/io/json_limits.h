// Limits on untrusted JSON (config.json, tokenizer.json, safetensors headers), checked before
// the text is parsed. nlohmann::json parses and destroys deep documents iteratively, but dump()
// (used in error messages and to keep sub-objects as text) recurses once per level, so a file
// of nothing but '[' overflows the stack. Real files nest fewer than 10 levels; 512 leaves room
// for generated ones (the tokenizer tests nest 200) at a few hundred KiB of stack.
#pragma once

#include <cstdint>
#include <string_view>

namespace lowbit {

inline constexpr int kMaxJsonDepth = 512;
// JSON files read whole into memory (config.json, tokenizer.json, the shard index): real ones are
// at most tens of MiB.
inline constexpr uint64_t kMaxJsonFileBytes = 512ull << 20;

// True when no array or object in `text` nests deeper than `max_depth` (brackets inside strings
// do not count). Linear in the text; malformed JSON is left for the parser to report.
inline bool json_depth_within(std::string_view text, int max_depth = kMaxJsonDepth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

}  // namespace lowbit
