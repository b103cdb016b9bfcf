#include "model/tokenizer_io.h"

#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/byte_reader.h"
#include "io/json_limits.h"
#include "io/mapped_file.h"
#include "model/tokenizer_bpe.h"
#include "model/tokenizer_sentencepiece.h"

namespace lowbit {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

Result<std::unique_ptr<Tokenizer>> make_tokenizer(Vocabulary vocab, const std::string& source) {
  switch (vocab.kind) {
    case Vocabulary::Kind::kSentencePiece: return SentencePieceTokenizer::create(std::move(vocab), source);
    case Vocabulary::Kind::kByteLevelBpe: return ByteLevelBpeTokenizer::create(std::move(vocab), source);
  }
  return error(ErrorCode::kInternal, "{}: unknown vocabulary kind", source);
}

// ---------------------------------------------------------------------------------------------
// llama2.c tokenizer.bin. Its ids are fixed by convention: UNK 0, BOS 1, EOS 2, and the export
// script writes BOS/EOS as "\n<s>\n" / "\n</s>\n" (so run.c prints them on lines of their own).

namespace {
constexpr int kLlama2cUnk = 0, kLlama2cBos = 1, kLlama2cEos = 2;

std::string strip_newlines(const std::string& s) {
  if (s.size() >= 2 && s.front() == '\n' && s.back() == '\n') return s.substr(1, s.size() - 2);
  return s;
}
}  // namespace

Result<std::unique_ptr<Tokenizer>> load_llama2c_tokenizer(const std::string& path, int expected_vocab_size) {
  LOWBIT_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  ByteReader reader(file->bytes(), path);
  LOWBIT_ASSIGN_OR_RETURN(const int32_t max_length, reader.read<int32_t>());
  if (max_length < 0) return error(ErrorCode::kFormat, "{}: max_token_length is negative ({})", path, max_length);
  Vocabulary v;
  while (reader.remaining() > 0) {
    const size_t id = v.tokens.size(), at = reader.offset();
    if (reader.remaining() < 8)
      return error(ErrorCode::kFormat, "{}: truncated: token {} at offset {} needs 8 header bytes but {} remain",
                   path, id, at, reader.remaining());
    const float score = *reader.read<float>();
    const int32_t length = *reader.read<int32_t>();
    if (length < 0)
      return error(ErrorCode::kFormat, "{}: token {} (offset {}) has negative length {}", path, id, at, length);
    if (length > max_length)
      return error(ErrorCode::kFormat, "{}: token {} (offset {}) has length {}, more than max_token_length {}",
                   path, id, at, length, max_length);
    if (uint64_t(length) > reader.remaining())
      return error(ErrorCode::kFormat, "{}: truncated: token {} (offset {}) declares {} bytes but {} remain", path,
                   id, at, length, reader.remaining());
    if (std::isnan(score)) return error(ErrorCode::kFormat, "{}: token {} has a NaN score", path, id);
    LOWBIT_ASSIGN_OR_RETURN(const std::string text, reader.read_string(uint64_t(length)));
    v.tokens.push_back(spaces_to_markers(text));
    v.scores.push_back(score);
  }
  const size_t n = v.tokens.size();
  if (expected_vocab_size > 0 && n != size_t(expected_vocab_size))
    return error(ErrorCode::kFormat, "{}: tokenizer has {} tokens but the model's vocab_size is {}", path, n,
                 expected_vocab_size);
  if (n <= size_t(kLlama2cEos))
    return error(ErrorCode::kFormat, "{}: tokenizer has {} tokens; llama2.c needs at least <unk>, <s>, </s>", path, n);
  v.kind = Vocabulary::Kind::kSentencePiece;
  v.unk_id = kLlama2cUnk, v.bos_id = kLlama2cBos, v.eos_id = kLlama2cEos;
  v.tokens[kLlama2cBos] = strip_newlines(v.tokens[kLlama2cBos]);
  v.tokens[kLlama2cEos] = strip_newlines(v.tokens[kLlama2cEos]);
  v.add_space_prefix = true;  // llama2.c always adds the dummy prefix
  // types are left empty: check_vocabulary() marks UNK, BOS/EOS and "<0xNN>" byte tokens.
  return make_tokenizer(std::move(v), path);
}

Status save_llama2c_tokenizer(const std::string& path, const Vocabulary& vocab) {
  if (vocab.kind != Vocabulary::Kind::kSentencePiece)
    return error(ErrorCode::kUnsupported, "{}: llama2.c tokenizer.bin holds SentencePiece-style vocabularies only",
                 path);
  Vocabulary v = vocab;
  LOWBIT_RETURN_IF_ERROR(check_vocabulary(v, path));
  if (v.bos_id != kLlama2cBos || v.eos_id != kLlama2cEos)
    return error(ErrorCode::kUnsupported, "{}: llama2.c fixes BOS at 1 and EOS at 2 but this vocabulary has {} and {}",
                 path, v.bos_id, v.eos_id);
  if (!v.add_space_prefix)
    return error(ErrorCode::kUnsupported, "{}: llama2.c always adds a dummy-prefix space; this vocabulary does not",
                 path);
  if (v.scores.empty()) {
    if (v.merges.empty())
      return error(ErrorCode::kInvalidArgument, "{}: the vocabulary has neither scores nor merges", path);
    v.scores = derive_scores_from_merges(v);
  }
  std::vector<uint8_t> bytes(sizeof(int32_t));
  int32_t max_length = 0;
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    std::string text = markers_to_spaces(v.tokens[id]);
    if (int(id) == kLlama2cBos || int(id) == kLlama2cEos) text = "\n" + text + "\n";
    if (text.size() > size_t(INT32_MAX))
      return error(ErrorCode::kInvalidArgument, "{}: token {} is too long", path, id);
    const auto length = int32_t(text.size());
    max_length = std::max(max_length, length);
    const size_t at = bytes.size();
    bytes.resize(at + 8 + text.size());
    std::memcpy(bytes.data() + at, &v.scores[id], 4);  // little-endian host (x86-64)
    std::memcpy(bytes.data() + at + 4, &length, 4);
    std::memcpy(bytes.data() + at + 8, text.data(), text.size());
  }
  std::memcpy(bytes.data(), &max_length, 4);
  return write_file_atomic(path, bytes);
}

