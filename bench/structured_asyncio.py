"""The asyncio twin of bench_structured.c: the same three programs, timed
the same way, printing the median of each figure as "<name> <value> ns".

Usage: structured_asyncio.py REPS quick|full
"""
import asyncio
import statistics
import sys
import time


async def lock_bench(n):
    lock = asyncio.Lock()
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await lock.acquire()
        lock.release()
    return (time.perf_counter_ns() - t0) / n


async def queue_bench(n):
    q = asyncio.Queue(maxsize=1)

    async def producer():
        for i in range(n):
            await q.put(i + 1)

    t0 = time.perf_counter_ns()
    p = asyncio.create_task(producer())
    for _ in range(n):
        await q.get()
    await p
    return (time.perf_counter_ns() - t0) / n


async def trivial():
    return None


async def group_bench(n):
    t0 = time.perf_counter_ns()
    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(trivial())
    return (time.perf_counter_ns() - t0) / n


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    quick = len(sys.argv) > 2 and sys.argv[2] == "quick"
    n_lock = 1000 if quick else 200_000
    n_queue = 1000 if quick else 100_000
    n_group = 100 if quick else 10_000
    if not hasattr(asyncio, "TaskGroup"):
        print(f"# python {sys.version.split()[0]} has no asyncio.TaskGroup")
    for name, bench, n in (("lock_acquire_release_asyncio", lock_bench, n_lock),
                           ("queue_put_get_asyncio", queue_bench, n_queue),
                           ("task_group_10k_asyncio", group_bench, n_group)):
        if bench is group_bench and not hasattr(asyncio, "TaskGroup"):
            continue
        samples = [asyncio.run(bench(n)) for _ in range(reps)]
        print(f"{name} {statistics.median(samples):.1f} ns")
    print(f"# asyncio from python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
