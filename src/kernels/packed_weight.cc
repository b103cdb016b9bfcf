#include "kernels/packed_weight.h"

#include <cstring>

#include "base/half.h"
#include "kernels/kernels.h"

namespace lowbit::kernels {

namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Bytes of one 32-code block.
int64_t block_bytes(PackedKind kind) {
  switch (kind) {
    case PackedKind::kF16:
    case PackedKind::kBF16: return 2 * kBlock;
    case PackedKind::kQ8:
    case PackedKind::kQ8P:
    case PackedKind::kFP8: return kBlock;
    case PackedKind::kQ4:
    case PackedKind::kQ4P:
    case PackedKind::kNF4: return kBlock / 2;
    case PackedKind::kQ3:
    case PackedKind::kQ3P:
    case PackedKind::kQ3L: return 3 * kBlock / 8;
    case PackedKind::kQ2:
    case PackedKind::kQ2P:
    case PackedKind::kQ2L: return kBlock / 4;
  }
  return 0;
}

bool kind_of(FormatId id, PackedKind* kind) {
  switch (id) {
    case FormatId::kInt8: *kind = PackedKind::kQ8; return true;
    case FormatId::kInt4: *kind = PackedKind::kQ4; return true;
    case FormatId::kInt3: *kind = PackedKind::kQ3; return true;
    case FormatId::kInt2: *kind = PackedKind::kQ2; return true;
    case FormatId::kNF4: *kind = PackedKind::kNF4; return true;
    case FormatId::kFP8E4M3: *kind = PackedKind::kFP8; return true;
    default: return false;
  }
}

// Writes one block of 32 codes (`codes` has kBlock entries, zero-padded) in `kind`'s layout.
void pack_block(PackedKind kind, const uint8_t* codes, uint8_t* out) {
  switch (kind) {
    case PackedKind::kQ8:
    case PackedKind::kFP8: std::memcpy(out, codes, kBlock); break;
    case PackedKind::kQ4:
    case PackedKind::kNF4:
      for (int j = 0; j < 16; ++j) out[j] = uint8_t(codes[j] | codes[j + 16] << 4);
      break;
    case PackedKind::kQ2:
      for (int j = 0; j < 8; ++j)
        out[j] = uint8_t(codes[j] | codes[j + 8] << 2 | codes[j + 16] << 4 | codes[j + 24] << 6);
      break;
    case PackedKind::kQ3: {
      uint32_t plane = 0;
      for (int j = 0; j < 8; ++j)
        out[j] = uint8_t((codes[j] & 3) | (codes[j + 8] & 3) << 2 | (codes[j + 16] & 3) << 4 |
                         (codes[j + 24] & 3) << 6);
      for (int j = 0; j < kBlock; ++j) plane |= uint32_t(codes[j] >> 2 & 1) << j;
      for (int b = 0; b < 4; ++b) out[8 + b] = uint8_t(plane >> (8 * b));
      break;
    }
    default: break;  // dense kinds are not packed by block
  }
}

PackedWeight empty_packed(PackedKind kind, int64_t rows, int64_t cols) {
  PackedWeight p;
  p.kind = kind;
  p.rows = rows;
  p.cols = cols;
  p.k_padded = round_up(cols, kBlock);
  p.row_bytes = p.k_padded / kBlock * block_bytes(kind);
  p.codes.assign(size_t(rows * p.row_bytes), 0);
  return p;
}

}  // namespace

PackedWeightView PackedWeight::view() const {
  PackedWeightView v;
  v.kind = kind;
  v.rows = rows;
  v.cols = cols;
  v.k_padded = k_padded;
  v.row_bytes = row_bytes;
  v.group_size = group_size;
  v.groups_per_row = groups_per_row;
  v.codes = codes.data();
  v.scales = scales.empty() ? nullptr : scales.data();
  v.zeros = zeros.empty() ? nullptr : zeros.data();
  return v;
}

uint64_t PackedWeight::bytes() const {
  return codes.size() + (scales.size() + zeros.size()) * sizeof(float);
}