// ---------------------------------------------------------------------------------------------
// Hugging Face tokenizer.json

namespace {

constexpr int64_t kMaxJsonVocab = int64_t(1) << 22;  // far above any real vocabulary (~262k)
constexpr int kMaxNesting = 8;                          // Sequence inside Sequence inside ...
constexpr const char* kBosNames[] = {"<s>", "<|begin_of_text|>", "<bos>"};
constexpr const char* kEosNames[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"};
// tiktoken's spelling of the GPT-2 split (same language as pre_tokenizer_regex(kGpt2)).
constexpr const char* kTiktokenGpt2Regex = R"('(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// What the normalizer and pre-tokenizer say about how text reaches the BPE model.
struct TextPipeline {
  bool prepend_marker = false;  // normalizer Prepend("▁") or Metaspace prepend_scheme always/first
  bool space_to_marker = false;  // normalizer Replace(" " -> "▁") or Metaspace
  bool byte_level = false;
  bool byte_level_regex = false;  // ByteLevel's own GPT-2 split (use_regex)
  std::string split_regex;        // a Split pre-tokenizer's regex
};

bool is_null_or_empty(const json& j) { return j.is_null() || (j.is_string() && j.get<std::string>().empty()); }

Status read_normalizer(const json& node, TextPipeline& p, const std::string& path, int depth = 0) {
  if (node.is_null()) return Status::Ok();
  const std::string type = node.value("type", "");
  if (type == "Sequence" && depth < kMaxNesting) {
    for (const json& child : node.at("normalizers"))
      LOWBIT_RETURN_IF_ERROR(read_normalizer(child, p, path, depth + 1));
    return Status::Ok();
  }
  if (type == "Prepend" && node.value("prepend", "") == kSpaceMarker) return p.prepend_marker = true, Status::Ok();
  if (type == "Replace" && node.at("pattern").value("String", "") == " " && node.value("content", "") == kSpaceMarker)
    return p.space_to_marker = true, Status::Ok();
  if (type == "NFC") return Status::Ok();  // not applied: ordinary text is already NFC
  return error(ErrorCode::kUnsupported, "{}: normalizer {} is not supported", path, node.dump());
}

Status read_pre_tokenizer(const json& node, TextPipeline& p, const std::string& path, int depth = 0) {
  if (node.is_null()) return Status::Ok();
  const std::string type = node.value("type", "");
  if (type == "Sequence" && depth < kMaxNesting) {
    for (const json& child : node.at("pretokenizers"))
      LOWBIT_RETURN_IF_ERROR(read_pre_tokenizer(child, p, path, depth + 1));
    return Status::Ok();
  }
  if (type == "ByteLevel" && !node.value("add_prefix_space", false)) {
    p.byte_level = true;
    p.byte_level_regex = node.value("use_regex", true);
    return Status::Ok();
  }
  if (type == "Split" && node.at("pattern").contains("Regex") && node.value("behavior", "") == "Isolated" &&
      !node.value("invert", false) && p.split_regex.empty()) {
    p.split_regex = node.at("pattern").at("Regex").get<std::string>();
    return Status::Ok();
  }
  if (type == "Metaspace" && node.value("replacement", "") == kSpaceMarker) {
    p.space_to_marker = true;
    const std::string scheme = node.value("prepend_scheme", node.value("add_prefix_space", true) ? "always" : "never");
    p.prepend_marker = p.prepend_marker || scheme != "never";
    return Status::Ok();
  }
  return error(ErrorCode::kUnsupported, "{}: pre-tokenizer {} is not supported", path, node.dump());
}

Result<Vocabulary> vocabulary_from_json(const json& root, const std::string& path) {
  if (!root.is_object()) return error(ErrorCode::kFormat, "{}: the top level is not a JSON object", path);
  if (!root.contains("model") || !root["model"].is_object())
    return error(ErrorCode::kFormat, "{}: no \"model\" object", path);
  const json& model = root["model"];
  const std::string type = model.value("type", model.contains("merges") ? "BPE" : "");
  if (type != "BPE")
    return error(ErrorCode::kUnsupported, "{}: model type \"{}\" is not supported (only BPE)", path, type);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(key) && !is_null_or_empty(model[key]))
      return error(ErrorCode::kUnsupported, "{}: BPE option {} is not supported", path, key);
  if (!model.contains("vocab") || !model["vocab"].is_object())
    return error(ErrorCode::kFormat, "{}: model.vocab is not an object", path);

  // Ids come from model.vocab and added_tokens together (Llama-3 lists its specials only there).
  struct Entry {
    int64_t id;
    std::string text;
    int32_t type;
  };
  std::vector<Entry> entries;
  int64_t n = 0;
  auto add = [&](const json& id, const std::string& text, int32_t ttype) -> Status {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxJsonVocab)
      return error(ErrorCode::kFormat, "{}: token \"{}\" has id {}, not in [0, {})", path, text, id.dump(),
                   kMaxJsonVocab);
    entries.push_back({id.get<int64_t>(), text, ttype});
    n = std::max(n, id.get<int64_t>() + 1);
    return Status::Ok();
  };
  for (const auto& [text, id] : model["vocab"].items()) LOWBIT_RETURN_IF_ERROR(add(id, text, token_type::kNormal));
  const size_t n_model = entries.size();
  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    if (!root["added_tokens"].is_array()) return error(ErrorCode::kFormat, "{}: added_tokens is not a list", path);
    for (const json& t : root["added_tokens"]) {
      const bool special = t.value("special", false);
      LOWBIT_RETURN_IF_ERROR(add(t.at("id"), t.at("content").get<std::string>(),
                                 special ? token_type::kControl : token_type::kUserDefined));
    }
  }
  // A hostile file could name one huge id; real vocabularies have few or no gaps.
  if (n - int64_t(entries.size()) > std::max<int64_t>(1024, int64_t(entries.size())))
    return error(ErrorCode::kFormat, "{}: {} token ids span 0..{}; too many unused ids", path, entries.size(), n - 1);
  Vocabulary v;
  v.tokens.assign(size_t(n), std::string());
  v.types.assign(size_t(n), token_type::kUnused);
  for (size_t i = 0; i < entries.size(); ++i) {
    Entry& e = entries[i];
    if (i < n_model && v.types[size_t(e.id)] != token_type::kUnused)
      return error(ErrorCode::kFormat, "{}: tokens \"{}\" and \"{}\" share id {}", path, v.tokens[size_t(e.id)],
                   e.text, e.id);
    v.tokens[size_t(e.id)] = std::move(e.text);  // an added token overrides the model's entry
    v.types[size_t(e.id)] = e.type;
  }
  for (int64_t id = 0; id < n; ++id)
    if (v.types[size_t(id)] == token_type::kUnused) v.tokens[size_t(id)] = fmt::format("<lowbit_unused_{}>", id);

  if (model.contains("merges") && !model["merges"].is_null()) {
    if (!model["merges"].is_array()) return error(ErrorCode::kFormat, "{}: model.merges is not a list", path);
    for (const json& m : model["merges"]) {
      if (m.is_string()) v.merges.push_back(m.get<std::string>());
      else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
        v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      else
        return error(ErrorCode::kFormat, "{}: merge {} is neither \"a b\" nor [\"a\", \"b\"]", path, m.dump());
    }
  }
  const TokenIndex index = build_token_index(v.tokens);
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    const std::string unk = model["unk_token"].get<std::string>();
    v.unk_id = find_token(index, unk);
    if (v.unk_id < 0) return error(ErrorCode::kFormat, "{}: unk_token \"{}\" is not in the vocabulary", path, unk);
    v.types[size_t(v.unk_id)] = token_type::kUnknown;
  }
  for (const char* name : kBosNames)
    if (v.bos_id < 0) v.bos_id = find_token(index, name);
  for (const char* name : kEosNames)
    if (v.eos_id < 0) v.eos_id = find_token(index, name);
  for (int id : {v.bos_id, v.eos_id})
    if (id >= 0) v.types[size_t(id)] = token_type::kControl;

  TextPipeline p;
  LOWBIT_RETURN_IF_ERROR(read_normalizer(root.value("normalizer", json()), p, path));
  LOWBIT_RETURN_IF_ERROR(read_pre_tokenizer(root.value("pre_tokenizer", json()), p, path));
  if (p.byte_level) {
    v.kind = Vocabulary::Kind::kByteLevelBpe;
    v.add_space_prefix = false;
    if (!p.split_regex.empty() && p.byte_level_regex)
      return error(ErrorCode::kUnsupported, "{}: a Split regex followed by ByteLevel's own regex", path);
    if (p.split_regex.empty()) {
      if (!p.byte_level_regex)
        return error(ErrorCode::kUnsupported, "{}: ByteLevel pre-tokenizer without any split", path);
      v.pre_tokenizer = "gpt2";
    } else {
      bool known = false;
      for (PreTokenizer k : {PreTokenizer::kGpt2, PreTokenizer::kLlama3, PreTokenizer::kQwen2})
        if (p.split_regex == pre_tokenizer_regex(k)) v.pre_tokenizer = pre_tokenizer_name(k), known = true;
      if (p.split_regex == kTiktokenGpt2Regex) v.pre_tokenizer = "gpt2", known = true;
      if (!known)
        return error(ErrorCode::kUnsupported, "{}: pre-tokenizer regex \"{}\" is not one lowbit implements "
                     "(GPT-2, Llama-3, Qwen2)", path, p.split_regex);
    }
    return v;
  }
  if (!p.space_to_marker || !p.split_regex.empty())
    return error(ErrorCode::kUnsupported, "{}: neither a ByteLevel nor a SentencePiece-style (\"▁\") BPE tokenizer",
                 path);
  v.kind = Vocabulary::Kind::kSentencePiece;
  v.add_space_prefix = p.prepend_marker;
  if (model.value("byte_fallback", false))
    for (size_t id = 0; id < v.tokens.size(); ++id)
      if (v.types[id] == token_type::kNormal && parse_byte_token(v.tokens[id]) >= 0) v.types[id] = token_type::kByte;
  v.scores = derive_scores_from_merges(v);
  return v;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> load_tokenizer_json(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(const std::string text, read_text_file(path, kMaxJsonFileBytes));
  if (!json_depth_within(text))
    return error(ErrorCode::kFormat, "{}: JSON nests deeper than {} levels", path, kMaxJsonDepth);
  try {
    const json root = json::parse(text);
    LOWBIT_ASSIGN_OR_RETURN(Vocabulary vocab, vocabulary_from_json(root, path));
    return make_tokenizer(std::move(vocab), path);
  } catch (const json::exception& e) {  // parse errors and fields of the wrong JSON type
    return error(ErrorCode::kFormat, "{}: malformed tokenizer.json: {}", path, e.what());
  }
}

