#!/usr/bin/env bash
# The benchmark command: configures an optimised build in build-bench (or
# $CIO_BENCH_BUILD), builds the benchmarks and runs them all with
# bench/run.sh, which prints one "<name> <value> <unit>" line per figure.
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
cmake --build "$build" -j"$jobs" --target bench_switch bench_tasks bench_timers bench_io bench_memory bench_structured bench_echo \
  >"$build/bench-build.log" 2>&1 || { cat "$build/bench-build.log"; exit 1; }
exec "$root/bench/run.sh" "$build"
