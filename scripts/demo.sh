#!/usr/bin/env bash
# The README's first command: builds cio and runs its main demo, the C twins
# of the seed's asyncio programs followed by network demos on streams (echo,
# an HTTP/1.1 hello server, concurrent fetches with timeouts) and more.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

missing=()
# liburing-dev: the io_uring backend (without it cio builds with epoll only).
for p in cmake make gcc liburing-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "== building cio"
cmake -S "$root" -B "$root/build-demo" -DCMAKE_BUILD_TYPE=Release \
  -DCIO_BUILD_TESTS=OFF -DCIO_BUILD_BENCH=OFF >"$root/build-demo.log" 2>&1 \
  || { cat "$root/build-demo.log"; exit 1; }
cmake --build "$root/build-demo" -j"$(nproc 2>/dev/null || echo 2)" >>"$root/build-demo.log" 2>&1 \
  || { cat "$root/build-demo.log"; exit 1; }

CIO_EXAMPLES_DIR="$root/build-demo/examples" bash "$root/scripts/tour.sh"
