// Memory for weights the kernels stream once per token: allocations of 2 MiB or more are 2 MiB
// aligned and advised as transparent huge pages (madvise(MADV_HUGEPAGE)). With THP in "madvise"
// mode (this VM's setting and several distributions' default) packed weights otherwise sit in
// 4 KiB pages, and the hardware prefetcher stops at every page boundary: the same decode kernels
// on codes in 2 MiB pages were faster in 6 of 6 paired runs (int4 8-19%, int8 2-4%, int2 5-28%,
// docs/results.md). Smaller allocations come from operator new. Where the kernel refuses huge
// pages the memory is ordinary memory.
#pragma once

#include <cstddef>

namespace lowbit::kernels {

void* allocate_for_streaming(size_t bytes);
void free_for_streaming(void* p, size_t bytes);

template <class T>
struct StreamingAllocator {
  using value_type = T;
  StreamingAllocator() = default;
  template <class U>
  StreamingAllocator(const StreamingAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(allocate_for_streaming(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { free_for_streaming(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const StreamingAllocator<U>&) const {
    return true;
  }
};

}  // namespace lowbit::kernels
