#include "model/tokenizer_train.h"

#include <algorithm>
#include <array>
#include <climits>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "model/tokenizer_bpe.h"
#include "model/tokenizer_sentencepiece.h"

namespace lowbit {

namespace {

constexpr int kFirstPiece = 259;  // after <unk>, <s>, </s> and the 256 byte tokens

enum class CharClass : uint8_t { kSpace, kNewline, kLetter, kDigit, kOther };

// llama2.c's character grouping (SentencePieceTokenizer::encode): a byte plus up to three
// following continuation bytes, so invalid UTF-8 still makes progress.
size_t group_end(std::string_view text, size_t i) {
  size_t j = i + 1;
  while (j < text.size() && (uint8_t(text[j]) & 0xC0) == 0x80 && j - i < 4) ++j;
  return j;
}

// Whether `s` is exactly one well-formed UTF-8 character (no overlong forms or surrogates), so
// it can be a vocabulary entry that tokenizer.json and GGUF writers accept.
bool is_one_utf8_character(std::string_view s) {
  const auto b = [&](size_t i) { return uint8_t(s[i]); };
  const auto cont = [&](size_t i, uint8_t lo = 0x80, uint8_t hi = 0xBF) { return b(i) >= lo && b(i) <= hi; };
  switch (s.size()) {
    case 1: return b(0) < 0x80;
    case 2: return b(0) >= 0xC2 && b(0) <= 0xDF && cont(1);
    case 3:
      if (b(0) == 0xE0) return cont(1, 0xA0) && cont(2);
      if (b(0) == 0xED) return cont(1, 0x80, 0x9F) && cont(2);
      return b(0) >= 0xE1 && b(0) <= 0xEF && cont(1) && cont(2);
    case 4:
      if (b(0) == 0xF0) return cont(1, 0x90) && cont(2) && cont(3);
      if (b(0) == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3);
      return b(0) >= 0xF1 && b(0) <= 0xF3 && cont(1) && cont(2) && cont(3);
    default: return false;
  }
}

// A group as the vocabulary spells it: the encoder looks a group that starts with a space up
// as "▁" + the rest.
std::string spelling_of(std::string_view group) {
  if (group[0] != ' ') return std::string(group);
  std::string s(kSpaceMarker);
  s.append(group.substr(1));
  return s;
}

CharClass class_of(std::string_view group) {
  const auto b = uint8_t(group[0]);
  if (b == ' ' || group == kSpaceMarker) return CharClass::kSpace;
  if (b == '\n') return CharClass::kNewline;
  if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b >= 0x80) return CharClass::kLetter;
  if (b >= '0' && b <= '9') return CharClass::kDigit;
  return CharClass::kOther;
}

// Symbols during training: >= 0 a mergeable token (internal id: characters first, then merges
// in rank order), < 0 the byte fallback token of byte -(s + 1), which never merges.
int byte_symbol(uint8_t byte) { return -1 - int(byte); }

uint64_t pair_key(int left, int right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }
int key_left(uint64_t key) { return int(uint32_t(key >> 32)); }
int key_right(uint64_t key) { return int(uint32_t(key)); }

struct SymbolsHash {
  size_t operator()(const std::vector<int>& v) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the ids
    for (int x : v) h = (h ^ uint64_t(uint32_t(x))) * 1099511628211ull;
    return size_t(h);
  }
};

struct Word {
  std::vector<int> symbols;
  int64_t count = 0;
};

struct Merge {
  int rank;    // lower merges first (the token's score is -rank)
  int merged;  // internal id of the result
};

class Trainer {
 public:
  explicit Trainer(const BpeTrainOptions& options) : options_(options) {}

  Result<BpeTrainResult> run(const std::vector<std::string>& documents);

 private:
  void choose_alphabet(const std::vector<std::string>& documents);
  void collect_words(const std::vector<std::string>& documents);
  void count_initial_pairs();
  bool learn_one_merge();
  void add_token(const std::string& text, int rank);
  // The encoder's greedy loop on one word: the pair whose result ranks lowest, leftmost first.
  void merge_greedily(std::vector<int>& symbols) const;
  void resegment(int word);
  int final_id(int symbol) const;
  BpeTrainResult finish();

