#include "calib/input_statistics.h"

namespace lowbit {

InputStatistics collect_input_statistics(BlockRunner& runner, const WindowStream& stream, int block,
                                         const std::vector<int>& readers, ReferenceRun* reference) {
  InputStatistics stats;
  std::vector<const Linear*> layers, reference_layers;
  for (int i : readers) {
    const Linear* l = runner.model().layers()[size_t(block)].linears()[size_t(i)];
    layers.push_back(l);
    stats.hessians.emplace_back(l->in_features);
    stats.peak_bytes += stats.hessians.back().bytes();
    if (reference) {
      reference_layers.push_back(reference->runner.model().layers()[size_t(block)].linears()[size_t(i)]);
      stats.shifts.emplace_back(l->in_features);
      stats.peak_bytes += stats.shifts.back().bytes();
    }
  }
  // The original model's inputs of every window, paired token by token with the quantized model's
  // below: both runners hand windows back in window order.
  std::vector<std::vector<float>> reference_inputs(reference_layers.size());
  if (reference) {
    reference->runner.collect_inputs(block, reference->stream, reference_layers,
                                     [&](size_t k, std::span<const float> x, int) {
                                       reference_inputs[k].insert(reference_inputs[k].end(), x.begin(), x.end());
                                     });
    for (const auto& inputs : reference_inputs) stats.peak_bytes += int64_t(inputs.size() * sizeof(float));
  }
  std::vector<size_t> cursor(reference_layers.size(), 0);
  runner.collect_inputs(block, stream, layers, [&](size_t k, std::span<const float> x, int n) {
    stats.hessians[k].add(x, n);
    if (reference) {
      stats.shifts[k].add(std::span<const float>(reference_inputs[k]).subspan(cursor[k], x.size()), x, n);
      cursor[k] += x.size();
    }
  });
  return stats;
}

}  // namespace lowbit
