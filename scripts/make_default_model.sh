#!/usr/bin/env bash
# Rebuilds lowbit's own default model, models/kjv/kjv.bin: a 1.1 M-parameter Llama trained from
# scratch by `lowbit train` on the King James Bible (Debian's bible-kjv package, public domain).
#
#   scripts/make_default_model.sh            (about 50 min on the 2-core development machine)
#
# 1. scripts/prepare_kjv.sh: text, the 1024-token BPE vocabulary, train / held-out token files;
# 2. lowbit train with the exact settings of the committed model (below);
# 3. lowbit eval on the held-out chapters.
# The result matches the committed model up to floating-point summation order (threads).
set -euo pipefail
cd "$(dirname "$0")/.."
lowbit=${LOWBIT:-build/lowbit}
work=${1:-build/kjv}

scripts/prepare_kjv.sh "$work"
"$lowbit" train --tokens "$work/train_tokens.bin" --eval-tokens models/kjv/heldout_tokens.bin \
  --tokenizer models/kjv/tokenizer.bin --dim 128 --layers 5 --heads 8 --kv-heads 4 --hidden 384 \
  --seq 256 --batch 8 --steps 900 --lr 2e-3 --eval-every 150 --threads 2 \
  -o models/kjv/kjv.bin --force
"$lowbit" eval models/kjv/kjv.bin --tokens models/kjv/heldout_tokens.bin --window 256
