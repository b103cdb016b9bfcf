// Conversions between stored float tensors (F32/F16/BF16 bytes) and fp32 values.
#pragma once

#include <cstdint>
#include <vector>

#include "io/tensor.h"

namespace lowbit {

// fp32 values of a F32, F16 or BF16 tensor (any alignment).
std::vector<float> float_values(const RawTensor& t);
// The same values written to out[0, t.numel()) (threaded over blocks for big tensors: the model
// converts gigabytes of F16 weights at load).
void float_values_into(const RawTensor& t, float* out);
// Little-endian bytes of `values` stored as F32, F16 or BF16 (round to nearest even).
std::vector<uint8_t> encode_floats(const std::vector<float>& values, DType dtype);

}  // namespace lowbit