namespace {

// kQ8P (kernel_types.h): int8 codes in panels of 16 rows x 4 inputs; scales and zeros padded to
// whole panels with zeros, so the padding rows compute 0.
std::shared_ptr<const PackedWeight> pack_q8_panels(const QuantizedMatrix& m) {
  auto p = std::make_shared<PackedWeight>();
  p->kind = PackedKind::kQ8P;
  p->rows = m.rows;
  p->cols = m.cols;
  p->k_padded = round_up(m.cols, kBlock);
  p->row_bytes = p->k_padded;
  p->group_size = p->k_padded;
  p->groups_per_row = 1;
  p->source = &m;
  const int64_t padded_rows = round_up(m.rows, kPanelRows);
  p->codes.assign(size_t(padded_rows * p->k_padded), 0);
  p->scales.assign(size_t(padded_rows), 0.0f);
  p->zeros.assign(size_t(padded_rows), 0.0f);
  const GroupLayout layout = m.layout();
#pragma omp parallel for schedule(static) if (m.rows * m.cols > (1 << 20))
  for (int64_t r = 0; r < m.rows; ++r) {
    const GroupParams& gp = m.params[size_t(layout.param_index(r, 0))];
    p->scales[size_t(r)] = gp.scale;
    p->zeros[size_t(r)] = gp.zero;
    uint8_t* panel = p->codes.data() + r / kPanelRows * kPanelRows * p->k_padded + r % kPanelRows * 4;
    const uint8_t* row = m.codes.data() + r * m.cols;
    int64_t k = 0;
    for (; k + 4 <= m.cols; k += 4) std::memcpy(panel + k / 4 * 64, row + k, 4);
    for (; k < m.cols; ++k) panel[k / 4 * 64 + k % 4] = row[k];
  }
  return p;
}

// A panel-packed weight's fields: rows rounded up to panels of `panel_rows`, scales and zeros
// for those rows (at param_index(), kernel_types.h), zero in the padding (so padding rows compute 0).
std::shared_ptr<PackedWeight> empty_panels(const QuantizedMatrix& m, PackedKind kind, int bits, int64_t panel_rows,
                                           int64_t group_size, int64_t groups_per_row) {
  auto p = std::make_shared<PackedWeight>();
  p->kind = kind;
  p->rows = m.rows;
  p->cols = m.cols;
  p->k_padded = round_up(m.cols, kBlock);
  p->row_bytes = p->k_padded * bits / 8;
  p->group_size = group_size;
  p->groups_per_row = groups_per_row;
  p->source = &m;
  const int64_t padded_rows = round_up(m.rows, panel_rows);
  p->codes.assign(size_t(padded_rows * p->row_bytes), 0);
  p->scales.assign(size_t(padded_rows * groups_per_row), 0.0f);
  p->zeros.assign(p->scales.size(), 0.0f);
  return p;
}

// Row `row`'s scales and zeros, one per group, into a panel-packed weight.
void copy_row_params(const QuantizedMatrix& m, const GroupLayout& layout, int64_t row, PackedWeight& p) {
  for (int64_t g = 0; g < p.groups_per_row; ++g) {
    const GroupParams& gp = m.params[size_t(layout.param_index(row, g * layout.group_size))];
    const size_t at = size_t(param_index(p.kind, p.groups_per_row, row, g));
    p.scales[at] = gp.scale;
    p.zeros[at] = gp.zero;
  }
}

// kQ4P / kQ2P (kernel_types.h): int4 / int2 codes in panels of 32 / 64 rows x 4 inputs (row
// 16 q + i of a panel in bit field q of row i's bytes).
std::shared_ptr<const PackedWeight> pack_low_bit_panels(const QuantizedMatrix& m, PackedKind kind, int64_t group_size,
                                                        int64_t groups_per_row) {
  const int bits = kind == PackedKind::kQ4P ? 4 : 2, parts = 8 / bits, panel_rows = parts * kPanelRows;
  auto p = empty_panels(m, kind, bits, panel_rows, group_size, groups_per_row);
  const int64_t padded_rows = int64_t(p->scales.size()) / groups_per_row;
  const GroupLayout layout = m.layout();
#pragma omp parallel for schedule(static) if (m.rows * m.cols > (1 << 20))
  for (int64_t lane = 0; lane < padded_rows / parts; ++lane) {  // rows r, r + 16, ... share bytes
    const int64_t r = lane / kPanelRows * panel_rows + lane % kPanelRows;
    uint8_t* out = p->codes.data() + r / panel_rows * 16 * p->k_padded + r % kPanelRows * 4;
    for (int half = 0; half < parts; ++half) {
      const int64_t row = r + half * kPanelRows;
      if (row >= m.rows) continue;
      copy_row_params(m, layout, row, *p);
      const uint8_t* codes = m.codes.data() + row * m.cols;
      for (int64_t k = 0; k < m.cols; ++k) out[k / 4 * 64 + k % 4] |= uint8_t(codes[k] << (bits * half));
    }
  }
  return p;
}

// kQ3P (kernel_types.h): int3 codes in quad panels of 64 rows, the low bit pairs as kQ2P per step
// and bit 2 in one plane per two steps.
std::shared_ptr<const PackedWeight> pack_q3_panels(const QuantizedMatrix& m, int64_t group_size,
                                                   int64_t groups_per_row) {
  auto p = empty_panels(m, PackedKind::kQ3P, 3, 4 * kPanelRows, group_size, groups_per_row);
  const int64_t padded_rows = int64_t(p->scales.size()) / groups_per_row;
  const GroupLayout layout = m.layout();
#pragma omp parallel for schedule(static) if (m.rows * m.cols > (1 << 20))
  for (int64_t lane = 0; lane < padded_rows / 4; ++lane) {  // rows r, r + 16, r + 32, r + 48 share bytes
    const int64_t r = lane / kPanelRows * 4 * kPanelRows + lane % kPanelRows;
    uint8_t* out = p->codes.data() + r / 64 * 24 * p->k_padded + r % kPanelRows * 4;
    for (int q = 0; q < 4; ++q) {
      const int64_t row = r + q * kPanelRows;
      if (row >= m.rows) continue;
      copy_row_params(m, layout, row, *p);
      const uint8_t* codes = m.codes.data() + row * m.cols;
      for (int64_t k = 0; k < m.cols; ++k) {
        uint8_t* piece = out + k / 8 * 192 + k % 4;
        const int odd = int(k / 4 % 2);
        piece[64 * odd] |= uint8_t((codes[k] & 3) << (2 * q));
        piece[128] |= uint8_t((codes[k] >> 2 & 1) << ((2 * q + 2) % 8 + odd));
      }
    }
  }
  return p;
}

// kQ2L / kQ3L (kernel_types.h): int2 / int3 codes in lane panels of 16 rows, each row's codes of
// 16 consecutive inputs in one dword (kQ3L: bit 2 of 32 inputs in a third dword per piece).
std::shared_ptr<const PackedWeight> pack_lut_panels(const QuantizedMatrix& m, PackedKind kind, int64_t group_size,
                                                    int64_t groups_per_row) {
  const bool three = kind == PackedKind::kQ3L;
  auto p = empty_panels(m, kind, three ? 3 : 2, kPanelRows, group_size, groups_per_row);
  const GroupLayout layout = m.layout();
#pragma omp parallel for schedule(static) if (m.rows * m.cols > (1 << 20))
  for (int64_t r = 0; r < m.rows; ++r) {
    copy_row_params(m, layout, r, *p);
    uint8_t* panel = p->codes.data() + r / kPanelRows * kPanelRows * p->row_bytes + r % kPanelRows * 4;
    const uint8_t* codes = m.codes.data() + r * m.cols;
    for (int64_t k = 0; k < m.cols; ++k) {
      const uint8_t low = codes[k] & 3;
      if (!three) {
        panel[k / 16 * 64 + k % 16 / 4] |= uint8_t(low << (2 * (k % 4)));
        continue;
      }
      uint8_t* piece = panel + k / 32 * 192;
      piece[64 * (k % 32 / 16) + k % 16 / 4] |= uint8_t(low << (2 * (k % 4)));
      piece[128 + k % 32 / 8] |= uint8_t((codes[k] >> 2 & 1) << (k % 8));
    }
  }
  return p;
}

}  // namespace

