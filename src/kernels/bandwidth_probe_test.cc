// The bandwidth probe reads every word of the part of its buffer it times, with each thread
// count and either kind of thread pool (a pattern that skipped lines would overstate the roof).
#include "kernels/bandwidth_probe.h"

#include <gtest/gtest.h>

namespace lowbit::kernels {
namespace {

// Sum of the words both patterns read: per thread t, the first read_lines lines of its slice,
// where slice t starts at word t * lines * 8 and the buffer holds word i = i.
uint64_t expected_pass_sum(int64_t words, int64_t threads) {
  const int64_t lines = words / 8 / threads, read_lines = lines / 4 * 4;
  uint64_t sum = 0;
  for (int64_t t = 0; t < threads; ++t)
    for (int64_t i = t * lines * 8; i < (t * lines + read_lines) * 8; ++i) sum += uint64_t(i);
  return sum;
}

TEST(BandwidthProbe, ReadsEveryWordItTimes) {
  constexpr int64_t kBytes = 3 << 20;  // not a multiple of the per-thread 4-line groups
  const ProbeBuffer buffer(kBytes, 2);
  ASSERT_EQ(int64_t(buffer.words().size()), kBytes / 8);
  for (int threads : {1, 2, 3})
    for (ProbeThreads pool : {ProbeThreads::kStd, ProbeThreads::kOpenMp}) {
      const ReadBandwidth bw = measure_read_bandwidth(buffer, threads, pool);
      // 5 passes of each pattern, every pass over the same words.
      EXPECT_EQ(bw.checksum, 10 * expected_pass_sum(kBytes / 8, threads)) << threads << " threads";
      EXPECT_GT(bw.four_prefetched_streams_bytes_per_s, 0);
      EXPECT_GT(bw.one_stream_bytes_per_s, 0);
      EXPECT_EQ(bw.bytes_per_s, std::max(bw.four_prefetched_streams_bytes_per_s, bw.one_stream_bytes_per_s));
      EXPECT_EQ(bw.buffer_bytes, kBytes);
    }
}

}  // namespace
}  // namespace lowbit::kernels
