// Random Llama checkpoints for tests and for the main job when no real model is at hand.
// Weights are seeded Gaussians scaled like a trained model's (std 1/sqrt(fan_in)), norms near 1.
#pragma once

#include <cstdint>

#include "model/checkpoint.h"

namespace lowbit {

// A tiny config: dim 64, hidden 172 (not a multiple of 32, like stories260K), 2 layers,
// 8 heads / 4 kv heads (GQA), vocab 300, seq 128.
ModelConfig tiny_test_config();

// Tensors in `dtype` (F32, F16 or BF16), interleaved RoPE order, no tokenizer.
Checkpoint make_random_checkpoint(const ModelConfig& config, uint64_t seed, DType dtype = DType::kF32);

}  // namespace lowbit
