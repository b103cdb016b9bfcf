// The uniform integer grid shared by RTN and GPTQ: codes 0..maxq (maxq = 2^bits - 1), one scale
// and one zero point per group, value = scale * (code - zero).
//
// The fit follows the reference GPTQ `Quantizer.find_params` (IST-DASLab gptq/quant.py) exactly,
// with one documented difference, marked (*):
//   xmin = min(group_min, 0), xmax = max(group_max, 0)      the grid always contains 0
//   symmetric:  xmax = max(|xmin|, xmax); if xmin < 0 then xmin = -xmax
//   midrise:    xmax = max(|xmin|, xmax); xmin = -xmax (always: the grid has no level at 0)
//   if xmin == xmax (== 0, an all-zero group): xmin = -1, xmax = +1
//   xmin *= shrink, xmax *= shrink                            (clipping search; shrink 1 = min/max)
//   scale = (xmax - xmin) / maxq
//   (*) scale = round_to_fp16(scale), kept within [2^-24, 65504]
//       double quantization (_dq, scale_grid.h): scale = the nearest scale of the 8-bit grid instead
//   asymmetric: zero = round(-xmin / scale), clamped to [0, maxq]
//   symmetric:  zero = (maxq + 1) / 2 = 2^(bits-1)
//   midrise:    zero = maxq / 2 (3.5 for 3 bits), not an integer: levels at ±scale/2, ±3·scale/2, ...
//   code = clamp(round(x / scale) + zero, 0, maxq),  round = half to even (as torch.round)
//          (midrise: round(x / scale + 1/2) + zero - 1/2, the nearest level)
//
// (*) Why round the scale to fp16 before computing zero and codes: scales are stored as fp16 (and
// zeros, being integers in [0, 255], are exact in fp16), so codes computed against the fp16 scale
// make (codes, stored scale, stored zero) reproduce the dequantized values bit for bit; nothing a
// loader reads differs from what the quantizer measured. The reference computes codes with the
// fp32 scale and rounds only when packing, a relative difference of at most 2^-11 in the scale.
//
// Midrise (lowbit's own, `_midrise`): the reference's symmetric grid spends one of its 2^b levels on
// 0 and so has one level more below 0 than above (-4..3 for 3 bits); for weights spread evenly
// around 0 its top level clips and its range covers 2·absmax with 2^b - 1 steps plus a spare one.
// The midrise grid puts its 2^b levels evenly over [-absmax, absmax], as many above 0 as below,
// with no level at 0 (the uniform quantizer that is optimal for a symmetric density with an even
// number of levels). On stories260K with GPTQ it takes int3_sym_dq4 from 0.506 to 0.437 KLD and
// int2_sym_dq4 from 2.60 to 1.97, at the same bits (docs/results.md). The HF GPTQ convention has no
// such zero point, so midrise tensors are only ever stored in lowbit's own layout.
//
// Known quirk kept from the reference: a symmetric group with no negative value keeps xmin = 0,
// so scale = xmax/maxq while codes above zero reach only (maxq-1)/2 steps: values above
// scale*(maxq-1)/2 are clipped. Tests pin this behaviour down rather than hide it.
#pragma once

#include <cmath>
#include <cstdint>

#include "formats/scale_grid.h"

namespace lowbit {

// Where an integer grid's zero point comes from (the spec suffix in brackets).
enum class ZeroPoint : uint8_t {
  kFitted,    // (_asym, the default) round(-xmin / scale), stored per group
  kMidTread,  // (_sym) 2^(bits-1), not stored: a level at 0
  kMidRise,   // (_midrise) (2^bits - 1) / 2, not stored: no level at 0
};

// The zero point of the grids that do not store one.
constexpr float fixed_zero_point(int bits, ZeroPoint kind) {
  return kind == ZeroPoint::kMidRise ? float((1 << bits) - 1) / 2.0f : float(1 << (bits - 1));
}

// One group's parameters. For integer grids both are exactly representable in fp16; the other
// formats reuse the struct (nf4: scale = block absmax, fp8: scale = row absmax/448; zero = 0).
struct GroupParams {
  float scale = 1.0f;
  float zero = 0.0f;  // an integer for integer grids, except midrise (an integer + 1/2)
};
static_assert(sizeof(GroupParams) == 8, "GroupParams is two floats");

// Bounds on a stored fp16 scale: the smallest positive subnormal and the largest finite value.
inline constexpr float kMinFp16Scale = 5.9604644775390625e-8f;  // 2^-24
inline constexpr float kMaxFp16Value = 65504.0f;

// Fits scale and zero for a group whose values span [group_min, group_max] (see the top of this
// file). `shrink` in (0, 1] narrows the range for clipping search. With an active `grid` (double
// quantization) the scale is snapped to the grid before the zero point is computed, so the zero
// point and the codes are chosen for the scale that is stored.
GroupParams fit_int_grid(float group_min, float group_max, int bits, ZeroPoint zero_point, float shrink = 1.0f,
                         const ScaleGrid& grid = {});

// Round half to even under the default floating-point environment (lowbit never changes it).
inline float round_half_even(float x) { return std::nearbyint(x); }

inline uint8_t quantize_int_grid(float x, const GroupParams& params, int max_code) {
  // `half` is 1/2 for a midrise zero point and 0 otherwise, where x / scale + 0 is x / scale exactly:
  // the integer zero points round exactly as the reference does.
  const float half = params.zero - std::floor(params.zero);
  float q = round_half_even(x / params.scale + half) + (params.zero - half);
  q = q < 0.0f ? 0.0f : q;
  q = q > float(max_code) ? float(max_code) : q;
  return uint8_t(q);
}

inline float dequantize_int_grid(uint8_t code, const GroupParams& params) {
  return params.scale * (float(code) - params.zero);
}

}  // namespace lowbit
