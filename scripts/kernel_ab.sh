#!/usr/bin/env bash
# Paired A/B of kernel variants on the layers-only decode benchmark (bench/decode_layers_bench.cc):
#
#   scripts/kernel_ab.sh KERNEL SOURCE FILL "FLAGS 0" "FLAGS 1" ... -- FORMAT [decode_layers_bench options]
#   e.g. scripts/kernel_ab.sh src/kernels/avx512/avx512_vnni_qd8.cc /tmp/vnni.cc fill_avx512_vnni_kernels \
#          "-DAHEAD=0" "-DAHEAD=16384" -- int2g128 --rounds 20
#
# KERNEL is a kernel file of the tree, SOURCE the variant source (typically a copy of KERNEL with
# #if blocks), FILL the kernel_table.h function it defines, which must be its only external
# symbol. Each FLAGS string builds one variant of SOURCE (variant 0 is the baseline) with the
# command CMake uses for KERNEL (so with its ISA flags). The program swaps the variants' tables
# within each round, in a rotating order, and prints each variant's median share of the probed
# bandwidth and its median paired ratio to variant 0: on this project's shared VMs the bandwidth
# drifts more between runs than most kernel changes move it (docs/results.md, session 17). Needs a
# configured build/ (./test.sh or scripts/setup.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 5 ] || usage
kernel=$(realpath "$1") source=$(realpath "$2") fill=$3
shift 3
variants=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do variants+=("$1"); shift; done
if [ $# -lt 2 ] || [ ${#variants[@]} -lt 1 ]; then usage; fi
shift
for f in "$kernel" "$source"; do [ -f "$f" ] || { echo "kernel_ab.sh: $f: no such file" >&2; exit 2; }; done
[ -f "$build/build.ninja" ] || { echo "kernel_ab.sh: $build is not configured (run ./test.sh first)" >&2; exit 2; }
ninja -C "$build" decode_layers_bench >/dev/null
commands=$(ninja -C "$build" -t commands decode_layers_bench)
compile=$(grep -m1 -F -- "-c $kernel" <<<"$commands") ||
  { echo "kernel_ab.sh: $kernel is not compiled into decode_layers_bench" >&2; exit 2; }
link=$(grep -- "-o bench/decode_layers_bench " <<<"$commands" | tail -1 | sed -E 's/^: && //; s/ && :$//')
out=$build/kernel_ab
mkdir -p "$out"
objects=() builds=()
shim="$out/variants.cc"
{
  echo '#include "kernels/kernel_table.h"'
  echo 'namespace lowbit::kernels {'
  for i in "${!variants[@]}"; do echo "void lowbit_kernel_variant_$i(KernelTable&);"; done
  echo '}'
  echo "extern \"C\" int lowbit_kernel_variants() { return ${#variants[@]}; }"
  echo 'extern "C" void lowbit_fill_kernel_variant(int i, lowbit::kernels::KernelTable& t) {'
  echo '  static void (*const fills[])(lowbit::kernels::KernelTable&) = {'
  for i in "${!variants[@]}"; do echo "    lowbit::kernels::lowbit_kernel_variant_$i,"; done
  echo '  };'
  echo '  fills[i](t);'
  echo '}'
} >"$shim"
base=$(sed -E 's/ -MD -MT [^ ]+ -MF [^ ]+//; s/ -o [^ ]+ -c [^ ]+$//' <<<"$compile")
for i in "${!variants[@]}"; do
  # shellcheck disable=SC2086  # the flags are words on purpose
  (cd "$build" && $base ${variants[$i]} "-D$fill=lowbit_kernel_variant_$i" -o "$out/variant_$i.o" -c "$source") &
  builds+=($!)
  objects+=("$out/variant_$i.o")
done
for b in "${builds[@]}"; do wait "$b"; done  # set -e: a variant that does not compile stops here
(cd "$build" && $base -o "$out/variants.o" -c "$shim")
# The tree's link line with the variants' objects after the program's own and another output.
program=$out/decode_layers_bench
link=$(sed -E "s| -o bench/decode_layers_bench | ${objects[*]} $out/variants.o -o $program |" <<<"$link")
(cd "$build" && $link)
exec "$program" "$@"
