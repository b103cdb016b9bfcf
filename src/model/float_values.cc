#include "model/float_values.h"

#include <cstring>

#include "base/half.h"

namespace lowbit {

std::vector<float> float_values(const RawTensor& t) {
  LOWBIT_CHECK(t.dtype == DType::kF32 || t.dtype == DType::kF16 || t.dtype == DType::kBF16);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  if (t.dtype == DType::kF32) {
    std::memcpy(v.data(), t.data.data(), v.size() * 4);
    return v;
  }
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t b;
    std::memcpy(&b, t.data.data() + 2 * i, 2);
    v[i] = t.dtype == DType::kF16 ? fp16_to_f32(b) : bf16_to_f32(b);
  }
  return v;
}

std::vector<uint8_t> encode_floats(const std::vector<float>& values, DType dtype) {
  LOWBIT_CHECK(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16);
  std::vector<uint8_t> out(values.size() * dtype_size(dtype));
  if (dtype == DType::kF32) {
    std::memcpy(out.data(), values.data(), out.size());
    return out;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t h = dtype == DType::kF16 ? f32_to_fp16(values[i]) : f32_to_bf16(values[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

}  // namespace lowbit