std::shared_ptr<const PackedWeight> pack_quantized(const QuantizedMatrix& m, bool panels, bool lut_panels) {
  PackedKind kind;
  if (!kind_of(m.spec.id, &kind) || m.rows <= 0 || m.cols <= 0) return nullptr;
  const GroupLayout layout = m.layout();
  const bool grouped = m.spec.granularity == Granularity::kGroup && layout.groups_per_row > 1;
  if (grouped && layout.group_size % kBlock != 0) return nullptr;
  for (size_t c = 0; c < m.g_idx.size(); ++c)
    if (m.g_idx[c] != int32_t(int64_t(c) / layout.group_size)) return nullptr;  // act-order: scattered groups
  if (panels && kind == PackedKind::kQ8 && !grouped) return pack_q8_panels(m);
  if (panels && (kind == PackedKind::kQ4 || kind == PackedKind::kQ3 || kind == PackedKind::kQ2)) {
    const int64_t group_size = grouped ? layout.group_size : round_up(m.cols, kBlock);
    const int64_t groups_per_row = grouped ? layout.groups_per_row : 1;
    if (kind == PackedKind::kQ3) return pack_q3_panels(m, group_size, groups_per_row);
    return pack_low_bit_panels(m, kind == PackedKind::kQ4 ? PackedKind::kQ4P : PackedKind::kQ2P, group_size,
                               groups_per_row);
  }

  if (lut_panels && !panels && (kind == PackedKind::kQ3 || kind == PackedKind::kQ2)) {
    const int64_t group_size = grouped ? layout.group_size : round_up(m.cols, kBlock);
    return pack_lut_panels(m, kind == PackedKind::kQ3 ? PackedKind::kQ3L : PackedKind::kQ2L, group_size,
                           grouped ? layout.groups_per_row : 1);
  }

  auto p = std::make_shared<PackedWeight>(empty_packed(kind, m.rows, m.cols));
  p->source = &m;
  p->group_size = grouped ? layout.group_size : p->k_padded;
  p->groups_per_row = grouped ? layout.groups_per_row : 1;
  const bool integer = m.spec.info().integer_grid;
  p->scales.resize(size_t(m.rows * p->groups_per_row));
  if (integer) p->zeros.resize(p->scales.size());
  const int64_t blocks = p->k_padded / kBlock, bb = block_bytes(kind);
#pragma omp parallel for schedule(static) if (m.rows * m.cols > (1 << 20))
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t g = 0; g < p->groups_per_row; ++g) {
      const GroupParams& gp = m.params[size_t(layout.param_index(r, g * layout.group_size))];
      p->scales[size_t(r * p->groups_per_row + g)] = gp.scale;
      if (integer) p->zeros[size_t(r * p->groups_per_row + g)] = gp.zero;
    }
    const uint8_t* row = m.codes.data() + r * m.cols;
    for (int64_t b = 0; b < blocks; ++b) {
      uint8_t block[kBlock] = {};
      for (int j = 0; j < kBlock && b * kBlock + j < m.cols; ++j) block[j] = row[b * kBlock + j];
      pack_block(kind, block, p->codes.data() + r * p->row_bytes + b * bb);
    }
  }
  return p;
}

