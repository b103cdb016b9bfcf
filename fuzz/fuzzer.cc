// libFuzzer main for one target: compiled once per target with LOWBIT_FUZZ_TARGET naming its
// entry point (fuzz/CMakeLists.txt), under LOWBIT_FUZZ=ON with clang (scripts/fuzz.sh).
#include "fuzz/fuzz_entry_points.h"

#ifndef LOWBIT_FUZZ_TARGET
#error "LOWBIT_FUZZ_TARGET must name an entry point of fuzz/fuzz_entry_points.h"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)lowbit::fuzz::LOWBIT_FUZZ_TARGET(lowbit::fuzz::Bytes(data, size));
  return 0;
}
