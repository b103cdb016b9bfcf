#include "kernels/packed_matmul.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <vector>

#include "kernels/work_shares.h"

namespace lowbit::kernels {

namespace {

// Rows per work item: big enough to amortize the call, small enough to balance two threads on
// small matrices.
constexpr int64_t kRowChunk = 16;
// fp32 weights dequantized per prefill tile: up to 4 MiB per thread (256 rows of 4096). Bigger
// tiles amortize what sgemm does per call (packing the activations): measured on 4096x4096 at
// 128 tokens, 32-row tiles ran at 0.65x the speed of one fp32 sgemm, 256-row tiles at 1.06x.
constexpr int64_t kTileElements = 256 * 4096;
// Below this many multiply-adds a parallel region costs more than it saves.
constexpr double kParallelWork = 1 << 18;

// x [n, cols] -> [n, k_padded] with zeros in the padding (x itself when no padding is needed).
const float* padded_activations(const PackedWeight& w, const float* x, int64_t n, std::vector<float>& buf) {
  if (w.k_padded == w.cols) return x;
  buf.assign(size_t(n * w.k_padded), 0.0f);
  for (int64_t t = 0; t < n; ++t) std::memcpy(buf.data() + t * w.k_padded, x + t * w.cols, size_t(w.cols) * 4);
  return buf.data();
}

void gemm_tiles(DequantFn dequant, const PackedWeightView& v, const float* x, int64_t n, float* y) {
  // As few tiles as fit kTileElements, rounded up to a multiple of the threads for balance.
  const int64_t threads = omp_get_max_threads();
  const int64_t max_rows = std::max<int64_t>(1, kTileElements / v.k_padded);
  const int64_t tiles = ((v.rows + max_rows - 1) / max_rows + threads - 1) / threads * threads;
  const int64_t tile_rows = (v.rows + tiles - 1) / tiles;
#pragma omp parallel if (double(n) * double(v.rows) * double(v.k_padded) > kParallelWork)
  {
    std::vector<float> tile(size_t(tile_rows * v.k_padded));
    // OpenBLAS built for OpenMP runs single-threaded inside this parallel region.
#pragma omp for schedule(static)
    for (int64_t i = 0; i < tiles; ++i) {
      const int64_t r0 = std::min(v.rows, i * tile_rows), r1 = std::min(v.rows, r0 + tile_rows);
      if (r0 == r1) continue;
      dequant(v, r0, r1, tile.data());
      // y[:, r0:r1] [n, r1-r0] = x [n, k_padded] · tileᵀ [k_padded, r1-r0]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(r1 - r0), int(v.k_padded), 1.0f, x,
                  int(v.k_padded), tile.data(), int(v.k_padded), 0.0f, y + r0, int(v.rows));
    }
  }
}

// One token x [cols] as `slices` int8 slices (matmul_qd8_slices): q [slices, k_padded], scales and
// block_sums [slices, k_padded / kBlock] (kernel_table.h, quantize_f32_qd8x2 for two).
void quantize_qd8_slices(const KernelTable& table, const float* x, int64_t cols, int64_t k_padded, int slices,
                         int8_t* q, float* scales, int32_t* block_sums) {
  (slices == 1 ? table.quantize_f32_qd8 : table.quantize_f32_qd8x2)(x, cols, k_padded, q, scales, block_sums);
}

// y[r] = sum over slices i of sliced[i * rows + r], for r in [r0, r1). Two slices (every
// weight-only decode product) have a loop of their own, which the compiler vectorizes; the general
// loop, one scalar add per row behind a loop over slices, was most of gemv_parts' parallel body,
// 2.1% of the CPU samples of an int2 decode (perf, `lowbit run tl-q2f`, session 18), 0.95% after.
void sum_slices(const float* sliced, int64_t rows, int slices, int64_t r0, int64_t r1, float* y) {
  if (slices == 2) {
    const float* second = sliced + rows;
    for (int64_t r = r0; r < r1; ++r) y[r] = sliced[r] + second[r];
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    float sum = sliced[r];
    for (int i = 1; i < slices; ++i) sum += sliced[i * rows + r];
    y[r] = sum;
  }
}

}  // namespace

