#include "quant/mixed_allocation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <queue>

namespace lowbit {
namespace {

Status validate(const std::vector<AllocationItem>& items) {
  if (items.empty()) return error(ErrorCode::kInvalidArgument, "allocation needs at least one item");
  uint64_t total_max = 0;
  for (const AllocationItem& item : items) {
    if (item.candidates.empty() || item.candidates.size() > 255)
      return error(ErrorCode::kInvalidArgument, "item {} has {} candidate formats (allowed 1..255)", item.name,
                   item.candidates.size());
    uint64_t item_max = 0;
    for (const AllocationCandidate& c : item.candidates) {
      if (!std::isfinite(c.damage))
        return error(ErrorCode::kInvalidArgument, "item {} format {}: damage {} is not finite", item.name, c.format,
                     c.damage);
      item_max = std::max(item_max, c.bytes);
    }
    if (__builtin_add_overflow(total_max, item_max, &total_max))
      return error(ErrorCode::kInvalidArgument, "item sizes overflow 64 bits (at item {})", item.name);
  }
  return Status::Ok();
}

uint64_t smallest_bytes(const AllocationItem& item) {
  uint64_t m = std::numeric_limits<uint64_t>::max();
  for (const auto& c : item.candidates) m = std::min(m, c.bytes);
  return m;
}

uint64_t ceil_div(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

// The DP table over extra bytes in units; see the header for the rounding rules.
struct Knapsack {
  uint64_t base = 0;                      // Σ smallest candidate
  uint64_t unit = 1;                      // bytes per DP unit
  bool exact = true;                      // unit == gcd of the extra sizes
  std::vector<std::vector<uint64_t>> w;   // [item][candidate] extra units, rounded up
  uint64_t cap = 0;                       // units the table covers
  std::vector<double> best;               // [cap + 1] least damage within c units, all items
  std::vector<std::vector<uint8_t>> pick; // [item][cap + 1] choice made at c units

  // budget_units(extra bytes) = how many whole units fit.
  void build(const std::vector<AllocationItem>& items, uint64_t extra_budget, bool limited,
             const AllocatorOptions& options) {
    const size_t n = items.size();
    std::vector<uint64_t> mins(n);
    uint64_t g = 0, max_extra_sum = 0;
    for (size_t i = 0; i < n; ++i) {
      mins[i] = smallest_bytes(items[i]);
      base += mins[i];
      uint64_t item_max = 0;
      for (const auto& c : items[i].candidates) {
        g = std::gcd(g, c.bytes - mins[i]);
        item_max = std::max(item_max, c.bytes - mins[i]);
      }
      max_extra_sum += item_max;
    }
    unit = std::max<uint64_t>(g, 1);
    const uint64_t wanted = limited ? std::min(extra_budget, max_extra_sum) : max_extra_sum;
    cap = wanted / unit;
    // Coarsen by the smallest factor k that keeps n × (cap + 1) cells within the limit.
    const uint64_t max_cells = std::max<uint64_t>(options.max_cells, 2 * n);
    if (n * (cap + 1) > max_cells) {
      uint64_t k = std::max<uint64_t>(2, ceil_div(n * (cap + 1), max_cells));
      while (n * (wanted / (unit * k) + 1) > max_cells) ++k;
      unit *= k;
      exact = false;
      // Limited budgets round down; unlimited tables must still hold every allocation (rounded up).
      cap = limited ? wanted / unit : 0;
      if (!limited)
        for (size_t i = 0; i < n; ++i) {
          uint64_t item_max = 0;
          for (const auto& c : items[i].candidates) item_max = std::max(item_max, ceil_div(c.bytes - mins[i], unit));
          cap += item_max;
        }
    }
    w.assign(n, {});
    for (size_t i = 0; i < n; ++i)
      for (const auto& c : items[i].candidates) w[i].push_back(ceil_div(c.bytes - mins[i], unit));

    best.assign(size_t(cap + 1), 0.0);
    pick.assign(n, std::vector<uint8_t>(size_t(cap + 1), 0));
    std::vector<double> next(size_t(cap + 1));
    for (size_t i = 0; i < n; ++i) {
      const auto& cands = items[i].candidates;
      for (uint64_t c = 0; c <= cap; ++c) {
        double v = std::numeric_limits<double>::infinity();
        uint8_t choice = 0;
        for (size_t j = 0; j < cands.size(); ++j) {
          if (w[i][j] > c) continue;
          const double d = best[size_t(c - w[i][j])] + cands[j].damage;
          if (d < v) v = d, choice = uint8_t(j);
        }
        next[size_t(c)] = v;
        pick[i][size_t(c)] = choice;
      }
      best.swap(next);
    }
  }

  std::vector<int> reconstruct(uint64_t c) const {
    std::vector<int> choice(w.size());
    for (size_t i = w.size(); i-- > 0;) {
      choice[i] = pick[i][size_t(c)];
      c -= w[i][size_t(choice[i])];
    }
    return choice;
  }
};

std::string describe_bytes(uint64_t b) { return fmt::format("{} bytes", b); }

}  // namespace

Allocation evaluate_allocation(const std::vector<AllocationItem>& items, const std::vector<int>& choice) {
  Allocation a;
  a.choice = choice;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& c = items[i].candidates[size_t(choice[i])];
    a.bytes += c.bytes;
    a.damage += c.damage;
  }
  return a;
}

Result<Allocation> allocate_dp(const std::vector<AllocationItem>& items, uint64_t max_bytes,
                               const AllocatorOptions& options) {
  LOWBIT_RETURN_IF_ERROR(validate(items));
  uint64_t base = 0;
  for (const auto& item : items) base += smallest_bytes(item);
  if (base > max_bytes)
    return error(ErrorCode::kInvalidArgument,
                 "budget of {} is below the smallest allocation ({}: every item at its smallest candidate format)",
                 describe_bytes(max_bytes), describe_bytes(base));
  Knapsack k;
  k.build(items, max_bytes - base, true, options);
  Allocation a = evaluate_allocation(items, k.reconstruct(k.cap));
  a.unit_bytes = k.unit;
  a.exact = k.exact;
  LOWBIT_CHECK(a.bytes <= max_bytes);
  return a;
}

Result<Allocation> allocate_dp_max_damage(const std::vector<AllocationItem>& items, double max_damage,
                                          const AllocatorOptions& options) {
  LOWBIT_RETURN_IF_ERROR(validate(items));
  Knapsack k;
  k.build(items, 0, false, options);
  // best[] is non-increasing in c: the first c that reaches the limit is the smallest size.
  if (!(k.best[size_t(k.cap)] <= max_damage))
    return error(ErrorCode::kInvalidArgument,
                 "no allocation reaches a predicted damage of {:g}: the least possible is {:g} (every item at its "
                 "least damaging candidate)",
                 max_damage, k.best[size_t(k.cap)]);
  uint64_t c = 0;
  while (k.best[size_t(c)] > max_damage) ++c;
  Allocation a = evaluate_allocation(items, k.reconstruct(c));
  a.unit_bytes = k.unit;
  a.exact = k.exact;
  return a;
}

Result<Allocation> allocate_greedy(const std::vector<AllocationItem>& items, uint64_t max_bytes) {
  LOWBIT_RETURN_IF_ERROR(validate(items));
  // Per item: the lower convex hull of (bytes, damage), from the smallest size (least damage
  // among equal sizes) towards strictly less damage.
  std::vector<std::vector<int>> hull(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& cands = items[i].candidates;
    std::vector<int> order(cands.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      if (cands[size_t(a)].bytes != cands[size_t(b)].bytes) return cands[size_t(a)].bytes < cands[size_t(b)].bytes;
      return cands[size_t(a)].damage < cands[size_t(b)].damage;
    });
    std::vector<int>& h = hull[i];
    for (int j : order) {
      const auto& p = cands[size_t(j)];
      if (!h.empty() && p.damage >= cands[size_t(h.back())].damage) continue;  // no damage saved
      // Drop the last vertex while it lies on or above the segment from the one before it to p.
      while (h.size() >= 2) {
        const auto& a = cands[size_t(h[h.size() - 2])];
        const auto& b = cands[size_t(h.back())];
        const double cross = (double(b.bytes) - double(a.bytes)) * (p.damage - a.damage) -
                             (b.damage - a.damage) * (double(p.bytes) - double(a.bytes));
        if (cross <= 0) h.pop_back();
        else break;
      }
      h.push_back(j);
    }
  }
  std::vector<size_t> at(items.size(), 0);  // position on each hull
  uint64_t bytes = 0;
  for (size_t i = 0; i < items.size(); ++i) bytes += items[i].candidates[size_t(hull[i][0])].bytes;
  if (bytes > max_bytes)
    return error(ErrorCode::kInvalidArgument,
                 "budget of {} is below the smallest allocation ({}: every item at its smallest candidate format)",
                 describe_bytes(max_bytes), describe_bytes(bytes));
  // Max-heap of (damage saved per byte, item); ties go to the lower item index.
  using Step = std::pair<double, size_t>;
  auto worse = [](const Step& a, const Step& b) { return a.first < b.first || (a.first == b.first && a.second > b.second); };
  std::priority_queue<Step, std::vector<Step>, decltype(worse)> steps(worse);
  auto push_next = [&](size_t i) {
    if (at[i] + 1 >= hull[i].size()) return;
    const auto& a = items[i].candidates[size_t(hull[i][at[i]])];
    const auto& b = items[i].candidates[size_t(hull[i][at[i] + 1])];
    steps.push({(a.damage - b.damage) / double(b.bytes - a.bytes), i});
  };
  for (size_t i = 0; i < items.size(); ++i) push_next(i);
  while (!steps.empty()) {
    const size_t i = steps.top().second;
    steps.pop();
    const uint64_t extra = items[i].candidates[size_t(hull[i][at[i] + 1])].bytes -
                           items[i].candidates[size_t(hull[i][at[i]])].bytes;
    if (bytes + extra > max_bytes) continue;  // this item's later steps need this one first
    bytes += extra;
    ++at[i];
    push_next(i);
  }
  std::vector<int> choice(items.size());
  for (size_t i = 0; i < items.size(); ++i) choice[i] = hull[i][at[i]];
  return evaluate_allocation(items, choice);
}

}  // namespace lowbit
