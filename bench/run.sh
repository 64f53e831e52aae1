#!/usr/bin/env bash
# Runs every benchmark of cio once, side by side with its peers, and prints
# one line per figure: "<name> <value> <unit>" (medians; "_min" lines hold
# the minimum over the repetitions; ratios have the unit "x"). Lines that
# start with '#' are comments: the machine, the versions, skipped peers and
# a summary against the goals.
#
#   bench/run.sh [build-dir]     (default: build-bench beside this folder)
#
# Everything printed is also written to a results file, CIO_BENCH_OUT or by
# default bench/results/micro-<machine>-<commit>.txt (the machine is
# CIO_BENCH_MACHINE, default the host name), from which bench/plot_micro.py
# draws the plots and tables of docs/benchmarks.md (scripts/bench.sh runs
# both). The header comments say when, at which commit, on what kernel,
# CPU and compiler, and against which versions of the peers.
#
# The build directory must hold the bench_* binaries (scripts/bench.sh
# configures and builds one). Each benchmark is pinned to one CPU with
# taskset (CIO_BENCH_CPU, default the last CPU; CIO_BENCH_CPU=none turns
# pinning off). CIO_BENCH_REPS, CIO_BENCH_SCALE and CIO_BENCH_QUICK pass
# through to the benchmarks (see bench/bench_util.h).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build-bench}
build=$(cd "$build" && pwd)
bin=$build/bench
for b in bench_switch bench_tasks bench_timers bench_io bench_memory bench_structured bench_spawn bench_files; do
  [ -x "$bin/$b" ] || { echo "run.sh: $bin/$b is missing; build first (scripts/bench.sh)" >&2; exit 1; }
done

pin=()
cpus=$(nproc 2>/dev/null || echo 1)
cpu=${CIO_BENCH_CPU:-$((cpus - 1))}
if [ "$cpu" != none ] && command -v taskset >/dev/null 2>&1; then
  pin=(taskset -c "$cpu")
fi

python=${CIO_BENCH_PYTHON:-}
if [ -z "$python" ]; then
  if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python=$(command -v python3 || true); fi
fi

commit=$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)
machine=${CIO_BENCH_MACHINE:-$(hostname -s 2>/dev/null || echo unknown)}
results=${CIO_BENCH_OUT:-$here/results/micro-$machine-$commit.txt}
mkdir -p "$(dirname "$results")"
out=$(mktemp)
tail=$(mktemp)
trap 'rm -f "$out" "$tail"' EXIT

# The first line of "<program> --version", or nothing.
version_of() {
  "$@" --version 2>/dev/null | head -n1 || true
}

