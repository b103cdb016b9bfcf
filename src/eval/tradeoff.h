// The size/accuracy trade-off of a sweep of quantized variants: a Markdown table and a
// self-contained SVG plot of size against KL divergence with the Pareto frontier marked.
#pragma once

#include <string>
#include <vector>

namespace lowbit {

struct TradeoffPoint {
  std::string label;       // e.g. "int4g32 rtn"
  double bits_per_weight;  // over the quantized tensors
  double model_bytes;      // whole model as stored
  double perplexity;
  double kld;
  double top1;
  double reference_kld = -1;  // an independent figure to compare with, < 0 when none
};

// Indices of the points on the Pareto frontier (no other point is both smaller and lower KLD).
std::vector<size_t> pareto_frontier(const std::vector<TradeoffPoint>& points);

std::string tradeoff_markdown(const std::vector<TradeoffPoint>& points, const std::string& protocol);

// SVG (no scripts, no external resources): x = model size (MB), y = KLD on a log scale.
std::string tradeoff_svg(const std::vector<TradeoffPoint>& points, const std::string& title);

}  // namespace lowbit
