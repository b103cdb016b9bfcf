#!/usr/bin/env bash
# The whole test suite: set up and build (scripts/setup.sh), then run every test with CTest.
# Tests that need ../shared/models/stories260K skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
export LOWBIT_SHARED_DIR=${LOWBIT_SHARED_DIR:-$(pwd)/../shared}
ctest --test-dir "${LOWBIT_BUILD_DIR:-build}" --output-on-failure -j 2 "$@"

# The unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer (LOWBIT_SANITIZE=ON),
# built at -O1 in a second directory. The stories260K model tests are filtered out there: they
# only re-check numerics the run above checked, at many times the cost under ASan.
# LOWBIT_SKIP_SANITIZERS=1 skips this part.
if [ "${LOWBIT_SKIP_SANITIZERS:-0}" != 1 ]; then
  asan_dir=${LOWBIT_ASAN_BUILD_DIR:-build-asan}
  if [ ! -f "$asan_dir/build.ninja" ]; then
    cmake -S . -B "$asan_dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
          -DLOWBIT_SANITIZE=ON >&2
  fi
  cmake --build "$asan_dir" -j "$(nproc)" >&2
  echo "test: the unit tests under ASan+UBSan ($asan_dir; stories260K model tests excluded)"
  GTEST_FILTER='-*tories260*' ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$asan_dir" --output-on-failure -j 2 -E e2e_stories260k_test "$@"
fi
