#include "model/linear.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "kernels/packed_matmul.h"
#include "model/model.h"

namespace lowbit {

std::vector<float> weight_values(const Linear& layer) {
  if (layer.is_quantized()) return dequantize(*layer.quantized);
  return std::vector<float>(layer.weight, layer.weight + size_t(layer.out_features) * layer.in_features);
}

namespace {

bool weight_only_on_int8_slices(const Linear& layer, const kernels::KernelTable& table) {
  return !layer.dynamic_int8_activations && layer.is_quantized() &&
         kernels::weight_only_on_int8_slices(layer.quantized->spec, table.weight_only_int8_slices);
}

}  // namespace

void prepare_linear(Linear& layer) {
  // Int8 per-channel and int4/3/2 weights of a layer with dynamic int8 activations go into VNNI
  // panels where the kernels prefer them (they then run only the W8A8 / W4A8 / W3A8 / W2A8 kernels),
  // and so do weight-only int4/3/2 weights on tables that run them as two int8 slices; otherwise
  // int3/int2 weights of weight-only layers go into lane panels for the table-lookup gemv.
  const kernels::KernelTable& table = kernels::kernels();
  const bool sliced = weight_only_on_int8_slices(layer, table);
  const bool panels = (layer.dynamic_int8_activations && table.prefers_panels) || sliced;
  const bool lut_panels = !layer.dynamic_int8_activations && table.prefers_lut_panels;
  layer.packed = layer.is_quantized() ? kernels::pack_quantized(*layer.quantized, panels, lut_panels) : nullptr;
  // Rows too long for the int8 kernels' int32 sums (supports_qd8): the fp32 kernels' layout.
  if (sliced && layer.packed != nullptr && !kernels::supports_qd8(*layer.packed))
    layer.packed = kernels::pack_quantized(*layer.quantized, false, lut_panels);
}

void prepare_linears(std::vector<LayerWeights>& layers, Linear& head) {
  for (LayerWeights& L : layers)
    for (Linear* l : L.linears()) prepare_linear(*l);
  prepare_linear(head);
}

void pack_dense_linear(Linear& layer, kernels::PackedKind kind) {
  if (layer.is_quantized() || layer.weight == nullptr) return;
  layer.packed = kernels::pack_dense(layer.weight, layer.out_features, layer.in_features, kind);
}

const kernels::PackedWeight* active_packed(const Linear& layer) {
  if (layer.packed == nullptr) return nullptr;
  const void* current = layer.is_quantized() ? static_cast<const void*>(layer.quantized.get()) : layer.weight;
  return layer.packed->source == current ? layer.packed.get() : nullptr;
}

// A weight-only weight in low-bit VNNI panels was packed so by prepare_linear for
// matmul_qd8_slices (its weight-only gemv would be the reference).
int int8_slices(const Linear& layer, const kernels::PackedWeight& p) {
  if (!kernels::supports_qd8(p)) return 0;
  if (layer.dynamic_int8_activations) return 1;
  const bool low_bit_panels =
      p.kind == kernels::PackedKind::kQ4P || p.kind == kernels::PackedKind::kQ3P || p.kind == kernels::PackedKind::kQ2P;
  return low_bit_panels ? 2 : 0;
}

namespace {

// The packed weight to run, or null for BLAS / the reference path. A layer that asks for dynamic
// int8 activations never silently runs with exact activations: without a qd8 kernel for its
// format it takes the reference path, which rounds the activations the same way.
const kernels::PackedWeight* kernel_weight(const Linear& layer) {
  const kernels::PackedWeight* p = active_packed(layer);
  if (p != nullptr && layer.dynamic_int8_activations && !kernels::supports_qd8(*p)) return nullptr;
  return p;
}

// The reference form of dynamic int8 activations: each token is rounded by the scalar reference
// quantizer of the kernel table (kernels/kernel_types.h, "qd8": one scale per 32 inputs) and
// replaced by q * scale, so the fp32 product below computes what the int8 kernels compute, up to
// summation order.
std::vector<float> fake_quantize_int8_blocks(const float* x, int n_tokens, int in) {
  const int64_t k_padded = (in + kernels::kBlock - 1) / kernels::kBlock * kernels::kBlock;
  std::vector<int8_t> q(static_cast<size_t>(k_padded));
  std::vector<float> scales(size_t(k_padded / kernels::kBlock));
  std::vector<int32_t> sums(scales.size());
  std::vector<float> out(size_t(n_tokens) * in);
  for (int t = 0; t < n_tokens; ++t) {
    kernels::kernels_for(kernels::Isa::kRef)
        .quantize_f32_qd8(x + size_t(t) * in, in, k_padded, q.data(), scales.data(), sums.data());
    for (int i = 0; i < in; ++i) out[size_t(t) * in + i] = float(q[size_t(i)]) * scales[size_t(i / kernels::kBlock)];
  }
  return out;
}

void add_bias(const Linear& layer, int n_tokens, float* y) {
  if (layer.bias == nullptr) return;
  for (int t = 0; t < n_tokens; ++t)
    for (int o = 0; o < layer.out_features; ++o) y[size_t(t) * layer.out_features + o] += layer.bias[o];
}

}  // namespace

std::string linear_path(const Linear& layer, int n_tokens) {
  const kernels::PackedWeight* p = kernel_weight(layer);
  if (p == nullptr) {
    if (!layer.is_quantized()) return "blas_f32";
    return layer.dynamic_int8_activations ? "reference_qd8" : "reference";
  }
  const std::string kind = kernels::packed_kind_name(p->kind);
  const int slices = int8_slices(layer, *p);
  if (slices > 0)
    return (n_tokens == 1 ? "gemv_qd8" : "gemm_qd8") + std::string(slices == 2 ? "x2_" : "_") + kind + "_f32";
  return n_tokens == 1 ? "gemv_" + kind + "_f32" : "dequant_" + kind + "_f32+sgemm";
}

void linear_forward(const Linear& layer, const float* x, int n_tokens, float* y) {
  const int out = layer.out_features, in = layer.in_features;
  if (const kernels::PackedWeight* p = kernel_weight(layer)) {
    if (const int slices = int8_slices(layer, *p); slices > 0) {
      kernels::matmul_qd8_slices(*p, x, n_tokens, y, slices);
    } else {
      kernels::matmul_f32(*p, x, n_tokens, y);
    }
  } else {
    // fp32 weights, or the reference path for a quantized weight without a kernel layout:
    // dequantize the whole matrix, then the fp32 product.
    std::vector<float> dequantized, rounded_x;
    const float* weight = layer.weight;
    if (layer.is_quantized()) {
      dequantized = dequantize(*layer.quantized);
      weight = dequantized.data();
      if (layer.dynamic_int8_activations) {
        rounded_x = fake_quantize_int8_blocks(x, n_tokens, in);
        x = rounded_x.data();
      }
    }
    if (n_tokens == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, weight, in, x, 1, 0.0f, y, 1);
    } else {
      // Y [n, out] = X [n, in] · Wᵀ [in, out]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tokens, out, in, 1.0f, x, in, weight, in, 0.0f,
                  y, out);
    }
  }
  add_bias(layer, n_tokens, y);
}

