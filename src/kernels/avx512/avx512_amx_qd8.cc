// AMX-INT8 kernels for prefill with dynamic int8 activations (16 tokens or more; fewer go to the
// AVX-512 VNNI entries they replace): W8A8 on kQ8P panels, W4A8 / W3A8 / W2A8 on kQ4 / kQ3 / kQ2
// (kernel_types.h), and W4A8 / W3A8 / W2A8 on kQ4P / kQ3P / kQ2P panels (each 16-row part unpacked
// to a kQ8P panel).
//
// The kQ8P panel layout is exactly the "VNNI" layout AMX expects for its B operand (per 4 inputs,
// 16 rows x 4 bytes), so a block of 32 inputs of a panel is one 8 x 64-byte B tile read in place.
// kQ4/kQ3/kQ2 rows are unpacked to that layout one panel (16 rows, all K) at a time, into a buffer that
// every group of tokens then reads (the unpacking is paid once per 16 rows, not per token).
// Per block, 16 tokens and 16 rows:
//   C[token, row] = sum_{k in block} q[token, k] * code[row, k]   (tdpbsud: signed x unsigned,
//   exact int32), then per token one conversion and one FMA with that token's block scale into
//   the group's sum; at the end of each weight group, sum - zero * correction, times the scale.
// The block scales are why the dot products stop every 32 inputs (a tile could take 64), and why
// each C tile goes through memory to the vector unit once per block.
//
// A tile product has a long latency (a chain of tdpbsud on one C tile ran at ~50 cycles each
// here), so each step issues four independent products: 2 panels (32 rows) x 2 groups of 16
// tokens, into four C tiles, from 2 A and 2 B tiles (all 8 tiles); the C tiles of one block are
// read back by the vector unit while the next block's products run (a tile store does not forward
// to vector loads: reading it back at once stalls). Accumulators live in an L1-resident buffer.
// Scalar definition: ref/ref_kernels.cc. Compiled with -mamx-tile -mamx-int8, used only when cpuid
// reports AMX-INT8 and the kernel grants the tile state (dispatch.cc).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

constexpr int kTileTokens = 16;
constexpr int64_t kPanelBlockBytes = kBlock / 4 * 64;  // 8 steps of 4 inputs x 16 rows

struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Tiles 0-3: C (16 tokens x 16 rows, int32) for (token group, panel) = (0,0) (0,1) (1,0) (1,1);
// 4, 5: A of token groups 0, 1 (16 tokens x 32 int8); 6, 7: B of panels 0, 1 (8 rows of 4 inputs
// x 16 rows x 4 bytes).
void configure_tiles() {
  TileConfig c;
  std::memset(&c, 0, sizeof(c));
  c.palette_id = 1;
  for (int i = 0; i < 4; ++i) {
    c.rows[i] = kTileTokens;
    c.colsb[i] = 64;
  }
  for (int i = 4; i < 6; ++i) {
    c.rows[i] = kTileTokens;
    c.colsb[i] = kBlock;
  }
  for (int i = 6; i < 8; ++i) {
    c.rows[i] = kBlock / 4;
    c.colsb[i] = 64;
  }
  _tile_loadconfig(&c);
}

// The VNNI entries these kernels replace, for fewer than 16 tokens.
GemmQd8Fn small_batch_q8p = nullptr;
GemmQd8Fn small_batch_q4g = nullptr;

// 16 tokens of qd8 activations as an A operand: int8 [16, stride], block scales [16, blocks],
// zero-point corrections [16, groups]; `count` of them are real (the rest are zero rows, scale 0).
struct TokenGroup {
  const int8_t* act;
  int64_t stride;
  const float* scales;
  const float* corrections;
  int64_t first_token;
  int count;
};

// 16 rows of weights as B tiles: codes in the VNNI panel layout (kPanelBlockBytes per block), and
// per weight group 16 scales and 16 zeros (rows beyond the matrix: code 0, scale 0).
struct Panel {
  const uint8_t* codes;
  const float* scales;  // [groups, 16]
  const float* zeros;   // [groups, 16]
  int64_t first_row;
};

// sum[m] += cvt(c[m]) * scale[m, b] for the 16 tokens m of one C tile.
inline void add_block(float (*sum)[kPanelRows], const int32_t (*c)[kPanelRows], const float* scales, int64_t blocks,
                      int64_t b) {
#pragma GCC unroll 16
  for (int m = 0; m < kTileTokens; ++m)
    _mm512_store_ps(sum[m], _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c[m])),
                                            _mm512_set1_ps(scales[m * blocks + b]), _mm512_load_ps(sum[m])));
}

