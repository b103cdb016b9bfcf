// Fake quantization for quantization-aware training (QAT): the forward pass of a quantized
// linear layer uses dq(q(W)), the weight rounded onto its target format's grid and mapped back
// to fp32, while the optimizer keeps updating the fp32 master weights W.
//
// Gradient: the straight-through estimator (STE, Bengio et al. 2013; as in LLM-QAT and
// EfficientQAT's first phase): d loss / d W := d loss / d dq(q(W)). The grid is re-fit from the
// current master weights at every step (min/max per group, the same fit `lowbit quantize`'s RTN
// uses), so scales follow the weights rather than being learned; learned step sizes (LSQ) are not
// implemented. With a min/max fit no weight lies outside its group's range, so the clipped STE
// (zero gradient outside the range) would equal the plain one; the plain STE is what is used.
//
// At the end of training the master weights are quantized for real with the same function, so
// the checkpoint holds exactly the weights the last forward passes saw.
#pragma once

#include <cstdint>
#include <span>

#include "base/status.h"
#include "formats/quantized_matrix.h"
#include "quant/rtn.h"

namespace lowbit {

// out [rows, cols] = dequantize(rtn_quantize(weights)). `out` may alias `weights`.
Status fake_quantize(std::span<const float> weights, int64_t rows, int64_t cols, const FormatSpec& spec,
                     std::span<float> out, const RtnOptions& options = {});

}  // namespace lowbit
