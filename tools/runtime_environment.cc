#include "runtime_environment.h"

#include <strings.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

// From OpenBLAS (cblas.h of the OpenBLAS build); weak so that another BLAS still links.
extern "C" char* openblas_get_corename(void) __attribute__((weak));

namespace lowbit::cli {

namespace {

// Spins a waiting OpenMP thread makes before it sleeps, for the decoding commands (see the header).
constexpr const char* kDecodeSpinCount = "2000";

// The OpenBLAS core to ask for, or null when its own choice is fine.
const char* better_openblas_core() {
  if (openblas_get_corename == nullptr || std::getenv("OPENBLAS_CORETYPE") != nullptr) return nullptr;
  const char* core = openblas_get_corename();
  if (core == nullptr || strcasecmp(core, "prescott") != 0) return nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
  if (__builtin_cpu_supports("avx2")) return "Haswell";
  return nullptr;  // Prescott is the right choice on this CPU
}

}  // namespace

void tune_runtime_environment(char** argv) {
  if (std::getenv("LOWBIT_KEEP_ENV") != nullptr) return;
  bool changed = false;
  if (const char* core = better_openblas_core()) {
    setenv("OPENBLAS_CORETYPE", core, 1);
    changed = true;
  }
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    changed = true;
  }
  if (std::getenv("GOMP_SPINCOUNT") == nullptr && argv[0] != nullptr && argv[1] != nullptr &&
      (std::strcmp(argv[1], "bench") == 0 || std::strcmp(argv[1], "run") == 0)) {
    setenv("GOMP_SPINCOUNT", kDecodeSpinCount, 1);
    changed = true;
  }
  if (!changed) return;
  setenv("LOWBIT_KEEP_ENV", "1", 1);  // never loop, whatever the child's libraries report
  execv("/proc/self/exe", argv);
  // execv failed (no /proc): carry on as we are.
}

}  // namespace lowbit::cli