// total[m] += scale_g * (sum[m] - zero_g * correction[m, g]); sum[m] = 0.
inline void close_group(float (*total)[kPanelRows], float (*sum)[kPanelRows], const Panel& panel,
                        const TokenGroup& tg, int64_t groups, int64_t g) {
  const __m512 scale = _mm512_loadu_ps(panel.scales + g * kPanelRows);
  const __m512 zero = _mm512_loadu_ps(panel.zeros + g * kPanelRows);
#pragma GCC unroll 16
  for (int m = 0; m < kTileTokens; ++m) {
    const __m512 group = _mm512_fnmadd_ps(zero, _mm512_set1_ps(tg.corrections[m * groups + g]), _mm512_load_ps(sum[m]));
    _mm512_store_ps(total[m], _mm512_fmadd_ps(scale, group, _mm512_load_ps(total[m])));
    _mm512_store_ps(sum[m], _mm512_setzero_ps());
  }
}

// Panels pa and pb (pb may repeat pa: its results are then not written) against token groups ta
// and tb (tb may repeat ta with count 0). blocks_per_group: w.group_size / kBlock.
void amx_2x2(const Panel& pa, const Panel& pb, bool two_panels, const TokenGroup& ta, const TokenGroup& tb,
             int64_t blocks, int64_t groups, int64_t blocks_per_group, float* y, int64_t ldy, int64_t row_begin,
             int64_t row_end) {
  // [tile][token][row], tile = token group * 2 + panel
  alignas(64) float sum[4][kTileTokens][kPanelRows];
  alignas(64) float total[4][kTileTokens][kPanelRows];
  std::memset(sum, 0, sizeof(sum));
  std::memset(total, 0, sizeof(total));
  const Panel* panels[2] = {&pa, &pb};
  const TokenGroup* tokens[2] = {&ta, &tb};
  alignas(64) int32_t c[2][4][kTileTokens][kPanelRows];
  for (int64_t b = 0; b <= blocks; ++b) {
    if (b < blocks) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      _tile_loadd(4, ta.act + b * kBlock, ta.stride);
      _tile_loadd(5, tb.act + b * kBlock, tb.stride);
      _tile_loadd(6, pa.codes + b * kPanelBlockBytes, 64);
      _tile_loadd(7, pb.codes + b * kPanelBlockBytes, 64);
      _tile_dpbsud(0, 4, 6);
      _tile_dpbsud(1, 4, 7);
      _tile_dpbsud(2, 5, 6);
      _tile_dpbsud(3, 5, 7);
    }
    if (b > 0) {
      const int64_t done = b - 1;  // the block stored in the previous step
      int32_t(*prev)[kTileTokens][kPanelRows] = c[done & 1];
      for (int tile = 0; tile < 4; ++tile) add_block(sum[tile], prev[tile], tokens[tile / 2]->scales, blocks, done);
      if ((done + 1) % blocks_per_group == 0 || done + 1 == blocks) {
        const int64_t g = done / blocks_per_group;
        for (int tile = 0; tile < 4; ++tile)
          close_group(total[tile], sum[tile], *panels[tile % 2], *tokens[tile / 2], groups, g);
      }
    }
    if (b < blocks) {
      int32_t(*next)[kTileTokens][kPanelRows] = c[b & 1];
      _tile_stored(0, next[0], 64);
      _tile_stored(1, next[1], 64);
      _tile_stored(2, next[2], 64);
      _tile_stored(3, next[3], 64);
    }
  }
  for (int tile = 0; tile < 4; ++tile) {
    if (tile % 2 == 1 && !two_panels) continue;
    const int64_t r0 = panels[tile % 2]->first_row;
    uint32_t in_range = 0;
    for (int i = 0; i < kPanelRows; ++i) in_range |= uint32_t(r0 + i >= row_begin && r0 + i < row_end) << i;
    const TokenGroup& tg = *tokens[tile / 2];
    for (int m = 0; m < tg.count; ++m)
      _mm512_mask_storeu_ps(y + (tg.first_token + m) * ldy + r0, __mmask16(in_range), _mm512_load_ps(total[tile][m]));
  }
}