  const BpeTrainOptions& options_;
  BpeTrainResult result_;
  std::vector<std::string> texts_;  // internal id -> text ("▁" for a space)
  std::unordered_map<std::string, int> index_;
  int characters_ = 0;  // internal ids [0, characters_) are the base characters
  std::vector<int> rank_of_;  // internal id -> merge rank (-1 for characters)
  std::vector<Word> words_;
  std::vector<std::vector<int>> initial_symbols_;  // with keep_word_pieces
  std::unordered_map<uint64_t, Merge> table_;      // pair -> what it merges into (encoder semantics)
  std::unordered_map<uint64_t, int64_t> pair_count_;
  std::unordered_map<uint64_t, std::vector<int>> pair_words_;  // may hold stale or repeated ids
  std::unordered_set<uint64_t> banned_;
};

void Trainer::choose_alphabet(const std::vector<std::string>& documents) {
  std::unordered_map<std::string, int64_t> counts;
  std::array<int64_t, 128> ascii{};
  for (const std::string& doc : documents) {
    if (doc.empty()) continue;
    ++ascii[' '];  // the dummy prefix
    for (size_t i = 0; i < doc.size();) {
      const size_t j = group_end(doc, i);
      if (j == i + 1 && uint8_t(doc[i]) < 0x80) ++ascii[uint8_t(doc[i])];
      else ++counts[spelling_of(std::string_view(doc).substr(i, j - i))];
      result_.characters += 1;
      i = j;
    }
  }
  for (int c = 0; c < 128; ++c)
    if (ascii[size_t(c)] > 0) counts[spelling_of(std::string(1, char(c)))] += ascii[size_t(c)];
  std::vector<std::pair<std::string, int64_t>> candidates;
  for (auto& [text, n] : counts)
    if (text == kSpaceMarker || is_one_utf8_character(text)) candidates.emplace_back(text, n);
  std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    const bool sa = a.first == kSpaceMarker, sb = b.first == kSpaceMarker;  // "▁" always first
    if (sa != sb) return sa;
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  // Characters take at most half the learned room, so a text with a long tail of rare
  // characters (or binary junk) still leaves room for merges; the rest fall back to bytes.
  const size_t room = std::max<size_t>(1, size_t(options_.vocab_size - kFirstPiece) / 2);
  if (candidates.size() > room) candidates.resize(room);
  for (auto& [text, n] : candidates) add_token(text, -1);
  characters_ = int(texts_.size());
}

void Trainer::add_token(const std::string& text, int rank) {
  index_.emplace(text, int(texts_.size()));
  texts_.push_back(text);
  rank_of_.push_back(rank);
}

void Trainer::collect_words(const std::vector<std::string>& documents) {
  struct Group {
    size_t begin, end;  // in the document; the dummy prefix is the empty range at 0
    CharClass cls;
  };
  std::unordered_map<std::vector<int>, int, SymbolsHash> word_index;
  std::vector<Group> groups;
  std::vector<int> key;
  auto append_symbols = [&](std::string_view group) {
    auto it = index_.find(spelling_of(group));
    if (it != index_.end()) key.push_back(it->second);
    else
      for (char c : group) key.push_back(byte_symbol(uint8_t(c)));
  };
  for (const std::string& doc : documents) {
    if (doc.empty()) continue;  // the encoder gives no tokens (not even the dummy prefix)
    ++result_.documents;
    if (options_.keep_word_pieces) result_.document_words.emplace_back();
    groups.clear();
    groups.push_back({0, 0, CharClass::kSpace});
    for (size_t i = 0; i < doc.size();) {
      const size_t j = group_end(doc, i);
      groups.push_back({i, j, class_of(std::string_view(doc).substr(i, j - i))});
      i = j;
    }
    auto text_of = [&](const Group& g) {
      return g.end == 0 ? std::string_view(" ") : std::string_view(doc).substr(g.begin, g.end - g.begin);
    };
    const size_t n = groups.size();
    for (size_t i = 0; i < n;) {
      const size_t start = i;
      CharClass cls = groups[i].cls;
      if (cls == CharClass::kSpace) {
        const bool attaches =
            i + 1 < n && groups[i + 1].cls != CharClass::kSpace && groups[i + 1].cls != CharClass::kNewline;
        if (attaches) cls = groups[++i].cls;
      }
      ++i;
      if (cls != CharClass::kSpace)
        while (i < n && groups[i].cls == cls) ++i;
      key.clear();
      for (size_t g = start; g < i; ++g) append_symbols(text_of(groups[g]));
      auto [it, inserted] = word_index.emplace(key, int(words_.size()));
      if (inserted) words_.push_back({key, 0});
      words_[size_t(it->second)].count += 1;
      ++result_.words;
      if (options_.keep_word_pieces) result_.document_words.back().push_back(it->second);
    }
  }
  result_.distinct_words = int64_t(words_.size());
  if (options_.keep_word_pieces)
    for (const Word& w : words_) initial_symbols_.push_back(w.symbols);
}