{
  echo "# cio benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# commit $commit$(git -C "$here/.." diff --quiet HEAD -- src include bench 2>/dev/null || echo ' (src/include/bench modified)')"
  echo "# machine $machine"
  echo "# kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'), ${cpus} CPUs"
  cc=$(grep -m1 '^CMAKE_C_COMPILER:' "$build/CMakeCache.txt" 2>/dev/null | cut -d= -f2)
  cxx=$(grep -m1 '^CMAKE_CXX_COMPILER:' "$build/CMakeCache.txt" 2>/dev/null | cut -d= -f2)
  echo "# build $(grep -m1 '^CMAKE_BUILD_TYPE' "$build/CMakeCache.txt" 2>/dev/null | cut -d= -f2), $cc"
  [ -n "$cc" ] && echo "# compiler $(version_of "$cc")"
  [ -n "$cxx" ] && echo "# c++ compiler $(version_of "$cxx")"
  if [ ${#pin[@]} -gt 0 ]; then echo "# pinned: ${pin[*]}"; else echo "# not pinned"; fi
  # Other processes on the machine stretch wall-clock times: say how busy it was.
  echo "# load average at the start $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
  v=$(dpkg-query -W -f='${Version}' libboost-context-dev 2>/dev/null || true); [ -n "$v" ] && echo "# libboost-context-dev $v"
  v=$(dpkg-query -W -f='${Version}' libuv1-dev 2>/dev/null || true); [ -n "$v" ] && echo "# libuv1-dev $v"
  [ -n "$python" ] && echo "# python3 $("$python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)"
  v=$(dpkg-query -W -f='${Version}' python3-uvloop 2>/dev/null || true); [ -n "$v" ] && echo "# python3-uvloop $v"
  true
} | tee "$out"

run() {
  "${pin[@]}" "$@" | tee -a "$out"
}

run "$bin/bench_switch"
run "$bin/bench_tasks"
run "$bin/bench_timers"
run "$bin/bench_io"
run "$bin/bench_memory"
run "$bin/bench_structured"
run "$bin/bench_spawn"
# File reads run unpinned: the thread pool's workers (one of the two paths
# it compares) would otherwise share the loop's CPU, which no program does.
echo "# bench_files: not pinned (the pool path's workers use the other CPUs)" | tee -a "$out"
"$bin/bench_files" | tee -a "$out"
if [ -n "$python" ]; then
  run "$python" "$here/bench_asyncio.py"
  run "$python" "$here/bench_spawn_asyncio.py"
else
  echo "# skipped asyncio_*: no python3" | tee -a "$out"
fi

# Ratios across binaries, from the medians printed above, and the goals.
awk '
  NF == 3 && $1 !~ /^#/ { v[$1] = $2 }
  function ratio(name, a, b) {
    if ((a in v) && (b in v) && v[b] > 0) printf "%s %.3f x\n", name, v[a] / v[b]
  }
  function goal(text, name, limit, peer) {
    if (!(name in v)) return
    lim = limit
    if (peer != "") { if (!(peer in v)) return; lim = v[peer] }
    printf "# goal %s: %s (%s %s vs %s)\n", text, (v[name] <= lim ? "met" : "MISSED"), name, v[name], lim
  }
  END {
    ratio("spawn_await_ratio_asyncio_over_cio", "asyncio_spawn_await", "spawn_await")
    ratio("sleep0_ratio_asyncio_over_cio", "asyncio_sleep0_roundtrip", "sleep0_roundtrip")
    ratio("call_soon_ratio_asyncio_over_cio", "asyncio_call_soon_chain", "call_soon_chain")
    ratio("future_ratio_asyncio_over_cio", "asyncio_future_resolve_await", "future_resolve_await")
    ratio("future_suspend_ratio_asyncio_over_cio", "asyncio_future_await_suspend", "future_await_suspend")
    ratio("spawn_wait_ratio_asyncio_over_cio", "asyncio_spawn_wait", "spawn_wait_cio")
    ratio("spawn_await_ratio_uvloop_over_cio", "uvloop_spawn_await", "spawn_await")
    ratio("sleep0_ratio_uvloop_over_cio", "uvloop_sleep0_roundtrip", "sleep0_roundtrip")
    # asyncio polls on every iteration: the server-shaped runs of cio do too.
    ratio("spawn_await_server_ratio_asyncio_over_cio", "asyncio_spawn_await", "spawn_await_server")
    ratio("sleep0_server_ratio_asyncio_over_cio", "asyncio_sleep0_roundtrip", "sleep0_roundtrip_server")
    ratio("call_soon_server_ratio_asyncio_over_cio", "asyncio_call_soon_chain", "call_soon_chain_server")
    ratio("future_server_ratio_asyncio_over_cio", "asyncio_future_resolve_await", "future_resolve_await_server")
    ratio("future_suspend_server_ratio_asyncio_over_cio", "asyncio_future_await_suspend", "future_await_suspend_server")
    goal("switch no slower than Boost.Context fcontext", "switch_cio", 0, "switch_boost_fcontext")
    goal("switch with the same FPU control saves no slower than Boost.Context fcontext", "switch_cio_fpu_ctl", 0, "switch_boost_fcontext")
    goal("watchdog adds < 1 ns per switch", "switch_watchdog_overhead", 1, "")
    goal("spawn+await < 100 ns", "spawn_await", 100, "")
    goal("call_soon < 30 ns (chain)", "call_soon_chain", 30, "")
    goal("call_soon < 30 ns (batch)", "call_soon_batch", 30, "")
    goal("future create+resolve+await < 50 ns", "future_resolve_await", 50, "")
    goal("timer start+cancel no slower than libuv (1M live)", "timer_cio_start_cancel", 0, "timer_libuv_start_cancel")
    goal("timer start+cancel no slower than libuv (each)", "timer_cio_start_cancel_each", 0, "timer_libuv_start_cancel_each")
  }
' "$out" >"$tail"
echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" >>"$tail"
tee -a "$out" <"$tail"

cp "$out" "$results"
echo "# results file $results" >&2
