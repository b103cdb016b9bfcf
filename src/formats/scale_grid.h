// Double quantization (spec suffix `_dq`, format.h): the per-group scales of an INTn matrix are
// themselves quantized, to an 8-bit code against one fp32 super-scale per tensor, as llama.cpp's
// K-quants (6-bit scales against an fp16 super-scale per 256 weights) and QLoRA (8-bit absmax
// constants) do. On stories260K's 64-wide rows an fp16 scale + fp16 zero per row costs 0.5
// bit/weight; an 8-bit scale code + a b-bit zero point costs (8 + b)/64.
//
// The grid (linear, 256 steps, code 255 = the super-scale):
//   scale(code) = round_to_fp16(super_scale * ((code + 1) / 256))       code in [0, 255]
// Exact arithmetic: (code + 1)/256 is exact in fp32, the product is one IEEE rounding and the fp16
// rounding is the one every INTn scale already gets (int_grid.h), so a loader on any machine
// decodes the same scale from (super_scale, code) bit for bit, and a decoded scale is a valid fp16
// scale for every consumer (kernels, the GPTQ packer). No code means 0, so no scale is ever zero.
//
// Why linear rather than log spacing: the relative step of a linear grid is 1/(code + 1), finer
// than a log grid with the same 256 codes wherever a scale lies within a factor of about 5 of the
// tensor's largest (log with 32 codes per octave, 8 octaves: 2.2 % everywhere; linear: 0.4 % at
// the top, 2.2 % at super/5.6), where most per-row and per-group scales of a tensor lie. Measured
// on stories260K (GPTQ + --clip, eval KLD; docs/results.md "Double quantization"): int3_dq 0.3821
// linear vs 0.3866 log, int3g32_dq 0.2804 vs 0.2935. A log grid would also need exp2, whose last
// bit differs between libms, where the linear grid decodes bit for bit the same everywhere.
//
// The super-scale is chosen by the quantizer (rtn.h, gptq.h): the largest min/max scale over the
// tensor's groups, so the widest group keeps its exact range and every other scale rounds to the
// nearest of 256 levels below it. Zero points (asymmetric grids) are already integers in
// [0, 2^b - 1] and are stored in b bits, not as fp16.
//
// 4-bit scale codes (spec suffix `_dq4`): 16 codes on a log grid, 4 per octave, code 15 = the
// super-scale:
//   scale(code) = round_to_fp16(super_scale * 2^(-(15 - code)/4))      code in [0, 15]
// The factors 2^(-k/4) are a table of 16 fp32 constants (kLog4Factors: four mantissas times powers
// of two), not exp2, so decoding is one IEEE product and one fp16 rounding on every machine. Why
// log here: with 16 linear codes the step would be 6 % at the top and 33 % at a quarter of the
// super-scale; the log grid's is 19 % everywhere, over a range of 13.5x (code 0 = super/13.45;
// smaller scales clamp to it). Measured on stories260K (GPTQ + --clip, eval KLD; docs/results.md):
// int3_dq4 3.10 bits/weight 0.404 against int3_dq 3.15 bits 0.382, int3g32_dq4 3.23 bits 0.304
// against int3g32_dq 3.36 bits 0.280; the cheaper scales let a 3.0-bit mixed allocation keep more
// tensors at 3 bits.
#pragma once

#include <cstdint>
#include <optional>

namespace lowbit {

inline constexpr int kScaleCodeBits = 8;
inline constexpr int kScaleCodeCount = 1 << kScaleCodeBits;
// _dq4: 2^(-(15 - code)/4) for code 0..15, exact fp32 (the correctly rounded values).
inline constexpr float kLog4Factors[16] = {
    0x1.306fe0p-4f, 0x1.6a09e6p-4f, 0x1.ae89fap-4f, 0x1p-3f, 0x1.306fe0p-3f, 0x1.6a09e6p-3f,
    0x1.ae89fap-3f, 0x1p-2f, 0x1.306fe0p-2f, 0x1.6a09e6p-2f, 0x1.ae89fap-2f, 0x1p-1f,
    0x1.306fe0p-1f, 0x1.6a09e6p-1f, 0x1.ae89fap-1f, 0x1p+0f};

struct ScaleGrid {
  float super_scale = 0.0f;  // 0: no grid (scales are plain fp16); otherwise finite and > 0
  int code_bits = kScaleCodeBits;  // 8: linear grid (_dq); 4: log grid (_dq4)

  bool active() const { return super_scale > 0.0f; }
  // Number of codes: 256 or 16.
  int code_count() const { return 1 << code_bits; }
  // The scale `code` stands for (formula above).
  float scale(uint8_t code) const;
  // The code whose scale is nearest to `scale` (clamped to the grid's ends; ties to the larger).
  // Codes at or beyond code_count() are never returned; scale() refuses them.
  uint8_t nearest_code(float scale) const;
  // The code that decodes to exactly `scale`, or nullopt when `scale` is not on the grid.
  std::optional<uint8_t> code_of(float scale) const;
};

// Checks a super-scale read from a file: finite, > 0 and small enough that scale(255) stays
// finite in fp16 (<= 65504).
bool valid_super_scale(float super_scale);

}  // namespace lowbit
