// How a quantized weight is stored in a safetensors checkpoint, both ways.
//
// Two layouts (docs/formats.md has the bit diagrams):
//  - Hugging Face GPTQ ("quant_method": "gptq"): for weight "P.weight" the tensors P.qweight,
//    P.qzeros, P.scales, P.g_idx (formats/gptq_pack.h). Used when every quantized weight is INTn
//    with the same bits, group and symmetry and a shape the ecosystem kernels take
//    (in_features and out_features multiples of 32, the group dividing in_features).
//  - lowbit ("quant_method": "lowbit") for everything else (ragged groups such as 172 = 5·32+12,
//    NF4, FP8, mixed formats): P.lowbit_codes I32 = the canonical bit stream of all codes
//    (row-major, LSB first, padded to a whole word), P.lowbit_scales [param_rows, groups]
//    (F16 for INTn, F32 for NF4/FP8), P.lowbit_zeros F16 (asymmetric INTn only),
//    P.lowbit_g_idx I32 [in] (only when groups are not contiguous, e.g. act-order), and the
//    format spec string in the safetensors metadata under "lowbit.format.P.weight".
//    Double-quantized INTn (_dq, formats/double_quant.h; never the GPTQ layout) stores
//    P.lowbit_scale_codes U8 [param_rows, groups] (_dq4: I32 [words], 4-bit codes as a bit
//    stream), P.lowbit_zero_codes I32 (asymmetric: b-bit zero points as a bit stream) and
//    P.lowbit_super_scale F32 [1] instead of scales and zeros.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/gptq_pack.h"
#include "formats/quantized_matrix.h"
#include "io/tensor.h"

namespace lowbit {

enum class QuantizedLayout { kGptq, kLowbit };

// Whether one matrix can be written in the GPTQ convention.
bool gptq_compatible(const QuantizedMatrix& m);

// The quantization_config block for config.json and the layout to use, given every quantized
// weight of a checkpoint. `gptq_format` is v1 unless a zero point of 0 forces gptq_v2.
struct QuantizationConfig {
  QuantizedLayout layout = QuantizedLayout::kLowbit;
  GptqCheckpointFormat gptq_format = GptqCheckpointFormat::kGptqV1;
  std::string json;  // the quantization_config object, serialized
};
QuantizationConfig choose_quantization_config(const std::map<std::string, std::shared_ptr<const QuantizedMatrix>>& q);

// Adds the stored tensors of weight `name` to `out` (and its metadata entries).
Status add_quantized_tensors(const std::string& name, const QuantizedMatrix& m, const QuantizationConfig& config,
                             TensorSet& out);

// Finds stored quantized weights in `tensors` (given config.json's quantization_config as JSON
// text, "" when absent), returns them by canonical weight name and removes their pieces from
// `tensors`. Errors name `source`.
Result<std::map<std::string, std::shared_ptr<const QuantizedMatrix>>> extract_quantized_tensors(
    TensorSet& tensors, const std::string& quantization_config_json, const std::string& source);

// Reorders the rows (output channels) of a quantized matrix: row r of the result is row
// source_row[r] of m. Used to move q/k projections between RoPE conventions.
QuantizedMatrix permute_quantized_rows(const QuantizedMatrix& m, const std::vector<int64_t>& source_row);

}  // namespace lowbit
