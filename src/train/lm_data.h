// Language-model data for training: random windows of a token stream as (inputs, next-token
// targets), and held-out perplexity on disjoint windows scored as `lowbit eval` scores them
// (each window from position 0, positions 0..L-2 predict tokens 1..L-1).
#pragma once

#include <cstdint>
#include <vector>

#include "train/param_layout.h"

namespace lowbit::train {

// tokens/targets: [batch, seq]; window b starts at a uniformly drawn offset in the stream (which
// must hold at least seq + 1 tokens), targets[b, t] = stream[start + t + 1].
void sample_lm_batch(const std::vector<int32_t>& stream, int batch, int seq, uint64_t seed, int32_t* tokens,
                     int32_t* targets);

struct HeldOutResult {
  double mean_nll = 0;
  int64_t tokens_scored = 0;
  int64_t windows = 0;
};
// Mean next-token NLL over up to max_windows disjoint windows of `seq` tokens (0 = all).
HeldOutResult held_out_nll(const ParamLayout& layout, const std::vector<float>& params,
                           const std::vector<int32_t>& stream, int seq, int max_windows);

}  // namespace lowbit::train