void matmul_f32(const PackedWeight& w, const float* x, int64_t n, float* y, const KernelTable& table) {
  if (n == 1) {  // one contiguous range of rows per thread, as for several products (gemv_parts)
    const GemvPart part{&w, false, nullptr, w.rows, w.cols, y};
    gemv_parts(std::span<const GemvPart>(&part, 1), x, table);
    return;
  }
  std::vector<float> buf;
  gemm_tiles(dequant_for(table, w.kind), w.view(), padded_activations(w, x, n, buf), n, y);
}

void qd8_group_corrections(const float* scales, const int32_t* block_sums, int64_t blocks, int64_t group_size,
                           float* corrections) {
  const int64_t per_group = group_size / kBlock, groups = (blocks + per_group - 1) / per_group;
  for (int64_t g = 0; g < groups; ++g) {
    float c = 0.0f;
    for (int64_t b = g * per_group; b < blocks && b < (g + 1) * per_group; ++b) c += scales[b] * float(block_sums[b]);
    corrections[g] = c;
  }
}

void matmul_qd8(const PackedWeight& w, const float* x, int64_t n, float* y, const KernelTable& table) {
  matmul_qd8_slices(w, x, n, y, 1, table);
}

void matmul_qd8_slices(const PackedWeight& w, const float* x, int64_t n, float* y, int slices,
                       const KernelTable& table) {
  LOWBIT_CHECK(supports_qd8(w) && (slices == 1 || slices == 2));
  if (n == 1) {  // as matmul_f32
    const GemvPart part{&w, slices, nullptr, w.rows, w.cols, y};
    gemv_parts(std::span<const GemvPart>(&part, 1), x, table);
    return;
  }
  const PackedWeightView v = w.view();
  const int64_t blocks = w.k_padded / kBlock, slice_tokens = n * slices;
  std::vector<int8_t> q(size_t(slice_tokens * w.k_padded));
  std::vector<float> scales(size_t(slice_tokens * blocks)), corrections(size_t(slice_tokens * w.groups_per_row));
  std::vector<int32_t> sums(size_t(slice_tokens * blocks));
#pragma omp parallel for schedule(static) if (n > 1 && double(n) * double(w.cols) > kParallelWork)
  for (int64_t t = 0; t < n; ++t) {
    const int64_t s = t * slices;  // token t's slices are kernel tokens s .. s + slices - 1
    quantize_qd8_slices(table, x + t * w.cols, w.cols, w.k_padded, slices, q.data() + s * w.k_padded,
                        scales.data() + s * blocks, sums.data() + s * blocks);
    for (int64_t i = s; i < s + slices; ++i)
      qd8_group_corrections(scales.data() + i * blocks, sums.data() + i * blocks, blocks, w.group_size,
                            corrections.data() + i * w.groups_per_row);
  }
  // [n * slices, rows], summed into y; every element is written before it is read (no zeroing).
  std::unique_ptr<float[]> sliced;
  float* out = y;
  if (slices > 1) {
    sliced = std::make_unique_for_overwrite<float[]>(size_t(slice_tokens * w.rows));
    out = sliced.get();
  }
  QuantizedActivationsView a;
  a.tokens = slice_tokens;
  a.k_padded = w.k_padded;
  a.groups = w.groups_per_row;
  a.values = q.data();
  a.scales = scales.data();
  a.block_sums = sums.data();
  a.group_corrections = corrections.data();
  const GemmQd8Fn gemm = gemm_qd8_for(table, w.kind);
  // Panel kernels work on pairs of 16-row panels (kQ4P / kQ2P, kQ3P: panels of 32 / 64 rows), and
  // so do the AMX prefill kernels (kQ4 rows are unpacked into panels): 64 rows per work item.
  const int64_t chunk = is_panel_kind(w.kind) || n >= kPanelRows ? 4 * kPanelRows : kRowChunk;
  const int64_t chunks = (v.rows + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (double(n) * double(v.rows) * double(v.k_padded) > kParallelWork)
  for (int64_t c = 0; c < chunks; ++c) gemm(v, c * chunk, std::min(v.rows, (c + 1) * chunk), a, out, v.rows);
  if (slices > 1)
    for (int64_t t = 0; t < n; ++t)
      sum_slices(sliced.get() + t * slices * w.rows, w.rows, slices, 0, w.rows, y + t * w.rows);
}

// gemv_parts' buffers, kept per calling thread from call to call: decode makes ~90 calls per
// TinyLlama token, and the ~15 allocations and zero-fills each call made, plus the growth of its
// work-unit list, are serial work the other threads wait through. Timed around the set-up (int2
// weight-only decode, session 16): 17-19 us per layer with fresh buffers, 10.4-10.9 reused.
struct GemvScratch {
  struct Unit {
    size_t part;
    int64_t r0, r1;
    double middle;  // bytes read before this unit plus half its own
  };
  std::vector<float> padded;
  std::vector<int8_t> q, range_q;
  std::vector<float> scales, corrections, sliced, range_scales;
  std::vector<int32_t> sums, range_sums;  // range_*: per thread, its range of the token as the quantizer writes it
  std::vector<size_t> correction_at, sliced_at;  // per part: offsets into corrections / sliced
  std::vector<QuantizedActivationsView> acts;
  std::vector<Unit> units;
  std::vector<size_t> starts;
};

// Blocks [b0, b1) of the token x [cols] as `slices` int8 slices, into their places in s.q [slices,
// k_padded] and s.scales, s.sums [slices, blocks], and the corrections of each int8 part's groups
// in that range (b0 and b1 on group boundaries, or b1 the last block). The quantizer writes a
// range's slices back to back, so it writes into thread t's range_* buffers first.
void quantize_token_range(const KernelTable& table, const float* x, int64_t cols, int64_t k_padded, int slices,
                          std::span<const GemvPart> parts, int64_t b0, int64_t b1, GemvScratch& s, int t) {
  if (b1 <= b0) return;
  const int64_t blocks = k_padded / kBlock, n = b1 - b0, range_k = n * kBlock;
  int8_t* q = s.range_q.data() + t * slices * k_padded;
  float* scales = s.range_scales.data() + t * slices * blocks;
  int32_t* sums = s.range_sums.data() + t * slices * blocks;
  quantize_qd8_slices(table, x + b0 * kBlock, std::min(cols - b0 * kBlock, range_k), range_k, slices, q, scales, sums);
  for (int sl = 0; sl < slices; ++sl) {
    std::memcpy(s.q.data() + sl * k_padded + b0 * kBlock, q + sl * range_k, size_t(range_k));
    std::memcpy(s.scales.data() + sl * blocks + b0, scales + sl * n, size_t(n) * sizeof(float));
    std::memcpy(s.sums.data() + sl * blocks + b0, sums + sl * n, size_t(n) * sizeof(int32_t));
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].int8_slices == 0) continue;
    const PackedWeight& w = *parts[i].packed;
    float* corrections = s.corrections.data() + s.correction_at[i] + b0 / (w.group_size / kBlock);
    for (int sl = 0; sl < parts[i].int8_slices; ++sl)
      qd8_group_corrections(s.scales.data() + sl * blocks + b0, s.sums.data() + sl * blocks + b0, n, w.group_size,
                            corrections + sl * w.groups_per_row);
  }
}