void Trainer::count_initial_pairs() {
  for (size_t w = 0; w < words_.size(); ++w) {
    const std::vector<int>& s = words_[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      if (s[i] < 0 || s[i + 1] < 0) continue;
      const uint64_t k = pair_key(s[i], s[i + 1]);
      pair_count_[k] += words_[w].count;
      std::vector<int>& holders = pair_words_[k];
      if (holders.empty() || holders.back() != int(w)) holders.push_back(int(w));
    }
  }
}

void Trainer::merge_greedily(std::vector<int>& s) const {
  for (;;) {
    int best = -1, best_rank = INT_MAX, merged = -1;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      if (s[i] < 0 || s[i + 1] < 0) continue;
      auto it = table_.find(pair_key(s[i], s[i + 1]));
      if (it != table_.end() && it->second.rank < best_rank)
        best = int(i), best_rank = it->second.rank, merged = it->second.merged;
    }
    if (best < 0) return;
    s[size_t(best)] = merged;
    s.erase(s.begin() + best + 1);
  }
}

void Trainer::resegment(int w) {
  Word& word = words_[size_t(w)];
  std::vector<int> updated = word.symbols;
  merge_greedily(updated);
  if (updated == word.symbols) return;
  auto pairs_of = [](const std::vector<int>& s) {
    std::vector<uint64_t> keys;
    for (size_t i = 0; i + 1 < s.size(); ++i)
      if (s[i] >= 0 && s[i + 1] >= 0) keys.push_back(pair_key(s[i], s[i + 1]));
    return keys;
  };
  const std::vector<uint64_t> before = pairs_of(word.symbols), after = pairs_of(updated);
  for (uint64_t k : before) {
    auto it = pair_count_.find(k);
    if ((it->second -= word.count) == 0) pair_count_.erase(it);
  }
  for (uint64_t k : after) {
    pair_count_[k] += word.count;
    if (std::find(before.begin(), before.end(), k) == before.end()) {
      std::vector<int>& holders = pair_words_[k];
      if (holders.empty() || holders.back() != w) holders.push_back(w);
    }
  }
  word.symbols = std::move(updated);
}

bool Trainer::learn_one_merge() {
  for (;;) {
    // The most frequent pair; ties by the bytes of the left, then the right token.
    uint64_t best = 0;
    int64_t best_count = 0;
    for (const auto& [k, n] : pair_count_) {
      if (n < best_count || banned_.count(k)) continue;
      if (n == best_count) {
        const int l = key_left(k), r = key_right(k), bl = key_left(best), br = key_right(best);
        const int c = texts_[size_t(l)].compare(texts_[size_t(bl)]);
        if (c > 0 || (c == 0 && texts_[size_t(r)].compare(texts_[size_t(br)]) >= 0)) continue;
      }
      best = k, best_count = n;
    }
    if (best_count == 0) return false;
    const std::string text = texts_[size_t(key_left(best))] + texts_[size_t(key_right(best))];
    // Never reached with the word rules above (such a pair would already merge, and "<s>" or
    // "<0x41>" mix character classes); kept so a surprise cannot loop forever.
    if (index_.count(text) || text == "<unk>" || text == "<s>" || text == "</s>" || parse_byte_token(text) >= 0) {
      banned_.insert(best);
      continue;
    }
    const int t = int(texts_.size());
    const int rank = t - characters_;
    add_token(text, rank);
    // Every split of the new token into two tokens merges into it (SentencePiece scores).
    std::vector<uint64_t> new_pairs;
    for (size_t k = 1; k < text.size(); ++k) {
      auto l = index_.find(text.substr(0, k)), r = index_.find(text.substr(k));
      if (l == index_.end() || r == index_.end()) continue;
      table_[pair_key(l->second, r->second)] = {rank, t};
      new_pairs.push_back(pair_key(l->second, r->second));
    }
    // Older tokens that split into the new one plus another token: those pairs merge now too.
    for (int u = characters_; u < t; ++u) {
      const std::string& ut = texts_[size_t(u)];
      if (ut.size() <= text.size()) continue;
      if (ut.compare(0, text.size(), text) == 0)
        if (auto s = index_.find(ut.substr(text.size())); s != index_.end())
          table_[pair_key(t, s->second)] = {rank_of_[size_t(u)], u};
      if (ut.compare(ut.size() - text.size(), text.size(), text) == 0)
        if (auto s = index_.find(ut.substr(0, ut.size() - text.size())); s != index_.end())
          table_[pair_key(s->second, t)] = {rank_of_[size_t(u)], u};
    }
    std::vector<int> affected;
    for (uint64_t k : new_pairs) {
      auto it = pair_words_.find(k);
      if (it == pair_words_.end()) continue;
      affected.insert(affected.end(), it->second.begin(), it->second.end());
      pair_words_.erase(it);  // no word holds a pair that merges once these are redone
    }
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    for (int w : affected) resegment(w);
    return true;
  }
}

