#include "quant/fake_quant.h"

#include <algorithm>

namespace lowbit {

Status fake_quantize(std::span<const float> weights, int64_t rows, int64_t cols, const FormatSpec& spec,
                     std::span<float> out, const RtnOptions& options) {
  if (out.size() != weights.size())
    return error(ErrorCode::kInvalidArgument, "fake_quantize: output has {} values, input {}", out.size(),
                 weights.size());
  LOWBIT_ASSIGN_OR_RETURN(QuantizedMatrix q, rtn_quantize(weights, rows, cols, spec, options));
  const std::vector<float> values = dequantize(q);
  std::copy(values.begin(), values.end(), out.begin());
  return Status::Ok();
}

}  // namespace lowbit
