#include "model/tokenizer_bpe.h"

#include <algorithm>
#include <climits>
#include <cmath>

namespace lowbit {

// ---------------------------------------------------------------------------------------------
// Vocabulary helpers

TokenIndex build_token_index(const std::vector<std::string>& tokens) {
  TokenIndex index;
  index.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) index.emplace(tokens[i], int(i));  // keeps the first
  return index;
}

int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

Status check_vocabulary(Vocabulary& v, const std::string& source) {
  const size_t n = v.tokens.size();
  if (n == 0) return error(ErrorCode::kFormat, "{}: the vocabulary is empty", source);
  if (n > size_t(INT32_MAX))
    return error(ErrorCode::kResource, "{}: {} tokens is more than lowbit supports", source, n);
  if (!v.scores.empty() && v.scores.size() != n)
    return error(ErrorCode::kFormat, "{}: the vocabulary has {} tokens but {} scores", source, n,
                 v.scores.size());
  if (!v.types.empty() && v.types.size() != n)
    return error(ErrorCode::kFormat, "{}: the vocabulary has {} tokens but {} token types", source, n,
                 v.types.size());
  for (size_t i = 0; i < v.scores.size(); ++i)
    if (std::isnan(v.scores[i])) return error(ErrorCode::kFormat, "{}: token {} has a NaN score", source, i);
  const std::pair<const char*, int> ids[] = {{"BOS", v.bos_id}, {"EOS", v.eos_id}, {"UNK", v.unk_id}};
  for (auto [name, id] : ids)
    if (id < -1 || id >= int64_t(n))
      return error(ErrorCode::kFormat, "{}: {} id {} is outside the vocabulary ({} tokens)", source, name, id, n);
  if (v.types.empty()) {
    v.types.assign(n, token_type::kNormal);
    for (size_t i = 0; i < n; ++i)
      if (v.kind == Vocabulary::Kind::kSentencePiece && parse_byte_token(v.tokens[i]) >= 0)
        v.types[i] = token_type::kByte;
    if (v.bos_id >= 0) v.types[v.bos_id] = token_type::kControl;
    if (v.eos_id >= 0) v.types[v.eos_id] = token_type::kControl;
    if (v.unk_id >= 0) v.types[v.unk_id] = token_type::kUnknown;
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Merge table

Result<MergeTable> MergeTable::from_ranked_merges(const Vocabulary& vocab, const TokenIndex& index,
                                                  const std::string& source) {
  MergeTable table;
  table.pairs_.reserve(vocab.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string& m = vocab.merges[rank];
    int left = -1, right = -1;
    size_t split = std::string::npos;
    for (size_t p = m.find(' '); p != std::string::npos; p = m.find(' ', p + 1)) {
      left = find_token(index, std::string_view(m).substr(0, p));
      right = find_token(index, std::string_view(m).substr(p + 1));
      if (left >= 0 && right >= 0) {
        split = p;
        break;
      }
    }
    if (split == std::string::npos)
      return error(ErrorCode::kFormat, "{}: merge {} (\"{}\") does not name two vocabulary tokens", source,
                   rank, m);
    joined.assign(m, 0, split);
    joined.append(m, split + 1);
    int merged = find_token(index, joined);
    if (merged < 0)
      return error(ErrorCode::kFormat, "{}: merge {} (\"{}\") makes \"{}\", which is not in the vocabulary",
                   source, rank, m, joined);
    table.pairs_[key(left, right)] = Merge{-double(rank), merged};  // a repeated pair: last rank wins
  }
  return table;
}

MergeTable MergeTable::from_scores(const Vocabulary& vocab, const TokenIndex& index) {
  MergeTable table;
  if (vocab.scores.empty()) return table;
  for (size_t t = 0; t < vocab.tokens.size(); ++t) {
    const int type = vocab.types.empty() ? token_type::kNormal : vocab.types[t];
    if (type != token_type::kNormal && type != token_type::kUserDefined) continue;
    const std::string_view text = vocab.tokens[t];
    if (find_token(index, text) != int(t)) continue;  // a duplicate spelling is unreachable
    if (!(vocab.scores[t] > -1e10f)) continue;
    for (size_t k = 1; k < text.size(); ++k) {
      int left = find_token(index, text.substr(0, k));
      if (left < 0) continue;
      int right = find_token(index, text.substr(k));
      if (right >= 0) table.pairs_[key(left, right)] = Merge{double(vocab.scores[t]), int(t)};
    }
  }
  return table;
}

void MergeTable::apply(std::vector<int>& sym) const {
  const int n = int(sym.size());
  if (n < 2 || pairs_.empty()) return;
  // Symbols form a linked list over their original slots; a merge keeps the left slot and
  // removes the right one (its id becomes -1). Slot order equals text order, so "leftmost" is
  // "smallest left slot".
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1;
  struct Candidate {
    double priority;
    int left, right, left_id, right_id, merged;
  };
  auto lower = [](const Candidate& a, const Candidate& b) {
    return a.priority != b.priority ? a.priority < b.priority : a.left > b.left;
  };
  std::vector<Candidate> heap;
  heap.reserve(size_t(n));
  auto push = [&](int l, int r) {
    if (l < 0 || r >= n) return;
    auto it = pairs_.find(key(sym[l], sym[r]));
    if (it == pairs_.end()) return;
    heap.push_back({it->second.priority, l, r, sym[l], sym[r], it->second.merged});
    std::push_heap(heap.begin(), heap.end(), lower);
  };
  for (int i = 0; i + 1 < n; ++i) push(i, i + 1);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), lower);
    const Candidate c = heap.back();
    heap.pop_back();
    // Stale when either side was merged away or changed since the candidate was pushed.
    if (sym[c.left] != c.left_id || sym[c.right] != c.right_id || next[c.left] != c.right) continue;
    sym[c.left] = c.merged;
    sym[c.right] = -1;
    next[c.left] = next[c.right];
    if (next[c.left] < n) prev[next[c.left]] = c.left;
    push(prev[c.left], c.left);
    push(c.left, next[c.left]);
  }
  sym.erase(std::remove(sym.begin(), sym.end(), -1), sym.end());
}

