#!/usr/bin/env python3
"""Measure what N idle partitions cost the daemon, thread by thread.

    ./scripts/sandbox.sh python3 tests/netns/probes/measure_idle.py [N] [SETTLE] [WINDOW]

Builds the bench's lab (scripts/vnbench/paths.py: a LAN namespace, a veth
uplink, the daemon), creates N partitions (default 1000; IPv6 only, as the
bench's many phase), waits SETTLE seconds (default 20), then over WINDOW
seconds (default 20) prints the CPU of each daemon thread (the switch's
included) and of all agents together, in % of a core, with the frames the
partitions sent meanwhile (their IPv6 chatter) and the switch's loop
counters. Issue 12 found with it that 1,000 idle ports cost the switch
thread 1.7 % of a core (every wakeup visited every port); bench.py's
`many_idle_cpu_pct` is the number to quote, this says where it goes.
Everything is removed at the end. A measurement, not a test.
"""
import glob
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))

from vnbench.paths import Made, create_idle, start_vns  # noqa: E402
from vnetshare.frontends.client import call  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def ticks(stat_path: str) -> int:
    fields = open(stat_path).read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def threads(pid: int) -> dict[str, tuple[str, int]]:
    out = {}
    for t in glob.glob(f"/proc/{pid}/task/*"):
        try:
            out[t] = (open(t + "/comm").read().strip(), ticks(t + "/stat"))
        except OSError:
            pass
    return out


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    settle = float(sys.argv[2]) if len(sys.argv) > 2 else 20
    window = float(sys.argv[3]) if len(sys.argv) > 3 else 20
    made = Made()
    errors: list[str] = []
    try:
        start_vns(made)
        names = create_idle(made, [f"vnb-i{i}" for i in range(n)], lambda i: f"fd00:5e::1:{i:x}/64",
                            errors, "idle")
        print(f"{len(names)} partitions; {' '.join(errors)}", flush=True)
        time.sleep(settle)
        agents = made.agent_pids()
        st0 = call(made.sock, "stats", timeout=60)
        d0, a0, t0 = threads(made.daemon.pid), sum(ticks(f"/proc/{p}/stat") for p in agents), time.monotonic()
        time.sleep(window)
        d1, a1, t1 = threads(made.daemon.pid), sum(ticks(f"/proc/{p}/stat") for p in agents), time.monotonic()
        st1 = call(made.sock, "stats", timeout=60)
        dt = t1 - t0
        for k, (comm, v) in sorted(d1.items()):
            if k in d0:
                print(f"daemon thread {k.rsplit('/', 1)[1]} ({comm}): {(v - d0[k][1]) / HZ / dt * 100:.2f} %")
        print(f"agents ({len(agents)}): {(a1 - a0) / HZ / dt * 100:.2f} %")
        sent = sum(p["tx_frames"] for p in st1["partitions"].values()) - \
            sum(p["tx_frames"] for p in st0["partitions"].values())
        print(f"partitions sent {sent / dt:.1f} frames/s")
        up0, up1 = st0["uplink"], st1["uplink"]
        print("switch, per second:", {k: round((up1[k] - up0[k]) / dt, 1) for k in
                                      ("rounds", "sleeps", "naps", "polls", "flood_scoped", "tx_frames")
                                      if k in up1})
    finally:
        made.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
