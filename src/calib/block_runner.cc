#include "calib/block_runner.h"

#include <omp.h>

#include <algorithm>

namespace lowbit {

BlockRunner::BlockRunner(std::shared_ptr<const Model> model, int max_tokens, int threads) : model_(std::move(model)) {
  slots_.resize(size_t(std::max(1, threads)));
  for (Slot& slot : slots_) {
    slot.session = std::make_unique<Session>(model_, max_tokens);
    slot.x.resize(size_t(max_tokens) * size_t(model_->config().dim));
  }
}

WindowStream BlockRunner::embed(const std::vector<std::vector<int>>& windows) const {
  const int dim = model_->config().dim;
  WindowStream stream;
  stream.offsets.push_back(0);
  for (const auto& w : windows) stream.offsets.push_back(stream.offsets.back() + int64_t(w.size()));
  stream.x.resize(size_t(stream.offsets.back()) * size_t(dim));
  for (size_t w = 0; w < windows.size(); ++w)
    slots_[0].session->embed(windows[w], stream.x.data() + stream.offsets[w] * dim);
  return stream;
}

void BlockRunner::collect_inputs(int block, const WindowStream& stream, const std::vector<const Linear*>& capture,
                                 const Consumer& consume) {
  const int dim = model_->config().dim;
  for (Slot& slot : slots_) {
    slot.captured.assign(capture.size(), {});
    slot.session->set_linear_hook([&slot, &capture, block](const LinearInput& in) {
      if (in.layer != block) return;
      for (size_t k = 0; k < capture.size(); ++k)
        if (in.linear == capture[k]) slot.captured[k].assign(in.x, in.x + size_t(in.n_tokens) * in.linear->in_features);
    });
  }
  const size_t batch_size = slots_.size();
  for (size_t first = 0; first < stream.windows(); first += batch_size) {
    const int batch = int(std::min(batch_size, stream.windows() - first));
#pragma omp parallel for num_threads(batch) schedule(static, 1)
    for (int i = 0; i < batch; ++i) {
      Slot& slot = slots_[size_t(i)];
      const size_t w = first + size_t(i);
      const float* x = stream.x.data() + stream.offsets[w] * dim;
      std::copy(x, x + size_t(stream.tokens(w)) * dim, slot.x.begin());
      slot.session->forward_block(block, slot.x.data(), stream.tokens(w), 0);
    }
    for (int i = 0; i < batch; ++i)
      for (size_t k = 0; k < capture.size(); ++k)
        consume(k, slots_[size_t(i)].captured[k], stream.tokens(first + size_t(i)));
  }
  for (Slot& slot : slots_) slot.session->set_linear_hook(nullptr);
}

void BlockRunner::propagate(int block, WindowStream& stream) {
  const int dim = model_->config().dim;
  const int64_t windows = int64_t(stream.windows());
#pragma omp parallel for num_threads(int(slots_.size())) schedule(dynamic, 1)
  for (int64_t w = 0; w < windows; ++w) {
    // Any free slot: which session runs a window does not change its result.
    Slot& slot = slots_[size_t(omp_get_thread_num())];
    slot.session->forward_block(block, stream.x.data() + stream.offsets[size_t(w)] * dim, stream.tokens(size_t(w)), 0);
  }
}

}  // namespace lowbit