namespace {

ordered_json replace_json(std::string_view from, std::string_view to) {
  return {{"type", "Replace"}, {"pattern", {{"String", from}}}, {"content", to}};
}

ordered_json byte_level_json(bool add_prefix_space, bool trim_offsets, bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", trim_offsets},
          {"use_regex", use_regex}};
}

// Prepends BOS like the Llama tokenizers do by default.
ordered_json bos_template_json(const std::string& bos, int bos_id) {
  auto special = [&](int type_id) { return ordered_json{{"SpecialToken", {{"id", bos}, {"type_id", type_id}}}}; };
  auto sequence = [](const char* id, int type_id) {
    return ordered_json{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
  };
  return {{"type", "TemplateProcessing"},
          {"single", {special(0), sequence("A", 0)}},
          {"pair", {special(0), sequence("A", 0), special(1), sequence("B", 1)}},
          {"special_tokens",
           {{bos, {{"id", bos}, {"ids", ordered_json::array({bos_id})}, {"tokens", ordered_json::array({bos})}}}}}};
}

// "left right" -> the two tokens (the first space whose sides are both tokens).
std::pair<std::string, std::string> split_merge(const std::string& m, const TokenIndex& index) {
  for (size_t p = m.find(' '); p != std::string::npos; p = m.find(' ', p + 1))
    if (find_token(index, std::string_view(m).substr(0, p)) >= 0 && find_token(index, std::string_view(m).substr(p + 1)) >= 0)
      return {m.substr(0, p), m.substr(p + 1)};
  return {m, ""};  // unreachable for a vocabulary make_tokenizer accepted
}

}  // namespace

