// Conversions between stored float tensors (F32/F16/BF16 bytes) and fp32 values.
#pragma once

#include <cstdint>
#include <vector>

#include "io/tensor.h"

namespace lowbit {

// fp32 values of a F32, F16 or BF16 tensor (any alignment).
std::vector<float> float_values(const RawTensor& t);
// Little-endian bytes of `values` stored as F32, F16 or BF16 (round to nearest even).
std::vector<uint8_t> encode_floats(const std::vector<float>& values, DType dtype);

}  // namespace lowbit
