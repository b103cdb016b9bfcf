#include "model/checkpoint.h"

#include <set>

namespace lowbit {

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  namespace tn = tensor_names;
  const int64_t d = c.dim, h = c.hidden_dim, q = c.q_dim(), kv = c.kv_dim();
  std::vector<ExpectedTensor> e;
  e.push_back({tn::embed(), {c.vocab_size, d}});
  for (int i = 0; i < c.n_layers; ++i) {
    e.push_back({tn::layer(i, tn::kAttnNorm), {d}});
    e.push_back({tn::layer(i, tn::kQ), {q, d}});
    e.push_back({tn::layer(i, tn::kK), {kv, d}});
    e.push_back({tn::layer(i, tn::kV), {kv, d}});
    if (c.attention_bias) {
      e.push_back({tn::layer(i, tn::kQBias), {q}});
      e.push_back({tn::layer(i, tn::kKBias), {kv}});
      e.push_back({tn::layer(i, tn::kVBias), {kv}});
    }
    e.push_back({tn::layer(i, tn::kO), {d, q}});
    e.push_back({tn::layer(i, tn::kFfnNorm), {d}});
    e.push_back({tn::layer(i, tn::kGate), {h, d}});
    e.push_back({tn::layer(i, tn::kUp), {h, d}});
    e.push_back({tn::layer(i, tn::kDown), {d, h}});
  }
  e.push_back({tn::final_norm(), {d}});
  if (!c.tied_embeddings) e.push_back({tn::lm_head(), {c.vocab_size, d}});
  return e;
}

Status require_float_checkpoint(const Checkpoint& ckpt, const std::string& out, std::string_view container) {
  if (ckpt.quantized.empty()) return Status::Ok();
  return error(ErrorCode::kUnsupported,
               "{}: \"{}\" is quantized; a {} float checkpoint cannot hold it (convert the unquantized original)",
               out, ckpt.quantized.begin()->first, container);
}

Status validate_checkpoint_tensors(const Checkpoint& ckpt) {
  std::set<std::string> seen;
  for (const auto& e : expected_tensors(ckpt.config)) {
    auto q = ckpt.quantized.find(e.name);
    if (q != ckpt.quantized.end()) {
      if (ckpt.tensors.find(e.name))
        return error(ErrorCode::kFormat, "{}: tensor \"{}\" is stored both quantized and in floating point",
                     ckpt.path, e.name);
      if (e.shape.size() != 2 || q->second->rows != e.shape[0] || q->second->cols != e.shape[1])
        return error(ErrorCode::kFormat, "{}: quantized tensor \"{}\" is [{}, {}] but the config implies {}",
                     ckpt.path, e.name, q->second->rows, q->second->cols, shape_string(e.shape));
      LOWBIT_RETURN_IF_ERROR(validate_matrix(*q->second).with_context(ckpt.path + ": " + e.name));
      seen.insert(e.name);
      continue;
    }
    const RawTensor* t = ckpt.tensors.find(e.name);
    if (t == nullptr) return error(ErrorCode::kNotFound, "{}: missing tensor \"{}\"", ckpt.path, e.name);
    if (t->shape != e.shape)
      return error(ErrorCode::kFormat, "{}: tensor \"{}\" has shape {} but the config implies {}", ckpt.path,
                   e.name, shape_string(t->shape), shape_string(e.shape));
    if (t->dtype != DType::kF32 && t->dtype != DType::kF16 && t->dtype != DType::kBF16)
      return error(ErrorCode::kUnsupported, "{}: tensor \"{}\" has dtype {}; expected F32, F16 or BF16",
                   ckpt.path, e.name, dtype_name(t->dtype));
    if (t->data.size() != uint64_t(t->numel()) * dtype_size(t->dtype))
      return error(ErrorCode::kFormat, "{}: tensor \"{}\" has {} bytes, expected {}", ckpt.path, e.name,
                   t->data.size(), uint64_t(t->numel()) * dtype_size(t->dtype));
    seen.insert(e.name);
  }
  for (const auto& t : ckpt.tensors.tensors())
    if (!seen.count(t.name))
      return error(ErrorCode::kFormat, "{}: unexpected tensor \"{}\"", ckpt.path, t.name);
  for (const auto& [name, m] : ckpt.quantized)
    if (!seen.count(name))
      return error(ErrorCode::kFormat, "{}: unexpected quantized tensor \"{}\"", ckpt.path, name);
  return Status::Ok();
}

}  // namespace lowbit
