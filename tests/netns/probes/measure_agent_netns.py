#!/usr/bin/env python3
"""Measure where an agent's network namespace costs least: one of its own, or its partition's.

    ./scripts/sandbox.sh python3 tests/netns/probes/measure_agent_netns.py [N] [ROUNDS]

Issue 20 puts each agent in a network namespace with no interfaces or in
its partition's own. The partitions' N namespaces (default 1000) exist
either way; this measures what each choice adds, the kernel's work alone
(no agents; one process does every step, as each agent would do its own):
  - own: N x unshare(CLONE_NEWNET), each new namespace kept by a descriptor
    of it (as a live agent keeps it), then every descriptor closed at once
    (the N agents of a daemon restart ending); per namespace the time of
    unshare() (median, p90), the MemAvailable drop and the growth of Slab +
    Percpu (the kernel's own, less disturbed by others) once all N exist, and
    how long the kernel's cleanup takes until MemAvailable is back within
    1 MiB per 100 namespaces (cleanup_net runs after the last reference);
  - join: N x setns() into the N partition namespaces (opened by path, as
    the daemon opens them); per namespace the time of open() + setns().
ROUNDS (default 3) repeats both; the medians of the rounds are printed,
one JSON line per choice. A measurement, not a test: root, in the sandbox.
"""
import ctypes
import json
import os
import statistics
import sys
import time

from vnetshare.linux import netns

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def meminfo(key: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key}")


def mem_available() -> int:
    return meminfo("MemAvailable")


def kernel_kib() -> int:
    """What the kernel holds for namespaces: slab and per-CPU memory (less
    disturbed by other processes than MemAvailable)."""
    return meminfo("Slab") + meminfo("Percpu")


def own(n: int) -> dict:
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    held, times = [], []
    before, kernel_before = mem_available(), kernel_kib()
    try:
        for _ in range(n):
            t = time.perf_counter()
            _check(libc.unshare(CLONE_NEWNET), "unshare")
            times.append((time.perf_counter() - t) * 1e6)
            held.append(os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC))
        _check(libc.setns(home, CLONE_NEWNET), "setns(home)")
        during, kernel_during = mem_available(), kernel_kib()
    finally:
        _check(libc.setns(home, CLONE_NEWNET), "setns(home)")
        t = time.perf_counter()
        for fd in held:
            os.close(fd)
        closed = time.perf_counter() - t
        os.close(home)
    # the kernel frees namespaces in a workqueue after the last reference
    t = time.perf_counter()
    slack = max(1024, n * 1024 // 100)
    while mem_available() < before - slack and time.perf_counter() - t < 60:
        time.sleep(0.05)
    cleanup = time.perf_counter() - t
    return {"unshare_us_p50": statistics.median(times),
            "unshare_us_p90": statistics.quantiles(times, n=10)[-1],
            "total_s": sum(times) / 1e6,
            "mem_KiB_per_netns": (before - during) / n,
            "slab_percpu_KiB_per_netns": (kernel_during - kernel_before) / n,
            "close_all_s": closed, "cleanup_s": cleanup}


def join(paths: list[str]) -> dict:
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    times = []
    try:
        for path in paths:
            t = time.perf_counter()
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            _check(libc.setns(fd, CLONE_NEWNET), f"setns({path})")
            os.close(fd)
            times.append((time.perf_counter() - t) * 1e6)
    finally:
        _check(libc.setns(home, CLONE_NEWNET), "setns(home)")
        os.close(home)
    return {"open_setns_us_p50": statistics.median(times),
            "open_setns_us_p90": statistics.quantiles(times, n=10)[-1],
            "total_s": sum(times) / 1e6, "mem_KiB_per_netns": 0, "slab_percpu_KiB_per_netns": 0}


def medians(rows: list[dict]) -> dict:
    return {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    names = [f"vmn{i}" for i in range(n)]
    try:
        paths = [netns.create(name) for name in names]  # the partitions' own, there either way
        runs_own, runs_join = [], []
        for _ in range(rounds):
            runs_own.append(own(n))
            runs_join.append(join(paths))
        print(json.dumps({"choice": "own", "n": n, "rounds": rounds, **medians(runs_own)}))
        print(json.dumps({"choice": "join", "n": n, "rounds": rounds, **medians(runs_join)}))
    finally:
        for name in names:
            netns.quietly(netns.delete, name)


if __name__ == "__main__":
    main()
