#include "model/hf_config.h"

#include <climits>
#include <string>

#include <nlohmann/json.hpp>

#include "io/json_limits.h"

namespace lowbit {

namespace {

using json = nlohmann::json;

struct Architecture {
  const char* hf_class;    // config.json "architectures"[0]
  const char* model_type;  // config.json "model_type", and ModelConfig::architecture
};
constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},
};

// Reads config.json fields with their types checked; null counts as absent (transformers
// writes "head_dim": null and "bos_token_id": null in some configs).
class Fields {
 public:
  Fields(const json& j, const std::string& source) : j_(j), source_(source) {}

  const json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }

  Result<int> integer(const char* key, const json* v) const {
    if (!v->is_number_integer())
      return error(ErrorCode::kFormat, "{}: \"{}\" must be an integer, got {}", source_, key, v->dump());
    if (v->is_number_unsigned() ? v->get<uint64_t>() > uint64_t(INT_MAX)
                                : (v->get<int64_t>() < INT_MIN || v->get<int64_t>() > INT_MAX))
      return error(ErrorCode::kFormat, "{}: \"{}\" = {} is out of range", source_, key, v->dump());
    return int(v->get<int64_t>());
  }
  Result<int> required_int(const char* key) const {
    const json* v = find(key);
    if (v == nullptr) return error(ErrorCode::kFormat, "{}: missing \"{}\"", source_, key);
    return integer(key, v);
  }
  Result<int> optional_int(const char* key, int fallback) const {
    const json* v = find(key);
    return v == nullptr ? Result<int>(fallback) : integer(key, v);
  }
  Result<float> optional_float(const char* key, float fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_number())
      return error(ErrorCode::kFormat, "{}: \"{}\" must be a number, got {}", source_, key, v->dump());
    return float(v->get<double>());
  }
  Result<bool> optional_bool(const char* key, bool fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean())
      return error(ErrorCode::kFormat, "{}: \"{}\" must be true or false, got {}", source_, key, v->dump());
    return v->get<bool>();
  }
  // A token id, or a list of them (eos_token_id in Llama 3) of which the first is used.
  Result<int> optional_token_id(const char* key, int fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (v->is_array()) {
      if (v->empty()) return fallback;
      return integer(key, &(*v)[0]);
    }
    return integer(key, v);
  }

 private:
  const json& j_;
  const std::string& source_;
};

Result<const Architecture*> find_architecture(const Fields& f, const std::string& source) {
  std::string name;
  bool by_class = true;
  if (const json* archs = f.find("architectures")) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string())
      return error(ErrorCode::kFormat, "{}: \"architectures\" must be a non-empty list of names", source);
    name = (*archs)[0].get<std::string>();
  } else if (const json* type = f.find("model_type"); type != nullptr && type->is_string()) {
    name = type->get<std::string>();  // old configs without "architectures"
    by_class = false;
  } else {
    return error(ErrorCode::kFormat, "{}: neither \"architectures\" nor \"model_type\" is present", source);
  }
  for (const Architecture& a : kArchitectures)
    if (name == (by_class ? a.hf_class : a.model_type)) return &a;
  return error(ErrorCode::kUnsupported, "{}: unsupported architecture {}", source, name);
}

// Refuses features the runtime would silently compute wrong.
Status check_supported(const Fields& f, const std::string& source) {
  if (const json* act = f.find("hidden_act"); act != nullptr && *act != "silu")
    return error(ErrorCode::kUnsupported, "{}: unsupported hidden_act {}", source, act->dump());
  if (const json* scaling = f.find("rope_scaling"))
    return error(ErrorCode::kUnsupported, "{}: rope_scaling {} is not supported", source, scaling->dump());
  LOWBIT_ASSIGN_OR_RETURN(bool mlp_bias, f.optional_bool("mlp_bias", false));
  if (mlp_bias) return error(ErrorCode::kUnsupported, "{}: mlp_bias is not supported", source);
  return Status::Ok();
}

// The shortest decimal that reads back as the same float, so config.json says 1e-05, not
// 9.999999747378752e-06.
double json_float(float f) { return std::stod(fmt::format("{}", f)); }

}  // namespace

const char* torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    default: return "";
  }
}

