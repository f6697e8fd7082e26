#!/usr/bin/env python3
"""Measure what a wakeup costs on this machine: same CPU against across CPUs.

    python3 tests/netns/probes/measure_wakeup.py [ROUNDS]

Two processes ping-pong one eventfd kick each way, with a 200 us idle gap
between round trips (as a ping leaves the CPUs idle, so they halt), first
both pinned to CPU 0, then one on CPU 0 and one on CPU 1. Prints the round
trip p50 / p99 (two wakeups each). A measurement, not a test: see
docs/kernel-facts.md for what it showed and why it matters.
"""
import os
import select
import statistics
import sys
import time


def rtt(cpu_a: int, cpu_b: int, rounds: int) -> tuple[float, float]:
    ab, ba = os.eventfd(0), os.eventfd(0)
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {cpu_b})
        for _ in range(rounds):
            select.select([ab], [], [])
            os.eventfd_read(ab)
            os.eventfd_write(ba, 1)
        os._exit(0)
    os.sched_setaffinity(0, {cpu_a})
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        os.eventfd_write(ab, 1)
        select.select([ba], [], [])
        os.eventfd_read(ba)
        out.append((time.perf_counter() - t) * 1e6)
        time.sleep(0.0002)
    os.waitpid(pid, 0)
    os.close(ab)
    os.close(ba)
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.99)]


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("needs two CPUs", file=sys.stderr)
        return 1
    for name, (a, b) in (("same CPU", (cpus[0], cpus[0])), ("across CPUs", (cpus[0], cpus[1]))):
        p50, p99 = rtt(a, b, rounds)
        print(f"eventfd round trip, {name:11s}: p50 {p50:6.1f} us  p99 {p99:6.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
