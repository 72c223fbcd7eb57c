#!/usr/bin/env python3
"""The memory an idle asyncio task costs, the Python peer of bench/idle/idle_tasks.

Starts N tasks that all wait on one asyncio.Event, measures RSS with them blocked minus RSS
before, divided by N, then sets the event and checks that all N finish. Prints one key=value
line like idle_tasks:

    impl=asyncio count=N created=N finished=N rss_per_task_bytes=... create_ms=... ok=1
"""
import argparse
import asyncio
import os
import resource
import sys
import time


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def main(n):
    go = asyncio.Event()
    started = 0
    done = 0

    async def idle():
        nonlocal started, done
        started += 1
        await go.wait()
        done += 1

    before = rss_bytes()
    t0 = time.perf_counter()
    # No list of tasks: the event's waiters and the loop keep them alive, as goroutines and the
    # weave fibers of idle_tasks are kept (asyncio holds tasks weakly, so keep a set as the
    # documentation advises; it costs about 8-16 bytes a task).
    tasks = set()
    for _ in range(n):
        tasks.add(asyncio.create_task(idle()))
    while started < n:
        await asyncio.sleep(0)
    create_ms = (time.perf_counter() - t0) * 1e3
    blocked = rss_bytes()
    t1 = time.perf_counter()
    go.set()
    while done < n:
        await asyncio.sleep(0)
    finish_ms = (time.perf_counter() - t1) * 1e3
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ok = int(started == n and done == n)
    print(f"impl=asyncio count={n} created={started} finished={done} "
          f"rss_per_task_bytes={(blocked - before) / n:.1f} create_ms={create_ms:.1f} "
          f"create_ns_per_task={create_ms * 1e6 / n:.1f} finish_ms={finish_ms:.1f} "
          f"rss_before_mb={before / 1048576:.1f} rss_blocked_mb={blocked / 1048576:.1f} "
          f"peak_rss_mb={peak / 1048576:.1f} ok={ok}")
    return ok


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=100000)
    args = p.parse_args()
    if args.count < 1:
        p.error("--count must be at least 1")
    sys.exit(0 if asyncio.run(main(args.count)) else 1)