Result<HfConfig> parse_hf_config(const std::string& json_text, const std::string& source) {
  if (!json_depth_within(json_text))
    return error(ErrorCode::kFormat, "{}: JSON nests deeper than {} levels", source, kMaxJsonDepth);
  json j;
  try {
    j = json::parse(json_text);
  } catch (const std::exception& e) {
    return error(ErrorCode::kFormat, "{}: malformed JSON: {}", source, e.what());
  }
  if (!j.is_object()) return error(ErrorCode::kFormat, "{}: not a JSON object", source);
  const Fields f(j, source);
  LOWBIT_ASSIGN_OR_RETURN(const Architecture* arch, find_architecture(f, source));
  LOWBIT_RETURN_IF_ERROR(check_supported(f, source));
  const bool qwen2 = std::string(arch->model_type) == "qwen2";

  HfConfig out;
  ModelConfig& c = out.model;
  c.architecture = arch->model_type;
  c.rope_style = RopeStyle::kHalf;
  LOWBIT_ASSIGN_OR_RETURN(c.dim, f.required_int("hidden_size"));
  LOWBIT_ASSIGN_OR_RETURN(c.hidden_dim, f.required_int("intermediate_size"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_layers, f.required_int("num_hidden_layers"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_heads, f.required_int("num_attention_heads"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_kv_heads, f.optional_int("num_key_value_heads", c.n_heads));
  if (c.n_heads <= 0) return error(ErrorCode::kFormat, "{}: invalid num_attention_heads {}", source, c.n_heads);
  if (f.find("head_dim") == nullptr && c.dim % c.n_heads != 0)
    return error(ErrorCode::kFormat, "{}: hidden_size {} is not a multiple of num_attention_heads {}", source,
                 c.dim, c.n_heads);
  LOWBIT_ASSIGN_OR_RETURN(c.head_dim, f.optional_int("head_dim", c.dim / c.n_heads));
  LOWBIT_ASSIGN_OR_RETURN(c.vocab_size, f.required_int("vocab_size"));
  LOWBIT_ASSIGN_OR_RETURN(c.max_seq_len, f.required_int("max_position_embeddings"));
  LOWBIT_ASSIGN_OR_RETURN(c.rope_theta, f.optional_float("rope_theta", qwen2 ? 1e6f : 10000.0f));
  LOWBIT_ASSIGN_OR_RETURN(c.norm_eps, f.optional_float("rms_norm_eps", 1e-6f));
  LOWBIT_ASSIGN_OR_RETURN(c.tied_embeddings, f.optional_bool("tie_word_embeddings", false));
  if (qwen2) {
    c.attention_bias = true;  // Qwen2's q/k/v projections always have biases
  } else if (std::string(arch->model_type) == "llama") {
    LOWBIT_ASSIGN_OR_RETURN(c.attention_bias, f.optional_bool("attention_bias", false));
  }
  LOWBIT_ASSIGN_OR_RETURN(c.bos_id, f.optional_token_id("bos_token_id", c.bos_id));
  LOWBIT_ASSIGN_OR_RETURN(c.eos_id, f.optional_token_id("eos_token_id", c.eos_id));

  // Sliding-window attention (Mistral v0.1, Qwen2 with use_sliding_window) equals full attention
  // up to the window, so within that context the runtime is exact: cap the context there.
  LOWBIT_ASSIGN_OR_RETURN(bool use_window, f.optional_bool("use_sliding_window", !qwen2));
  LOWBIT_ASSIGN_OR_RETURN(int window, f.optional_int("sliding_window", 0));
  if (use_window && window > 0 && window < c.max_seq_len) c.max_seq_len = window;

  if (const json* dtype = f.find("torch_dtype")) {
    if (!dtype->is_string())
      return error(ErrorCode::kFormat, "{}: \"torch_dtype\" must be a string, got {}", source, dtype->dump());
    out.torch_dtype = dtype->get<std::string>();
  }
  if (const json* qc = f.find("quantization_config")) {
    if (!qc->is_object())
      return error(ErrorCode::kFormat, "{}: \"quantization_config\" must be an object", source);
    out.quantization_config_json = qc->dump();
    if (const auto a = qc->find("activation_quantization"); a != qc->end()) {
      if (!a->is_string() || a->get<std::string>() != kDynamicInt8Activations)
        return error(ErrorCode::kUnsupported, "{}: quantization_config.activation_quantization {} (lowbit knows \"{}\")",
                     source, a->dump(), kDynamicInt8Activations);
      out.dynamic_int8_activations = true;
    }
  }
  LOWBIT_RETURN_IF_ERROR(c.validate(source));
  return out;
}

Result<std::string> hf_config_json(const ModelConfig& c, DType dtype) {
  const Architecture* arch = nullptr;
  for (const Architecture& a : kArchitectures)
    if (c.architecture == a.model_type) arch = &a;
  if (arch == nullptr)
    return error(ErrorCode::kUnsupported, "architecture \"{}\" has no Hugging Face equivalent", c.architecture);
  const bool qwen2 = c.architecture == "qwen2", llama = c.architecture == "llama";
  // Qwen2 without biases is written with zero biases by the checkpoint writer; Mistral in
  // transformers has no bias option at all.
  if (c.attention_bias && !qwen2 && !llama)
    return error(ErrorCode::kUnsupported, "{} with q/k/v biases cannot be expressed in config.json",
                 c.architecture);
  if (torch_dtype_name(dtype)[0] == '\0')
    return error(ErrorCode::kInvalidArgument, "cannot store a Hugging Face checkpoint as {}", dtype_name(dtype));

  nlohmann::ordered_json j;
  j["architectures"] = {arch->hf_class};
  j["model_type"] = arch->model_type;
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_seq_len;
  j["rope_theta"] = json_float(c.rope_theta);
  j["rms_norm_eps"] = json_float(c.norm_eps);
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tied_embeddings;
  if (llama) j["attention_bias"] = c.attention_bias;
  if (qwen2) j["use_sliding_window"] = false;
  if (!llama) j["sliding_window"] = nullptr;  // full attention: the only kind lowbit runs
  j["bos_token_id"] = c.bos_id >= 0 ? nlohmann::ordered_json(c.bos_id) : nlohmann::ordered_json(nullptr);
  j["eos_token_id"] = c.eos_id >= 0 ? nlohmann::ordered_json(c.eos_id) : nlohmann::ordered_json(nullptr);
  j["torch_dtype"] = torch_dtype_name(dtype);
  return j.dump(2) + "\n";
}

}  // namespace lowbit
