#include "train/param_layout.h"

#include <cmath>
#include <cstring>
#include <random>

#include "model/float_values.h"

namespace lowbit::train {

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

const TensorSlot* ParamLayout::find(const std::string& name) const {
  for (const auto& s : slots)
    if (s.name == name) return &s;
  return nullptr;
}

Result<ParamLayout> make_param_layout(const ModelConfig& config) {
  LOWBIT_RETURN_IF_ERROR(config.validate("model"));
  if (config.attention_bias)
    return error(ErrorCode::kUnsupported, "training: models with attention biases (qwen2) are not supported");
  if (config.head_dim % 2 != 0)
    return error(ErrorCode::kUnsupported, "training: head_dim {} must be even for RoPE", config.head_dim);
  ParamLayout layout;
  layout.config = config;
  namespace tn = tensor_names;
  for (const ExpectedTensor& e : expected_tensors(config)) {
    TensorSlot s;
    s.name = e.name;
    s.shape = e.shape;
    s.offset = layout.total;
    s.size = 1;
    for (int64_t d : e.shape) s.size *= size_t(d);
    s.is_norm = e.shape.size() == 1;
    s.is_block_linear = e.shape.size() == 2 && e.name.rfind("model.layers.", 0) == 0;
    layout.total += s.size;
    layout.slots.push_back(std::move(s));
  }
  auto off = [&](const std::string& name) { return layout.find(name)->offset; };
  layout.embedding = off(tn::embed());
  layout.final_norm = off(tn::final_norm());
  layout.lm_head = config.tied_embeddings ? layout.embedding : off(tn::lm_head());
  for (int i = 0; i < config.n_layers; ++i) {
    LayerOffsets L;
    L.attn_norm = off(tn::layer(i, tn::kAttnNorm));
    L.q = off(tn::layer(i, tn::kQ));
    L.k = off(tn::layer(i, tn::kK));
    L.v = off(tn::layer(i, tn::kV));
    L.o = off(tn::layer(i, tn::kO));
    L.ffn_norm = off(tn::layer(i, tn::kFfnNorm));
    L.gate = off(tn::layer(i, tn::kGate));
    L.up = off(tn::layer(i, tn::kUp));
    L.down = off(tn::layer(i, tn::kDown));
    layout.layers.push_back(L);
  }
  return layout;
}

std::vector<float> params_from_model(const ParamLayout& layout, const Model& model) {
  std::vector<float> p(layout.total);
  const ModelConfig& c = layout.config;
  auto put = [&](size_t offset, const float* src, size_t n) { std::copy(src, src + n, p.begin() + std::ptrdiff_t(offset)); };
  auto put_linear = [&](size_t offset, const Linear& l) {
    const std::vector<float> w = weight_values(l);
    put(offset, w.data(), w.size());
  };
  put(layout.embedding, model.embedding(), size_t(c.vocab_size) * c.dim);
  for (int i = 0; i < c.n_layers; ++i) {
    const LayerWeights& W = model.layers()[size_t(i)];
    const LayerOffsets& L = layout.layers[size_t(i)];
    put(L.attn_norm, W.attn_norm, size_t(c.dim));
    put(L.ffn_norm, W.ffn_norm, size_t(c.dim));
    put_linear(L.q, W.q);
    put_linear(L.k, W.k);
    put_linear(L.v, W.v);
    put_linear(L.o, W.o);
    put_linear(L.gate, W.gate);
    put_linear(L.up, W.up);
    put_linear(L.down, W.down);
  }
  put(layout.final_norm, model.final_norm(), size_t(c.dim));
  if (!c.tied_embeddings) put_linear(layout.lm_head, model.lm_head());
  return p;
}

Checkpoint checkpoint_from_params(const ParamLayout& layout, const std::vector<float>& params) {
  LOWBIT_CHECK(params.size() == layout.total);
  Checkpoint ck;
  ck.path = "<trained>";
  ck.format = "trained";
  ck.config = layout.config;
  for (const TensorSlot& s : layout.slots) {
    std::vector<float> v(params.begin() + std::ptrdiff_t(s.offset), params.begin() + std::ptrdiff_t(s.offset + s.size));
    LOWBIT_CHECK(ck.tensors.add_owned(s.name, DType::kF32, s.shape, encode_floats(v, DType::kF32)).ok());
  }
  return ck;
}

std::vector<float> random_init_params(const ParamLayout& layout, uint64_t seed) {
  std::vector<float> p(layout.total);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float residual_scale = 1.0f / std::sqrt(2.0f * float(layout.config.n_layers));
  for (const TensorSlot& s : layout.slots) {
    float* dst = p.data() + s.offset;
    if (s.is_norm) {
      std::fill(dst, dst + s.size, 1.0f);
      continue;
    }
    const bool residual = ends_with(s.name, tensor_names::kO) || ends_with(s.name, tensor_names::kDown);
    const float std = 0.02f * (residual ? residual_scale : 1.0f);
    for (size_t i = 0; i < s.size; ++i) dst[i] = std * normal(rng);
  }
  return p;
}

}  // namespace lowbit::train