// Rows per work unit of a part: whole 16-row chunks, or whole panels for the panel kinds (the
// last batches of a product, where threads help each other, are then as small as they can be).
int64_t unit_rows(const GemvPart& p) {
  return p.packed != nullptr && is_panel_kind(p.packed->kind) ? panel_rows(p.packed->kind) : kRowChunk;
}

// The parts' work units (s.units), placed on the bytes read, and where each thread's share starts
// (returned): thread t starts on the units whose middle falls in its t-th of the bytes (WorkShares:
// then it helps the slower threads with theirs). Each thread's units are one contiguous range,
// each part's rows in as few kernel calls as possible, so the kernels' per-call work is done
// rarely and their row streams are long.
std::span<const size_t> plan_work_units(std::span<const GemvPart> parts, int64_t cols, int threads, GemvScratch& s) {
  std::vector<GemvScratch::Unit>& units = s.units;
  units.clear();
  double total = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const GemvPart& p = parts[i];
    const double row_bytes = p.packed != nullptr ? double(p.packed->bytes()) / double(p.rows) : 4.0 * double(cols);
    for (int64_t r = 0; r < p.rows; r += unit_rows(p)) {
      const int64_t r1 = std::min(p.rows, r + unit_rows(p));
      const double bytes = row_bytes * double(r1 - r);
      units.push_back({i, r, r1, total + 0.5 * bytes});
      total += bytes;
    }
  }
  std::vector<size_t>& starts = s.starts;
  starts.resize(static_cast<size_t>(threads));
  for (size_t u = 0, t = 0; t < starts.size(); ++t) {
    while (u < units.size() && std::min(threads - 1, int(units[u].middle / total * threads)) < int(t)) ++u;
    starts[t] = u;
  }
  return starts;
}