// ---------------------------------------------------------------------------------------------
// UTF-8 and character classes

uint32_t decode_utf8(std::string_view s, size_t pos, int* length) {
  const auto b0 = uint8_t(s[pos]);
  int len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
  *length = 1;
  if (len == 0 || pos + size_t(len) > s.size()) return len == 1 ? b0 : 0xFFFD;
  uint32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (int k = 1; k < len; ++k) {
    const auto b = uint8_t(s[pos + size_t(k)]);
    if ((b & 0xC0) != 0x80) return 0xFFFD;
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};  // reject overlong forms
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0xFFFD;
  *length = len;
  return cp;
}

static void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18)), out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
  }
}

namespace {

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

struct CharRange {
  uint32_t lo, hi;
  CharClass cls;
};
constexpr CharClass S = CharClass::kSpace, N = CharClass::kNumber, O = CharClass::kOther;
// Non-ASCII code points that are not letters: Unicode White_Space (\s), common \p{N} digits and
// number forms, and punctuation/symbols/marks/format characters ([^\s\p{L}\p{N}]) from the blocks
// that ordinary text uses. Sorted and disjoint. Anything absent is treated as a letter.
constexpr CharRange kCharRanges[] = {
    {0x85, 0x85, S},       {0xA0, 0xA0, S},       {0xA1, 0xA9, O},       {0xAB, 0xB1, O},
    {0xB2, 0xB3, N},       {0xB4, 0xB4, O},       {0xB6, 0xB8, O},       {0xB9, 0xB9, N},
    {0xBB, 0xBB, O},       {0xBC, 0xBE, N},       {0xBF, 0xBF, O},       {0xD7, 0xD7, O},
    {0xF7, 0xF7, O},       {0x300, 0x36F, O},     {0x37E, 0x37E, O},     {0x387, 0x387, O},
    {0x55A, 0x55F, O},     {0x589, 0x58A, O},     {0x591, 0x5C7, O},     {0x5F3, 0x5F4, O},
    {0x600, 0x61F, O},     {0x64B, 0x65F, O},     {0x660, 0x669, N},     {0x66A, 0x66D, O},
    {0x670, 0x670, O},     {0x6D4, 0x6D4, O},     {0x6D6, 0x6DC, O},     {0x6DE, 0x6E4, O},
    {0x6E7, 0x6ED, O},     {0x6F0, 0x6F9, N},     {0x7C0, 0x7C9, N},     {0x900, 0x903, O},
    {0x93A, 0x93C, O},     {0x93E, 0x94F, O},     {0x951, 0x957, O},     {0x962, 0x965, O},
    {0x966, 0x96F, N},     {0x970, 0x970, O},     {0x9E6, 0x9EF, N},     {0xE31, 0xE31, O},
    {0xE34, 0xE3A, O},     {0xE3F, 0xE3F, O},     {0xE47, 0xE4F, O},     {0xE50, 0xE59, N},
    {0xE5A, 0xE5B, O},     {0x1680, 0x1680, S},   {0x2000, 0x200A, S},   {0x200B, 0x2027, O},
    {0x2028, 0x2029, S},   {0x202A, 0x202E, O},   {0x202F, 0x202F, S},   {0x2030, 0x205E, O},
    {0x205F, 0x205F, S},   {0x2060, 0x206F, O},   {0x2070, 0x2070, N},   {0x2074, 0x2079, N},
    {0x207A, 0x207E, O},   {0x2080, 0x2089, N},   {0x208A, 0x208E, O},   {0x20A0, 0x20FF, O},
    {0x2103, 0x2103, O},   {0x2109, 0x2109, O},   {0x2116, 0x2117, O},   {0x2120, 0x2120, O},
    {0x2122, 0x2122, O},   {0x2150, 0x2182, N},   {0x2185, 0x2189, N},   {0x2190, 0x245F, O},
    {0x2460, 0x249B, N},   {0x249C, 0x24E9, O},   {0x24EA, 0x24FF, N},   {0x2500, 0x2775, O},
    {0x2776, 0x2793, N},   {0x2794, 0x2BFF, O},   {0x2E00, 0x2E7F, O},   {0x3000, 0x3000, S},
    {0x3001, 0x3004, O},   {0x3007, 0x3007, N},   {0x3008, 0x3020, O},   {0x3021, 0x3029, N},
    {0x302A, 0x3030, O},   {0x303D, 0x303D, O},   {0x30FB, 0x30FB, O},   {0xE000, 0xF8FF, O},
    {0xFE00, 0xFE19, O},   {0xFE30, 0xFE6F, O},   {0xFEFF, 0xFEFF, O},   {0xFF01, 0xFF0F, O},
    {0xFF10, 0xFF19, N},   {0xFF1A, 0xFF20, O},   {0xFF3B, 0xFF40, O},   {0xFF5B, 0xFF65, O},
    {0xFFE0, 0xFFEE, O},   {0xFFF9, 0xFFFD, O},   {0x1D100, 0x1D1FF, O}, {0x1F000, 0x1FAFF, O},
    {0xE0000, 0xE007F, O}, {0xE0100, 0xE01EF, O},
};

CharClass classify(uint32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::kLetter;
    if (cp >= '0' && cp <= '9') return CharClass::kNumber;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CharClass::kSpace;
    return CharClass::kOther;
  }
  auto it = std::upper_bound(std::begin(kCharRanges), std::end(kCharRanges), cp,
                             [](uint32_t c, const CharRange& r) { return c < r.lo; });
  if (it != std::begin(kCharRanges) && cp <= (it - 1)->hi) return (it - 1)->cls;
  return CharClass::kLetter;
}

