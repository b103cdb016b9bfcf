#!/usr/bin/env bash
# The main job: set up and build (scripts/setup.sh), then run `lowbit demo`: every quantization
# method (RTN, GPTQ, dynamic W8A8, mixed precision under a bits budget, QAT) on lowbit's own
# trained model (models/kjv, committed), each reloaded from disk and evaluated against FP32, ending
# with the trade-off table and demo-out/tradeoff.svg. `./run.sh --stories` runs it on
# ../shared/models/stories260K instead; `./run.sh --help` lists the options.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec ./build/lowbit demo "$@"
