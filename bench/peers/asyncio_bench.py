#!/usr/bin/env python3
"""Python asyncio peers of weave's benchmarks, measured the same way on the same machine.

Prints one line per figure, `name median_ns min_ns max_ns`, medians over --repetitions runs:
  asyncio_queue_pingpong   round trip of an item through two asyncio.Queue(1)s
  asyncio_sleep0           one asyncio.sleep(0) (a yield through the loop)
  asyncio_create_gather    per task, creating N tasks and gathering them (N = --tasks)
bench/run_bench.sh puts them beside weave's figures and prints the ratios.
"""
import argparse
import asyncio
import statistics
import time


async def queue_pingpong(rounds: int) -> float:
    ping: asyncio.Queue = asyncio.Queue(1)
    pong: asyncio.Queue = asyncio.Queue(1)

    async def echo() -> None:
        for _ in range(rounds):
            await pong.put(await ping.get())

    peer = asyncio.create_task(echo())
    start = time.perf_counter_ns()
    for i in range(rounds):
        await ping.put(i)
        await pong.get()
    elapsed = time.perf_counter_ns() - start
    await peer
    return elapsed / rounds


async def sleep0(rounds: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(rounds):
        await asyncio.sleep(0)
    return (time.perf_counter_ns() - start) / rounds


async def nothing() -> None:
    return None


async def create_gather(tasks: int) -> float:
    start = time.perf_counter_ns()
    await asyncio.gather(*(asyncio.create_task(nothing()) for _ in range(tasks)))
    return (time.perf_counter_ns() - start) / tasks


def measure(name: str, make, repetitions: int) -> None:
    samples = [asyncio.run(make()) for _ in range(repetitions)]
    print(f"{name} {statistics.median(samples):.1f} {min(samples):.1f} {max(samples):.1f}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    args = parser.parse_args()
    measure("asyncio_queue_pingpong", lambda: queue_pingpong(args.rounds), args.repetitions)
    measure("asyncio_sleep0", lambda: sleep0(args.rounds), args.repetitions)
    measure("asyncio_create_gather", lambda: create_gather(args.tasks), args.repetitions)


if __name__ == "__main__":
    main()