int Trainer::final_id(int symbol) const {
  if (symbol < 0) return 3 + (-1 - symbol);
  const int merges = int(texts_.size()) - characters_;
  return symbol < characters_ ? kFirstPiece + merges + symbol : kFirstPiece + (symbol - characters_);
}

BpeTrainResult Trainer::finish() {
  BpeTrainResult& r = result_;
  const int merges = int(texts_.size()) - characters_;
  r.base_characters = characters_;
  r.merges = merges;
  Vocabulary& v = r.vocab;
  v.kind = Vocabulary::Kind::kSentencePiece;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {token_type::kUnknown, token_type::kControl, token_type::kControl};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(fmt::format("<0x{:02X}>", b));
    v.types.push_back(token_type::kByte);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  for (int m = 0; m < merges; ++m) {
    v.tokens.push_back(texts_[size_t(characters_ + m)]);
    v.scores.push_back(-float(m));
    v.types.push_back(token_type::kNormal);
  }
  for (int c = 0; c < characters_; ++c) {
    v.tokens.push_back(texts_[size_t(c)]);
    v.scores.push_back(-float(merges + c));  // below every merge; no merge makes a character
    v.types.push_back(token_type::kNormal);
  }
  v.unk_id = 0, v.bos_id = 1, v.eos_id = 2;
  v.add_space_prefix = true;
  if (options_.keep_word_pieces) {
    auto to_final = [&](const std::vector<int>& s) {
      std::vector<int> ids;
      for (int x : s) ids.push_back(final_id(x));
      return ids;
    };
    for (size_t w = 0; w < words_.size(); ++w) {
      r.word_symbols.push_back(to_final(initial_symbols_[w]));
      r.word_pieces.push_back(to_final(words_[w].symbols));
    }
  }
  return std::move(r);
}

Result<BpeTrainResult> Trainer::run(const std::vector<std::string>& documents) {
  if (options_.vocab_size < kMinTrainedVocab || options_.vocab_size > kMaxTrainedVocab)
    return error(ErrorCode::kInvalidArgument,
                 "vocabulary size {} is outside [{}, {}] (it holds <unk>, <s>, </s>, 256 byte tokens and \"▁\" "
                 "before any learned piece)",
                 options_.vocab_size, kMinTrainedVocab, kMaxTrainedVocab);
  choose_alphabet(documents);
  if (result_.characters == 0) return error(ErrorCode::kInvalidArgument, "no text to train a tokenizer on");
  collect_words(documents);
  count_initial_pairs();
  while (kFirstPiece + int(texts_.size()) < options_.vocab_size && learn_one_merge()) {
  }
  return finish();
}

}  // namespace

Result<BpeTrainResult> train_bpe_tokenizer(const std::vector<std::string>& documents, const BpeTrainOptions& options) {
  Trainer trainer(options);
  return trainer.run(documents);
}

std::vector<std::string> split_paragraphs(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\n\n", pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view p = text.substr(pos, end - pos);
    while (!p.empty() && p.front() == '\n') p.remove_prefix(1);
    while (!p.empty() && p.back() == '\n') p.remove_suffix(1);
    if (!p.empty()) out.emplace_back(p);
    pos = end + 2;
  }
  return out;
}

}  // namespace lowbit
