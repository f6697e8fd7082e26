#!/usr/bin/env python3
"""Measure what one partition's agent costs: the C agent against the Python one.

    ./scripts/sandbox.sh python3 tests/netns/probes/measure_agent.py [N]

For each kind, N agents (default 50) are started the way the daemon starts
them (vnetshare/manager.py: a socketpair, the hello and the descriptors of
a TAP and two rings) and kept running together. Prints per kind:
  - start: Popen to the agent's "ready", p50 and p90, in ms;
  - memory per agent from /proc: VmRSS, and what is the agent's own
    (RssAnon + RssFile; RssShmem is the two rings, the daemon's as much as
    the agent's) and Pss (shared pages divided among the processes
    sharing them), medians;
  - MemAvailable before the N agents start and once all are ready, per
    agent: what the machine really pays, kernel stacks and page tables
    included, the rings not (they are made and mapped by this process, as
    the daemon maps them, before the first measure). Noisy on a busy
    machine: run it on an idle one.
A measurement, not a test (needs a TAP: root, in the sandbox).
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

from vnetshare import agent
from vnetshare.dataplane.ring import CONSUMER, PRODUCER, SIZE_DEFAULT, Ring, create_fds
from vnetshare.dataplane.tap import open_tap
from vnetshare.linux import procs


def kib(path: str, key: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def mem_available() -> int:
    return kib("/proc/meminfo", "MemAvailable")


def run(kind: str, n: int) -> dict:
    made, mapped = [], []
    for i in range(n):
        made.append((open_tap(f"vma{i}"), create_fds(SIZE_DEFAULT), create_fds(SIZE_DEFAULT)))
        # the daemon's side, mapped (and so populated) as the switch maps it
        mapped += [Ring(made[-1][1].end(CONSUMER), CONSUMER, SIZE_DEFAULT),
                   Ring(made[-1][2].end(PRODUCER), PRODUCER, SIZE_DEFAULT)]
    before = mem_available()
    agents, starts = [], []
    for i, (tap, a2h, h2a) in enumerate(made):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        fd = theirs.fileno()
        argv = ([agent.C_AGENT, "--fd", str(fd), "--name", f"m{i}"] if kind == "C"
                else procs.python_argv("vnetshare.agent", "--fd", str(fd), "--name", f"m{i}"))
        t = time.perf_counter()
        p = subprocess.Popen(argv, pass_fds=[fd], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        theirs.close()
        hello = {"name": f"m{i}", "ring_size": SIZE_DEFAULT, "coalesce_usecs": None}
        socket.send_fds(ours, [json.dumps(hello).encode()], agent.pack_fds(tap, a2h, h2a))
        ours.settimeout(30)
        assert json.loads(ours.recv(4096))["ready"]
        starts.append((time.perf_counter() - t) * 1e3)
        agents.append((p, ours))
    after = mem_available()
    st = {k: [kib(f"/proc/{p.pid}/status", k) for p, _ in agents] for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem")}
    pss = [kib(f"/proc/{p.pid}/smaps_rollup", "Pss") for p, _ in agents]
    pss_shmem = [kib(f"/proc/{p.pid}/smaps_rollup", "Pss_Shmem") for p, _ in agents]
    for p, ours in agents:
        ours.close()  # EOF: it stops
    for p, _ in agents:
        p.wait(timeout=30)
    for r in mapped:
        r.close()
    for tap, a2h, h2a in made:
        os.close(tap)
        a2h.close()
        h2a.close()
    med = statistics.median
    return {
        "kind": kind, "n": n,
        "start_ms_p50": round(med(starts), 1),
        "start_ms_p90": round(statistics.quantiles(starts, n=10)[-1], 1),
        "VmRSS_KiB": med(st["VmRSS"]), "RssAnon_KiB": med(st["RssAnon"]), "RssFile_KiB": med(st["RssFile"]),
        "RssShmem_KiB": med(st["RssShmem"]),
        "own_KiB": med(a + f for a, f in zip(st["RssAnon"], st["RssFile"])),
        "Pss_without_rings_KiB": med(p - s for p, s in zip(pss, pss_shmem)),
        "MemAvailable_drop_per_agent_KiB": round((before - after) / n),
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    for kind in ("C", "Python"):
        print(json.dumps(run(kind, n)))


if __name__ == "__main__":
    main()
