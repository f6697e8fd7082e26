#!/usr/bin/env python3
"""Measure 1,000 partitions made and deleted, by one apply and one request each.

    ./scripts/sandbox.sh .venv/bin/python tests/netns/probes/measure_apply.py [N]

Starts the bench's daemon (scripts/vnbench: start_vns, its LAN namespace
and veth uplink) and prints, for N partitions (default 1,000) with one
IPv6 address each: the seconds one `apply` request took to make them, the
idle CPU of daemon + agents over 10 s (IDLE_AFTER s after, default 15),
the seconds one `apply --prune` of none took to delete them, then (unless
EACH=0) the seconds N `partition.create` control requests took one after
the other, and N `partition.delete`. With SPY=PREFIX, py-spy (pip install
py-spy) samples the daemon during the apply (`record -r 50 -f raw`, with
--idle if IDLE=1) into PREFIX-apply.txt. Everything made is removed.
A measurement, not a test (root, in the sandbox).
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
from vnbench.measure import proc_cpu  # noqa: E402
from vnbench.paths import Made, start_vns, vns_pids  # noqa: E402

from vnetshare.frontends.client import call  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    spy = os.environ.get("SPY")
    made = Made()
    try:
        start_vns(made)
        parts = [{"name": f"vnb-m{i}", "ips": [f"fd00:5e::2:{i:x}/64"]} for i in range(n)]
        made.partitions += [p["name"] for p in parts]
        sampler = None
        if spy:
            sampler = subprocess.Popen(["py-spy", "record", "-r", "50", "--nonblocking",
                                        *(["--idle"] if os.environ.get("IDLE") == "1" else []), "-f", "raw",
                                        "-o", f"{spy}-apply.txt", "-p", str(made.daemon.pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)
        t0 = time.monotonic()
        ans = call(made.sock, "apply", timeout=60 + n, partitions=parts)
        took = time.monotonic() - t0
        if sampler:
            sampler.send_signal(signal.SIGINT)
            sampler.wait()
        print(f"apply create {n}: {took:.2f} s, created "
              f"{sum(d['action'] == 'created' for d in ans['done'])}, failed {len(ans['failed'])}", flush=True)
        time.sleep(float(os.environ.get("IDLE_AFTER", "15")))
        pids = vns_pids(made)
        c0, w0 = proc_cpu(pids), time.monotonic()
        time.sleep(10)
        c1, w1 = proc_cpu(pids), time.monotonic()
        print(f"idle cpu {len(pids)} pids: {(c1 - c0) / (w1 - w0) * 100:.2f} % of a core", flush=True)
        t0 = time.monotonic()
        ans = call(made.sock, "apply", timeout=60 + n, partitions=[], prune=True)
        print(f"apply prune {n}: {time.monotonic() - t0:.2f} s, failed {len(ans['failed'])}", flush=True)
        if os.environ.get("EACH", "1") == "1":
            t0 = time.monotonic()
            for p in parts:
                call(made.sock, "partition.create", timeout=60, **p)
            print(f"one-each create {n}: {time.monotonic() - t0:.2f} s", flush=True)
            t0 = time.monotonic()
            for p in parts:
                call(made.sock, "partition.delete", name=p["name"], timeout=60)
            print(f"one-each delete {n}: {time.monotonic() - t0:.2f} s", flush=True)
    finally:
        made.close()


if __name__ == "__main__":
    main()
