#!/usr/bin/env bash
# Prepares the text of lowbit's own default model: the King James Bible as Debian's bible-kjv
# package ships it (public domain), tokenized with a BPE vocabulary lowbit trains itself.
#
#   scripts/prepare_kjv.sh [WORK_DIR]        (default WORK_DIR: build/kjv)
#
# Steps (deterministic: the same package version gives byte-identical outputs):
#  1. installs bible-kjv when missing (apt-get, as scripts/setup.sh does);
#  2. dumps every verse (`bible -f "gen1:1-rev22:21"`: 31,102 lines "Ge1:1 In the beginning..."),
#     strips the "Ge1:1 " references and makes each chapter one paragraph: its verses one per
#     line, chapters separated by a blank line (1,189 chapters);
#  3. splits by chapter: every 20th chapter (chapter index 19, 39, ... counting from 0 in Bible
#     order) is held out, the rest is training text;
#  4. trains the tokenizer on the training text only (lowbit tokenizer train, vocab $KJV_VOCAB);
#  5. tokenizes both splits (lowbit tokenize): each chapter is BOS + its tokens, no EOS;
#  6. cuts a calibration set from the training tokens: 64 windows of 256 tokens, evenly spaced
#     over the training stream, concatenated (so windows of 256 from the file start are exactly
#     those samples).
#
# Outputs:
#   models/kjv/tokenizer.bin          the vocabulary (committed; a few KB)
#   models/kjv/heldout_tokens.bin     held-out chapters (committed; about 250 KB)
#   models/kjv/calib_tokens.bin       64 x 256 training tokens for GPTQ calibration (64 KB)
#   WORK_DIR/{train,heldout}.txt      the text of each split
#   WORK_DIR/{train,heldout}_tokens.bin
#
# Environment: LOWBIT (default build/lowbit), KJV_VOCAB (default 1024), KJV_MODEL_DIR (default
# models/kjv), KJV_HELDOUT_EVERY (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."

work=${1:-build/kjv}
lowbit=${LOWBIT:-build/lowbit}
vocab=${KJV_VOCAB:-1024}
model_dir=${KJV_MODEL_DIR:-models/kjv}
every=${KJV_HELDOUT_EVERY:-20}
calib_windows=64
calib_length=256

if ! dpkg-query -W -f='${Status}' bible-kjv 2>/dev/null | grep -q "install ok installed"; then
  echo "prepare_kjv: installing bible-kjv" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q >&2
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends bible-kjv >&2
fi
if [ ! -x "$lowbit" ]; then
  echo "prepare_kjv: $lowbit not found; build it first (scripts/setup.sh) or set LOWBIT" >&2
  exit 1
fi
mkdir -p "$work" "$model_dir"

# 2-3. Verses -> chapters -> two splits. A verse line is "<book><chapter>:<verse> <text>", the
# book possibly starting with a digit ("1Sm7:3"); the chapter key is everything before ':'.
raw="$work/kjv_verses.txt"
bible -f "gen1:1-rev22:21" >"$raw.tmp"
mv "$raw.tmp" "$raw"
LC_ALL=C awk -v every="$every" -v train="$work/train.txt.tmp" -v heldout="$work/heldout.txt.tmp" '
  BEGIN { chapter = -1; verses = 0 }
  {
    if (!match($0, /^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ /)) { print "prepare_kjv: unexpected line " NR ": " $0 > "/dev/stderr"; exit 1 }
    key = substr($0, 1, index($0, ":") - 1)
    text = substr($0, RLENGTH + 1)
    if (key != last) {
      chapter++
      out = (chapter % every == every - 1) ? heldout : train
      if (out in started) printf "\n\n" > out
      else started[out] = 1
      last = key
    } else {
      printf "\n" > out
    }
    printf "%s", text > out
    verses++
  }
  END {
    for (f in started) printf "\n" > f
    printf "prepare_kjv: %d verses in %d chapters; every %dth chapter held out\n", verses, chapter + 1, every > "/dev/stderr"
  }' "$raw"
mv "$work/train.txt.tmp" "$work/train.txt"
mv "$work/heldout.txt.tmp" "$work/heldout.txt"

# 4-5. Tokenizer from the training split only; both splits tokenized with it.
"$lowbit" tokenizer train --text "$work/train.txt" --vocab "$vocab" -o "$model_dir/tokenizer.bin"
"$lowbit" tokenize --tokenizer "$model_dir/tokenizer.bin" --text "$work/train.txt" -o "$work/train_tokens.bin"
"$lowbit" tokenize --tokenizer "$model_dir/tokenizer.bin" --text "$work/heldout.txt" -o "$work/heldout_tokens.bin"
cp "$work/heldout_tokens.bin" "$model_dir/heldout_tokens.bin.tmp"
mv "$model_dir/heldout_tokens.bin.tmp" "$model_dir/heldout_tokens.bin"

# 6. Calibration windows: block k of the output is training window k * stride (1 KB = 256 int32).
train_tokens=$(( $(stat -c %s "$work/train_tokens.bin") / 4 ))
stride=$(( train_tokens / calib_length / calib_windows ))
if [ "$stride" -lt 1 ]; then
  echo "prepare_kjv: $train_tokens training tokens are too few for $calib_windows x $calib_length" >&2
  exit 1
fi
calib="$model_dir/calib_tokens.bin"
: >"$calib.tmp"
for ((k = 0; k < calib_windows; k++)); do
  dd if="$work/train_tokens.bin" bs=$((calib_length * 4)) skip=$((k * stride)) count=1 status=none >>"$calib.tmp"
done
mv "$calib.tmp" "$calib"

heldout_bytes=$(stat -c %s "$model_dir/heldout_tokens.bin")
echo "prepare_kjv: train $train_tokens tokens ($(stat -c %s "$work/train.txt") text bytes)," \
     "held-out $((heldout_bytes / 4)) tokens ($(stat -c %s "$work/heldout.txt") text bytes)," \
     "calibration ${calib_windows}x${calib_length} tokens (every ${stride}th window of the training stream)"
echo "prepare_kjv: wrote $model_dir/{tokenizer.bin,heldout_tokens.bin,calib_tokens.bin} and $work/"