void gemv_parts(std::span<const GemvPart> parts, const float* x, const KernelTable& table) {
  if (parts.empty()) return;
  const int64_t cols = parts[0].cols, k_padded = (cols + kBlock - 1) / kBlock * kBlock;
  int max_slices = 0;
  for (const GemvPart& p : parts) {
    LOWBIT_CHECK(p.cols == cols && (p.packed != nullptr) != (p.dense != nullptr));
    LOWBIT_CHECK(p.packed == nullptr || (p.rows <= p.packed->rows && p.packed->cols == cols));
    LOWBIT_CHECK(p.int8_slices >= 0 && p.int8_slices <= 2);
    LOWBIT_CHECK(p.int8_slices == 0 || (p.packed != nullptr && supports_qd8(*p.packed)));
    max_slices = std::max(max_slices, p.int8_slices);
  }
  thread_local GemvScratch scratch;
  GemvScratch& s = scratch;
  const float* xp = x;
  if (k_padded != cols) {
    s.padded.assign(size_t(k_padded), 0.0f);
    std::memcpy(s.padded.data(), x, size_t(cols) * 4);
    xp = s.padded.data();
  }
  // The token is quantized once (both slices when any part takes two: the first slice is what the
  // one-slice parts read), and each int8 part's zero-point corrections made for its own group size,
  // by all the threads of the product's region, each a range of whole groups (below). Two-slice
  // parts' outputs per slice, [slices, rows], are written by the kernels before they are summed
  // into y; resize() only grows these buffers, and nothing in them is read unwritten.
  const int64_t blocks = k_padded / kBlock;
  if (max_slices > 0) {
    s.q.resize(std::max(s.q.size(), size_t(max_slices * k_padded)));
    s.scales.resize(std::max(s.scales.size(), size_t(max_slices * blocks)));
    s.sums.resize(std::max(s.sums.size(), size_t(max_slices * blocks)));
  }
  s.correction_at.assign(parts.size(), 0);
  s.sliced_at.assign(parts.size(), 0);
  size_t correction_size = 0, sliced_size = 0;
  int64_t range_unit = 1;  // blocks: a multiple of every int8 part's group
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].int8_slices == 0) continue;
    s.correction_at[i] = correction_size;
    correction_size += size_t(parts[i].int8_slices * parts[i].packed->groups_per_row);
    range_unit = std::min(blocks, std::lcm(range_unit, parts[i].packed->group_size / kBlock));
    if (parts[i].int8_slices > 1) {
      s.sliced_at[i] = sliced_size;
      sliced_size += size_t(parts[i].int8_slices * parts[i].rows);
    }
  }
  s.corrections.resize(std::max(s.corrections.size(), correction_size));
  s.sliced.resize(std::max(s.sliced.size(), sliced_size));
  s.acts.assign(parts.size(), QuantizedActivationsView{});
  for (size_t i = 0; i < parts.size(); ++i)
    if (const int slices = parts[i].int8_slices; slices > 0)
      s.acts[i] = QuantizedActivationsView{slices, k_padded, parts[i].packed->groups_per_row, s.q.data(),
                                           s.scales.data(), s.sums.data(), s.corrections.data() + s.correction_at[i]};
  double work = 0;
  size_t unit_count = 0;
  for (const GemvPart& p : parts) {
    work += double(p.rows) * double(k_padded);
    unit_count += size_t((p.rows + unit_rows(p) - 1) / unit_rows(p));
  }
  s.units.reserve(unit_count);  // no allocation in the region below
  const auto run = [&](size_t i, int64_t r0, int64_t r1) {
    const GemvPart& p = parts[i];
    if (p.dense != nullptr) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, int(r1 - r0), int(cols), 1.0f, p.dense + r0 * cols, int(cols), x, 1,
                  0.0f, p.y + r0, 1);
    } else if (p.int8_slices == 1) {
      gemm_qd8_for(table, p.packed->kind)(p.packed->view(), r0, r1, s.acts[i], p.y, p.rows);
    } else if (p.int8_slices > 1) {
      float* sliced = s.sliced.data() + s.sliced_at[i];
      gemm_qd8_for(table, p.packed->kind)(p.packed->view(), r0, r1, s.acts[i], sliced, p.rows);
      sum_slices(sliced, p.rows, p.int8_slices, r0, r1, p.y);
    } else {
      gemv_for(table, p.packed->kind)(p.packed->view(), r0, r1, xp, p.y);
    }
  };
  const int threads = work > kParallelWork ? omp_get_max_threads() : 1;
  std::optional<WorkShares> shares;
  // Thread t quantizes blocks [range_begin(t), range_begin(t + 1)), whole groups of every part.
  // Serial, this set-up took 2-6 us of each decode product (most of it the quantizer reading a cold
  // token) while the other threads waited (docs/results.md, session 20, for what the split gained).
  const int64_t range_units = (blocks + range_unit - 1) / range_unit;
  const auto range_begin = [&](int64_t t) { return std::min(blocks, range_units * t / threads * range_unit); };
  if (max_slices > 0) {
    s.range_q.resize(std::max(s.range_q.size(), size_t(threads * max_slices * k_padded)));
    s.range_scales.resize(std::max(s.range_scales.size(), size_t(threads * max_slices * blocks)));
    s.range_sums.resize(std::max(s.range_sums.size(), size_t(threads * max_slices * blocks)));
  }
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    // Thread 0 lays out the work while the others wake up (~1 us) and quantize their ranges.
    const int t = omp_get_thread_num();
    if (t == 0) {
      const std::span<const size_t> starts = plan_work_units(parts, cols, threads, s);
      shares.emplace(starts, s.units.size());
    }
    if (max_slices > 0)
      quantize_token_range(table, x, cols, k_padded, max_slices, parts, range_begin(t), range_begin(t + 1), s, t);
#pragma omp barrier
    // Each batch's units of one part run as one kernel call.
    const std::vector<GemvScratch::Unit>& units = s.units;
    size_t begin = 0, end = 0;
    while (shares->next(size_t(t), &begin, &end))
      for (size_t u = begin; u < end;) {
        const size_t part = units[u].part;
        const int64_t r0 = units[u].r0;
        int64_t r1 = units[u].r1;
        for (++u; u < end && units[u].part == part; ++u) r1 = units[u].r1;
        run(part, r0, r1);
      }
  }
}

}  // namespace lowbit::kernels
