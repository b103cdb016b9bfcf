#include "formats/scale_grid.h"

#include <algorithm>
#include <cmath>

#include "base/half.h"
#include "base/status.h"
#include "formats/int_grid.h"

namespace lowbit {

float ScaleGrid::scale(uint8_t code) const {
  LOWBIT_CHECK(active());
  LOWBIT_CHECK((code_bits == 8 || code_bits == 4) && int(code) < code_count());
  const float factor = code_bits == 4 ? kLog4Factors[code] : float(int(code) + 1) / float(kScaleCodeCount);
  const float s = round_to_fp16(super_scale * factor);
  // The fp16 floor of every INTn scale (int_grid.h): a tiny super-scale must not decode to 0.
  return std::max(s, kMinFp16Scale);
}

uint8_t ScaleGrid::nearest_code(float scale_value) const {
  LOWBIT_CHECK(active());
  if (code_bits == 4) {  // 16 codes: compare them all (ties to the larger code)
    int best = 15;
    float best_distance = std::fabs(scale(15) - scale_value);
    for (int c = 14; c >= 0; --c) {
      const float distance = std::fabs(scale(uint8_t(c)) - scale_value);
      if (distance < best_distance) {
        best = c;
        best_distance = distance;
      }
    }
    return uint8_t(best);
  }
  // Candidate from the real-valued inverse, then settle between it and its neighbours on the
  // decoded (fp16-rounded) values, which are what the codes mean.
  const float x = scale_value / super_scale * float(kScaleCodeCount) - 1.0f;
  const int guess = std::isfinite(x) ? int(std::clamp(std::nearbyint(x), 0.0f, float(kScaleCodeCount - 1))) : 255;
  int best = guess;
  float best_distance = std::fabs(scale(uint8_t(guess)) - scale_value);
  for (int c = std::max(0, guess - 1); c <= std::min(kScaleCodeCount - 1, guess + 1); ++c) {
    const float distance = std::fabs(scale(uint8_t(c)) - scale_value);
    if (distance < best_distance || (distance == best_distance && c > best)) {
      best = c;
      best_distance = distance;
    }
  }
  return uint8_t(best);
}

std::optional<uint8_t> ScaleGrid::code_of(float scale_value) const {
  // Decoded scales never decrease with the code (both roundings are monotone): binary search.
  int lo = 0, hi = code_count() - 1;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (scale(uint8_t(mid)) < scale_value) lo = mid + 1;
    else hi = mid;
  }
  if (scale(uint8_t(lo)) == scale_value) return uint8_t(lo);
  return std::nullopt;
}

bool valid_super_scale(float super_scale) {
  return std::isfinite(super_scale) && super_scale > 0.0f && super_scale <= kMaxFp16Value;
}

}  // namespace lowbit
