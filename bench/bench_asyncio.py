"""Python asyncio equivalents of bench_tasks.c, for scale.

Run with Debian's /usr/bin/python3 (CPython 3.11 on Debian 12, with the C
_asyncio accelerator). Prints the same kind of lines as the C benchmarks,
each name prefixed asyncio_ (and uvloop_ when python3-uvloop is installed):

  <prefix>spawn_await          create_task of a coroutine that returns, awaited
  <prefix>call_soon_chain      each callback schedules the next, ns per callback
  <prefix>future_resolve_await create_future, set_result, await (done already)
  <prefix>future_await_suspend two tasks pass the turn through futures
  <prefix>sleep0_roundtrip     two tasks each loop on asyncio.sleep(0), ns per round

Environment: CIO_BENCH_QUICK=1 (tiny counts), CIO_BENCH_REPS, CIO_BENCH_SCALE,
as for the C benchmarks.
"""

import asyncio
import os
import platform
import statistics
import sys
import time

QUICK = os.environ.get("CIO_BENCH_QUICK", "0") not in ("", "0")


def reps():
    if QUICK:
        return 2
    try:
        n = int(os.environ.get("CIO_BENCH_REPS", "7"))
    except ValueError:
        n = 7
    return max(1, min(101, n))


def iters(full, quick):
    if QUICK:
        return quick
    try:
        scale = float(os.environ.get("CIO_BENCH_SCALE", "1"))
    except ValueError:
        scale = 1.0
    if not scale > 0:
        scale = 1.0
    return max(1, int(full * scale))


def fmt(v):
    return "%.0f" % v if v >= 100 else "%.1f" % v if v >= 10 else "%.2f" % v


def line(name, value, unit):
    print("%s %s %s" % (name, fmt(value), unit), flush=True)


def warm(n):
    return n // 10 + 1


now = time.perf_counter_ns


# ---- spawn + await ----------------------------------------------------------

async def child(i):
    return i


async def spawn_await(n):
    loop = asyncio.get_running_loop()
    for i in range(warm(n)):
        await loop.create_task(child(i))
    t0 = now()
    for i in range(n):
        if await loop.create_task(child(i)) != i:
            raise SystemExit("spawn_await: wrong result")
    return (now() - t0) / n


# ---- call_soon ----------------------------------------------------------------

def call_soon_chain(new_loop, n):
    loop = new_loop()
    try:
        left = [0]

        def step():
            left[0] -= 1
            if left[0] > 0:
                loop.call_soon(step)
            else:
                loop.stop()

        left[0] = warm(n)
        loop.call_soon(step)
        loop.run_forever()
        left[0] = n
        t0 = now()
        loop.call_soon(step)
        loop.run_forever()
        return (now() - t0) / n
    finally:
        loop.close()


# ---- futures --------------------------------------------------------------------

async def future_resolve_await(n):
    loop = asyncio.get_running_loop()

    async def run(k):
        for i in range(k):
            f = loop.create_future()
            f.set_result(i)
            await f

    await run(warm(n))
    t0 = now()
    await run(n)
    return (now() - t0) / n


async def future_await_suspend(n):
    loop = asyncio.get_running_loop()
    slot = [None, None]
    w = warm(n)
    times = [0, 0]

    async def player(me):
        for i in range(w + n):
            if me == 0 and i == w:
                times[0] = now()
            mine = loop.create_future()
            slot[me] = mine
            other = slot[1 - me]
            if other is not None:
                slot[1 - me] = None
                other.set_result(None)
            await mine
        if me == 0:
            times[1] = now()
        other = slot[1 - me]
        if other is not None:
            slot[1 - me] = None
            other.set_result(None)

    t1 = loop.create_task(player(1))
    t0 = loop.create_task(player(0))
    await t0
    await t1
    return (times[1] - times[0]) / (2 * n)


# ---- sleep(0) ---------------------------------------------------------------------

async def sleep0_roundtrip(n):
    w = warm(n)
    times = [0, 0]

    async def yielder():
        for _ in range(w):
            await asyncio.sleep(0)
        if times[0] == 0:
            times[0] = now()
        for _ in range(n):
            await asyncio.sleep(0)
        times[1] = now()

    await asyncio.gather(yielder(), yielder())
    return (times[1] - times[0]) / n


def run_suite(prefix, new_loop):
    def run(coro):
        loop = new_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()

    n_spawn = iters(100000, 1000)
    n_soon = iters(300000, 1000)
    n_fut = iters(300000, 1000)
    n_sleep = iters(100000, 1000)
    results = {name: [] for name in ("spawn_await", "call_soon_chain", "future_resolve_await",
                                     "future_await_suspend", "sleep0_roundtrip")}
    for _ in range(reps()):
        results["spawn_await"].append(run(spawn_await(n_spawn)))
        results["call_soon_chain"].append(call_soon_chain(new_loop, n_soon))
        results["future_resolve_await"].append(run(future_resolve_await(n_fut)))
        results["future_await_suspend"].append(run(future_await_suspend(n_fut // 2)))
        results["sleep0_roundtrip"].append(run(sleep0_roundtrip(n_sleep)))
    for name, values in results.items():
        line(prefix + name, statistics.median(values), "ns")
        line(prefix + name + "_min", min(values), "ns")


def main():
    print("# asyncio: %s %s (%s), %d repetitions"
          % (platform.python_implementation(), platform.python_version(), sys.executable, reps()),
          flush=True)
    run_suite("asyncio_", asyncio.new_event_loop)
    try:
        import uvloop  # noqa: F401  (python3-uvloop)
    except ImportError:
        print("# skipped uvloop_*: python3-uvloop is not installed", flush=True)
        return
    run_suite("uvloop_", uvloop.new_event_loop)


if __name__ == "__main__":
    main()
