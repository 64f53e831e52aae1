#!/usr/bin/env bash
# A tour of cio: runs the C twins of the seed's asyncio programs
# (examples/*.c), one per section of the seed, in the seed's order, each
# under a header line. Stops at the first program that fails.
#
# The programs are looked up in $CIO_EXAMPLES_DIR if set (scripts/demo.sh
# sets it), else in the first of build-demo/, build-ex/, build/ that has
# them. To build them:
#   cmake -S . -B build-ex && cmake --build build-ex
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

dir=${CIO_EXAMPLES_DIR:-}
if [ -z "$dir" ]; then
  for d in build-demo build-ex build; do
    if [ -x "$root/$d/examples/coroutine" ]; then dir="$root/$d/examples"; break; fi
  done
fi
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  echo "tour: the examples are not built; run: cmake -S . -B build-ex && cmake --build build-ex" >&2
  exit 1
fi

# run <program> <what it shows> [args...]
run() {
  local name=$1 title=$2
  shift 2
  echo
  echo "== $name: $title =="
  if [ ! -x "$dir/$name" ]; then
    echo "tour: $dir/$name is missing" >&2
    exit 1
  fi
  if ! "$dir/$name" "$@"; then
    echo "tour: $name failed" >&2
    exit 1
  fi
}

echo "A tour of cio, asyncio for C: each program is the C twin of one section"
echo "of the seed's introduction to asyncio. Times are seconds since each part began."

run coroutine        "defining a coroutine and running it with run_until_complete"
run run_loop_by_hand "starting the loop by hand: run_forever, stopped by a done callback"
run done_callback    "a done callback on the future of an I/O read"
run gather           "several coroutines at once with gather"
run run_forever      "run_until_complete vs run_forever: stopping too early, and stopping from a gather's callback"
run close_loop       "closing the loop, and using it after close"
run gather_vs_wait   "gather versus wait"
run timer            "timers from sleep and from call_later"

# Beyond the seed: real sockets, and structured concurrency.
run echo             "an echo server and three clients on streams (start_server, open_connection)"
run echo_sock        "the same echo exchange one level down, on sockets (sock_accept, sock_recv)"
run http_hello       "an HTTP/1.1 server answering hello with keep-alive, tried by its own client"
run fetch_many       "fetching from five servers at once, each request under its own timeout"
run fanout           "1,000 tasks in a task group under one timeout scope"
run pipeline         "a producer and three consumers on a bounded queue, shut down gracefully"
run udp_echo         "a UDP echo server and client with datagram endpoints"
run to_thread        "blocking calls on the thread pool while the loop runs; DNS; a foreign thread"
run subprocess_ls    "a child process: 'ls -l', its output read from a pipe line by line"
run subprocess_cat   "10 MiB through 'cat' with communicate, no deadlock"
run ctrl_c_server    "a server that stops cleanly on Ctrl-C (it sends itself SIGINT)" --self-interrupt


echo
echo "== tour done: every program ran and checked its own results =="