// Token groups of 16 over all tokens; the last, partial one copied into zero-padded rows (scale 0
// beyond the real tokens) so that every A tile has 16 rows.
class TokenGroups {
 public:
  TokenGroups(const QuantizedActivationsView& a, int64_t blocks) {
    const int64_t count = (a.tokens + kTileTokens - 1) / kTileTokens;
    const int tail = int(a.tokens % kTileTokens);
    if (tail > 0) {
      const int64_t t0 = a.tokens - tail;
      tail_act_.assign(size_t(kTileTokens * a.k_padded), 0);
      tail_scales_.assign(size_t(kTileTokens * blocks), 0.0f);
      tail_corrections_.assign(size_t(kTileTokens * a.groups), 0.0f);
      std::memcpy(tail_act_.data(), a.values + t0 * a.k_padded, size_t(tail * a.k_padded));
      std::memcpy(tail_scales_.data(), a.scales + t0 * blocks, size_t(tail * blocks) * sizeof(float));
      std::memcpy(tail_corrections_.data(), a.group_corrections + t0 * a.groups, size_t(tail * a.groups) * sizeof(float));
    }
    for (int64_t g = 0; g < count; ++g) {
      const bool full = (g + 1) * kTileTokens <= a.tokens;
      groups_.push_back({full ? a.values + g * kTileTokens * a.k_padded : tail_act_.data(), a.k_padded,
                         full ? a.scales + g * kTileTokens * blocks : tail_scales_.data(),
                         full ? a.group_corrections + g * kTileTokens * a.groups : tail_corrections_.data(),
                         g * kTileTokens, full ? kTileTokens : tail});
    }
  }
  int64_t size() const { return int64_t(groups_.size()); }
  // Group i, or for i == size() (an odd count's partner) a copy of the last one that writes nothing.
  TokenGroup at(int64_t i) const {
    if (i < size()) return groups_[size_t(i)];
    TokenGroup none = groups_.back();
    none.count = 0;
    return none;
  }

 private:
  std::vector<int8_t> tail_act_;
  std::vector<float> tail_scales_, tail_corrections_;
  std::vector<TokenGroup> groups_;
};

// Runs panels [p_begin, p_end) two at a time against every pair of token groups; make_panel(p,
// slot) returns panel p (slot 0 or 1: where an unpacking kernel may put its codes).
template <typename MakePanel>
void run_panels(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
                float* y, int64_t ldy, MakePanel make_panel) {
  const int64_t blocks = w.k_padded / kBlock;
  const int64_t blocks_per_group = w.group_size / kBlock;
  const TokenGroups tg(a, blocks);
  const int64_t p_begin = row_begin / kPanelRows, p_end = (row_end + kPanelRows - 1) / kPanelRows;
  for (int64_t p = p_begin; p < p_end; p += 2) {
    const bool two = p + 1 < p_end;
    const Panel pa = make_panel(p, 0);
    const Panel pb = two ? make_panel(p + 1, 1) : pa;
    // Configured again after make_panel, right before the tile instructions: in session 6 a 1 MB
    // allocation made between the configuration and the first tile instruction ended in SIGILL
    // (the configuration was gone); make_panel may allocate. ldtilecfg is cheap next to a panel.
    configure_tiles();
    for (int64_t g = 0; g < tg.size(); g += 2)
      amx_2x2(pa, pb, two, tg.at(g), tg.at(g + 1), blocks, w.groups_per_row, blocks_per_group, y, ldy, row_begin,
              row_end);
  }
  _tile_release();
}

void gemm_qd8_q8p_amx(const PackedWeightView& w, int64_t row_begin, int64_t row_end, const QuantizedActivationsView& a,
                      float* y, int64_t ldy) {
  if (a.tokens < kTileTokens) {
    small_batch_q8p(w, row_begin, row_end, a, y, ldy);
    return;
  }
  // One group per row: the row scales and zeros of a panel are 16 consecutive floats (the codes
  // hold whole panels; scales and zeros are padded to them, kernel_types.h).
  run_panels(w, row_begin, row_end, a, y, ldy, [&](int64_t p, int) {
    return Panel{w.codes + p * kPanelRows * w.k_padded, w.scales + p * kPanelRows, w.zeros + p * kPanelRows,
                 p * kPanelRows};
  });
}

