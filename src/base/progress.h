// A progress bar with ETA for long work (quantization, evaluation), drawn on stderr only when
// stderr is a terminal or LOWBIT_PROGRESS=1; otherwise it prints nothing, so logs and pipes
// stay clean. Library code takes a callback; the CLI owns the bar.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace lowbit {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total);
  ~ProgressBar();
  // Sets the number of finished units and redraws (at most ~10 times a second).
  void update(int64_t done, const std::string& detail = "");
  void finish();

 private:
  std::string label_;
  int64_t total_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace lowbit
