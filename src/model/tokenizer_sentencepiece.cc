#include "model/tokenizer_sentencepiece.h"

#include <algorithm>

#include <fmt/format.h>

namespace lowbit {

namespace {

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  for (size_t pos = 0;;) {
    size_t hit = s.find(from, pos);
    if (hit == std::string_view::npos) {
      out.append(s.substr(pos));
      return out;
    }
    out.append(s.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
}

// Types as check_vocabulary() would fill them, for vocabularies that have none yet.
int32_t type_of(const Vocabulary& v, size_t id) {
  if (!v.types.empty()) return v.types[id];
  if (int(id) == v.unk_id) return token_type::kUnknown;
  if (int(id) == v.bos_id || int(id) == v.eos_id) return token_type::kControl;
  if (v.kind == Vocabulary::Kind::kSentencePiece && parse_byte_token(v.tokens[id]) >= 0) return token_type::kByte;
  return token_type::kNormal;
}

bool mergeable(int32_t type) { return type == token_type::kNormal || type == token_type::kUserDefined; }

int code_points(std::string_view s) {
  return int(std::count_if(s.begin(), s.end(), [](char c) { return (uint8_t(c) & 0xC0) != 0x80; }));
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> SentencePieceTokenizer::create(Vocabulary vocab, const std::string& source) {
  if (vocab.kind != Vocabulary::Kind::kSentencePiece)
    return error(ErrorCode::kInternal, "{}: not a SentencePiece vocabulary", source);
  LOWBIT_RETURN_IF_ERROR(check_vocabulary(vocab, source));
  std::unique_ptr<SentencePieceTokenizer> tok(new SentencePieceTokenizer());
  tok->index_ = build_token_index(vocab.tokens);
  if (!vocab.merges.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(tok->merges_, MergeTable::from_ranked_merges(vocab, tok->index_, source));
  } else if (!vocab.scores.empty()) {
    tok->merges_ = MergeTable::from_scores(vocab, tok->index_);
  } else {
    return error(ErrorCode::kFormat, "{}: a SentencePiece vocabulary needs scores or merges", source);
  }
  // Byte fallback only through tokens typed as bytes (a tokenizer.json without byte_fallback has
  // none, and Hugging Face then gives UNK).
  for (int b = 0; b < 256; ++b) {
    const int id = find_token(tok->index_, fmt::format("<0x{:02X}>", b));
    tok->byte_ids_[size_t(b)] = id >= 0 && vocab.types[size_t(id)] == token_type::kByte ? id : -1;
  }
  tok->decoded_.resize(vocab.tokens.size());
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const std::string& text = vocab.tokens[id];
    switch (vocab.types[id]) {
      case token_type::kControl:
      case token_type::kUnused: break;  // BOS/EOS print nothing
      case token_type::kByte: {
        const int byte = parse_byte_token(text);
        tok->decoded_[id] = byte >= 0 ? std::string(1, char(byte)) : text;
        break;
      }
      case token_type::kUnknown:
      case token_type::kUserDefined: tok->decoded_[id] = text; break;
      default: tok->decoded_[id] = replace_all(text, kSpaceMarker, " ");
    }
  }
  tok->vocab_ = std::move(vocab);
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

// Appends the token for one character (spelled with "▁" for a space), or its byte tokens when
// the vocabulary lacks it (UNK for a byte without a token), as llama2.c does.
void SentencePieceTokenizer::lookup_or_bytes(std::string_view character, std::vector<int>& out) const {
  int id;
  if (character[0] == ' ') {
    std::string key(kSpaceMarker);
    key.append(character.substr(1));
    id = find_token(index_, key);
  } else {
    id = find_token(index_, character);
  }
  if (id >= 0) {
    out.push_back(id);
    return;
  }
  for (char c : character) {
    int byte_id = byte_ids_[uint8_t(c)];
    if (byte_id < 0) byte_id = vocab_.unk_id;
    if (byte_id >= 0) out.push_back(byte_id);
  }
}

std::vector<int> SentencePieceTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int> ids;
  if (add_bos && vocab_.bos_id >= 0) ids.push_back(vocab_.bos_id);
  if (text.empty()) return ids;  // llama2.c adds the dummy prefix only to non-empty text
  std::vector<int> symbols;
  symbols.reserve(text.size() + 1);
  if (vocab_.add_space_prefix) lookup_or_bytes(" ", symbols);
  // llama2.c's grouping: a byte plus up to three following continuation bytes is one character
  // (so invalid UTF-8 still makes progress and falls back to bytes).
  for (size_t i = 0; i < text.size();) {
    size_t j = i + 1;
    while (j < text.size() && (uint8_t(text[j]) & 0xC0) == 0x80 && j - i < 4) ++j;
    lookup_or_bytes(text.substr(i, j - i), symbols);
    i = j;
  }
  merges_.apply(symbols);
  ids.insert(ids.end(), symbols.begin(), symbols.end());
  return ids;
}

std::string SentencePieceTokenizer::decode_token(int previous, int id) const {
  if (id < 0 || id >= vocab_size()) return {};  // e.g. a model's padded vocabulary rows
  const std::string& text = vocab_.tokens[size_t(id)];
  const std::string& out = decoded_[size_t(id)];
  // llama2.c drops the dummy-prefix space of the first word (not a byte token's 0x20).
  if (previous >= 0 && previous == vocab_.bos_id && text.starts_with(kSpaceMarker) && !out.empty() &&
      out[0] == ' ')
    return out.substr(1);
  return out;
}

std::vector<std::string> derive_merges_from_scores(const Vocabulary& vocab) {
  const TokenIndex index = build_token_index(vocab.tokens);
  struct Entry {
    float score;
    int left_chars, right_chars, left, right;
  };
  std::vector<Entry> entries, local;
  for (size_t t = 0; t < vocab.tokens.size(); ++t) {
    const std::string_view text = vocab.tokens[t];
    if (!mergeable(type_of(vocab, t)) || find_token(index, text) != int(t)) continue;
    // Without scores Hugging Face ranks by id (lower first); -id keeps "higher merges first".
    const float score = vocab.scores.empty() ? -float(t) : vocab.scores[t];
    local.clear();
    for (size_t k = 1; k < text.size(); ++k) {
      if ((uint8_t(text[k]) & 0xC0) == 0x80) continue;  // split at character boundaries only
      const int left = find_token(index, text.substr(0, k)), right = find_token(index, text.substr(k));
      if (left >= 0 && right >= 0)
        local.push_back({score, code_points(text.substr(0, k)), code_points(text.substr(k)), left, right});
    }
    std::sort(local.begin(), local.end(),
              [](const Entry& a, const Entry& b) { return std::tie(a.left, a.right) < std::tie(b.left, b.right); });
    entries.insert(entries.end(), local.begin(), local.end());
  }
  // Python's sorted(..., reverse=True) is stable, so equal keys keep token-id order.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.score, a.left_chars, a.right_chars) > std::tie(b.score, b.left_chars, b.right_chars);
  });
  std::vector<std::string> merges;
  merges.reserve(entries.size());
  for (const Entry& e : entries) merges.push_back(vocab.tokens[size_t(e.left)] + " " + vocab.tokens[size_t(e.right)]);
  return merges;
}

std::vector<float> derive_scores_from_merges(const Vocabulary& vocab) {
  const size_t n = vocab.tokens.size();
  const TokenIndex index = build_token_index(vocab.tokens);
  std::vector<float> scores(n, 0.0f);
  std::vector<bool> made(n, false);
  std::string joined;
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string& m = vocab.merges[rank];
    for (size_t p = m.find(' '); p != std::string::npos; p = m.find(' ', p + 1)) {
      if (find_token(index, std::string_view(m).substr(0, p)) < 0 ||
          find_token(index, std::string_view(m).substr(p + 1)) < 0)
        continue;
      joined.assign(m, 0, p);
      joined.append(m, p + 1);
      const int t = find_token(index, joined);
      if (t >= 0 && !made[size_t(t)]) scores[size_t(t)] = -float(rank), made[size_t(t)] = true;
      break;
    }
  }
  for (size_t t = 0; t < n; ++t)
    if (!made[t] && type_of(vocab, t) == token_type::kNormal) scores[t] = -1e10f;
  return scores;
}

std::string spaces_to_markers(std::string_view text) { return replace_all(text, " ", kSpaceMarker); }
std::string markers_to_spaces(std::string_view text) { return replace_all(text, kSpaceMarker, " "); }

}  // namespace lowbit