struct CodePoint {
  size_t offset;
  uint32_t cp;
  CharClass cls;
};

// Emulates the pre-tokenizer regexes over decoded code points. Each method returns the end
// (exclusive code point index) of the match starting at i, trying the regex's alternatives in
// order as a backtracking regex engine would.
class Splitter {
 public:
  Splitter(std::string_view text, PreTokenizer kind) : kind_(kind) {
    for (size_t pos = 0; pos < text.size();) {
      int len = 1;
      uint32_t cp = decode_utf8(text, pos, &len);
      c_.push_back({pos, cp, classify(cp)});
      pos += size_t(len);
    }
    n_ = c_.size();
    c_.push_back({text.size(), 0, CharClass::kOther});  // sentinel: offset of the end
  }
  size_t size() const { return n_; }
  size_t offset(size_t i) const { return c_[i].offset; }
  size_t match(size_t i) const { return kind_ == PreTokenizer::kGpt2 ? match_gpt2(i) : match_llama3(i); }

 private:
  bool is(size_t i, CharClass k) const { return i < n_ && c_[i].cls == k; }
  bool letter(size_t i) const { return is(i, CharClass::kLetter); }
  bool number(size_t i) const { return is(i, CharClass::kNumber); }
  bool space(size_t i) const { return is(i, CharClass::kSpace); }
  bool other(size_t i) const { return is(i, CharClass::kOther); }
  bool newline(size_t i) const { return i < n_ && (c_[i].cp == '\r' || c_[i].cp == '\n'); }
  bool cp_is(size_t i, uint32_t cp) const { return i < n_ && c_[i].cp == cp; }
  size_t run(size_t i, CharClass k) const {
    while (is(i, k)) ++i;
    return i;
  }

