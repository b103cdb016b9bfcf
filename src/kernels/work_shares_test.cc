// WorkShares: every unit is handed out exactly once, in batches that stay inside one share, each
// thread starting on its own share; with one share the first batch is all of it.
#include "kernels/work_shares.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <vector>

namespace lowbit::kernels {
namespace {

TEST(WorkShares, OneShareIsOneBatch) {
  const std::vector<size_t> starts = {0};
  WorkShares shares(starts, 37);
  size_t begin = 99, end = 99;
  ASSERT_TRUE(shares.next(0, &begin, &end));
  EXPECT_EQ(begin, 0u);
  EXPECT_EQ(end, 37u);
  EXPECT_FALSE(shares.next(0, &begin, &end));
}

TEST(WorkShares, OwnerTakesHalvesFromTheFrontAndOthersTheBackHalf) {
  const std::vector<size_t> starts = {0, 10};  // share 0: [0, 10), share 1: [10, 13)
  WorkShares shares(starts, 13);
  size_t begin = 0, end = 0;
  ASSERT_TRUE(shares.next(0, &begin, &end));
  EXPECT_EQ(begin, 0u);
  EXPECT_EQ(end, 5u);
  ASSERT_TRUE(shares.next(1, &begin, &end));
  EXPECT_EQ(begin, 10u);
  EXPECT_EQ(end, 12u);
  ASSERT_TRUE(shares.next(1, &begin, &end));
  EXPECT_EQ(begin, 12u);
  EXPECT_EQ(end, 13u);
  // Share 1 is done: thread 1 takes the back half of what is left of share 0, [5, 10).
  ASSERT_TRUE(shares.next(1, &begin, &end));
  EXPECT_EQ(begin, 7u);
  EXPECT_EQ(end, 10u);
  ASSERT_TRUE(shares.next(0, &begin, &end));
  EXPECT_EQ(begin, 5u);
  EXPECT_EQ(end, 6u);
  // A thread without a share of its own (index past the shares) only helps.
  ASSERT_TRUE(shares.next(5, &begin, &end));
  EXPECT_EQ(begin, 6u);
  EXPECT_EQ(end, 7u);
  EXPECT_FALSE(shares.next(0, &begin, &end));
  EXPECT_FALSE(shares.next(1, &begin, &end));
}

TEST(WorkShares, EmptySharesAndNoUnits) {
  const std::vector<size_t> starts = {0, 0, 0};
  WorkShares none(starts, 0);
  size_t begin = 0, end = 0;
  EXPECT_FALSE(none.next(1, &begin, &end));
  WorkShares last_only(starts, 4);  // shares 0 and 1 empty, share 2 all four units
  ASSERT_TRUE(last_only.next(0, &begin, &end));
  EXPECT_EQ(begin, 2u);
  EXPECT_EQ(end, 4u);
}

TEST(WorkShares, ConcurrentThreadsTakeEveryUnitExactlyOnce) {
  for (int threads : {2, 3, 4}) {
    for (size_t units : {size_t(1), size_t(7), size_t(64), size_t(1000)}) {
      std::vector<size_t> starts;
      for (int t = 0; t < threads; ++t) starts.push_back(units * size_t(t) / size_t(threads));
      WorkShares shares(starts, units);
      std::vector<int> taken(units, 0);
      int empty_batches = 0;
#pragma omp parallel num_threads(threads)
      {
        size_t begin = 0, end = 0;
        while (shares.next(size_t(omp_get_thread_num()), &begin, &end)) {
          if (begin >= end) {
#pragma omp atomic
            ++empty_batches;
          }
          for (size_t u = begin; u < end; ++u) {
#pragma omp atomic
            ++taken[u];
          }
        }
      }
      EXPECT_EQ(empty_batches, 0);
      for (size_t u = 0; u < units; ++u) ASSERT_EQ(taken[u], 1) << "unit " << u << " of " << units << ", " << threads;
    }
  }
}

}  // namespace
}  // namespace lowbit::kernels
