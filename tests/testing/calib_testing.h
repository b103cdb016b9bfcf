// Helpers shared by the calibration tests (calib/): random token windows.
#pragma once

#include <cstdint>
#include <random>

#include "calib/calibration_data.h"

namespace lowbit::testing {

// `count` windows of `length` token ids uniform in [0, vocab), seeded.
inline TokenWindows random_windows(int count, int length, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  TokenWindows windows(static_cast<size_t>(count));
  for (auto& w : windows) {
    w.resize(size_t(length));
    for (int& t : w) t = int(rng() % uint32_t(vocab));
  }
  return windows;
}

}  // namespace lowbit::testing
