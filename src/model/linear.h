// A linear layer y = x Wᵀ (+ b) with W [out_features, in_features] row-major, as in PyTorch.
// The forward pass calls every linear layer through linear_forward(), the single place where
// weight formats are dispatched:
//   fp32 dense                      BLAS (sgemv for one token, sgemm for many)
//   packed (prepare_linear)         kernels/: weight-only kernels on exact fp32 activations, or,
//                                   with dynamic_int8_activations, W8A8 / W4A8 / W3A8 / W2A8 int8 kernels
//   quantized without a kernel      reference: dequantize the matrix, then BLAS
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/quantized_matrix.h"
#include "kernels/packed_weight.h"

namespace lowbit {

struct Linear {
  std::string name;           // canonical tensor name of the weight
  int out_features = 0;
  int in_features = 0;
  const float* weight = nullptr;  // [out, in] fp32, or null when quantized
  const float* bias = nullptr;    // [out] or null
  // A quantized weight, one code per weight (the reference form).
  std::shared_ptr<const QuantizedMatrix> quantized;
  // The weight repacked for the fast kernels (in memory only), built once by prepare_linear (or
  // pack_dense_linear). Trusted only while packed->source is still `quantized` (or `weight`):
  // code that swaps in a new matrix (GPTQ's driver) falls back to the reference path until it
  // prepares the layer again.
  std::shared_ptr<const kernels::PackedWeight> packed;
  // Quantize activations per token to int8 at run time (symmetric, one scale per 32 inputs) and
  // use int8 x int8 -> int32 kernels: W8A8 for int8 weights, W4A8 / W3A8 / W2A8 for int4/3/2.
  // Only where the packed weight supports it (kernels::supports_qd8); false: exact activations.
  bool dynamic_int8_activations = false;
  bool is_quantized() const { return quantized != nullptr; }
};

// fp32 values of the weight (dequantized when quantized), [out, in] row-major.
std::vector<float> weight_values(const Linear& layer);

// Packs a quantized weight for the fast kernels; leaves formats without a kernel layout (act-order
// groups, groups that are not a multiple of 32) and dense weights unpacked.
void prepare_linear(Linear& layer);
struct LayerWeights;
// prepare_linear for every linear of a model (threaded inside each layer); Model::from_checkpoint
// calls it once.
void prepare_linears(std::vector<LayerWeights>& layers, Linear& head);
// Stores a dense fp32 weight as f16 or bf16 for the half-precision kernels (halves the bytes
// read per token; values round to nearest even). For speed work: the checkpoint's values are
// exact in f16 when it was stored as F16.
void pack_dense_linear(Linear& layer, kernels::PackedKind kind);

// The packed weight linear_forward will use, or null (BLAS or the reference path).
const kernels::PackedWeight* active_packed(const Linear& layer);
// How many int8 slices the layer's token takes on the int8 kernels with packed weight p
// (kernels::GemvPart): 1 for dynamic int8 activations, 2 for a weight-only int4/3/2 weight that
// prepare_linear put in VNNI panels (kernels/packed_matmul.h, matmul_qd8_slices), else 0.
int int8_slices(const Linear& layer, const kernels::PackedWeight& p);
// Human-readable path, e.g. "blas_f32", "gemv_q4g_f32", "gemm_qd8_q4g_f32", "gemv_qd8x2_q4p_f32" (a
// weight-only layer on the int8 kernels, its token as two int8 slices), "reference".
std::string linear_path(const Linear& layer, int n_tokens);

// y[t, :] = W x[t, :] + b for t < n_tokens. x: [n_tokens, in], y: [n_tokens, out].
void linear_forward(const Linear& layer, const float* x, int n_tokens, float* y);

// ys[i] = linear_forward(*layers[i], x) for layers that read the same input (q, k, v; gate, up).
// One token with every layer on a kernel or BLAS path runs as one product split over the threads
// (kernels::gemv_parts); anything else runs the layers one by one.
void linear_forward_shared_input(std::span<const Linear* const> layers, const float* x, int n_tokens,
                                 std::span<float* const> ys);

}  // namespace lowbit
