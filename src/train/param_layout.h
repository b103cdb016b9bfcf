// Every trainable tensor of a Llama model in one flat buffer, so that the optimizer, gradient
// clipping and checkpoint/resume code see a single array and the math sees typed views.
//
// Why a separate train/ module rather than backward in model/ and fake-quant only in quant/
// (DESIGN.md): the training engine needs calib/ (GPTQ initialisation for QAT) and eval/ (token
// files, held-out metrics), both of which sit above model/. Keeping backward, optimizer and the
// training loop together in one module that depends on them keeps every dependency pointing one
// way; the per-matrix fake-quant piece still lives in quant/ (quant/fake_quant.h).
//
// Order and shapes follow model/checkpoint.h expected_tensors(): embedding, then per layer
// attn_norm, q, k, v, o, ffn_norm, gate, up, down, then final norm and (untied) lm_head.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/model.h"

namespace lowbit::train {

struct TensorSlot {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // in elements
  size_t size = 0;
  bool is_norm = false;        // 1-D RMSNorm weight (no weight decay)
  bool is_block_linear = false;  // one of the 7 linears of a block (quantized by QAT)
};

struct LayerOffsets {
  size_t attn_norm, q, k, v, o, ffn_norm, gate, up, down;
};

struct ParamLayout {
  ModelConfig config;
  std::vector<TensorSlot> slots;
  std::vector<LayerOffsets> layers;
  size_t embedding = 0, final_norm = 0, lm_head = 0;  // lm_head == embedding when tied
  size_t total = 0;
  const TensorSlot* find(const std::string& name) const;
};

// Fails (kUnsupported) for architectures the engine does not train (attention biases).
Result<ParamLayout> make_param_layout(const ModelConfig& config);

// fp32 values of every tensor of `model` (quantized linears are dequantized).
std::vector<float> params_from_model(const ParamLayout& layout, const Model& model);

// A float checkpoint (F32 tensors, the config's RoPE order) holding `params`.
Checkpoint checkpoint_from_params(const ParamLayout& layout, const std::vector<float>& params);

// Seeded random initialisation as in llama2.c / GPT-2: N(0, 0.02) for every weight, the
// projections that write into the residual stream (o, down) scaled by 1/sqrt(2 * n_layers),
// norms at 1.
std::vector<float> random_init_params(const ParamLayout& layout, uint64_t seed);

}  // namespace lowbit::train
