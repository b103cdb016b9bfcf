#include "formats/gptq_pack.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "base/half.h"
#include "formats/bitpack.h"

namespace lowbit {
namespace {

int zero_offset(GptqCheckpointFormat format) { return format == GptqCheckpointFormat::kGptqV1 ? 1 : 0; }

Result<FormatId> int_format_for_bits(int bits) {
  switch (bits) {
    case 2: return FormatId::kInt2;
    case 3: return FormatId::kInt3;
    case 4: return FormatId::kInt4;
    case 8: return FormatId::kInt8;
    default: return error(ErrorCode::kUnsupported, "GPTQ bits = {} (supported: 2, 3, 4, 8)", bits);
  }
}

int32_t as_int32(uint32_t word) { return int32_t(word); }  // two's complement, same bits
uint32_t as_uint32(int32_t word) { return uint32_t(word); }

}  // namespace

const char* gptq_checkpoint_format_name(GptqCheckpointFormat format) {
  return format == GptqCheckpointFormat::kGptqV1 ? "gptq" : "gptq_v2";
}

int64_t GptqTensors::group_count() const {
  if (group_size == -1) return in_features > 0 ? 1 : 0;
  return group_size > 0 ? (in_features + group_size - 1) / group_size : 0;
}

Result<GptqTensors> pack_gptq(const QuantizedMatrix& matrix, GptqCheckpointFormat format) {
  LOWBIT_RETURN_IF_ERROR(validate_matrix(matrix));
  const FormatSpec& spec = matrix.spec;
  if (!spec.info().integer_grid) {
    return error(ErrorCode::kUnsupported, "format {} has no GPTQ layout (INTn only)", format_spec_name(spec));
  }
  GptqTensors out;
  out.bits = spec.code_bits();
  out.out_features = matrix.rows;
  out.in_features = matrix.cols;
  out.group_size = spec.granularity == Granularity::kGroup ? spec.group_size : -1;
  const GroupLayout layout = matrix.layout();
  const int64_t groups = out.group_count();
  LOWBIT_CHECK(groups == layout.groups_per_row);
  const int offset = zero_offset(format);
  const int max_field = (1 << out.bits) - 1;

  // Scales and stored zero fields, [groups, out].
  out.scales.resize(size_t(groups * out.out_features));
  std::vector<uint8_t> zero_fields(size_t(groups * out.out_features));
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out.out_features; ++o) {
      // Parameter set g of this output row (with act-order its inputs are those with g_idx == g).
      const GroupParams& p = matrix.params[size_t((layout.param_rows == 1 ? 0 : o) * groups + g)];
      if (round_to_fp16(p.scale) != p.scale) {
        return error(ErrorCode::kInvalidArgument, "scale {} of column {} group {} is not an fp16 value", p.scale, o,
                     g);
      }
      const float field = p.zero - float(offset);
      if (field != std::floor(field) || field < 0.0f || field > float(max_field)) {
        return error(ErrorCode::kUnsupported,
                     "zero point {} of column {} group {} cannot be stored at {} bits in checkpoint_format '{}'",
                     p.zero, o, g, out.bits, gptq_checkpoint_format_name(format));
      }
      out.scales[size_t(g * out.out_features + o)] = f32_to_fp16(p.scale);
      zero_fields[size_t(g * out.out_features + o)] = uint8_t(field);
    }
  }

  // qweight: one bit stream per output column, along the inputs.
  const int64_t qrows = out.qweight_rows();
  out.qweight.assign(size_t(qrows * out.out_features), 0);
  std::vector<uint32_t> stream(static_cast<size_t>(qrows), 0u);
  for (int64_t o = 0; o < out.out_features; ++o) {
    std::fill(stream.begin(), stream.end(), 0u);
    pack_bits_into(std::span(matrix.codes).subspan(size_t(o * out.in_features), size_t(out.in_features)), out.bits,
                   stream);
    for (int64_t w = 0; w < qrows; ++w) out.qweight[size_t(w * out.out_features + o)] = as_int32(stream[size_t(w)]);
  }

  // qzeros: one bit stream per group, along the output columns.
  const int64_t qcols = out.qzeros_cols();
  out.qzeros.assign(size_t(groups * qcols), 0);
  stream.assign(size_t(qcols), 0u);
  for (int64_t g = 0; g < groups; ++g) {
    std::fill(stream.begin(), stream.end(), 0u);
    pack_bits_into(std::span(zero_fields).subspan(size_t(g * out.out_features), size_t(out.out_features)), out.bits,
                   stream);
    for (int64_t w = 0; w < qcols; ++w) out.qzeros[size_t(g * qcols + w)] = as_int32(stream[size_t(w)]);
  }

  out.g_idx.resize(size_t(out.in_features));
  for (int64_t i = 0; i < out.in_features; ++i) {
    out.g_idx[size_t(i)] = matrix.g_idx.empty() ? int32_t(out.group_size == -1 ? 0 : i / out.group_size)
                                                : matrix.g_idx[size_t(i)];
  }
  return out;
}

