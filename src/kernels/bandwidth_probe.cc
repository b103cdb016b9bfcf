#include "kernels/bandwidth_probe.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "kernels/streaming_allocator.h"

namespace lowbit::kernels {

namespace {

constexpr int64_t kLine = 8;  // uint64 per 64-byte line

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

uint64_t sum_four_prefetched_streams(const uint64_t* slice, int64_t lines) {
  constexpr int64_t kStreams = 4;
  const int64_t per_stream = lines / kStreams;
  uint64_t sum = 0;
  for (int64_t i = 0; i < per_stream; ++i)
    for (int64_t s = 0; s < kStreams; ++s) {
      const uint64_t* p = slice + (s * per_stream + i) * kLine;
      __builtin_prefetch(p + 512);  // 4 KiB ahead
      sum += p[0] + p[1] + p[2] + p[3] + p[4] + p[5] + p[6] + p[7];
    }
  return sum;
}

uint64_t sum_one_stream(const uint64_t* slice, int64_t lines) {
  uint64_t sum = 0;
  for (int64_t i = 0; i < lines * kLine; ++i) sum += slice[i];
  return sum;
}

}  // namespace

ProbeBuffer::ProbeBuffer(int64_t bytes, int threads) {
  const int64_t n = bytes / 8, parts = std::max(1, threads);
  words_.resize(static_cast<size_t>(n));
  // First touch by the thread that reads the slice (pages land near it).
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < parts; ++t)
    pool.emplace_back([&, t] {
      for (int64_t i = t * n / parts; i < (t + 1) * n / parts; ++i) words_[size_t(i)] = uint64_t(i);
    });
  for (std::thread& th : pool) th.join();
}

ReadBandwidth measure_read_bandwidth(const ProbeBuffer& buffer, int threads_wanted, ProbeThreads pool_kind) {
  const int64_t threads = std::max(1, threads_wanted), n = int64_t(buffer.words().size()), lines = n / kLine / threads;
  const int64_t read_lines = lines / 4 * 4;  // what both patterns read
  const uint64_t* data = buffer.words().data();
  const auto in_threads = [&](const std::function<uint64_t(int64_t)>& fn) {
    std::vector<uint64_t> sums(static_cast<size_t>(threads));
    if (pool_kind == ProbeThreads::kOpenMp) {
#pragma omp parallel for num_threads(int(threads)) schedule(static, 1)
      for (int64_t t = 0; t < threads; ++t) sums[size_t(t)] = fn(t);
    } else {
      std::vector<std::thread> pool;
      for (int64_t t = 0; t < threads; ++t) pool.emplace_back([&, t] { sums[size_t(t)] = fn(t); });
      for (std::thread& th : pool) th.join();
    }
    uint64_t total = 0;
    for (uint64_t v : sums) total += v;
    return total;
  };
  ReadBandwidth r;
  r.buffer_bytes = n * 8;
  for (int pass = 0; pass < 10; ++pass) {
    const bool plain = pass % 2 == 1;
    const double t0 = now();
    r.checksum += in_threads([&](int64_t t) {
      const uint64_t* slice = data + t * lines * kLine;
      return plain ? sum_one_stream(slice, read_lines) : sum_four_prefetched_streams(slice, read_lines);
    });
    double& best = plain ? r.one_stream_bytes_per_s : r.four_prefetched_streams_bytes_per_s;
    best = std::max(best, double(read_lines * threads * kLine * 8) / (now() - t0));
  }
  r.bytes_per_s = std::max(r.four_prefetched_streams_bytes_per_s, r.one_stream_bytes_per_s);
  return r;
}

}  // namespace lowbit::kernels