Status save_tokenizer_json(const std::string& path, const Vocabulary& vocab) {
  // Building the tokenizer validates the vocabulary and its merges.
  LOWBIT_ASSIGN_OR_RETURN(auto tokenizer, make_tokenizer(vocab, path));
  const Vocabulary& v = tokenizer->vocabulary();
  const bool sp = v.kind == Vocabulary::Kind::kSentencePiece;
  const TokenIndex index = build_token_index(v.tokens);
  for (size_t id = 0; id < v.tokens.size(); ++id)
    if (find_token(index, v.tokens[id]) != int(id))
      return error(ErrorCode::kUnsupported, "{}: token {} repeats token {} (\"{}\"); tokenizer.json needs unique texts",
                   path, id, find_token(index, v.tokens[id]), v.tokens[id]);
  const std::vector<std::string> merges = sp && v.merges.empty() ? derive_merges_from_scores(v) : v.merges;

  ordered_json root;
  root["version"] = "1.0";
  root["truncation"] = nullptr;
  root["padding"] = nullptr;
  ordered_json added = ordered_json::array();
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    const int32_t t = v.types[id];
    if (t != token_type::kUnknown && t != token_type::kControl && t != token_type::kUserDefined) continue;
    added.push_back({{"id", id}, {"content", v.tokens[id]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", t == token_type::kUserDefined},
                     {"special", t != token_type::kUserDefined}});
  }
  root["added_tokens"] = std::move(added);
  const std::string bos = v.bos_id >= 0 ? v.tokens[size_t(v.bos_id)] : "";
  bool byte_fallback = false, ignore_merges = false;
  if (sp) {
    ordered_json normalizers = ordered_json::array();
    if (v.add_space_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", kSpaceMarker}});
    normalizers.push_back(replace_json(" ", kSpaceMarker));
    root["normalizer"] = {{"type", "Sequence"}, {"normalizers", std::move(normalizers)}};
    root["pre_tokenizer"] = nullptr;
    root["post_processor"] = v.bos_id >= 0 ? bos_template_json(bos, v.bos_id) : ordered_json(nullptr);
    ordered_json decoders = {replace_json(kSpaceMarker, " "), {{"type", "ByteFallback"}}, {{"type", "Fuse"}}};
    if (v.add_space_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    root["decoder"] = {{"type", "Sequence"}, {"decoders", std::move(decoders)}};
    for (int32_t t : v.types) byte_fallback = byte_fallback || t == token_type::kByte;
  } else {
    LOWBIT_ASSIGN_OR_RETURN(const PreTokenizer pre, parse_pre_tokenizer(v.pre_tokenizer, path));
    root["normalizer"] = nullptr;
    ignore_merges = pre == PreTokenizer::kLlama3;  // as ByteLevelBpeTokenizer encodes
    if (pre == PreTokenizer::kGpt2) {
      root["pre_tokenizer"] = byte_level_json(false, true, true);
    } else {
      ordered_json split = {{"type", "Split"}, {"pattern", {{"Regex", pre_tokenizer_regex(pre)}}},
                            {"behavior", "Isolated"}, {"invert", false}};
      root["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {split, byte_level_json(false, true, false)}}};
    }
    ordered_json post = byte_level_json(true, false, true);
    if (v.bos_id >= 0 && pre == PreTokenizer::kLlama3)
      post = {{"type", "Sequence"}, {"processors", {post, bos_template_json(bos, v.bos_id)}}};
    root["post_processor"] = std::move(post);
    root["decoder"] = byte_level_json(true, true, true);
  }
  ordered_json model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = v.unk_id >= 0 ? ordered_json(v.tokens[size_t(v.unk_id)]) : ordered_json(nullptr);
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = sp;
  model["byte_fallback"] = byte_fallback;
  model["ignore_merges"] = ignore_merges;
  ordered_json vocab_json = ordered_json::object();
  for (size_t id = 0; id < v.tokens.size(); ++id) vocab_json[v.tokens[id]] = id;
  model["vocab"] = std::move(vocab_json);
  // Plain "a b" strings read everywhere; [a, b] pairs only when a token itself holds a space.
  bool pairs = false;
  for (const std::string& t : v.tokens) pairs = pairs || t.find(' ') != std::string::npos;
  ordered_json merges_json = ordered_json::array();
  for (const std::string& m : merges) {
    if (!pairs) {
      merges_json.push_back(m);
      continue;
    }
    auto [left, right] = split_merge(m, index);
    merges_json.push_back({left, right});
  }
  model["merges"] = std::move(merges_json);
  root["model"] = std::move(model);
  std::string text;
  try {
    text = root.dump(2);
  } catch (const ordered_json::exception& e) {  // a token that is not valid UTF-8
    return error(ErrorCode::kUnsupported, "{}: cannot write tokenizer.json: {}", path, e.what());
  }
  return write_text_file_atomic(path, text + "\n");
}

}  // namespace lowbit
