#include "quant/hessian.h"

#include <algorithm>

#include "base/status.h"
#include "linalg/linalg.h"

namespace lowbit {

HessianAccumulator::HessianAccumulator(int64_t dim) : dim_(dim), sum_(size_t(dim * dim), 0.0) {
  LOWBIT_CHECK(dim >= 0);
}

void HessianAccumulator::add(std::span<const float> x, int64_t n) {
  LOWBIT_CHECK(n >= 0 && x.size() == size_t(n * dim_));
  // Batches are converted in slices so the fp64 copy stays small for long inputs.
  constexpr int64_t kSliceRows = 512;
  for (int64_t begin = 0; begin < n; begin += kSliceRows) {
    const int64_t rows = std::min(kSliceRows, n - begin);
    batch_.assign(x.begin() + begin * dim_, x.begin() + (begin + rows) * dim_);
    linalg::syrk_upper_accumulate(batch_, rows, dim_, 1.0, sum_);
  }
  rows_ += n;
}

std::vector<double> HessianAccumulator::hessian() const {
  std::vector<double> h(sum_.size(), 0.0);
  if (rows_ == 0) return h;
  const double scale = 2.0 / double(rows_);
  for (int64_t r = 0; r < dim_; ++r)
    for (int64_t c = r; c < dim_; ++c) h[size_t(r * dim_ + c)] = scale * sum_[size_t(r * dim_ + c)];
  linalg::symmetrize_from_upper(h, dim_);
  return h;
}

}  // namespace lowbit
