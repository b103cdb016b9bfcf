#include "model/gguf_vocab.h"

#include <cmath>
#include <limits>

namespace lowbit {

namespace {
constexpr const char* kModel = "tokenizer.ggml.model";
constexpr const char* kTokens = "tokenizer.ggml.tokens";
constexpr const char* kScores = "tokenizer.ggml.scores";
constexpr const char* kTypes = "tokenizer.ggml.token_type";
constexpr const char* kMerges = "tokenizer.ggml.merges";
constexpr const char* kPre = "tokenizer.ggml.pre";
constexpr const char* kBos = "tokenizer.ggml.bos_token_id";
constexpr const char* kEos = "tokenizer.ggml.eos_token_id";
constexpr const char* kUnk = "tokenizer.ggml.unknown_token_id";
constexpr const char* kAddSpacePrefix = "tokenizer.ggml.add_space_prefix";

// An optional token id: -1 when absent, else it must name a token.
Result<int> read_id(const gguf::Metadata& md, const char* key, size_t n_tokens) {
  if (!md.contains(key)) return -1;
  LOWBIT_ASSIGN_OR_RETURN(uint64_t id, md.get_uint(key));
  if (id >= n_tokens)
    return error(ErrorCode::kFormat, "{}: {} = {} but the vocabulary has {} tokens", md.source(), key, id, n_tokens);
  return int(id);
}

Status length_mismatch(const std::string& source, const char* key, size_t n, size_t n_tokens) {
  return error(ErrorCode::kFormat, "{}: {} has {} entries but tokenizer.ggml.tokens has {}", source, key, n,
               n_tokens);
}
}  // namespace

Result<std::optional<Vocabulary>> vocabulary_from_gguf(const gguf::Metadata& md) {
  const std::string& source = md.source();
  if (!md.contains(kModel)) return std::optional<Vocabulary>();
  LOWBIT_ASSIGN_OR_RETURN(std::string model, md.get_string(kModel));
  if (model == "none" || model == "no") return std::optional<Vocabulary>();
  Vocabulary v;
  if (model == "llama") {
    v.kind = Vocabulary::Kind::kSentencePiece;
  } else if (model == "gpt2") {
    v.kind = Vocabulary::Kind::kByteLevelBpe;
  } else {
    return error(ErrorCode::kUnsupported, "{}: tokenizer model \"{}\"; lowbit reads \"llama\" and \"gpt2\"", source,
                 model);
  }

  LOWBIT_ASSIGN_OR_RETURN(v.tokens, md.get_strings(kTokens));
  const size_t n = v.tokens.size();
  if (n == 0) return error(ErrorCode::kFormat, "{}: {} is empty", source, kTokens);
  // Token ids are int everywhere else in lowbit.
  if (n > size_t(std::numeric_limits<int32_t>::max()))
    return error(ErrorCode::kFormat, "{}: {} has {} tokens", source, kTokens, n);

  if (md.contains(kScores)) {
    LOWBIT_ASSIGN_OR_RETURN(std::vector<double> scores, md.get_floats(kScores));
    if (scores.size() != n) return length_mismatch(source, kScores, scores.size(), n);
    v.scores.assign(scores.begin(), scores.end());  // f32 on disk, so exact
  }
  if (md.contains(kTypes)) {
    LOWBIT_ASSIGN_OR_RETURN(std::vector<int64_t> types, md.get_ints(kTypes));
    if (types.size() != n) return length_mismatch(source, kTypes, types.size(), n);
    v.types.reserve(n);
    for (int64_t t : types) {
      if (t < std::numeric_limits<int32_t>::min() || t > std::numeric_limits<int32_t>::max())
        return error(ErrorCode::kFormat, "{}: {} holds an out-of-range type {}", source, kTypes, t);
      v.types.push_back(int32_t(t));
    }
  }
  if (v.kind == Vocabulary::Kind::kByteLevelBpe || md.contains(kMerges)) {
    LOWBIT_ASSIGN_OR_RETURN(v.merges, md.get_strings(kMerges));
  }
  if (md.contains(kPre)) {
    LOWBIT_ASSIGN_OR_RETURN(v.pre_tokenizer, md.get_string(kPre));
  }
  LOWBIT_ASSIGN_OR_RETURN(v.bos_id, read_id(md, kBos, n));
  LOWBIT_ASSIGN_OR_RETURN(v.eos_id, read_id(md, kEos, n));
  LOWBIT_ASSIGN_OR_RETURN(v.unk_id, read_id(md, kUnk, n));
  // llama.cpp's defaults: SentencePiece prepends a space, byte-level BPE does not.
  v.add_space_prefix = v.kind == Vocabulary::Kind::kSentencePiece;
  if (md.contains(kAddSpacePrefix)) {
    LOWBIT_ASSIGN_OR_RETURN(v.add_space_prefix, md.get_bool(kAddSpacePrefix));
  }
  return std::optional<Vocabulary>(std::move(v));
}

Status vocabulary_to_gguf(const Vocabulary& v, gguf::Metadata* md) {
  using gguf::Value;
  const size_t n = v.tokens.size();
  if (n == 0) return error(ErrorCode::kInvalidArgument, "cannot embed an empty vocabulary in GGUF");
  if (!v.scores.empty() && v.scores.size() != n)
    return error(ErrorCode::kInvalidArgument, "vocabulary has {} scores for {} tokens", v.scores.size(), n);
  if (!v.types.empty() && v.types.size() != n)
    return error(ErrorCode::kInvalidArgument, "vocabulary has {} token types for {} tokens", v.types.size(), n);
  for (int id : {v.bos_id, v.eos_id, v.unk_id})
    if (id < -1 || (id >= 0 && size_t(id) >= n))
      return error(ErrorCode::kInvalidArgument, "vocabulary special token id {} is outside [0, {})", id, n);

  const bool bpe = v.kind == Vocabulary::Kind::kByteLevelBpe;
  md->set(kModel, Value::string(bpe ? "gpt2" : "llama"));
  md->set(kTokens, Value::strings(v.tokens));
  if (!v.scores.empty()) md->set(kScores, Value::f32s(v.scores));
  else md->erase(kScores);
  if (!v.types.empty()) md->set(kTypes, Value::i32s(v.types));
  else md->erase(kTypes);
  // llama.cpp requires merges for "gpt2" even when there are none.
  if (bpe || !v.merges.empty()) md->set(kMerges, Value::strings(v.merges));
  else md->erase(kMerges);
  if (bpe) md->set(kPre, Value::string(v.pre_tokenizer));
  else md->erase(kPre);
  auto set_id = [&](const char* key, int id) {
    if (id >= 0) md->set(key, Value::u32(uint32_t(id)));
    else md->erase(key);
  };
  set_id(kBos, v.bos_id);
  set_id(kEos, v.eos_id);
  set_id(kUnk, v.unk_id);
  md->set(kAddSpacePrefix, Value::boolean(v.add_space_prefix));
  return Status::Ok();
}

}  // namespace lowbit