  // 's|'t|'re|'ve|'m|'ll|'d  (case-insensitive for Llama-3/Qwen2); 0 when none matches.
  size_t contraction(size_t i, bool ignore_case) const {
    if (!cp_is(i, '\'')) return 0;
    auto at = [&](size_t k) -> uint32_t {
      uint32_t cp = k < n_ ? c_[k].cp : 0;
      return ignore_case && cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    };
    const uint32_t a = at(i + 1), b = at(i + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

  // \s+(?!\S)|\s+ : a whitespace run, leaving its last character to the next word when a
  // non-space follows (so " world" keeps its space).
  size_t whitespace(size_t i) const {
    const size_t j = run(i, CharClass::kSpace);
    if (j == n_) return j;
    return j - 1 > i ? j - 1 : j;
  }

  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  size_t match_gpt2(size_t i) const {
    if (size_t k = contraction(i, false)) return i + k;
    const size_t s = cp_is(i, ' ') ? i + 1 : i;  // " ?" then a run of one class
    for (CharClass k : {CharClass::kLetter, CharClass::kNumber, CharClass::kOther})
      if (is(i, k) || (s != i && is(s, k))) return run(is(i, k) ? i : s, k);
    return whitespace(i);
  }

  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
  // \s*[\r\n]+|\s+(?!\S)|\s+          (Qwen2: \p{N} instead of \p{N}{1,3})
  size_t match_llama3(size_t i) const {
    if (size_t k = contraction(i, true)) return i + k;
    if (letter(i)) return run(i, CharClass::kLetter);
    if (!newline(i) && !number(i) && letter(i + 1)) return run(i + 1, CharClass::kLetter);
    if (number(i)) {
      const size_t max_digits = kind_ == PreTokenizer::kQwen2 ? 1 : 3;
      size_t j = i;
      while (j - i < max_digits && number(j)) ++j;
      return j;
    }
    const size_t s = cp_is(i, ' ') && other(i + 1) ? i + 1 : i;
    if (other(s)) {
      size_t j = run(s, CharClass::kOther);
      while (newline(j)) ++j;
      return j;
    }
    const size_t j = run(i, CharClass::kSpace);
    for (size_t k = j; k > i; --k)
      if (newline(k - 1)) return k;  // \s*[\r\n]+ : through the run's last newline
    return whitespace(i);
  }

  PreTokenizer kind_;
  std::vector<CodePoint> c_;
  size_t n_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers

Result<PreTokenizer> parse_pre_tokenizer(std::string_view name, const std::string& source) {
  if (name == "gpt2" || name == "gpt-2" || name == "default") return PreTokenizer::kGpt2;
  if (name == "llama3" || name == "llama-bpe" || name == "llama-3") return PreTokenizer::kLlama3;
  if (name == "qwen2") return PreTokenizer::kQwen2;
  return error(ErrorCode::kUnsupported, "{}: pre-tokenizer \"{}\" is not supported (gpt2, llama3, qwen2 are)",
               source, name);
}

const char* pre_tokenizer_name(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::kGpt2: return "gpt2";
    case PreTokenizer::kLlama3: return "llama3";
    case PreTokenizer::kQwen2: return "qwen2";
  }
  return "gpt2";
}

const char* pre_tokenizer_regex(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::kGpt2:
      return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
    case PreTokenizer::kLlama3:
      return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    case PreTokenizer::kQwen2:
      return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  }
  return "";
}

std::vector<std::string_view> pre_tokenize(std::string_view text, PreTokenizer kind) {
  Splitter splitter(text, kind);
  std::vector<std::string_view> out;
  for (size_t i = 0; i < splitter.size();) {
    size_t end = std::max(splitter.match(i), i + 1);
    out.push_back(text.substr(splitter.offset(i), splitter.offset(end) - splitter.offset(i)));
    i = end;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// GPT-2 byte alphabet: printable Latin-1 bytes stand for themselves; the others are shifted
// to U+0100.. so every byte has a visible, non-space character.

static const std::array<uint16_t, 256>& byte_code_points() {
  static const std::array<uint16_t, 256> table = [] {
    std::array<uint16_t, 256> t{};
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      t[size_t(b)] = uint16_t(printable ? b : 256 + shifted++);
    }
    return t;
  }();
  return table;
}

const std::array<std::string, 256>& byte_level_alphabet() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    for (int b = 0; b < 256; ++b) append_utf8(t[size_t(b)], byte_code_points()[size_t(b)]);
    return t;
  }();
  return table;
}

