// The machine's read bandwidth: the roof that memory-bound decode kernels are measured against
// (lowbit bench, bench/decode_layers_bench).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/streaming_allocator.h"

namespace lowbit::kernels {

struct ReadBandwidth {
  double bytes_per_s = 0;                        // the better of the two patterns below
  double four_prefetched_streams_bytes_per_s = 0;
  double one_stream_bytes_per_s = 0;
  int64_t buffer_bytes = 0;
  uint64_t checksum = 0;  // of the sums, so the reads cannot be optimized away
};

// Best of 5 threaded streaming sums per read pattern, alternating, over a ProbeBuffer (below; make
// it well beyond the last-level cache), in huge pages like the packed weights
// (streaming_allocator.h). The patterns, because which one streams fastest depends on the
// machine (a roof understated is a kernel overstated):
//  - each thread's slice read as 4 interleaved sequential streams, every line prefetched 4 KiB
//    ahead, like the kernels' row streams: on the Emerald Rapids VM of sessions 1-7 one plain
//    stream per core reached only ~60% of this;
//  - one plain sequential stream per thread, left to the hardware prefetcher (vectorized by the
//    compiler): on the AMD EPYC (Zen 4) VM of session 8 this read 53-63 GB/s with 2 threads, the
//    4 prefetched streams 25-28.
//
// Threads: kStd (std::thread) also runs in a process forked from one whose OpenMP threads are
// running (libgomp's pool does not survive fork; lowbit bench); a process with OpenMP threads of
// its own should release them first (omp_pause_resource_all), or, spinning, they would share the
// cores with the probe. kOpenMp reads with the process's own OpenMP threads, which stay where they
// are (bench/decode_layers_bench, as the harness of session 8 did).
enum class ProbeThreads { kStd, kOpenMp };

// The probe's buffer, kept across measurements (there is no one-shot form on purpose): allocated
// and first touched once (by `threads` std::threads, one slice each). Allocating, touching and
// freeing a fresh 1 GiB buffer right before a decode made that decode's products 35% slower on
// the Zen 4 VM (session 9, bench/decode_layers_bench: 15.4-16.3 GB/s against 23.1-25.7 with a
// kept buffer), for longer than the decode of a few tokens; the guest kernel's work on the freed
// pages is the likely cause.
class ProbeBuffer {
 public:
  ProbeBuffer(int64_t bytes, int threads);
  const std::vector<uint64_t, StreamingAllocator<uint64_t>>& words() const { return words_; }

 private:
  std::vector<uint64_t, StreamingAllocator<uint64_t>> words_;
};
ReadBandwidth measure_read_bandwidth(const ProbeBuffer& buffer, int threads, ProbeThreads pool = ProbeThreads::kStd);

}  // namespace lowbit::kernels
