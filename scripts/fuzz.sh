#!/usr/bin/env bash
# Builds lowbit's libFuzzer targets (clang, coverage + ASan + UBSan, -DLOWBIT_FUZZ=ON) in
# build-fuzz, writes each target's seed corpus with lowbit's own writers (make_fuzz_seeds), and
# runs every target for the given time. Not part of ./test.sh: the test suite only replays the
# inputs kept in tests/fuzz_regressions/ (fuzz_regression_test).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default 600 s, every target
#   LOWBIT_FUZZ_JOBS=2 scripts/fuzz.sh 300               two targets at a time
#
# Targets: safetensors gguf llama2c hf_config tokenizer_json tokenizer_bin recipe token_file
# quantized_tensors (fuzz/fuzz_entry_points.h). The corpus grows across runs in
# build-fuzz/corpus/<target>/; a crash, leak, timeout or out-of-memory input lands in
# build-fuzz/artifacts/<target>/. After fixing the parser, copy that input to
# tests/fuzz_regressions/<target>/ so the normal test run replays it.
# Prints one summary line per target (executions, exec/s, corpus size, coverage) and exits
# non-zero when any target found a problem.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
[ $# -gt 0 ] && shift
all_targets=(safetensors gguf llama2c hf_config tokenizer_json tokenizer_bin recipe token_file quantized_tensors)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
jobs=${LOWBIT_FUZZ_JOBS:-1}
build_dir=${LOWBIT_FUZZ_DIR:-build-fuzz}

# clang with libFuzzer and the sanitizer runtimes, and clang's OpenMP, besides lowbit's own needs.
packages=(clang libclang-rt-14-dev libomp-14-dev cmake ninja-build pkg-config libopenblas-openmp-dev
          liblapacke-dev nlohmann-json3-dev libcli11-dev libfmt-dev libgtest-dev libgmock-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "fuzz: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q >&2
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
        -DCMAKE_CXX_COMPILER=clang++ -DLOWBIT_FUZZ=ON >&2
fi
cmake --build "$build_dir" -j 2 --target lowbit_fuzzers >&2
"$build_dir/fuzz/make_fuzz_seeds" "$build_dir/seeds" "${targets[@]}" >&2

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
  local t=$1
  local corpus="$build_dir/corpus/$t" artifacts="$build_dir/artifacts/$t" log="$build_dir/logs/$t.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  local dict=()
  [ -f "fuzz/dicts/$t.dict" ] && dict=("-dict=fuzz/dicts/$t.dict")
  local rc=0
  "$build_dir/fuzz/fuzz_$t" "$corpus" "$build_dir/seeds/$t" "${dict[@]}" -max_total_time="$seconds" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?
  local execs eps cov files bytes
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  files=$(find "$corpus" -type f | wc -l)
  bytes=$(du -sb "$corpus" | cut -f1)
  local result=ok
  [ "$rc" -eq 0 ] || result="FAILED (exit $rc; see $log and $artifacts/)"
  printf '%-18s %5ss  %10s execs  %6s exec/s  corpus %5s files %9s bytes  %-22s  %s\n' \
    "$t" "$seconds" "${execs:-?}" "${eps:-?}" "$files" "$bytes" "${cov:-}" "$result" >"$log.summary"
  cat "$log.summary"
  [ "$rc" -eq 0 ]
}

failed=0
pids=()
for t in "${targets[@]}"; do
  [ -x "$build_dir/fuzz/fuzz_$t" ] || { echo "fuzz: unknown target $t" >&2; exit 2; }
  run_one "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
exit $failed
