#!/usr/bin/env python3
"""Python asyncio peer of bench/bench_core.c: the same scenarios and keys.

    asyncio_peer.py spawn N     N tasks created in an asyncio.TaskGroup (a
                                created task runs only when the creator
                                awaits, so all exist before any runs),
                                then the group waits for all    ns/task
    asyncio_peer.py pingpong N  two tasks bouncing a message through two
                                asyncio.Queue(maxsize=1), N round trips
                                                              ns/switch
    asyncio_peer.py yield N     a lone task awaiting asyncio.sleep(0)
                                                               ns/yield
    asyncio_peer.py sleep N     N tasks each awaiting asyncio.sleep(1),
                                all asleep at once: wall s; resident
                                B/task once every one has started
    asyncio_peer.py sem N       N tasks through asyncio.Semaphore(100),
                                each holding it for asyncio.sleep(0.001):
                                wall s
"""
import asyncio
import os
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def check(got, n, what):
    if got != n:
        print(f"asyncio_peer: {what}: {got} of {n}", file=sys.stderr)
        sys.exit(1)


async def spawn(n):
    ran = 0

    async def nothing():
        nonlocal ran
        ran += 1

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(nothing())
    t1 = time.perf_counter()
    check(ran, n, "spawn: ran")
    print(f"spawn: {(t1 - t0) * 1e9 / n:.1f} ns/task")


async def pingpong(n):
    ping = asyncio.Queue(maxsize=1)
    pong = asyncio.Queue(maxsize=1)

    async def ponger():
        for _ in range(n):
            await pong.put(await ping.get())

    task = asyncio.create_task(ponger())
    t0 = time.perf_counter()
    for i in range(n):
        await ping.put(i)
        await pong.get()
    t1 = time.perf_counter()
    await task
    print(f"pingpong: {(t1 - t0) * 1e9 / (2 * n):.1f} ns/switch")


async def yield_(n):
    t0 = time.perf_counter()
    for _ in range(n):
        await asyncio.sleep(0)
    t1 = time.perf_counter()
    print(f"yield: {(t1 - t0) * 1e9 / n:.1f} ns/yield")


async def sleep(n):
    started = woke = 0

    async def sleeper():
        nonlocal started, woke
        started += 1
        await asyncio.sleep(1)
        woke += 1

    base = rss_bytes()
    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(sleeper())
        while started < n:
            await asyncio.sleep(0)
        peak = rss_bytes()
    t1 = time.perf_counter()
    check(woke, n, "sleep: woke")
    print(f"sleep_wall: {t1 - t0:.3f} s")
    print(f"sleep_rss: {(peak - base) / n:.0f} B/task")


async def sem(n):
    permits = asyncio.Semaphore(100)
    held = 0

    async def holder():
        nonlocal held
        async with permits:
            await asyncio.sleep(0.001)
            held += 1

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(holder())
    t1 = time.perf_counter()
    check(held, n, "sem: held")
    print(f"sem_wall: {t1 - t0:.3f} s")


SCENARIOS = {"spawn": spawn, "pingpong": pingpong, "yield": yield_,
             "sleep": sleep, "sem": sem}

if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    if len(sys.argv) != 3 or sys.argv[1] not in SCENARIOS \
            or not sys.argv[2].isdigit() or int(sys.argv[2]) < 1:
        print("usage: asyncio_peer.py spawn|pingpong|yield|sleep|sem N",
              file=sys.stderr)
        sys.exit(2)
    asyncio.run(SCENARIOS[sys.argv[1]](int(sys.argv[2])))
