#include "train/lm_data.h"

#include <algorithm>
#include <random>

#include "train/train_graph.h"

namespace lowbit::train {

void sample_lm_batch(const std::vector<int32_t>& stream, int batch, int seq, uint64_t seed, int32_t* tokens,
                     int32_t* targets) {
  LOWBIT_CHECK(stream.size() > size_t(seq));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> start(0, stream.size() - size_t(seq) - 1);
  for (int b = 0; b < batch; ++b) {
    const size_t s = start(rng);
    std::copy_n(stream.begin() + std::ptrdiff_t(s), seq, tokens + size_t(b) * seq);
    std::copy_n(stream.begin() + std::ptrdiff_t(s + 1), seq, targets + size_t(b) * seq);
  }
}

HeldOutResult held_out_nll(const ParamLayout& layout, const std::vector<float>& params,
                           const std::vector<int32_t>& stream, int seq, int max_windows) {
  HeldOutResult r;
  int64_t windows = int64_t(stream.size()) / seq;
  if (max_windows > 0) windows = std::min<int64_t>(windows, max_windows);
  if (windows <= 0) return r;
  const int chunk = int(std::min<int64_t>(windows, 8));
  TrainGraph<float> graph(layout, chunk, seq);
  std::vector<int32_t> tokens(size_t(chunk) * seq), targets(tokens.size());
  double nll_sum = 0;
  for (int64_t w0 = 0; w0 < windows; w0 += chunk) {
    const int n = int(std::min<int64_t>(chunk, windows - w0));
    std::fill(targets.begin(), targets.end(), -1);
    for (int b = 0; b < chunk; ++b) {
      const int64_t w = w0 + std::min(b, n - 1);  // pad a short last chunk with a repeat (unscored)
      const auto src = stream.begin() + std::ptrdiff_t(w * seq);
      std::copy_n(src, seq, tokens.begin() + std::ptrdiff_t(b) * seq);
      if (b < n) std::copy_n(src + 1, seq - 1, targets.begin() + std::ptrdiff_t(b) * seq);
    }
    graph.forward(params.data(), tokens.data());
    const int64_t counted = int64_t(n) * (seq - 1);
    nll_sum += graph.cross_entropy(targets.data()) * double(counted);
    r.tokens_scored += counted;
  }
  r.windows = windows;
  r.mean_nll = nll_sum / double(r.tokens_scored);
  return r;
}

}  // namespace lowbit::train