// Rows of kQ4 / kQ3 / kQ2 weights unpacked to the VNNI panel layout, one panel (16 rows, all K)
// at a time, with their per-group scales and zeros transposed to [groups, 16]. Each kind's block
// layout (kernel_types.h) puts the codes of one VNNI step (inputs 4s..4s+3) of a row in one dword
// of its block, at a fixed bit offset, so a step of 16 rows is one gather of that dword across the
// rows (a permute), a shift and a mask:
//   kQ4 (16 bytes): step s < 4 is the low nibbles of dword s, step s + 4 its high nibbles;
//   kQ2 (8 bytes):  step s is bits 2 (s / 2) .. +1 of each byte of dword s % 2;
//   kQ3 (12 bytes): kQ2's 8 bytes for bits 0-1, then a 32-bit plane whose bit k is bit 2 of code k.
struct UnpackedPanel {
  std::vector<uint8_t> codes;  // 64 bytes of slack for the aligned start
  std::vector<float> scales, zeros;
};

// 16 dwords: dword d of the block at `offset` of each of the 16 rows (null rows, beyond the
// matrix: 0).
inline __m512i gather_dword(const uint8_t* const* rows, int64_t offset, int d) {
  alignas(64) uint32_t v[kPanelRows];
  for (int i = 0; i < kPanelRows; ++i) {
    if (rows[i] != nullptr)
      std::memcpy(&v[i], rows[i] + offset + 4 * d, 4);
    else
      v[i] = 0;
  }
  return _mm512_load_si512(v);
}

Panel unpack_panel(const PackedWeightView& w, int64_t p, UnpackedPanel& out) {
  const int64_t blocks = w.k_padded / kBlock;
  const int64_t r0 = p * kPanelRows;
  const int live = int(std::min<int64_t>(kPanelRows, w.rows - r0));
  out.codes.resize(size_t(blocks * kPanelBlockBytes + 64));
  out.scales.assign(size_t(w.groups_per_row * kPanelRows), 0.0f);
  out.zeros.assign(out.scales.size(), 0.0f);
  for (int i = 0; i < live; ++i)
    for (int64_t g = 0; g < w.groups_per_row; ++g) {
      out.scales[size_t(g * kPanelRows + i)] = w.scales[param_index(w, r0 + i, g)];
      out.zeros[size_t(g * kPanelRows + i)] = w.zeros[param_index(w, r0 + i, g)];
    }
  uint8_t* dst = out.codes.data() + ((64 - reinterpret_cast<uintptr_t>(out.codes.data()) % 64) % 64);
  const bool panel_kind = w.kind == PackedKind::kQ4P || w.kind == PackedKind::kQ3P || w.kind == PackedKind::kQ2P;
  const uint8_t* rows[kPanelRows];
  for (int i = 0; i < kPanelRows; ++i) rows[i] = i < live && !panel_kind ? w.codes + (r0 + i) * w.row_bytes : nullptr;
  const int64_t block_bytes = w.kind == PackedKind::kQ4 ? 16 : w.kind == PackedKind::kQ3 ? 12 : 8;
  const __m512i low2 = _mm512_set1_epi8(0x03), low4 = _mm512_set1_epi8(0x0F);
  for (int64_t b = 0; b < blocks; ++b) {
    uint8_t* out_block = dst + b * kPanelBlockBytes;
    const int64_t at = b * block_bytes;
    const auto store = [&](int step, __m512i v) { _mm512_store_si512(out_block + step * 64, v); };
    if (w.kind == PackedKind::kQ4P || w.kind == PackedKind::kQ2P) {
      // Already in VNNI order: panel p is one nibble (bit pair) of a double (quad) panel.
      const int parts = w.kind == PackedKind::kQ4P ? 2 : 4, bits = 8 / parts;
      const uint8_t* src = w.codes + p / parts * 16 * w.k_padded + b * kPanelBlockBytes;
      const unsigned shift = unsigned(bits * (p % parts));
      for (int s = 0; s < 8; ++s) {
        const __m512i v = _mm512_srli_epi16(_mm512_loadu_si512(src + s * 64), shift);
        store(s, _mm512_and_si512(v, bits == 4 ? low4 : low2));
      }
      continue;
    }
    if (w.kind == PackedKind::kQ3P) {
      // Part q = p % 4 of a quad panel: per two steps its low bit pairs (two vectors) and bit 2
      // from the shared plane (bit (2q + 2) % 8, one higher for the odd step).
      const int q = int(p % 4);
      const uint8_t* src = w.codes + p / 4 * 24 * w.k_padded + b * 4 * 192;
      const __m512i one = _mm512_set1_epi8(1);
      for (int s = 0; s < 8; ++s) {
        const uint8_t* piece = src + s / 2 * 192;
        const __m512i low = _mm512_srli_epi16(_mm512_loadu_si512(piece + 64 * (s % 2)), unsigned(2 * q));
        const __m512i high = _mm512_srli_epi16(_mm512_loadu_si512(piece + 128), unsigned((2 * q + 2) % 8 + s % 2));
        store(s, _mm512_or_si512(_mm512_and_si512(low, low2), _mm512_slli_epi16(_mm512_and_si512(high, one), 2)));
      }
      continue;
    }
    if (w.kind == PackedKind::kQ4) {
      for (int s = 0; s < 4; ++s) {
        const __m512i d = gather_dword(rows, at, s);
        store(s, _mm512_and_si512(d, low4));
        store(s + 4, _mm512_and_si512(_mm512_srli_epi16(d, 4), low4));
      }
      continue;
    }
    const __m512i d0 = gather_dword(rows, at, 0), d1 = gather_dword(rows, at, 1);
    // kQ3: bit 2 of the 4 codes of step s, from plane bits 4s..4s+3, each moved to bit 8j + 2 of
    // its dword: (nibble * 0x00204081) puts nibble bit j at bit 8j (the four shifted copies do
    // not overlap, so nothing carries).
    const __m512i plane = w.kind == PackedKind::kQ3 ? gather_dword(rows, at, 2) : _mm512_setzero_si512();
    for (int s = 0; s < 8; ++s) {
      const __m512i d = (s & 1) ? d1 : d0;
      __m512i codes = _mm512_and_si512(_mm512_srli_epi32(d, unsigned(2 * (s >> 1))), low2);
      if (w.kind == PackedKind::kQ3) {
        const __m512i nibble = _mm512_and_si512(_mm512_srli_epi32(plane, unsigned(4 * s)), _mm512_set1_epi32(0xF));
        const __m512i spread =
            _mm512_and_si512(_mm512_mullo_epi32(nibble, _mm512_set1_epi32(0x00204081)), _mm512_set1_epi32(0x01010101));
        codes = _mm512_or_si512(codes, _mm512_slli_epi32(spread, 2));
      }
      store(s, codes);
    }
  }
  return Panel{dst, out.scales.data(), out.zeros.data(), r0};
}

