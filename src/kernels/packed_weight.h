// Weights repacked at load into the kernel layouts of kernel_types.h. In memory only: the
// canonical on-disk layout stays formats/' bit stream.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "formats/quantized_matrix.h"
#include "kernels/kernel_types.h"
#include "kernels/streaming_allocator.h"

namespace lowbit::kernels {

struct PackedWeight {
  PackedKind kind = PackedKind::kQ8;
  int64_t rows = 0, cols = 0, k_padded = 0, row_bytes = 0, group_size = 0, groups_per_row = 0;
  // [rows, row_bytes] (kQ8P, kQ2L, kQ3L / kQ4P / kQ2P, kQ3P: rows rounded up to 16 / 32 / 64, panels); in
  // huge pages where the kernel allows (streaming_allocator.h)
  std::vector<uint8_t, StreamingAllocator<uint8_t>> codes;
  // At param_index() (kernel_types.h): [rows, groups_per_row], panel kinds [rows / 16, groups, 16];
  // per-tensor parameters repeated per row
  std::vector<float> scales;
  std::vector<float> zeros;  // the same layout, integer grids only
  // What it was packed from (a QuantizedMatrix or an fp32 array): callers holding a weight that
  // may be replaced later compare this pointer before trusting the packed copy.
  const void* source = nullptr;

  PackedWeightView view() const;
  // Bytes a kernel streams per pass over the weight: codes + scales + zeros.
  uint64_t bytes() const;
};

// Packs `m` for the kernels, or returns null when no kernel takes it: a group size that is not a
// multiple of kBlock (32), or an act-order g_idx that is not the identity. Such weights keep the
// reference dequantize path. Threaded over rows. panels: an int8 grid with one group per row is
// packed as kQ8P, an int4 grid as kQ4P, int3 as kQ3P and int2 as kQ2P (for dynamic int8
// activations on tables that prefer them, kernels_for(isa).prefers_panels, and for weight-only
// int4/3/2 run as two int8 slices, weight_only_int8_slices), other formats as usual.
// lut_panels (weight-only layers, tables with prefers_lut_panels; ignored with panels): int3 and
// int2 grids are packed as kQ3L / kQ2L.
std::shared_ptr<const PackedWeight> pack_quantized(const QuantizedMatrix& m, bool panels = false,
                                                   bool lut_panels = false);

// A dense fp32 [rows, cols] weight stored as kF16 or kBF16 (rounded to nearest even).
std::shared_ptr<const PackedWeight> pack_dense(const float* weight, int64_t rows, int64_t cols, PackedKind kind);

// Whether the dynamic-int8-activation kernels (W8A8 / W4A8 / W3A8 / W2A8) take this weight:
// integer codes of 8, 4, 3 or 2 bits, and rows short enough that int32 group sums cannot overflow
// (k_padded <= 65536).
bool supports_qd8(const PackedWeight& w);
// The same question asked of a format before any weight exists (for plans and warnings): an
// int8/4/3/2 grid, per channel/tensor or in groups that are a multiple of kBlock. Rows longer than
// 65536 inputs are still refused later by supports_qd8.
bool supports_qd8_format(const FormatSpec& spec);
// Whether a weight-only layer of this format runs on the int8 kernels with each token as two int8
// slices (packed_matmul.h, matmul_qd8_slices): an int4 / int3 / int2 grid the qd8 kernels take,
// on a table with weight_only_int8_slices (kernel_table.h). The runtime (model/linear.cc) and the
// layers-only benchmark decide by this one rule.
bool weight_only_on_int8_slices(const FormatSpec& spec, bool table_slices);

// The weight as fp32 [rows, cols] via the reference kernel (tests; equals formats/ dequantize()).
std::vector<float> unpack_reference(const PackedWeight& w);

}  // namespace lowbit::kernels
