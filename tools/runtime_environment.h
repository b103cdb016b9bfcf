// Run-time settings that the OpenMP and OpenBLAS libraries read once, when they load (before
// main), so lowbit sets them by re-executing itself once when they are missing:
//  - OPENBLAS_CORETYPE: Debian 12's OpenBLAS 0.3.21 does not recognise some recent Xeons and
//    falls back to its "Prescott" (SSE3) kernels, sgemm ~4.5x slower than the AVX-512 ones
//    (docs/results.md). When OpenBLAS reports Prescott on a CPU with AVX-512 (AVX2), lowbit asks
//    for SkylakeX (Haswell).
//  - OMP_WAIT_POLICY=passive: libgomp's default spins waiting threads; on a shared 2-core machine
//    a spinning thread steals the core its partner needs (measured: 6 training steps took 26.9 s
//    with 2 spinning threads, 2.9 s passive, 3.1 s with one thread).
// A user's own setting always wins; LOWBIT_KEEP_ENV=1 disables all of this.
#pragma once

namespace lowbit::cli {

// Returns only when nothing needs changing, or when the re-exec failed (lowbit then runs with
// what it has).
void tune_runtime_environment(char** argv);

}  // namespace lowbit::cli
