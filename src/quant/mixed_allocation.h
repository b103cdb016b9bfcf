// Mixed-precision allocation: one format per item (a tensor, or a group of tensors quantized
// together) that minimises the total predicted damage under a byte budget, or the smallest size
// whose predicted damage stays under a limit. This is a multiple-choice knapsack:
//
//   minimise   Σ_i damage[i][c_i]     subject to   Σ_i bytes[i][c_i] <= max_bytes
//
// with exactly one choice c_i per item. Damage is assumed additive over items (each item's damage
// measured with every other item in floating point; lowbit sensitivity). quant/ sees no model:
// items are names with candidate (format, exact bytes, damage) triples.
//
// Exact solver (allocate_dp): dynamic programming over the *extra* bytes above every item's
// smallest candidate, counted in units of u = gcd of all extra sizes, so the table is exact:
//   best[c] = least damage of the items so far using at most c units of extra bytes.
// Work is items × (budget/u) × choices and the choice table (one byte per item and unit) is kept
// for reconstruction. When items × (budget/u + 1) would exceed options.max_cells, u is multiplied
// by the smallest integer k that fits, and every extra size is rounded UP to a multiple of k·u
// while the budget is rounded DOWN: any allocation the coarse table accepts fits the true budget
// (exactness of the budget is kept; optimality is then within the damage of at most one unit per
// item). Allocation::unit_bytes and Allocation::exact report which case ran.
//
// Greedy solver (allocate_greedy, for comparison): start every item at its smallest candidate,
// reduce each item's candidates to the lower convex hull of (bytes, damage), and repeatedly take
// the upgrade with the most damage saved per extra byte that still fits (Lagrangian relaxation:
// the result is optimal for the budget it uses whenever that lands on a hull vertex, and never
// exceeds the budget).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace lowbit {

struct AllocationCandidate {
  std::string format;  // format spec string (format.h), carried through untouched
  uint64_t bytes = 0;  // exact stored bytes of the item in this format
  double damage = 0;   // predicted damage (e.g. measured KL divergence), finite
};

struct AllocationItem {
  std::string name;
  std::vector<AllocationCandidate> candidates;  // 1..255 of them
};

struct Allocation {
  std::vector<int> choice;  // per item: index into its candidates
  uint64_t bytes = 0;       // exact total bytes of the chosen candidates
  double damage = 0;        // total predicted damage
  uint64_t unit_bytes = 0;  // DP granularity (0 for greedy)
  bool exact = false;       // true when the DP ran at the gcd unit (optimal)
};

struct AllocatorOptions {
  // Upper bound on DP table cells (items × budget units); the unit coarsens beyond it.
  uint64_t max_cells = uint64_t(1) << 26;
};

// Least total damage with total bytes <= max_bytes. kInvalidArgument when even the smallest
// candidate of every item exceeds the budget (the message gives both sizes), or on malformed
// items (none, an item with no or more than 255 candidates, non-finite damage).
Result<Allocation> allocate_dp(const std::vector<AllocationItem>& items, uint64_t max_bytes,
                               const AllocatorOptions& options = {});

// Smallest total bytes whose total damage <= max_damage (ties: least damage). kInvalidArgument
// when no allocation reaches max_damage (the message gives the least damage possible).
Result<Allocation> allocate_dp_max_damage(const std::vector<AllocationItem>& items, double max_damage,
                                          const AllocatorOptions& options = {});

// Greedy by damage saved per byte on each item's convex hull (see above); same errors as
// allocate_dp.
Result<Allocation> allocate_greedy(const std::vector<AllocationItem>& items, uint64_t max_bytes);

// Totals of a given choice vector (for tests and reports).
Allocation evaluate_allocation(const std::vector<AllocationItem>& items, const std::vector<int>& choice);

}  // namespace lowbit
