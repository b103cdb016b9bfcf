#!/usr/bin/env bash
# The whole test suite: set up and build (scripts/setup.sh), then run every test with CTest.
# Tests that need ../shared/models/stories260K skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
export LOWBIT_SHARED_DIR=${LOWBIT_SHARED_DIR:-$(pwd)/../shared}
ctest --test-dir "${LOWBIT_BUILD_DIR:-build}" --output-on-failure -j 2 "$@"