std::shared_ptr<const PackedWeight> pack_dense(const float* weight, int64_t rows, int64_t cols, PackedKind kind) {
  LOWBIT_CHECK(kind == PackedKind::kF16 || kind == PackedKind::kBF16);
  auto p = std::make_shared<PackedWeight>(empty_packed(kind, rows, cols));
  p->source = weight;
  p->group_size = p->k_padded;
  p->groups_per_row = 1;
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 20))
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < cols; ++k) {
      const float v = weight[r * cols + k];
      const uint16_t h = kind == PackedKind::kF16 ? f32_to_fp16(v) : f32_to_bf16(v);
      std::memcpy(p->codes.data() + r * p->row_bytes + 2 * k, &h, 2);
    }
  }
  return p;
}

bool supports_qd8(const PackedWeight& w) {
  return (w.kind == PackedKind::kQ8 || w.kind == PackedKind::kQ4 || w.kind == PackedKind::kQ3 ||
          w.kind == PackedKind::kQ2 || w.kind == PackedKind::kQ8P || w.kind == PackedKind::kQ4P ||
          w.kind == PackedKind::kQ2P || w.kind == PackedKind::kQ3P) &&
         w.k_padded <= 65536;
}

bool supports_qd8_format(const FormatSpec& spec) {
  if (spec.id != FormatId::kInt8 && spec.id != FormatId::kInt4 && spec.id != FormatId::kInt3 &&
      spec.id != FormatId::kInt2)
    return false;
  return spec.granularity != Granularity::kGroup || spec.group_size % kBlock == 0;
}

bool weight_only_on_int8_slices(const FormatSpec& spec, bool table_slices) {
  return table_slices && spec.id != FormatId::kInt8 && supports_qd8_format(spec);
}

std::vector<float> unpack_reference(const PackedWeight& w) {
  std::vector<float> padded(size_t(w.rows * w.k_padded)), out(size_t(w.rows * w.cols));
  dequant_for(kernels_for(Isa::kRef), w.kind)(w.view(), 0, w.rows, padded.data());
  for (int64_t r = 0; r < w.rows; ++r)
    std::copy(padded.begin() + r * w.k_padded, padded.begin() + r * w.k_padded + w.cols, out.begin() + r * w.cols);
  return out;
}

}  // namespace lowbit::kernels
