// A linear layer y = x Wᵀ (+ b) with W [out_features, in_features] row-major, as in PyTorch.
// The forward pass calls every linear layer through linear_forward(), which is the single place
// where weight formats (FP32 today, quantized formats via kernels/) are dispatched.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/quantized_matrix.h"

namespace lowbit {

struct Linear {
  std::string name;           // canonical tensor name of the weight
  int out_features = 0;
  int in_features = 0;
  const float* weight = nullptr;  // [out, in] fp32, or null when quantized
  const float* bias = nullptr;    // [out] or null
  // A quantized weight (reference path: dequantized on the fly into a scratch buffer).
  std::shared_ptr<const QuantizedMatrix> quantized;
  bool is_quantized() const { return quantized != nullptr; }
};

// fp32 values of the weight (dequantized when quantized), [out, in] row-major.
std::vector<float> weight_values(const Linear& layer);

// y[t, :] = W x[t, :] + b for t < n_tokens. x: [n_tokens, in], y: [n_tokens, out].
// Uses BLAS sgemm for n_tokens > 1 and a threaded matrix-vector product for one token.
void linear_forward(const Linear& layer, const float* x, int n_tokens, float* y);

}  // namespace lowbit
