#include "formats/double_quant.h"

#include <utility>

#include "formats/bitpack.h"

namespace lowbit {
namespace {

// The `count` values of a bit stream of `bits` each, checked as a file field: the word count,
// then zero padding after the last value (canonical padding is zero; anything else is a damaged
// or foreign stream).
Result<std::vector<uint8_t>> unpack_stream(const std::vector<uint32_t>& words, size_t count, int bits,
                                           const char* what) {
  if (words.size() != packed_word_count(count, bits))
    return error(ErrorCode::kFormat, "{} {} words where {} values of {} bits need {}", words.size(), what, count, bits,
                 packed_word_count(count, bits));
  LOWBIT_ASSIGN_OR_RETURN(std::vector<uint8_t> values, unpack_bits(words, bits, count));
  const size_t used_bits = count * size_t(bits);
  if (used_bits % 32 != 0 && (words.back() >> (used_bits % 32)) != 0)
    return error(ErrorCode::kFormat, "{} stream has nonzero padding bits after its {} values", what, count);
  return values;
}

}  // namespace

Result<DoubleQuantParams> pack_double_quant(const QuantizedMatrix& m) {
  if (!m.spec.double_quant)
    return error(ErrorCode::kInvalidArgument, "format '{}' is not double-quantized", format_spec_name(m.spec));
  LOWBIT_RETURN_IF_ERROR(validate_matrix(m));
  DoubleQuantParams out;
  out.super_scale = m.super_scale;
  const ScaleGrid grid = m.scale_grid();
  out.scale_codes.reserve(m.params.size());
  for (const GroupParams& p : m.params) out.scale_codes.push_back(*grid.code_of(p.scale));  // on the grid: validated
  if (grid.code_bits == 4) out.scale_words = pack_bits(std::exchange(out.scale_codes, {}), 4);
  if (m.spec.stores_zero()) {
    std::vector<uint8_t> zeros;
    zeros.reserve(m.params.size());
    for (const GroupParams& p : m.params) zeros.push_back(uint8_t(p.zero));  // integers in [0, max_code]: validated
    out.zero_words = pack_bits(zeros, m.spec.code_bits());
  }
  return out;
}

Result<std::vector<GroupParams>> unpack_double_quant(const FormatSpec& spec, int64_t rows, int64_t cols,
                                                     const DoubleQuantParams& stored) {
  if (!spec.double_quant || !spec.info().integer_grid)
    return error(ErrorCode::kInvalidArgument, "format '{}' is not double-quantized", format_spec_name(spec));
  if (!valid_super_scale(stored.super_scale))
    return error(ErrorCode::kFormat, "super-scale {} is not finite in (0, 65504]", stored.super_scale);
  const size_t count = size_t(group_layout(spec, rows, cols).param_count());
  std::vector<uint8_t> scale_codes;
  if (spec.scale_code_bits == 4) {
    if (!stored.scale_codes.empty())
      return error(ErrorCode::kFormat, "format '{}' stores 4-bit scale codes as words but {} byte codes are present",
                   format_spec_name(spec), stored.scale_codes.size());
    LOWBIT_ASSIGN_OR_RETURN(scale_codes, unpack_stream(stored.scale_words, count, 4, "scale-code"));
  } else {
    if (stored.scale_codes.size() != count)
      return error(ErrorCode::kFormat, "{} scale codes where {} on [{}, {}] needs {}", stored.scale_codes.size(),
                   format_spec_name(spec), rows, cols, count);
    if (!stored.scale_words.empty())
      return error(ErrorCode::kFormat, "format '{}' stores 8-bit scale codes but {} 4-bit scale words are present",
                   format_spec_name(spec), stored.scale_words.size());
    scale_codes = stored.scale_codes;
  }
  const int bits = spec.code_bits();
  std::vector<uint8_t> zeros;
  if (spec.stores_zero()) {
    LOWBIT_ASSIGN_OR_RETURN(zeros, unpack_stream(stored.zero_words, count, bits, "zero-point"));
  } else if (!stored.zero_words.empty()) {
    return error(ErrorCode::kFormat, "symmetric format '{}' stores no zero points but {} words are present",
                 format_spec_name(spec), stored.zero_words.size());
  }
  const ScaleGrid grid{stored.super_scale, spec.scale_code_bits};
  std::vector<GroupParams> params(count);
  for (size_t i = 0; i < count; ++i) {
    params[i].scale = grid.scale(scale_codes[i]);
    params[i].zero = spec.stores_zero() ? float(zeros[i]) : spec.fixed_zero();
  }
  return params;
}

}  // namespace lowbit
