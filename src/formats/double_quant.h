// The stored parameters of a double-quantized INTn matrix (spec suffix _dq / _dq4), in the
// canonical layout of format.h: 8-bit scale codes [param_rows, groups_per_row] (_dq4: 4-bit codes
// as a padded bit stream) against one fp32 super-scale (scale_grid.h), and for asymmetric grids the zero points as a bit stream of
// code_bits each (bitpack.h). In memory a QuantizedMatrix keeps the decoded float scales and zero
// points (what kernels read); these functions convert both ways, exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "formats/quantized_matrix.h"

namespace lowbit {

struct DoubleQuantParams {
  float super_scale = 0.0f;
  std::vector<uint8_t> scale_codes;  // _dq: [param_rows, groups_per_row]; _dq4: empty
  std::vector<uint32_t> scale_words;  // _dq4: packed_word_count(param sets, 4) words of 4-bit codes; else empty
  std::vector<uint32_t> zero_words;  // asymmetric: packed_word_count(param sets, code_bits) words; else empty
};

// The stored form of `m`'s parameters. Fails (kInvalidArgument) when `m` is not a valid
// double-quantized matrix (validate_matrix): a scale off its grid cannot be stored exactly.
Result<DoubleQuantParams> pack_double_quant(const QuantizedMatrix& m);

// The parameters of a [rows, cols] matrix of `spec` from their stored form. Checks what a file
// can get wrong: the super-scale's range, the number of scale codes (or 4-bit scale words) and
// zero words, the field the spec does not use being non-empty, nonzero padding bits after the
// last 4-bit scale code or zero point. Every 8- or 4-bit scale code and every b-bit zero is in
// range by construction.
Result<std::vector<GroupParams>> unpack_double_quant(const FormatSpec& spec, int64_t rows, int64_t cols,
                                                     const DoubleQuantParams& stored);

}  // namespace lowbit