void linear_forward_shared_input(std::span<const Linear* const> layers, const float* x, int n_tokens,
                                 std::span<float* const> ys) {
  LOWBIT_CHECK(layers.size() == ys.size());
  if (layers.size() == 1) {
    linear_forward(*layers[0], x, n_tokens, ys[0]);
    return;
  }
  std::vector<kernels::GemvPart> parts;
  for (size_t i = 0; i < layers.size() && n_tokens == 1; ++i) {
    const Linear& l = *layers[i];
    kernels::GemvPart part;
    part.rows = l.out_features;
    part.cols = l.in_features;
    part.y = ys[i];
    if (const kernels::PackedWeight* p = kernel_weight(l)) {
      part.packed = p;
      part.int8_slices = int8_slices(l, *p);
    } else if (!l.is_quantized() && l.weight != nullptr) {
      part.dense = l.weight;
    } else {
      break;  // the reference path
    }
    if (part.cols != layers[0]->in_features) break;
    parts.push_back(part);
  }
  if (n_tokens != 1 || parts.size() != layers.size()) {
    for (size_t i = 0; i < layers.size(); ++i) linear_forward(*layers[i], x, n_tokens, ys[i]);
    return;
  }
  kernels::gemv_parts(parts, x);
  for (size_t i = 0; i < layers.size(); ++i) add_bias(*layers[i], n_tokens, ys[i]);
}

}  // namespace lowbit