Result<QuantizedMatrix> unpack_gptq(const GptqTensors& t, bool symmetric, GptqCheckpointFormat format) {
  LOWBIT_ASSIGN_OR_RETURN(const FormatId id, int_format_for_bits(t.bits));
  if (t.in_features < 0 || t.out_features < 0 || (t.group_size != -1 && t.group_size <= 0)) {
    return error(ErrorCode::kFormat, "GPTQ shape in={} out={} group_size={} is invalid", t.in_features,
                 t.out_features, t.group_size);
  }
  const int64_t groups = t.group_count();
  const int64_t qrows = t.qweight_rows();
  const int64_t qcols = t.qzeros_cols();
  if (t.qweight.size() != size_t(qrows * t.out_features) || t.qzeros.size() != size_t(groups * qcols) ||
      t.scales.size() != size_t(groups * t.out_features) || t.g_idx.size() != size_t(t.in_features)) {
    return error(ErrorCode::kFormat,
                 "GPTQ tensor sizes qweight {} qzeros {} scales {} g_idx {} do not match in={} out={} bits={} "
                 "group_size={}",
                 t.qweight.size(), t.qzeros.size(), t.scales.size(), t.g_idx.size(), t.in_features, t.out_features,
                 t.bits, t.group_size);
  }
  bool contiguous = true;
  for (int64_t i = 0; i < t.in_features; ++i) {
    const int32_t group = t.g_idx[size_t(i)];
    if (group < 0 || group >= groups) {
      return error(ErrorCode::kFormat, "g_idx[{}] = {} is outside [0, {})", i, group, groups);
    }
    contiguous = contiguous && group == (t.group_size == -1 ? 0 : i / t.group_size);
  }

  QuantizedMatrix m;
  m.spec = FormatSpec{id, t.group_size == -1 ? Granularity::kPerChannel : Granularity::kGroup,
                      t.group_size == -1 ? 0 : t.group_size, symmetric};
  m.rows = t.out_features;
  m.cols = t.in_features;
  if (!contiguous) m.g_idx = t.g_idx;  // act-order: inputs grouped in quantization order
  m.codes.resize(size_t(m.rows * m.cols));
  std::vector<uint32_t> stream(static_cast<size_t>(qrows), 0u);
  for (int64_t o = 0; o < t.out_features; ++o) {
    for (int64_t w = 0; w < qrows; ++w) stream[size_t(w)] = as_uint32(t.qweight[size_t(w * t.out_features + o)]);
    LOWBIT_ASSIGN_OR_RETURN(std::vector<uint8_t> codes, unpack_bits(stream, t.bits, size_t(t.in_features)));
    std::copy(codes.begin(), codes.end(), m.codes.begin() + o * t.in_features);
  }

  const GroupLayout layout = m.layout();
  LOWBIT_CHECK(layout.groups_per_row == groups);
  m.params.resize(size_t(layout.param_count()));
  const int offset = zero_offset(format);
  const int symmetric_zero = 1 << (t.bits - 1);
  stream.assign(size_t(qcols), 0u);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t w = 0; w < qcols; ++w) stream[size_t(w)] = as_uint32(t.qzeros[size_t(g * qcols + w)]);
    LOWBIT_ASSIGN_OR_RETURN(std::vector<uint8_t> fields, unpack_bits(stream, t.bits, size_t(t.out_features)));
    for (int64_t o = 0; o < t.out_features; ++o) {
      GroupParams& p = m.params[size_t(o * groups + g)];
      p.scale = fp16_to_f32(t.scales[size_t(g * t.out_features + o)]);
      p.zero = float(int(fields[size_t(o)]) + offset);
      if (!std::isfinite(p.scale)) {
        return error(ErrorCode::kFormat, "scale of column {} group {} is not finite", o, g);
      }
      if (symmetric && p.zero != float(symmetric_zero)) {
        return error(ErrorCode::kFormat, "symmetric GPTQ tensor has zero point {} (column {} group {}), expected {}",
                     p.zero, o, g, symmetric_zero);
      }
    }
  }
  return m;
}

}  // namespace lowbit
