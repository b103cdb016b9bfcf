#pragma once
// Work sharing for a decode product's threads: each thread starts on its own contiguous share of
// the work units (one long memory stream, as a static split gives) and takes it from the front in
// halving batches; a thread whose share is done takes the back half of the largest share left.
// A static split by bytes left each thread idle at the end of a TinyLlama decode product for 7-9
// us of 212 on average (4%), since the two cores do not run at the same speed from one product
// to the next (one shares its core with the host, one did the serial work before the region).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace lowbit::kernels {

class WorkShares {
 public:
  // starts: share t is units [starts[t], starts[t + 1]), the last ending at `units`.
  WorkShares(std::span<const size_t> starts, size_t units);

  // The next batch [*begin, *end) for thread t (any t; thread t's own share is share t when there
  // is one); false once no unit is left anywhere.
  bool next(size_t t, size_t* begin, size_t* end);

  size_t shares() const { return count_; }

 private:
  // Front in the low 32 bits, back in the high: one compare-and-swap claims from either end.
  static uint64_t pack(uint64_t front, uint64_t back) { return front | (back << 32); }
  bool take_front(size_t s, size_t* begin, size_t* end);
  bool take_back(size_t s, size_t* begin, size_t* end);

  size_t count_;
  std::unique_ptr<std::atomic<uint64_t>[]> spans_;
};

}  // namespace lowbit::kernels
