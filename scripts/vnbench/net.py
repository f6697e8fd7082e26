"""net: the same workloads through every path, one after the other in each
repetition (so slow drifts of a shared machine hit every path alike).

Workloads: iperf3 TCP 1 and 4 streams, iperf3 UDP 64-byte datagrams, ping
round trips idle and under a TCP stream, and the CPU per GB received during
the 1-stream run (of the switch's processes and of the whole machine).
"""
from __future__ import annotations

import fnmatch
import statistics
import time

from vnetshare.linux.probe import iperf3

from .common import BenchError, Plan, say, stop
from .measure import (IperfClient, IperfServer, machine_cpu, median, pct, ping_times, proc_cpu, wait_reachable,
                      wait_servers)
from .paths import BUILDERS, Made, Path, key

# the --only names of the workloads, in the order they run
WORKLOADS = ("tcp1", "tcp4", "udp64", "ping", "pingload")


def selected(only: list[str], path: str, workload: str) -> bool:
    """Whether --only (globs: PATH/WORKLOAD, PATH or WORKLOAD) picks this pair."""
    if not only:
        return True
    for pat in only:
        if "/" in pat:
            if fnmatch.fnmatch(f"{path}/{workload}", pat):
                return True
        elif fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(workload, pat):
            return True
    return False


def bench_net(made: Made, plan: Plan, errors: list[str]) -> list[dict]:
    paths: list[Path] = []
    for fam, build, names in BUILDERS:
        if not any(selected(plan.only, p, w) for p in names for w in WORKLOADS):
            continue
        try:
            got = build(made)
        except (BenchError, OSError) as e:
            errors.append(f"{fam}: setup: {e}")
            say(f"{fam}: setup failed, skipped: {e}")
            continue
        paths += got
    for p in list(paths):
        try:
            wait_reachable(p.client, p.addr)
        except BenchError as e:
            errors.append(f"{p.name}: {e}")
            paths.remove(p)
    say("paths: " + ", ".join(p.name for p in paths))

    vals: dict[str, list] = {}

    def add(name: str, v) -> None:
        vals.setdefault(name, []).append(v)

    def attempt(path: Path, what: str, fn) -> None:
        try:
            fn()
        except (BenchError, OSError) as e:
            errors.append(f"{path.name} {what}: {e}")
            say(f"{path.name} {what}: FAILED: {e}")

    def tcp1(p: Path) -> None:
        pids = p.pids() if p.pids else []
        c0, (m0, s0) = proc_cpu(pids), machine_cpu()
        r = iperf3(p.server, p.client, p.addr, seconds=plan.seconds, streams=1)
        c1, (m1, s1) = proc_cpu(pids), machine_cpu()
        if not r.ok:
            raise BenchError(f"iperf3: {r.error}")
        gb = r.received_bytes / 1e9
        k = key(p.name)
        add(f"{k}_tcp1_Gbps", r.gbps)
        add(f"{k}_cpu_switch_s_per_GB", (c1 - c0) / gb if p.pids else None)
        add(f"{k}_cpu_machine_s_per_GB", (m1 - m0) / gb)
        add(f"{k}_cpu_softirq_s_per_GB", (s1 - s0) / gb)

    def tcp4(p: Path) -> None:
        r = iperf3(p.server, p.client, p.addr, seconds=plan.seconds, streams=4)
        if not r.ok:
            raise BenchError(f"iperf3: {r.error}")
        add(f"{key(p.name)}_tcp4_Gbps", r.gbps)

    def udp64(p: Path) -> None:
        r = iperf3(p.server, p.client, p.addr, seconds=plan.seconds, udp_len=64)
        if not r.ok:
            raise BenchError(f"iperf3: {r.error}")
        add(f"{key(p.name)}_udp64_pps", r.received_packets / plan.seconds)

    def ping_idle(p: Path) -> None:
        t, sent = ping_times(p.client, p.addr, plan.pings)
        k = key(p.name)
        add(f"{k}_ping_idle_p50_us", statistics.median(t))
        add(f"{k}_ping_idle_p99_us", pct(t, 99))
        add(f"{k}_ping_idle_lost", sent - len(t))

    def ping_load(p: Path) -> None:
        # one TCP stream in the same direction, the pings inside its run
        srv = IperfServer(made, p.server, p.addr, 5299)
        try:
            wait_servers([srv])
            dur = plan.pings * 0.01 + 3
            cli = IperfClient(made, p.client, p.addr, 5299, dur)
            time.sleep(1.0)
            t, sent = ping_times(p.client, p.addr, plan.pings)
            got = cli.result(time.monotonic() + dur + 20)
            if not got:
                raise BenchError("the load stream moved nothing")
        finally:
            stop(srv.p)
            made.forget_ended()
        k = key(p.name)
        add(f"{k}_ping_load_p50_us", statistics.median(t))
        add(f"{k}_ping_load_p99_us", pct(t, 99))
        add(f"{k}_ping_load_lost", sent - len(t))

    runs = (("tcp1", tcp1), ("tcp4", tcp4), ("udp64", udp64), ("ping", ping_idle), ("pingload", ping_load))
    for wl, fn in runs:
        todo = [p for p in paths if selected(plan.only, p.name, wl)]
        for rep in range(plan.reps):
            for p in todo:
                say(f"{wl} {p.name} ({rep + 1}/{plan.reps})")
                attempt(p, wl, lambda: fn(p))

    units = {"Gbps": "Gbit/s", "pps": "pps", "us": "us", "GB": "s/GB", "lost": "packets"}
    rows = []
    for name, v in vals.items():
        med = median(v)
        unit = units[name.rsplit("_", 1)[1]]
        if med is None:
            continue
        rnd = 3 if unit in ("Gbit/s", "s/GB") else 1 if unit == "us" else 0
        rows.append({"name": name, "value": round(med, rnd) if rnd else round(med), "unit": unit})
    by = {r["name"]: r["value"] for r in rows}
    for a, b, m, short in RATIOS:
        x, y = by.get(f"{a}_{m}"), by.get(f"{b}_{m}")
        if x is not None and y:
            rows.append({"name": f"ratio_{a}_vs_{b}_{short}", "value": round(x / y, 3), "unit": "x"})
    return rows


# (numerator path, denominator path, metric): ratios printed, some are targets
RATIOS = (
    ("vns", "veth", "tcp1_Gbps", "tcp1"), ("vns", "veth", "tcp4_Gbps", "tcp4"),
    ("vns", "bridge", "tcp1_Gbps", "tcp1"), ("vns", "macvlan", "tcp1_Gbps", "tcp1"),
    ("vns_lan", "macvlan_lan", "tcp1_Gbps", "tcp1"), ("vns_lan", "macvlan_lan", "tcp4_Gbps", "tcp4"),
    ("vns", "vde", "tcp1_Gbps", "tcp1"), ("vns", "vde", "tcp4_Gbps", "tcp4"),
    ("vns", "vde", "udp64_pps", "udp64"), ("vns", "veth", "udp64_pps", "udp64"),
    ("vns", "vde", "ping_idle_p50_us", "ping_idle_p50"), ("vns", "veth", "ping_idle_p50_us", "ping_idle_p50"),
    ("vns", "vde", "cpu_machine_s_per_GB", "cpu_machine"),
)
