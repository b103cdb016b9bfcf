// Runs one transformer block of a model over every calibration window, windows in parallel:
// each thread owns a Session (its own KV cache and scratch) and takes whole windows, so the
// runtime's own threading inside a block (attention, BLAS) runs serially within each window and
// threads synchronize once per batch of windows instead of inside every block call.
//
// The thread count does not change results: propagation writes each window's own rows, and
// captured layer inputs are handed back on the calling thread in window order (so Hessians sum
// the windows in the same order whatever the thread count).
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "model/forward.h"

namespace lowbit {

// The residual stream of every window entering the current block: window w is rows
// [offsets[w], offsets[w + 1]) of x [total tokens, dim].
struct WindowStream {
  std::vector<int64_t> offsets;
  std::vector<float> x;
  size_t windows() const { return offsets.size() - 1; }
  int tokens(size_t w) const { return int(offsets[w + 1] - offsets[w]); }
};

class BlockRunner {
 public:
  // `threads` sessions (at least 1) of `max_tokens` positions each over `model`.
  BlockRunner(std::shared_ptr<const Model> model, int max_tokens, int threads);

  int threads() const { return int(slots_.size()); }
  const Model& model() const { return *model_; }

  // Embeds the windows into a new stream.
  WindowStream embed(const std::vector<std::vector<int>>& windows) const;

  // Runs block `block` on a copy of every window (the stream is unchanged) and hands the input
  // of each linear in `capture` to consume(capture index, x [n, in_features], n), on the calling
  // thread, window by window in order.
  using Consumer = std::function<void(size_t, std::span<const float>, int)>;
  void collect_inputs(int block, const WindowStream& stream, const std::vector<const Linear*>& capture,
                      const Consumer& consume);

  // Runs block `block` in place: the stream becomes the next block's input.
  void propagate(int block, WindowStream& stream);

 private:
  struct Slot {
    std::unique_ptr<Session> session;
    std::vector<float> x;                      // [max_tokens, dim] one window's residual stream
    std::vector<std::vector<float>> captured;  // per capture index: [n, in_features]
  };
  std::shared_ptr<const Model> model_;
  std::vector<Slot> slots_;
};

}  // namespace lowbit
