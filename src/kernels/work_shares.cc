#include "kernels/work_shares.h"

#include "base/status.h"

namespace lowbit::kernels {

WorkShares::WorkShares(std::span<const size_t> starts, size_t units)
    : count_(starts.size()), spans_(std::make_unique<std::atomic<uint64_t>[]>(starts.size())) {
  LOWBIT_CHECK(units < (uint64_t(1) << 32));
  for (size_t s = 0; s < count_; ++s) {
    const size_t end = s + 1 < count_ ? starts[s + 1] : units;
    LOWBIT_CHECK(starts[s] <= end && end <= units);
    spans_[s].store(pack(starts[s], end), std::memory_order_relaxed);
  }
}

bool WorkShares::take_front(size_t s, size_t* begin, size_t* end) {
  uint64_t span = spans_[s].load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t front = span & 0xffffffffu, back = span >> 32;
    if (front >= back) return false;
    // Half of what is left (at least one unit): few, long kernel calls while the share is large,
    // small ones near its end, where another thread may still come to help (all of it when no
    // other thread can).
    const uint64_t taken = count_ == 1 ? back - front : (back - front + 1) / 2;
    if (spans_[s].compare_exchange_weak(span, pack(front + taken, back), std::memory_order_relaxed)) {
      *begin = front;
      *end = front + taken;
      return true;
    }
  }
}

bool WorkShares::take_back(size_t s, size_t* begin, size_t* end) {
  uint64_t span = spans_[s].load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t front = span & 0xffffffffu, back = span >> 32;
    if (front >= back) return false;
    const uint64_t taken = (back - front + 1) / 2;
    if (spans_[s].compare_exchange_weak(span, pack(front, back - taken), std::memory_order_relaxed)) {
      *begin = back - taken;
      *end = back;
      return true;
    }
  }
}

bool WorkShares::next(size_t t, size_t* begin, size_t* end) {
  if (t < count_ && take_front(t, begin, end)) return true;
  for (;;) {
    // The share with the most units left (it will take its owner longest).
    size_t best = count_;
    uint64_t most = 0;
    for (size_t s = 0; s < count_; ++s) {
      const uint64_t span = spans_[s].load(std::memory_order_relaxed), front = span & 0xffffffffu, back = span >> 32;
      if (back > front && back - front > most) {
        most = back - front;
        best = s;
      }
    }
    if (best == count_) return false;
    if (take_back(best, begin, end)) return true;
  }
}

}  // namespace lowbit::kernels
