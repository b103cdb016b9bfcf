#include "model/linear.h"

#include <cblas.h>

namespace lowbit {

void linear_forward(const Linear& layer, const float* x, int n_tokens, float* y) {
  const int out = layer.out_features, in = layer.in_features;
  if (n_tokens == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, layer.weight, in, x, 1, 0.0f, y, 1);
  } else {
    // Y [n, out] = X [n, in] · Wᵀ [in, out]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tokens, out, in, 1.0f, x, in, layer.weight, in, 0.0f,
                y, out);
  }
  if (layer.bias != nullptr)
    for (int t = 0; t < n_tokens; ++t)
      for (int o = 0; o < out; ++o) y[size_t(t) * out + o] += layer.bias[o];
}

}  // namespace lowbit
