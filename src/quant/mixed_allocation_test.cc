#include "quant/mixed_allocation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace lowbit {
namespace {

// Random items shaped like a sensitivity table: more bytes, less damage (mostly), with sizes
// that share a common factor so the gcd unit is > 1, plus some noise candidates.
std::vector<AllocationItem> random_items(std::mt19937& rng, int n_items, int n_cands, uint64_t size_factor) {
  std::uniform_int_distribution<uint64_t> size(1, 60);
  std::uniform_real_distribution<double> damage(0.0, 1.0);
  std::vector<AllocationItem> items(static_cast<size_t>(n_items));
  for (int i = 0; i < n_items; ++i) {
    items[size_t(i)].name = "t" + std::to_string(i);
    for (int j = 0; j < n_cands; ++j)
      items[size_t(i)].candidates.push_back({"f" + std::to_string(j), size(rng) * size_factor, damage(rng)});
  }
  return items;
}

// Every combination: least damage within the budget, and smallest bytes within a damage limit.
struct Brute {
  double best_damage = std::numeric_limits<double>::infinity();
  uint64_t smallest_bytes = std::numeric_limits<uint64_t>::max();
};
Brute brute_force(const std::vector<AllocationItem>& items, uint64_t max_bytes, double max_damage) {
  Brute b;
  std::vector<int> choice(items.size(), 0);
  while (true) {
    const Allocation a = evaluate_allocation(items, choice);
    if (a.bytes <= max_bytes) b.best_damage = std::min(b.best_damage, a.damage);
    if (a.damage <= max_damage) b.smallest_bytes = std::min(b.smallest_bytes, a.bytes);
    size_t i = 0;
    while (i < items.size() && ++choice[i] == int(items[i].candidates.size())) choice[i++] = 0;
    if (i == items.size()) break;
  }
  return b;
}

uint64_t smallest_total(const std::vector<AllocationItem>& items) {
  uint64_t s = 0;
  for (const auto& item : items) {
    uint64_t m = UINT64_MAX;
    for (const auto& c : item.candidates) m = std::min(m, c.bytes);
    s += m;
  }
  return s;
}
uint64_t largest_total(const std::vector<AllocationItem>& items) {
  uint64_t s = 0;
  for (const auto& item : items) {
    uint64_t m = 0;
    for (const auto& c : item.candidates) m = std::max(m, c.bytes);
    s += m;
  }
  return s;
}

TEST(MixedAllocation, DpIsOptimalAgainstBruteForce) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int n_items = 1 + trial % 6, n_cands = 1 + (trial / 6) % 4;
    auto items = random_items(rng, n_items, n_cands, 1 + trial % 5);
    const uint64_t lo = smallest_total(items), hi = largest_total(items);
    const uint64_t budget = lo + std::uniform_int_distribution<uint64_t>(0, hi - lo)(rng);
    auto dp = allocate_dp(items, budget);
    ASSERT_TRUE(dp.ok()) << dp.status().message();
    const Brute b = brute_force(items, budget, 0);
    EXPECT_LE(dp->bytes, budget);
    EXPECT_TRUE(dp->exact);
    // Same candidates summed possibly in another order: allow the rounding of a few additions.
    EXPECT_NEAR(dp->damage, b.best_damage, 1e-12 * n_items) << "trial " << trial;
    const Allocation check = evaluate_allocation(items, dp->choice);
    EXPECT_EQ(check.bytes, dp->bytes);
    EXPECT_DOUBLE_EQ(check.damage, dp->damage);

    auto greedy = allocate_greedy(items, budget);
    ASSERT_TRUE(greedy.ok());
    EXPECT_LE(greedy->bytes, budget);
    EXPECT_GE(greedy->damage, b.best_damage - 1e-12 * n_items);
  }
}

TEST(MixedAllocation, MaxDamageGivesTheSmallestSizeAgainstBruteForce) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const int n_items = 1 + trial % 5, n_cands = 1 + (trial / 5) % 4;
    auto items = random_items(rng, n_items, n_cands, 1 + trial % 3);
    // A limit between the least and the largest achievable damage.
    const Brute all = brute_force(items, UINT64_MAX, 0);
    const double limit = all.best_damage + std::uniform_real_distribution<double>(0, 1.5)(rng);
    auto a = allocate_dp_max_damage(items, limit);
    ASSERT_TRUE(a.ok()) << a.status().message();
    const Brute b = brute_force(items, 0, limit);
    EXPECT_LE(a->damage, limit);
    EXPECT_EQ(a->bytes, b.smallest_bytes) << "trial " << trial;
  }
}

