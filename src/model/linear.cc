#include "model/linear.h"

#include <cblas.h>

namespace lowbit {

std::vector<float> weight_values(const Linear& layer) {
  if (layer.is_quantized()) return dequantize(*layer.quantized);
  return std::vector<float>(layer.weight, layer.weight + size_t(layer.out_features) * layer.in_features);
}

void linear_forward(const Linear& layer, const float* x, int n_tokens, float* y) {
  const int out = layer.out_features, in = layer.in_features;
  // Reference path for quantized weights: dequantize the whole matrix, then the fp32 product.
  // (Fast kernels that dequantize in registers live in kernels/.)
  std::vector<float> dequantized;
  const float* weight = layer.weight;
  if (layer.is_quantized()) {
    dequantized = dequantize(*layer.quantized);
    weight = dequantized.data();
  }
  if (n_tokens == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, weight, in, x, 1, 0.0f, y, 1);
  } else {
    // Y [n, out] = X [n, in] · Wᵀ [in, out]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tokens, out, in, 1.0f, x, in, weight, in, 0.0f,
                y, out);
  }
  if (layer.bias != nullptr)
    for (int t = 0; t < n_tokens; ++t)
      for (int o = 0; o < out; ++o) y[size_t(t) * out + o] += layer.bias[o];
}

}  // namespace lowbit
