#!/usr/bin/env python3
"""Measure what one partition's agent costs (the C agent, the only one since issue 20).

    ./scripts/sandbox.sh python3 tests/netns/probes/measure_agent.py [N]

N agents (default 50) are started the way the daemon starts them
(vnetshare/supervisor.py: a socketpair, the hello and the descriptors of a TAP,
two rings and a network namespace, here this process's own; each agent its
own uid, from the end of the default --agent-uids range) and kept running
together. Prints:
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
from vnetshare.core import config
from vnetshare.dataplane.ring import CONSUMER, PRODUCER, SIZE_DEFAULT, Ring, create_fds
from vnetshare.dataplane.tap import open_tap


def kib(path: str, key: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def mem_available() -> int:
    return kib("/proc/meminfo", "MemAvailable")


def run(n: int) -> dict:
    made, mapped = [], []
    for i in range(n):
        made.append((open_tap(f"vma{i}"), create_fds(SIZE_DEFAULT), create_fds(SIZE_DEFAULT)))
        # the daemon's side, mapped (and so populated) as the switch maps it
        mapped += [Ring(made[-1][1].end(CONSUMER), CONSUMER, SIZE_DEFAULT),
                   Ring(made[-1][2].end(PRODUCER), PRODUCER, SIZE_DEFAULT)]
    before = mem_available()
    agents, starts = [], []
    ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    for i, (tap, a2h, h2a) in enumerate(made):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        fd = theirs.fileno()
        t = time.perf_counter()
        p = subprocess.Popen(agent.command(fd, f"m{i}"), pass_fds=[fd], stdin=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        theirs.close()
        hello = agent.hello_message(f"m{i}", SIZE_DEFAULT, None, config.AGENT_UIDS_DEFAULT[1] - i)
        socket.send_fds(ours, [json.dumps(hello).encode()], agent.pack_fds(tap, a2h, h2a, ns))
        ours.settimeout(30)
        assert json.loads(ours.recv(4096))["ready"]
        starts.append((time.perf_counter() - t) * 1e3)
        agents.append((p, ours))
    after = mem_available()
    os.close(ns)
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
        "kind": "C", "n": n,
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
    print(json.dumps(run(n)))


if __name__ == "__main__":
    main()
