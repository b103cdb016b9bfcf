#include "calib/model_view.h"

namespace lowbit {

Result<std::shared_ptr<Model>> make_editable_view(std::shared_ptr<const Model> base) {
  const ModelConfig& c = base->config();
  namespace tn = tensor_names;
  Checkpoint ckpt;
  ckpt.path = base->source_path();
  ckpt.format = base->source_format();
  ckpt.config = c;
  ckpt.tokenizer = base->shared_tokenizer();

  Status status;
  auto add_f32 = [&](const std::string& name, const float* data, std::vector<int64_t> shape) {
    if (!status.ok()) return;
    if (data == nullptr) {
      status = error(ErrorCode::kInternal, "model view: tensor {} has no fp32 data", name);
      return;
    }
    RawTensor t;
    t.name = name;
    t.dtype = DType::kF32;
    t.shape = std::move(shape);
    t.data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data), size_t(t.numel()) * sizeof(float));
    status = ckpt.tensors.add(std::move(t));
  };
  auto add_linear = [&](const Linear& l) {
    if (l.is_quantized()) {
      ckpt.quantized[l.name] = l.quantized;
    } else {
      add_f32(l.name, l.weight, {l.out_features, l.in_features});
    }
  };

  // A tied head that is quantized means the checkpoint stored the embedding quantized.
  if (c.tied_embeddings && base->lm_head().is_quantized()) {
    ckpt.quantized[tn::embed()] = base->lm_head().quantized;
  } else {
    add_f32(tn::embed(), base->embedding(), {c.vocab_size, c.dim});
  }
  for (int i = 0; i < c.n_layers; ++i) {
    const LayerWeights& L = base->layers()[size_t(i)];
    add_f32(tn::layer(i, tn::kAttnNorm), L.attn_norm, {c.dim});
    add_f32(tn::layer(i, tn::kFfnNorm), L.ffn_norm, {c.dim});
    for (const Linear* l : L.linears()) add_linear(*l);
    if (c.attention_bias) {
      add_f32(tn::layer(i, tn::kQBias), L.q.bias, {c.q_dim()});
      add_f32(tn::layer(i, tn::kKBias), L.k.bias, {c.kv_dim()});
      add_f32(tn::layer(i, tn::kVBias), L.v.bias, {c.kv_dim()});
    }
  }
  add_f32(tn::final_norm(), base->final_norm(), {c.dim});
  if (!c.tied_embeddings) add_linear(base->lm_head());
  LOWBIT_RETURN_IF_ERROR(status);

  LOWBIT_ASSIGN_OR_RETURN(std::shared_ptr<Model> view, Model::from_checkpoint(ckpt));
  // Aliasing pointer: owns both, points at the view.
  struct Owner {
    std::shared_ptr<const Model> base;
    std::shared_ptr<Model> view;
  };
  auto owner = std::make_shared<Owner>(Owner{std::move(base), view});
  return std::shared_ptr<Model>(owner, view.get());
}

}  // namespace lowbit
