"""asyncio's spawn + wait of /bin/true, one child at a time: the peer of
bench_spawn.c. Prints "asyncio_spawn_wait <median> us" and the minimum.
Honours CIO_BENCH_QUICK and CIO_BENCH_REPS like the C benchmarks."""
import asyncio
import os
import statistics
import time

quick = os.environ.get("CIO_BENCH_QUICK", "0") not in ("", "0")
reps = 2 if quick else max(1, int(os.environ.get("CIO_BENCH_REPS", "7")))
iters = 20 if quick else 500


async def children():
    t0 = time.perf_counter_ns()
    for _ in range(iters):
        proc = await asyncio.create_subprocess_exec("/bin/true")
        assert await proc.wait() == 0
    return (time.perf_counter_ns() - t0) / 1e3 / iters


def line(name, value, unit):
    fmt = "%s %.0f %s" if value >= 100 else "%s %.1f %s" if value >= 10 else "%s %.2f %s"
    print(fmt % (name, value, unit), flush=True)


samples = [asyncio.run(children()) for _ in range(reps)]
line("asyncio_spawn_wait", statistics.median(samples), "us")
line("asyncio_spawn_wait_min", min(samples), "us")
