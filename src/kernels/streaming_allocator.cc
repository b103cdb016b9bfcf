#include "kernels/streaming_allocator.h"

#include <sys/mman.h>

#include <cstdlib>
#include <new>

namespace lowbit::kernels {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
}

void* allocate_for_streaming(size_t bytes) {
  if (bytes < kHugePage) return ::operator new(bytes);
  const size_t size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, size);
  if (p == nullptr) throw std::bad_alloc();
  // Advice only: an error (no THP support) leaves ordinary pages, which work the same.
  (void)madvise(p, size, MADV_HUGEPAGE);
  return p;
}

void free_for_streaming(void* p, size_t bytes) {
  if (bytes < kHugePage) {
    ::operator delete(p);
  } else {
    std::free(p);
  }
}

}  // namespace lowbit::kernels
