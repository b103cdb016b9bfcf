// Run-time settings that the OpenMP and OpenBLAS libraries read once, when they load (before
// main), so lowbit sets them by re-executing itself once when they are missing:
//  - OPENBLAS_CORETYPE: Debian 12's OpenBLAS 0.3.21 does not recognise some recent Xeons and
//    falls back to its "Prescott" (SSE3) kernels, sgemm ~4.5x slower than the AVX-512 ones
//    (docs/results.md). When OpenBLAS reports Prescott on a CPU with AVX-512 (AVX2), lowbit asks
//    for SkylakeX (Haswell).
//  - OMP_WAIT_POLICY=passive: libgomp's default spins waiting threads; on a shared 2-core machine
//    a spinning thread steals the core its partner needs (measured: 6 training steps took 26.9 s
//    with 2 spinning threads, 2.9 s passive, 3.1 s with one thread).
//  - GOMP_SPINCOUNT=2000 for `bench` and `run` only: decode is a chain of short parallel regions
//    (4 per layer) with little serial work between them, and a sleeping thread's wake-up costs a
//    large share of a small product. libgomp honours an explicit spin count even when passive, so
//    the threads spin briefly between products and still sleep through long serial stretches. On
//    the AMD EPYC (Zen 4) VM, W4A8 decode: passive 30.3 / 34.1 tok/s, 2000 spins 37.3 / 37.0; with
//    two compile jobs on the same 2 cores: passive 22.5 / 12.8, 2000 spins 16.4 / 18.5, 20000 spins
//    9.6 / 6.2 (a spinning thread holds a core the other process needs; docs/results.md, session
//    8). Training and quantization keep sleeping at once (their OpenBLAS calls need the cores).
// A user's own setting always wins; LOWBIT_KEEP_ENV=1 disables all of this.
#pragma once

namespace lowbit::cli {

// Returns only when nothing needs changing, or when the re-exec failed (lowbit then runs with
// what it has).
void tune_runtime_environment(char** argv);

}  // namespace lowbit::cli
