#!/usr/bin/env bash
# Instructions, not time: what a benchmark of bench_tasks executes in two
# builds, counted by callgrind (deterministic, so it can be read on a busy
# machine where timings cannot). Prints each build's total and the ratio.
#   bench/compare_instructions.sh <build-a> <build-b> <benchmark> [scale]
# e.g. bench/compare_instructions.sh /tmp/rel-c511236 build-release spawn_await 0.2
# Both builds must have bench_tasks (Release, CIO_BUILD_BENCH=ON); the
# scale (CIO_BENCH_SCALE, default 0.1) keeps the run short under valgrind.
set -euo pipefail
a=$1 b=$2 name=$3 scale=${4:-0.1}
count() {
  CIO_BENCH_REPS=1 CIO_BENCH_SCALE=$scale valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$1/bench/bench_tasks" "$name" 2>&1 >/dev/null | awk '/Collected :/ {print $NF}'
}
ia=$(count "$a")
ib=$(count "$b")
echo "instructions_${name}_a $ia Ir"
echo "instructions_${name}_b $ib Ir"
awk -v a="$ia" -v b="$ib" -v n="$name" 'BEGIN {printf "instructions_%s_ratio %.3f x\n", n, b / a}'