GemmQd8Fn small_batch_q3g = nullptr;
GemmQd8Fn small_batch_q2g = nullptr;

GemmQd8Fn small_batch_q4p = nullptr;
GemmQd8Fn small_batch_q3p = nullptr;
GemmQd8Fn small_batch_q2p = nullptr;

GemmQd8Fn small_batch_for(PackedKind kind) {
  return kind == PackedKind::kQ4   ? small_batch_q4g
         : kind == PackedKind::kQ4P ? small_batch_q4p
         : kind == PackedKind::kQ3P ? small_batch_q3p
         : kind == PackedKind::kQ2P ? small_batch_q2p
         : kind == PackedKind::kQ3  ? small_batch_q3g
                                    : small_batch_q2g;
}

// W4A8 / W3A8 / W2A8 prefill.
void gemm_qd8_low_bit_amx(const PackedWeightView& w, int64_t row_begin, int64_t row_end,
                          const QuantizedActivationsView& a, float* y, int64_t ldy) {
  if (a.tokens < kTileTokens) {
    small_batch_for(w.kind)(w, row_begin, row_end, a, y, ldy);
    return;
  }
  UnpackedPanel slots[2];
  run_panels(w, row_begin, row_end, a, y, ldy, [&](int64_t p, int slot) { return unpack_panel(w, p, slots[slot]); });
}

}  // namespace

void fill_amx_kernels(KernelTable& t) {
  small_batch_q8p = t.gemm_qd8_q8p_f32;
  t.gemm_qd8_q8p_f32 = gemm_qd8_q8p_amx;
  // Each low-bit entry keeps the kernel it replaces for fewer than 16 tokens.
  const struct {
    GemmQd8Fn* entry;
    GemmQd8Fn* small_batch;
  } low_bit[] = {{&t.gemm_qd8_q4g_f32, &small_batch_q4g},
                 {&t.gemm_qd8_q3g_f32, &small_batch_q3g},
                 {&t.gemm_qd8_q2g_f32, &small_batch_q2g},
                 {&t.gemm_qd8_q4p_f32, &small_batch_q4p},
                 {&t.gemm_qd8_q3p_f32, &small_batch_q3p},
                 {&t.gemm_qd8_q2p_f32, &small_batch_q2p}};
  for (const auto& e : low_bit)
    if (*e.entry != nullptr) {
      *e.small_batch = *e.entry;
      *e.entry = gemm_qd8_low_bit_amx;
    }
}

}  // namespace lowbit::kernels
