#!/usr/bin/env bash
# Regenerates the stories260K trade-off report (docs/stories260K/report.md + tradeoff.svg):
# every RTN (and, when available, GPTQ) configuration of the reference figures, evaluated with
# the reference protocol and compared with ../shared/models/stories260K/reference.json.
# Usage: scripts/make_results.sh [extra `lowbit report` flags, e.g. --methods rtn,gptq]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
shared=${LOWBIT_SHARED_DIR:-../shared}
model_dir="$shared/models/stories260K"
if [ ! -f "$model_dir/stories260K.bin" ]; then
  echo "make_results: $model_dir not found; nothing to do" >&2
  exit 0
fi
./build/lowbit report "$model_dir/stories260K.bin" --tokens "$model_dir/eval_tokens.bin" \
  --reference-figures "$model_dir/reference.json" -o docs/stories260K "$@"
