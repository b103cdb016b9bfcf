#!/usr/bin/env bash
# The main job: set up and build (scripts/setup.sh), then run `lowbit demo` on the default input
# (../shared/models/stories260K when present, else a small model lowbit writes itself).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec ./build/lowbit demo "$@"
