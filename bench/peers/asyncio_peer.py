#!/usr/bin/env python3
"""Python asyncio peer of bench/bench_core.c: the same figures, same keys.

    yield1 / yield10k   await asyncio.sleep(0) round trip, 1 / 10,000 tasks
    spawn_join          create_task + await it, one at a time
    spawn_join100       create_task x100, then await each
    sleepers_wall       N tasks each `await asyncio.sleep(0.01)`: create
                        them all and run them to completion
    sleepers_rss        resident memory per sleeping task (/proc/self/statm,
                        read by a task created after all the sleepers)

usage: asyncio_peer.py [sleepers]   (default 1,000,000)
Counts are smaller than tulip's (Python is slower); figures are per
operation, so they compare directly.
"""
import asyncio
import os
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


async def yielder(n):
    for _ in range(n):
        await asyncio.sleep(0)


async def bench_yield(ntasks, total, key):
    each = total // ntasks
    t0 = time.perf_counter()
    await asyncio.gather(*(yielder(each) for _ in range(ntasks)))
    t1 = time.perf_counter()
    print(f"{key}: {(t1 - t0) * 1e9 / (each * ntasks):.1f} ns/yield  "
          f"(asyncio.sleep(0) round trip, {ntasks} task{'s' if ntasks > 1 else ''})")


async def nothing():
    return 0


async def bench_spawn_join(n, batch, key):
    t0 = time.perf_counter()
    for _ in range(0, n, batch):
        tasks = [asyncio.create_task(nothing()) for _ in range(batch)]
        for t in tasks:
            await t
    t1 = time.perf_counter()
    how = "one at a time" if batch == 1 else "in batches of 100"
    print(f"{key}: {(t1 - t0) * 1e9 / n:.1f} ns/task  "
          f"(create_task + run + await, {how})")


peak = 0


async def sleeper():
    await asyncio.sleep(0.01)


async def probe():
    global peak
    peak = rss_bytes()


async def bench_sleepers(n):
    base = rss_bytes()
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(sleeper()) for _ in range(n)]
    tasks.append(asyncio.create_task(probe()))
    await asyncio.gather(*tasks)
    t1 = time.perf_counter()
    print(f"sleepers_wall: {t1 - t0:.2f} s  ({n} tasks each sleeping 10 ms: "
          f"create and run to completion)")
    print(f"sleepers_rss: {(peak - base) / 1024 / n:.2f} KiB/task  "
          f"(resident memory per sleeping task, /proc/self/statm)")


async def main(n):
    await bench_yield(1, 200_000, "yield1")
    await bench_yield(10_000, 400_000, "yield10k")
    await bench_spawn_join(100_000, 1, "spawn_join")
    await bench_spawn_join(100_000, 100, "spawn_join100")
    await bench_sleepers(n)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