int byte_level_byte(uint32_t cp) {
  static const std::array<int16_t, 512> inverse = [] {
    std::array<int16_t, 512> t;
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[byte_code_points()[size_t(b)]] = int16_t(b);
    return t;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

// ---------------------------------------------------------------------------------------------
// Byte-level BPE tokenizer

Result<std::unique_ptr<Tokenizer>> ByteLevelBpeTokenizer::create(Vocabulary vocab, const std::string& source) {
  if (vocab.kind != Vocabulary::Kind::kByteLevelBpe)
    return error(ErrorCode::kInternal, "{}: not a byte-level BPE vocabulary", source);
  LOWBIT_RETURN_IF_ERROR(check_vocabulary(vocab, source));
  std::unique_ptr<ByteLevelBpeTokenizer> tok(new ByteLevelBpeTokenizer());
  LOWBIT_ASSIGN_OR_RETURN(tok->pre_, parse_pre_tokenizer(vocab.pre_tokenizer, source));
  tok->ignore_merges_ = tok->pre_ == PreTokenizer::kLlama3;
  tok->index_ = build_token_index(vocab.tokens);
  LOWBIT_ASSIGN_OR_RETURN(tok->merges_, MergeTable::from_ranked_merges(vocab, tok->index_, source));
  for (int b = 0; b < 256; ++b) tok->byte_ids_[size_t(b)] = find_token(tok->index_, byte_level_alphabet()[size_t(b)]);
  tok->decoded_.resize(vocab.tokens.size());
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const std::string& text = vocab.tokens[id];
    std::string& out = tok->decoded_[id];
    if (vocab.types[id] == token_type::kControl || vocab.types[id] == token_type::kUnused)
      continue;  // BOS/EOS/specials print nothing
    if (vocab.types[id] == token_type::kUserDefined) {     // added tokens are stored as plain text
      out = text;
      continue;
    }
    for (size_t pos = 0; pos < text.size();) {
      int len = 1;
      const int byte = byte_level_byte(decode_utf8(text, pos, &len));
      if (byte >= 0) out += char(byte);
      else out.append(text, pos, size_t(len));  // not in the alphabet: keep it as written
      pos += size_t(len);
    }
  }
  tok->vocab_ = std::move(vocab);
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

std::vector<int> ByteLevelBpeTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int> ids;
  if (add_bos && vocab_.bos_id >= 0) ids.push_back(vocab_.bos_id);
  std::vector<int> symbols;
  std::string mapped;
  for (std::string_view piece : pre_tokenize(text, pre_)) {
    if (ignore_merges_) {
      mapped.clear();
      for (char c : piece) mapped += byte_level_alphabet()[uint8_t(c)];
      if (int id = find_token(index_, mapped); id >= 0) {
        ids.push_back(id);
        continue;
      }
    }
    symbols.clear();
    for (char c : piece) {
      int id = byte_ids_[uint8_t(c)];
      if (id < 0) id = vocab_.unk_id;  // a vocabulary missing part of the byte alphabet
      if (id >= 0) symbols.push_back(id);
    }
    merges_.apply(symbols);
    ids.insert(ids.end(), symbols.begin(), symbols.end());
  }
  return ids;
}

std::string ByteLevelBpeTokenizer::decode_token(int /*previous*/, int id) const {
  if (id < 0 || id >= vocab_size()) return {};  // e.g. a model's padded vocabulary rows
  return decoded_[size_t(id)];
}

}  // namespace lowbit
