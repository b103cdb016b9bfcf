#include "base/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lowbit {

ProgressBar::ProgressBar(std::string label, int64_t total)
    : label_(std::move(label)), total_(total > 0 ? total : 1), start_(std::chrono::steady_clock::now()) {
  const char* env = std::getenv("LOWBIT_PROGRESS");
  enabled_ = env ? std::strcmp(env, "0") != 0 : ::isatty(STDERR_FILENO) == 1;
  last_draw_ = start_ - std::chrono::seconds(1);
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(int64_t done, const std::string& detail) {
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double frac = double(done) / double(total_);
  const double eta = done > 0 ? elapsed * (1.0 - frac) / frac : 0.0;
  constexpr int kWidth = 24;
  const int filled = int(frac * kWidth);
  char bar[kWidth + 1];
  for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
  bar[kWidth] = 0;
  std::fprintf(stderr, "\r%s [%s] %lld/%lld  %.1fs elapsed, ETA %.1fs  %s\033[K", label_.c_str(), bar,
               (long long)done, (long long)total_, elapsed, eta, detail.c_str());
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  std::fprintf(stderr, "\n");
}

}  // namespace lowbit
