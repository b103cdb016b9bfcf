#include "formats/int_grid.h"

#include <algorithm>

#include "base/half.h"
#include "base/status.h"

namespace lowbit {

GroupParams fit_int_grid(float group_min, float group_max, int bits, ZeroPoint zero_point, float shrink,
                         const ScaleGrid& grid) {
  LOWBIT_CHECK(bits >= 1 && bits <= 8);
  LOWBIT_CHECK(shrink > 0.0f && shrink <= 1.0f);
  LOWBIT_CHECK(group_min <= group_max);
  const int max_code = (1 << bits) - 1;

  float xmin = std::min(group_min, 0.0f);
  float xmax = std::max(group_max, 0.0f);
  if (zero_point != ZeroPoint::kFitted) {
    xmax = std::max(-xmin, xmax);
    if (xmin < 0.0f || zero_point == ZeroPoint::kMidRise) xmin = -xmax;
  }
  if (xmin == 0.0f && xmax == 0.0f) {
    xmin = -1.0f;
    xmax = 1.0f;
  }
  xmin *= shrink;
  xmax *= shrink;

  GroupParams params;
  params.scale = round_to_fp16((xmax - xmin) / float(max_code));
  params.scale = std::clamp(params.scale, kMinFp16Scale, kMaxFp16Value);
  if (grid.active()) params.scale = grid.scale(grid.nearest_code(params.scale));
  if (zero_point != ZeroPoint::kFitted) {
    params.zero = fixed_zero_point(bits, zero_point);
  } else {
    params.zero = std::clamp(round_half_even(-xmin / params.scale), 0.0f, float(max_code));
  }
  return params;
}

}  // namespace lowbit