TEST(MixedAllocation, BudgetsAreRespectedExactlyAtEveryByte) {
  // Synthetic table shaped like stories260K: 35 tensors, formats of real-looking sizes.
  std::mt19937 rng(3);
  std::vector<AllocationItem> items;
  for (int t = 0; t < 35; ++t) {
    const uint64_t w = uint64_t(2048 * (1 + t % 6));
    AllocationItem item{"layer" + std::to_string(t), {}};
    item.candidates = {{"int2", w / 4 + 256, 1.0 + t % 3}, {"int3", 3 * w / 8 + 256, 0.3},
                       {"int4", w / 2 + 256, 0.05 * (1 + t % 4)}, {"int8", w + 256, 0.0005}};
    items.push_back(item);
  }
  const uint64_t lo = smallest_total(items), hi = largest_total(items);
  double previous = std::numeric_limits<double>::infinity();
  for (uint64_t budget = lo; budget <= hi + 1000; budget += (hi - lo) / 97 + 1) {
    auto dp = allocate_dp(items, budget);
    ASSERT_TRUE(dp.ok());
    EXPECT_LE(dp->bytes, budget);
    EXPECT_LE(dp->damage, previous + 1e-12);  // more bytes never hurt
    previous = dp->damage;
    auto greedy = allocate_greedy(items, budget);
    ASSERT_TRUE(greedy.ok());
    EXPECT_LE(greedy->bytes, budget);
    EXPECT_GE(greedy->damage, dp->damage - 1e-9);
  }
  // Exactly the largest size: everything at its least damaging candidate.
  auto top = allocate_dp(items, hi);
  ASSERT_TRUE(top.ok());
  for (size_t i = 0; i < items.size(); ++i) EXPECT_EQ(top->choice[i], 3);
}

TEST(MixedAllocation, CoarseUnitsStillRespectTheBudget) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 60; ++trial) {
    auto items = random_items(rng, 5, 4, 1);
    for (auto& item : items)
      for (auto& c : item.candidates) c.bytes = c.bytes * 1009 + uint64_t(rng() % 7);  // gcd 1, large
    const uint64_t lo = smallest_total(items), hi = largest_total(items);
    const uint64_t budget = lo + std::uniform_int_distribution<uint64_t>(0, hi - lo)(rng);
    AllocatorOptions tight;
    tight.max_cells = 5 * 40;  // forces a unit of thousands of bytes
    auto coarse = allocate_dp(items, budget, tight);
    ASSERT_TRUE(coarse.ok());
    EXPECT_FALSE(coarse->exact);
    EXPECT_GT(coarse->unit_bytes, 1u);
    EXPECT_LE(coarse->bytes, budget) << "trial " << trial;
    const Brute b = brute_force(items, budget, 0);
    EXPECT_GE(coarse->damage, b.best_damage - 1e-12);
    auto exact = allocate_dp(items, budget);
    ASSERT_TRUE(exact.ok());
    EXPECT_TRUE(exact->exact);
    EXPECT_NEAR(exact->damage, b.best_damage, 1e-11);
  }
}

TEST(MixedAllocation, InfeasibleBudgetsAndBadTablesGiveClearErrors) {
  std::vector<AllocationItem> items = {{"a", {{"int2", 100, 1.0}, {"int4", 200, 0.1}}},
                                       {"b", {{"int2", 50, 2.0}, {"int4", 90, 0.2}}}};
  auto r = allocate_dp(items, 149);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("150 bytes"), std::string::npos) << r.status().message();
  EXPECT_FALSE(allocate_greedy(items, 149).ok());
  auto exactly = allocate_dp(items, 150);
  ASSERT_TRUE(exactly.ok());
  EXPECT_EQ(exactly->bytes, 150u);

  auto m = allocate_dp_max_damage(items, 0.25);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("0.3"), std::string::npos) << m.status().message();
  // (a int2, b int4) = 190 bytes at 1.2 is the smallest within 1.25; (a int4, b int2) is 2.1.
  auto m2 = allocate_dp_max_damage(items, 1.25);
  ASSERT_TRUE(m2.ok());
  EXPECT_EQ(m2->bytes, 190u);
  EXPECT_EQ(m2->choice, (std::vector<int>{0, 1}));
}

}  // namespace
}  // namespace lowbit
