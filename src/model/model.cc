#include "model/model.h"

#include <cstring>

#include "model/float_values.h"

namespace lowbit {

namespace {

using OwnedTensors = std::vector<std::vector<float, kernels::StreamingAllocator<float>>>;

// fp32 view of a raw tensor: in place when it already is aligned F32, else converted. The stored
// bytes' pages are dropped once converted (`source` maps them): an F16 model's file
// pages would otherwise stay resident beside its fp32 copy (peak RSS 6.6 GB for the 1.1B shape,
// whose fp32 weights are 4.4 GB).
const float* as_f32(const RawTensor& t, const TensorSet& source, OwnedTensors& owned) {
  const bool aligned = reinterpret_cast<uintptr_t>(t.data.data()) % alignof(float) == 0;
  if (t.dtype == DType::kF32 && aligned) return reinterpret_cast<const float*>(t.data.data());
  owned.emplace_back(size_t(t.numel()));
  float_values_into(t, owned.back().data());
  source.release_pages(t.data);
  return owned.back().data();
}

}  // namespace

Result<std::shared_ptr<Model>> Model::from_checkpoint(const Checkpoint& ckpt) {
  LOWBIT_RETURN_IF_ERROR(validate_checkpoint_tensors(ckpt));
  auto m = std::shared_ptr<Model>(new Model());
  m->config_ = ckpt.config;
  m->source_path_ = ckpt.path;
  m->source_format_ = ckpt.format;
  m->source_ = ckpt.tensors;
  m->tokenizer_ = ckpt.tokenizer;
  if (m->tokenizer_ && m->tokenizer_->vocab_size() != ckpt.config.vocab_size)
    return error(ErrorCode::kFormat, "{}: tokenizer has {} tokens but the model's vocab_size is {}", ckpt.path,
                 m->tokenizer_->vocab_size(), ckpt.config.vocab_size);
  const ModelConfig& c = m->config_;
  auto tensor = [&](const std::string& name) { return as_f32(*m->source_.find(name), m->source_, m->owned_); };
  auto linear = [&](const std::string& name, const std::string& bias_name) {
    Linear l;
    l.name = name;
    auto q = ckpt.quantized.find(name);
    if (q != ckpt.quantized.end()) {
      l.quantized = q->second;
      l.dynamic_int8_activations = ckpt.dynamic_int8_activations;
      l.out_features = int(q->second->rows);
      l.in_features = int(q->second->cols);
    } else {
      const RawTensor& t = *m->source_.find(name);
      l.out_features = int(t.shape[0]);
      l.in_features = int(t.shape[1]);
      l.weight = as_f32(t, m->source_, m->owned_);
    }
    if (!bias_name.empty() && m->source_.find(bias_name)) l.bias = tensor(bias_name);
    return l;
  };
  namespace tn = tensor_names;
  if (ckpt.quantized.count(tn::embed())) {
    // The embedding is looked up row by row: keep a dequantized copy for the lookup.
    auto values = dequantize(*ckpt.quantized.at(tn::embed()));
    m->owned_.emplace_back(values.begin(), values.end());
    m->embedding_ = m->owned_.back().data();
  } else {
    m->embedding_ = tensor(tn::embed());
  }
  m->final_norm_ = tensor(tn::final_norm());
  m->lm_head_ = c.tied_embeddings ? linear(tn::embed(), "") : linear(tn::lm_head(), "");
  m->layers_.resize(size_t(c.n_layers));
  for (int i = 0; i < c.n_layers; ++i) {
    LayerWeights& L = m->layers_[size_t(i)];
    auto name = [&](const char* suffix) { return tn::layer(i, suffix); };
    L.attn_norm = tensor(name(tn::kAttnNorm));
    L.ffn_norm = tensor(name(tn::kFfnNorm));
    L.q = linear(name(tn::kQ), c.attention_bias ? name(tn::kQBias) : "");
    L.k = linear(name(tn::kK), c.attention_bias ? name(tn::kKBias) : "");
    L.v = linear(name(tn::kV), c.attention_bias ? name(tn::kVBias) : "");
    L.o = linear(name(tn::kO), "");
    L.gate = linear(name(tn::kGate), "");
    L.up = linear(name(tn::kUp), "");
    L.down = linear(name(tn::kDown), "");
  }
  prepare_linears(m->layers_, m->lm_head_);  // repack quantized weights for the fast kernels
  // A quantized checkpoint runs the linears it left unquantized (the head; a recipe's FP16 rules)
  // at their stored precision when that is F16 / BF16, as llama.cpp does: the values are exactly
  // the stored ones, and decode reads half the bytes (TinyLlama's head is a third of an int4
  // token's). Float checkpoints stay fp32 throughout: they are the reference quantization is
  // measured against.
  if (!ckpt.quantized.empty()) {
    std::vector<Linear*> dense;
    for (LayerWeights& L : m->layers_)
      for (Linear* l : L.linears()) dense.push_back(l);
    dense.push_back(&m->lm_head_);
    for (Linear* l : dense) {
      const RawTensor* t = l->is_quantized() ? nullptr : m->source_.find(l->name);
      if (t != nullptr && (t->dtype == DType::kF16 || t->dtype == DType::kBF16))
        pack_dense_linear(*l, t->dtype == DType::kF16 ? kernels::PackedKind::kF16 : kernels::PackedKind::kBF16);
    }
  }
  return m;
}

}  // namespace lowbit
