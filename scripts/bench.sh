#!/usr/bin/env bash
# The benchmark command: configures an optimised build in build-bench (or
# $CIO_BENCH_BUILD), builds the benchmarks and runs them all with
# bench/run.sh, which prints one "<name> <value> <unit>" line per figure and
# keeps them in a results file (bench/results/micro-<machine>-<commit>.txt;
# CIO_BENCH_MACHINE names the machine, default the host name). Then
# bench/plot_micro.py turns that file into the plots docs/img/micro-*.png
# and the tables of docs/benchmarks.md (CIO_BENCH_NO_DOCS=1 skips this step,
# for a run that should not touch the docs).
# Needs libboost-context-dev, libuv1-dev and python3 for the peers; a
# missing peer is skipped with a '#' line saying so. The echo benchmark's
# programs are built too; it runs apart, for minutes: bench/echo/run.py.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CIO_BENCH_BUILD:-$root/build-bench}
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCIO_BUILD_BENCH=ON >"$build/bench-configure.log" 2>&1 \
  || { cat "$build/bench-configure.log"; exit 1; }
cmake --build "$build" -j"$jobs" --target bench_switch bench_tasks bench_timers bench_io bench_memory bench_structured bench_spawn bench_files bench_echo \
  >"$build/bench-build.log" 2>&1 || { cat "$build/bench-build.log"; exit 1; }
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
machine=${CIO_BENCH_MACHINE:-$(hostname -s 2>/dev/null || echo unknown)}
results=${CIO_BENCH_OUT:-$root/bench/results/micro-$machine-$commit.txt}
CIO_BENCH_OUT=$results CIO_BENCH_MACHINE=$machine "$root/bench/run.sh" "$build"
if [ "${CIO_BENCH_NO_DOCS:-0}" = 0 ]; then
  python3 "$root/bench/plot_micro.py" "$results" --png-dir "$root/docs/img" --doc "$root/docs/benchmarks.md"
fi
