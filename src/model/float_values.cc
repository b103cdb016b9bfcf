#include "model/float_values.h"

#include <cstring>

#include "base/half.h"

namespace lowbit {

std::vector<float> float_values(const RawTensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  float_values_into(t, v.data());
  return v;
}

void float_values_into(const RawTensor& t, float* out) {
  LOWBIT_CHECK(t.dtype == DType::kF32 || t.dtype == DType::kF16 || t.dtype == DType::kBF16);
  const int64_t n = t.numel();
  if (t.dtype == DType::kF32) {
    std::memcpy(out, t.data.data(), size_t(n) * 4);
    return;
  }
  const uint8_t* in = t.data.data();
  const bool f16 = t.dtype == DType::kF16;
#pragma omp parallel for schedule(static) if (n >= (int64_t(1) << 20))
  for (int64_t i = 0; i < n; ++i) {
    uint16_t b;
    std::memcpy(&b, in + 2 * i, 2);
    out[i] = f16 ? fp16_to_f32(b) : bf16_to_f32(b);
  }
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
