// The Hugging Face GPTQ tensors (AutoGPTQ / GPTQModel / transformers "quant_method": "gptq"), the
// on-disk convention lowbit exports INTn weights in. For a linear layer with weight
// [out_features, in_features] and G = ceil(in_features / group_size) groups (G = 1 for
// group_size -1, one group per output channel):
//
//   qweight  int32 [ceil(in/32)*bits, out]   codes packed along in_features: column o holds the
//                                            bit stream (bitpack.h) of codes (o, 0..in-1)
//   qzeros   int32 [G, ceil(out/32)*bits]    stored zero points packed along out_features: row g
//                                            holds the bit stream of fields (g, 0..out-1)
//   scales   fp16  [G, out]
//   g_idx    int32 [in]                      group of each input: i / group_size (0 for -1), or
//                                            for act-order (desc_act) checkpoints the group each
//                                            input was quantized in (QuantizedMatrix::g_idx)
//
// Each column of qweight and each row of qzeros is a bit stream in chunks of 32 values = `bits`
// words: 8 codes per word at 4 bits (code k of a chunk in bits 4k..4k+3), 16 at 2 bits, 4 at 8
// bits, and for 3 bits 32 codes in 3 words with codes 10 and 21 split across words (AutoGPTQ's
// scheme). Ecosystem kernels need in % 32 == 0 and out % 32 == 0; other shapes are padded here
// with zero codes to whole chunks (the exporter decides whether such a layer is written as GPTQ).
//
// Zero points. Dequantization is w = scale * (code - zero). The checkpoint stores zero - offset:
//   "checkpoint_format": "gptq"    (v1, what transformers/optimum, exllama, Marlin and vLLM load)
//                                  offset 1 (AutoGPTQ's historical `zeros -= 1`; loaders add 1)
//   "checkpoint_format": "gptq_v2" (GPTQModel)  offset 0
// Symmetric quantization uses zero = 2^(bits-1), stored in v1 as 2^(bits-1) - 1
// (0x77777777 per qzeros word at 4 bits). In v1 a zero point of 0 cannot be stored: its field
// would be -1, which AutoGPTQ's packer smears over the neighbouring fields and GPTQModel's
// v2->v1 conversion borrows from; pack_gptq refuses it (kUnsupported) rather than write a
// corrupt checkpoint; use gptq_v2 or a grid whose zero is at least 1.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "formats/quantized_matrix.h"

namespace lowbit {

enum class GptqCheckpointFormat {
  kGptqV1,  // "gptq": stored = zero - 1
  kGptqV2,  // "gptq_v2": stored = zero
};
const char* gptq_checkpoint_format_name(GptqCheckpointFormat format);  // "gptq" / "gptq_v2"

struct GptqTensors {
  int bits = 4;
  int64_t in_features = 0;
  int64_t out_features = 0;
  int64_t group_size = -1;       // quantization_config.group_size; -1 = one group per channel
  std::vector<int32_t> qweight;  // [qweight_rows(), out_features]
  std::vector<int32_t> qzeros;   // [group_count(), qzeros_cols()]
  std::vector<uint16_t> scales;  // fp16 bits, [group_count(), out_features]
  std::vector<int32_t> g_idx;    // [in_features]

  int64_t group_count() const;
  int64_t qweight_rows() const { return (in_features + 31) / 32 * bits; }
  int64_t qzeros_cols() const { return (out_features + 31) / 32 * bits; }
};

// Packs an INTn matrix (rows = out_features, cols = in_features). Scales must already be fp16
// values and zeros integers (as int_grid.h fits them). A per-tensor matrix is written with its
// one scale repeated per column (group_size -1).
Result<GptqTensors> pack_gptq(const QuantizedMatrix& matrix, GptqCheckpointFormat format);

// Reads GPTQ tensors back. `symmetric` comes from quantization_config.sym; every zero point must
// then be 2^(bits-1). A g_idx other than i / group_size (act-order) is kept in the matrix's g_idx;
// a value outside [0, groups) is kFormat.
Result<QuantizedMatrix> unpack_gptq(const GptqTensors& tensors, bool symmetric, GptqCheckpointFormat format);

}  // namespace lowbit
