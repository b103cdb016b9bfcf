#include "formats/format.h"

#include <charconv>

#include "formats/scale_grid.h"

namespace lowbit {
namespace {

constexpr int64_t kMaxGroupSize = int64_t(1) << 30;

bool consume(std::string_view& text, std::string_view prefix) {
  if (text.substr(0, prefix.size()) != prefix) return false;
  text.remove_prefix(prefix.size());
  return true;
}

// Parses "g<N>" with N a positive decimal without leading zeros; leaves `text` after it.
Result<int64_t> consume_group(std::string_view& text, std::string_view whole) {
  text.remove_prefix(1);  // the 'g'
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  int64_t group = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, group);
  if (digits == 0 || text[0] == '0' || ec != std::errc() || group > kMaxGroupSize) {
    return error(ErrorCode::kInvalidArgument,
                 "format '{}': group size after 'g' must be a positive integer up to {}", whole,
                 kMaxGroupSize);
  }
  text.remove_prefix(digits);
  return group;
}

Status bad_spec(std::string_view whole) {
  return error(ErrorCode::kInvalidArgument,
               "unknown format '{}' (expected int<2|3|4|8>[g<N>|_tensor][_sym|_midrise|_asym][_dq|_dq4], "
               "nf4[g<N>], fp8_e4m3, f16, bf16 or f32)",
               whole);
}

}  // namespace

Result<FormatSpec> parse_format_spec(std::string_view whole) {
  for (FormatId dense : {FormatId::kF32, FormatId::kF16, FormatId::kBF16}) {
    if (whole == format_info(dense).name) return FormatSpec{dense, Granularity::kNone, 0, false};
  }
  if (whole == format_info(FormatId::kFP8E4M3).name) {
    return FormatSpec{FormatId::kFP8E4M3, Granularity::kPerChannel, 0, false};
  }
  std::string_view text = whole;
  if (consume(text, format_info(FormatId::kNF4).name)) {
    FormatSpec spec{FormatId::kNF4, Granularity::kGroup, format_info(FormatId::kNF4).default_group, false};
    if (!text.empty() && text[0] == 'g') {
      LOWBIT_ASSIGN_OR_RETURN(spec.group_size, consume_group(text, whole));
    }
    if (!text.empty()) return bad_spec(whole);
    return spec;
  }
  for (FormatId id : {FormatId::kInt8, FormatId::kInt4, FormatId::kInt3, FormatId::kInt2}) {
    if (!consume(text, format_info(id).name)) continue;
    FormatSpec spec{id, Granularity::kPerChannel, 0, false};
    if (!text.empty() && text[0] == 'g') {
      spec.granularity = Granularity::kGroup;
      LOWBIT_ASSIGN_OR_RETURN(spec.group_size, consume_group(text, whole));
    } else if (consume(text, "_tensor")) {
      spec.granularity = Granularity::kPerTensor;
    }
    if (consume(text, "_sym")) {
      spec.symmetric = true;
    } else if (consume(text, "_midrise")) {
      spec.symmetric = spec.midrise = true;
    } else {
      (void)consume(text, "_asym");
    }
    if (consume(text, "_dq4")) {
      spec.double_quant = true;
      spec.scale_code_bits = 4;
    } else {
      spec.double_quant = consume(text, "_dq");
    }
    if (!text.empty()) return bad_spec(whole);
    return spec;
  }
  return bad_spec(whole);
}

std::string format_spec_name(const FormatSpec& spec) {
  const FormatInfo& info = spec.info();
  std::string name(info.name);
  if (spec.id == FormatId::kNF4) {
    if (spec.group_size != info.default_group) name += fmt::format("g{}", spec.group_size);
    return name;
  }
  if (!info.integer_grid) return name;
  if (spec.granularity == Granularity::kGroup) name += fmt::format("g{}", spec.group_size);
  if (spec.granularity == Granularity::kPerTensor) name += "_tensor";
  if (spec.symmetric) name += spec.midrise ? "_midrise" : "_sym";
  if (spec.double_quant) name += spec.scale_code_bits == 4 ? "_dq4" : "_dq";
  return name;
}

GroupLayout group_layout(const FormatSpec& spec, int64_t rows, int64_t cols) {
  LOWBIT_CHECK(rows >= 0 && cols >= 0);
  GroupLayout layout;
  layout.rows = rows;
  layout.cols = cols;
  layout.group_size = cols > 0 ? cols : 1;
  switch (spec.granularity) {
    case Granularity::kNone:
      return layout;  // no parameters
    case Granularity::kPerTensor:
      layout.param_rows = rows > 0 ? 1 : 0;
      break;
    case Granularity::kPerChannel:
      layout.param_rows = rows;
      break;
    case Granularity::kGroup:
      LOWBIT_CHECK(spec.group_size > 0);
      layout.param_rows = rows;
      layout.group_size = spec.group_size;
      break;
  }
  layout.groups_per_row = (cols + layout.group_size - 1) / layout.group_size;
  return layout;
}

uint64_t format_bytes(const FormatSpec& spec, int64_t rows, int64_t cols) {
  const FormatInfo& info = spec.info();
  const uint64_t elements = uint64_t(rows) * uint64_t(cols);
  if (!spec.is_quantized()) return elements * uint64_t(info.code_bits) / 8;
  const uint64_t code_words = (elements * uint64_t(info.code_bits) + 31) / 32;
  const uint64_t param_sets = uint64_t(group_layout(spec, rows, cols).param_count());
  if (spec.double_quant) {
    // Scale codes (one byte each, or a padded 4-bit stream for _dq4), zero points as a padded
    // b-bit stream, the fp32 super-scale.
    const uint64_t zero_words = spec.stores_zero() ? (param_sets * uint64_t(info.code_bits) + 31) / 32 : 0;
    const uint64_t scale_code_bytes =
        spec.scale_code_bits == 4 ? 4 * ((param_sets * 4 + 31) / 32) : param_sets * uint64_t(kScaleCodeBits) / 8;
    return 4 * code_words + scale_code_bytes + 4 * zero_words + sizeof(float);
  }
  const uint64_t param_bits = uint64_t(info.scale_bits) + (spec.stores_zero() ? info.zero_bits : 0);
  return 4 * code_words + param_sets * param_bits / 8;
}

double format_bits_per_weight(const FormatSpec& spec, int64_t rows, int64_t cols) {
  LOWBIT_CHECK(rows > 0 && cols > 0);
  return 8.0 * double(format_bytes(spec, rows, cols)) / (double(rows) * double(cols));
}

}  // namespace lowbit
