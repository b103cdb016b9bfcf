#include "export/quantized_checkpoint.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "base/half.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/float_values.h"
#include "model/hf_config.h"
#include "model/quantized_tensors.h"
#include "model/rope_permute.h"
#include "model/tokenizer_io.h"

namespace lowbit {

namespace {

namespace fs = std::filesystem;

bool is_rope_projection(const std::string& name) {
  return name.find(tensor_names::kQ) != std::string::npos || name.find(tensor_names::kK) != std::string::npos ||
         name.find(tensor_names::kQBias) != std::string::npos || name.find(tensor_names::kKBias) != std::string::npos;
}

Status write_directory(const std::string& dir, const Checkpoint& ck, const QuantizedSaveOptions& o) {
  const ModelConfig& c = ck.config;
  // HF directories order q/k rows for rotate-half RoPE.
  const bool permute = c.rope_style == RopeStyle::kInterleaved;
  std::vector<int64_t> q_rows(size_t(c.q_dim())), k_rows(size_t(c.kv_dim()));
  for (size_t r = 0; r < q_rows.size(); ++r) q_rows[r] = rope_half_row_source(int64_t(r), c.head_dim);
  for (size_t r = 0; r < k_rows.size(); ++r) k_rows[r] = rope_half_row_source(int64_t(r), c.head_dim);

  const QuantizationConfig qc = choose_quantization_config(ck.quantized);
  TensorSet out;
  for (const ExpectedTensor& e : expected_tensors(c)) {
    const bool rope = permute && is_rope_projection(e.name);
    const auto& rows = e.shape[0] == c.q_dim() && e.name.find("q_proj") != std::string::npos ? q_rows : k_rows;
    if (auto q = ck.quantized.find(e.name); q != ck.quantized.end()) {
      const QuantizedMatrix m = rope ? permute_quantized_rows(*q->second, rows) : *q->second;
      LOWBIT_RETURN_IF_ERROR(add_quantized_tensors(e.name, m, qc, out).with_context(dir + ": " + e.name));
      continue;
    }
    const RawTensor& t = *ck.tensors.find(e.name);
    std::vector<float> v = float_values(t);
    if (rope) {
      const int64_t cols = t.shape.size() == 2 ? t.shape[1] : 1;
      v = permute_rope_rows(v.data(), t.shape[0], cols, c.head_dim, /*to_half=*/true);
    }
    LOWBIT_RETURN_IF_ERROR(out.add_owned(e.name, o.float_dtype, t.shape, encode_floats(v, o.float_dtype)));
  }
  out.metadata()["format"] = "pt";
  out.metadata()["lowbit.quantization"] = qc.layout == QuantizedLayout::kGptq ? "gptq" : "lowbit";
  LOWBIT_RETURN_IF_ERROR(write_safetensors(dir + "/model.safetensors", out));

  ModelConfig hf = c;
  hf.rope_style = RopeStyle::kHalf;
  LOWBIT_ASSIGN_OR_RETURN(std::string config_text, hf_config_json(hf, o.float_dtype));
  nlohmann::json config = nlohmann::json::parse(config_text);
  config["quantization_config"] = nlohmann::json::parse(qc.json);
  LOWBIT_RETURN_IF_ERROR(write_text_file_atomic(dir + "/config.json", config.dump(2) + "\n"));
  if (ck.tokenizer) LOWBIT_RETURN_IF_ERROR(save_tokenizer_json(dir + "/tokenizer.json", ck.tokenizer->vocabulary()));
  return Status::Ok();
}

}  // namespace

Status save_quantized_checkpoint(const std::string& dir, const Checkpoint& ck, const QuantizedSaveOptions& o) {
  LOWBIT_RETURN_IF_ERROR(validate_checkpoint_tensors(ck));
  std::error_code ec;
  const bool exists = fs::exists(dir, ec);
  if (exists && !o.overwrite)
    return error(ErrorCode::kInvalidArgument, "{}: output exists; use --force to replace it", dir);
  fs::path target = fs::absolute(fs::path(dir), ec);
  if (target.filename().empty()) target = target.parent_path();  // "out/" -> "out"
  if (!fs::is_directory(target.parent_path(), ec))
    return error(ErrorCode::kIo, "{}: parent directory {} does not exist", dir, target.parent_path().string());
  const fs::path tmp = target.parent_path() / (target.filename().string() + ".tmp." + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec))
    return error(ErrorCode::kIo, "{}: cannot create {}: {}", dir, tmp.string(), ec.message());
  Status s = write_directory(tmp.string(), ck, o);
  if (s.ok() && exists) {
    const fs::path old = target.parent_path() / (target.filename().string() + ".old." + std::to_string(::getpid()));
    fs::rename(target, old, ec);
    if (!ec) fs::rename(tmp, target, ec);
    if (!ec) fs::remove_all(old, ec);
    else s = error(ErrorCode::kIo, "{}: cannot replace: {}", dir, ec.message());
  } else if (s.ok()) {
    fs::rename(tmp, target, ec);
    if (ec) s = error(ErrorCode::kIo, "{}: cannot rename into place: {}", dir, ec.message());
  }
  if (!s.ok()) fs::remove_all(tmp, ec);
  return s;
}

}  // namespace lowbit
