#!/usr/bin/env bash
# The README's test command. On a fresh Debian 12 machine, as root, it
# installs what the tests need, then builds cio and runs the whole suite:
# Every I/O test runs twice, on epoll and on io_uring (<test>.uring), in the
# native configurations:
#   1. clang with AddressSanitizer + UndefinedBehaviorSanitizer
#   2. clang with ThreadSanitizer, the tests labelled "threads"
#   3. gcc under Valgrind memcheck
#   4. clang, plain
#   5. aarch64 (cross gcc), every test under qemu-user, epoll only (there is
#      no arm64 liburing among the cross packages, and qemu-user does not
#      pass io_uring through)
#   6. gcc, plain, with the examples and the benchmark smoke tests (among
#      them bench.echo: bench/echo/run.py --quick, a few seconds)
# Each run is a separate CTest invocation; the script stops at the first
# failing one, and the last line it prints is CTest's summary of run 6.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

packages=(cmake make gcc g++ clang libclang-rt-14-dev valgrind liburing-dev
          gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
          libboost-context-dev libuv1-dev python3 pkg-config binutils
          python3-uvloop gnuplot-nox linux-perf groff-base man-db gdb)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "== installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

configure_and_test() {
  local name=$1; shift
  local dir="$root/build-ci/$name"
  local ctest_args=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do ctest_args+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  echo "== $name: configure and build"
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; exit 1; }
  cmake --build "$dir" -j"$jobs" >"$dir.build.log" 2>&1 || { cat "$dir.build.log"; exit 1; }
  echo "== $name: test"
  (cd "$dir" && ctest -j"$jobs" --output-on-failure "${ctest_args[@]}")
}

mkdir -p "$root/build-ci"
configure_and_test asan -- -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCIO_SANITIZE=ON -DCIO_BUILD_BENCH=OFF
configure_and_test tsan -L threads -- -DCMAKE_C_COMPILER=clang -DCIO_TSAN=ON \
  -DCIO_BUILD_BENCH=OFF -DCIO_BUILD_EXAMPLES=OFF
configure_and_test valgrind -- -DCMAKE_C_COMPILER=gcc -DCIO_VALGRIND=ON \
  -DCIO_BUILD_BENCH=OFF -DCIO_BUILD_EXAMPLES=OFF
configure_and_test clang -- -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCIO_BUILD_BENCH=OFF
echo "== aarch64: built with CIO_URING=OFF (epoll only): no cross liburing, and qemu-user lacks io_uring"
configure_and_test aarch64 -- -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" \
  -DCIO_BUILD_EXAMPLES=OFF -DCIO_BUILD_BENCH=OFF -DCIO_URING=OFF
configure_and_test gcc -- -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++
