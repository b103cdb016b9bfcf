#include "eval/tradeoff.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace lowbit {

std::vector<size_t> pareto_frontier(const std::vector<TradeoffPoint>& points) {
  std::vector<size_t> front;
  for (size_t i = 0; i < points.size(); ++i) {
    bool dominated = false;
    for (size_t j = 0; j < points.size() && !dominated; ++j) {
      if (i == j) continue;
      const auto &a = points[j], &b = points[i];
      dominated = a.model_bytes <= b.model_bytes && a.kld <= b.kld && (a.model_bytes < b.model_bytes || a.kld < b.kld);
    }
    if (!dominated) front.push_back(i);
  }
  std::sort(front.begin(), front.end(), [&](size_t a, size_t b) { return points[a].model_bytes < points[b].model_bytes; });
  return front;
}

std::string tradeoff_markdown(const std::vector<TradeoffPoint>& points, const std::string& protocol) {
  const auto front = pareto_frontier(points);
  bool any_reference = false;
  for (const auto& p : points) any_reference = any_reference || p.reference_kld >= 0;
  std::string s = "| configuration | bits/weight | size (bytes) | perplexity | KLD (nats) | top-1 |";
  s += any_reference ? " reference KLD | Δ vs reference |\n|---|---|---|---|---|---|---|---|\n" : "\n|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    const bool on_front = std::find(front.begin(), front.end(), i) != front.end();
    s += fmt::format("| {}{} | {:.4f} | {:.0f} | {:.4f} | {:.5f} | {:.4f} |", p.label, on_front ? " ★" : "",
                     p.bits_per_weight, p.model_bytes, p.perplexity, p.kld, p.top1);
    if (any_reference)
      s += p.reference_kld >= 0 ? fmt::format(" {:.5f} | {:+.2f} % |", p.reference_kld, 100 * (p.kld / p.reference_kld - 1))
                                : " | |";
    s += "\n";
  }
  s += "\n★ = on the Pareto frontier of size vs KLD. Protocol: " + protocol + "\n";
  return s;
}

std::string tradeoff_svg(const std::vector<TradeoffPoint>& points, const std::string& title) {
  const double width = 720, height = 460, left = 80, right = 30, top = 40, bottom = 60;
  double xmin = 1e300, xmax = 0, ymin = 1e300, ymax = 0;
  for (const auto& p : points) {
    xmin = std::min(xmin, p.model_bytes / 1e6), xmax = std::max(xmax, p.model_bytes / 1e6);
    const double k = std::max(p.kld, 1e-6);
    ymin = std::min(ymin, k), ymax = std::max(ymax, k);
  }
  if (points.empty()) xmin = 0, xmax = 1, ymin = 1e-3, ymax = 1;
  if (xmax <= xmin) xmax = xmin + 1;
  const double lymin = std::floor(std::log10(ymin)), lymax = std::max(std::ceil(std::log10(ymax)), lymin + 1);
  const double pad = (xmax - xmin) * 0.08;
  xmin -= pad, xmax += pad;
  auto X = [&](double mb) { return left + (mb - xmin) / (xmax - xmin) * (width - left - right); };
  auto Y = [&](double kld) {
    return top + (lymax - std::log10(std::max(kld, 1e-6))) / (lymax - lymin) * (height - top - bottom);
  };
  auto esc = [](const std::string& t) {
    std::string o;
    for (char c : t) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
    return o;
  };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"24\" font-size=\"15\">{3}</text>\n",
      width, height, left, esc(title));
  // Axes with ticks: x linear in MB, y decades of KLD.
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n", left, height - bottom, width - right);
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"black\"/>\n", left, top, height - bottom);
  for (int i = 0; i <= 5; ++i) {
    const double mb = xmin + (xmax - xmin) * i / 5;
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.3g}</text>\n", X(mb), height - bottom + 18, mb);
  }
  for (double e = lymin; e <= lymax; e += 1) {
    const double y = Y(std::pow(10.0, e));
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n", left, y, width - right, y);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">1e{:.0f}</text>\n", left - 6, y + 4, e);
  }
  s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">model size (MB)</text>\n", (left + width - right) / 2, height - 18);
  s += fmt::format("<text x=\"16\" y=\"{:.1f}\" transform=\"rotate(-90 16 {:.1f})\" text-anchor=\"middle\">KL divergence to FP (nats, log scale)</text>\n",
                   (top + height - bottom) / 2, (top + height - bottom) / 2);
  const auto front = pareto_frontier(points);
  std::string path;
  for (size_t i : front) path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "" : " ", X(points[i].model_bytes / 1e6), Y(points[i].kld));
  if (!path.empty()) s += "<polyline class=\"pareto\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" points=\"" + path + "\"/>\n";
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    const bool on_front = std::find(front.begin(), front.end(), i) != front.end();
    s += fmt::format("<circle class=\"point\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"5\" fill=\"{}\"/>\n", X(p.model_bytes / 1e6), Y(p.kld),
                     on_front ? "#d62728" : "#1f77b4");
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", X(p.model_bytes / 1e6) + 7, Y(p.kld) - 6, esc(p.label));
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#d62728\" text-anchor=\"end\">— Pareto frontier (nothing is both smaller and closer to FP)</text>\n",
                   width - right, top - 8);
  s += "</svg>\n";
  return s;
}

}  // namespace lowbit
