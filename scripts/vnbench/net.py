"""net: the same workloads through every path, one after the other in each
repetition (so slow drifts of a shared machine hit every path alike).

Workloads: iperf3 TCP 1 and 4 streams, iperf3 UDP 64-byte datagrams, ping
round trips idle and under a TCP stream, and the CPU per GB received during
the 1-stream run (of the switch's processes and of the whole machine).

Tenant workloads (issue 8): storm, the sender's TCP throughput and ping p50
with and without a neighbour flooding broadcasts at full speed (the two
halves in turn in each repetition, the order swapped every other one);
txlimit, TCP from a partition under --tx-limit 200mbit. capture (issue 11):
the sender's TCP with `vnetshare capture` of the sender writing pcapng to
/dev/null (on), with a capture filtered by 'icmp', which refuses every
frame of the stream (filtered: what running the filter costs, nothing
copied), and without (off), in turn as for storm, and the frames the
capture could not keep or its filter refused. The guard's cost is
a pair of paths: vns-open and vns-lan-open are vns and vns-lan from
partitions made with --allow-ip any, on the same daemon.
"""
from __future__ import annotations

import contextlib
import fnmatch
import statistics
import time

from vnetshare.linux.probe import iperf3

from .common import BenchError, Plan, say, stop
from .measure import (Capture, Flooder, IperfClient, IperfServer, link_counter, machine_cpu, median, pct, ping_times,
                      proc_cpu, wait_reachable, wait_servers)
from .paths import BUILDERS, TX_LIMIT_MBPS, VNS_UPLINK, Made, Path, PeerMissing, key, runs

# the --only names of the workloads, in the order they run
WORKLOADS = ("tcp1", "tcp2", "tcp4", "udp64", "ping", "pingload", "storm", "txlimit", "capture")


def selected(only: list[str], path: str, workload: str) -> bool:
    """Whether --only (globs: PATH/WORKLOAD, PATH or WORKLOAD) picks this pair."""
    if not runs(path, workload):
        return False
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
    missing: list[dict] = []  # peers not on this machine: a note each, not an error
    for fam, build, names in BUILDERS:
        if not any(selected(plan.only, p, w) for p in names for w in WORKLOADS):
            continue
        try:
            got = build(made)
        except PeerMissing as e:
            say(f"{fam}: not measured: {e}")
            missing += [{"name": f"{key(p)}_not_measured", "value": str(e), "unit": "note"} for p in names]
            continue
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

    def tcp_streams(streams: int):
        def run(p: Path) -> None:
            r = iperf3(p.server, p.client, p.addr, seconds=plan.seconds, streams=streams)
            if not r.ok:
                raise BenchError(f"iperf3: {r.error}")
            add(f"{key(p.name)}_tcp{streams}_Gbps", r.gbps)
        return run

    def udp64(p: Path) -> None:
        r = iperf3(p.server, p.client, p.addr, seconds=plan.seconds, udp_len=64)
        if not r.ok:
            raise BenchError(f"iperf3: {r.error}")
        add(f"{key(p.name)}_udp64_pps", r.received_packets / plan.seconds)

    def add_pings(prefix: str, t: list[float], sent: int) -> None:
        add(f"{prefix}_p50_us", statistics.median(t))
        add(f"{prefix}_p99_us", pct(t, 99))
        add(f"{prefix}_lost", sent - len(t))

    @contextlib.contextmanager
    def background_tcp(server: str, client: str, addr: str, port: int, dur: float, what: str):
        """One TCP stream of @dur seconds from @client, running (for 1 s
        already) while the body measures; yields a list that gets the bytes
        received once the stream ended (BenchError if it moved nothing)."""
        srv = IperfServer(made, server, addr, port)
        got: list[int] = []
        try:
            wait_servers([srv])
            cli = IperfClient(made, client, addr, port, dur)
            time.sleep(1.0)
            yield got
            got.append(cli.result(time.monotonic() + dur + 20))
            if not got[0]:
                raise BenchError(f"the {what} stream moved nothing")
        finally:
            stop(srv.p)
            made.forget_ended()

    def ping_idle(p: Path) -> None:
        add_pings(f"{key(p.name)}_ping_idle", *ping_times(p.client, p.addr, plan.pings))

    def ping_load(p: Path) -> None:
        # one TCP stream in the same direction, the pings inside its run
        with background_tcp(p.server, p.client, p.addr, 5299, plan.pings * 0.01 + 3, "load"):
            t, sent = ping_times(p.client, p.addr, plan.pings)
        add_pings(f"{key(p.name)}_ping_load", t, sent)

    def port_drops(name: str | None) -> dict:
        """A partition's drops by reason (vnetshare only; {} otherwise)."""
        if name is None:
            return {}
        from vnetshare.frontends.client import call
        return call(made.sock, "stats", timeout=10)["partitions"].get(name, {}).get("drops", {})

    def storm_half(p: Path, on: bool) -> None:
        """The sender's ping p50 (no other load) then its TCP, with a
        neighbour flooding broadcasts meanwhile (@on) or not."""
        k, half = key(p.name), "on" if on else "off"
        fl = None
        if on:
            st = p.storm
            bound = plan.pings * 0.01 + plan.seconds + 15  # it ends by itself after this
            d0 = port_drops(st.partition)
            fl = Flooder(made, st.ns, st.ifname, st.src, st.bcast, bound)
            time.sleep(1.0)  # at full speed before we measure
            if not fl.running():
                fl.end()
                raise BenchError("the flooder ended at start")
        try:
            t, sent = ping_times(p.client, p.addr, plan.pings)
            r = iperf3(p.server, p.client, p.addr, seconds=plan.seconds, streams=1)
        finally:
            if fl is not None:
                alive = fl.running()
                n, secs = fl.end()
                made.forget_ended()
                if not alive:
                    raise BenchError(f"the flooder ended before the measurement did ({secs:.1f} s)")
                add(f"{k}_storm_sent_pps", n / secs)
                if st.partition:
                    d1 = port_drops(st.partition)
                    add(f"{k}_storm_dropped_pps", (d1.get("storm", 0) - d0.get("storm", 0)) / secs)
                time.sleep(1.0)  # queues drain before the next half
        if not r.ok:
            raise BenchError(f"iperf3: {r.error}")
        add(f"{k}_storm_{half}_tcp1_Gbps", r.gbps)
        add_pings(f"{k}_storm_{half}_ping", t, sent)

    def storm(p: Path, rep: int) -> None:
        for on in ((False, True) if rep % 2 == 0 else (True, False)):
            storm_half(p, on)

    def capture_half(p: Path, half: str) -> None:
        """The sender's TCP with a capture of it running (@half "on"), one
        filtered by 'icmp' ("filtered"), or none ("off")."""
        cap = None if half == "off" else Capture(made, p.client, *(["icmp"] if half == "filtered" else []))
        try:
            r = iperf3(p.server, p.client, p.addr, seconds=plan.seconds, streams=1)
        finally:
            if cap is not None:
                captured, lost = cap.end()
                made.forget_ended()
                if half == "on":
                    add(f"{key(p.name)}_capture_frames", captured + lost)
                    add(f"{key(p.name)}_capture_lost", lost)
                else:
                    add(f"{key(p.name)}_capture_filtered_frames", cap.filtered)
        if not r.ok:
            raise BenchError(f"iperf3: {r.error}")
        add(f"{key(p.name)}_capture_{half}_tcp1_Gbps", r.gbps)

    def capture(p: Path, rep: int) -> None:
        halves = ("off", "on", "filtered")
        for half in (halves if rep % 2 == 0 else halves[::-1]):
            capture_half(p, half)

    def txlimit(p: Path) -> None:
        # TCP from the limited partition; bytes leaving the uplink over the
        # middle of its run say what the wire carried
        dur = plan.seconds + 2
        with background_tcp(p.server, p.limited, p.addr, 5298, dur, "limited") as got:
            b0, w0 = link_counter(VNS_UPLINK, "tx_bytes"), time.monotonic()
            time.sleep(plan.seconds)
            b1, w1 = link_counter(VNS_UPLINK, "tx_bytes"), time.monotonic()
        k = key(p.name)
        add(f"{k}_txlimit_tcp1_Mbps", got[0] * 8 / dur / 1e6)
        add(f"{k}_txlimit_uplink_Mbps", (b1 - b0) * 8 / (w1 - w0) / 1e6)

    workloads = (("tcp1", tcp1), ("tcp2", tcp_streams(2)), ("tcp4", tcp_streams(4)), ("udp64", udp64), ("ping", ping_idle), ("pingload", ping_load),
                 ("storm", None), ("txlimit", txlimit), ("capture", None))
    for wl, fn in workloads:
        todo = [p for p in paths if selected(plan.only, p.name, wl)]
        for rep in range(plan.reps):
            for p in todo:
                say(f"{wl} {p.name} ({rep + 1}/{plan.reps})")
                if wl == "storm":
                    attempt(p, wl, lambda: storm(p, rep))
                elif wl == "capture":
                    attempt(p, wl, lambda: capture(p, rep))
                else:
                    attempt(p, wl, lambda: fn(p))

    units = {"Gbps": "Gbit/s", "Mbps": "Mbit/s", "pps": "pps", "us": "us", "GB": "s/GB", "lost": "packets",
             "frames": "packets"}
    rows = []
    for name, v in vals.items():
        med = median(v)
        unit = units[name.rsplit("_", 1)[1]]
        if med is None:
            continue
        rnd = 3 if unit in ("Gbit/s", "s/GB") else 1 if unit in ("us", "Mbit/s") else 0
        rows.append({"name": name, "value": round(med, rnd) if rnd else round(med), "unit": unit})
    by = {r["name"]: r["value"] for r in rows}
    for a, b, m, short in RATIOS:
        x, y = by.get(f"{a}_{m}"), by.get(f"{b}_{m}")
        if x is not None and y:
            rows.append({"name": f"ratio_{a}_vs_{b}_{short}", "value": round(x / y, 3), "unit": "x"})
    # storm: the sender with a flooding neighbour against itself without, same repetitions
    for p in paths:
        k = key(p.name)
        for m, short in (("tcp1_Gbps", "tcp1"), ("ping_p50_us", "ping_p50")):
            x, y = by.get(f"{k}_storm_on_{m}"), by.get(f"{k}_storm_off_{m}")
            if x is not None and y:
                rows.append({"name": f"ratio_{k}_storm_on_vs_off_{short}", "value": round(x / y, 3), "unit": "x"})
        x, y = by.get(f"{k}_capture_on_tcp1_Gbps"), by.get(f"{k}_capture_off_tcp1_Gbps")
        if x is not None and y:
            rows.append({"name": f"ratio_{k}_capture_on_vs_off_tcp1", "value": round(x / y, 3), "unit": "x"})
        x = by.get(f"{k}_capture_filtered_tcp1_Gbps")
        if x is not None and y:
            rows.append({"name": f"ratio_{k}_capture_filtered_vs_off_tcp1", "value": round(x / y, 3), "unit": "x"})
        x = by.get(f"{k}_txlimit_tcp1_Mbps")
        if x is not None:
            rows.append({"name": f"ratio_{k}_txlimit_vs_limit_tcp1", "value": round(x / TX_LIMIT_MBPS, 3),
                         "unit": "x"})
    return rows + missing


# (numerator path, denominator path, metric): ratios printed, some are targets
RATIOS = (
    ("vns", "veth", "tcp1_Gbps", "tcp1"), ("vns", "veth", "tcp2_Gbps", "tcp2"), ("vns", "veth", "tcp4_Gbps", "tcp4"),
    ("vns", "bridge", "tcp1_Gbps", "tcp1"), ("vns", "macvlan", "tcp1_Gbps", "tcp1"),
    ("vns_lan", "macvlan_lan", "tcp1_Gbps", "tcp1"), ("vns_lan", "macvlan_lan", "tcp2_Gbps", "tcp2"),
    ("vns_lan", "macvlan_lan", "tcp4_Gbps", "tcp4"), ("vns_lan", "macvlan_lan", "udp64_pps", "udp64"),
    ("vns", "vde", "tcp1_Gbps", "tcp1"), ("vns", "vde", "tcp4_Gbps", "tcp4"),
    ("vns", "vde", "udp64_pps", "udp64"), ("vns", "veth", "udp64_pps", "udp64"),
    ("vns", "vde", "ping_idle_p50_us", "ping_idle_p50"), ("vns", "veth", "ping_idle_p50_us", "ping_idle_p50"),
    ("vns_lan", "vde", "ping_idle_p50_us", "ping_idle_p50"),
    ("vns_lan", "veth", "ping_idle_p50_us", "ping_idle_p50"),
    ("vns", "vde", "cpu_machine_s_per_GB", "cpu_machine"),
    ("vns", "veth", "cpu_machine_s_per_GB", "cpu_machine"),
    ("vns_lan", "macvlan_lan", "cpu_machine_s_per_GB", "cpu_machine"),
    # the guard's cost: guard on (default) against --allow-ip any, same daemon
    ("vns", "vns_open", "tcp1_Gbps", "tcp1"), ("vns", "vns_open", "udp64_pps", "udp64"),
    ("vns_lan", "vns_lan_open", "tcp1_Gbps", "tcp1"), ("vns_lan", "vns_lan_open", "udp64_pps", "udp64"),
    ("vns", "vns_open", "ping_idle_p50_us", "ping_idle_p50"),
    ("vns_lan", "vns_lan_open", "ping_idle_p50_us", "ping_idle_p50"),
    # the userspace peers a container without a bridge gets (pasta, slirp4netns): to a LAN host, as vns-lan
    *((ours, peer, m, short) for peer in ("pasta", "slirp4netns") for ours in ("vns_lan",)
      for m, short in (("tcp1_Gbps", "tcp1"), ("tcp4_Gbps", "tcp4"), ("udp64_pps", "udp64"),
                       ("ping_idle_p50_us", "ping_idle_p50"), ("ping_load_p99_us", "ping_load_p99"),
                       ("cpu_machine_s_per_GB", "cpu_machine"))),
    # the host to a partition through its host port, against a veth between two namespaces
    ("vns_host", "veth", "tcp1_Gbps", "tcp1"), ("vns_host", "veth", "ping_idle_p50_us", "ping_idle_p50"),
    ("vns_host", "vns", "tcp1_Gbps", "tcp1"), ("vns_host", "vns", "ping_idle_p50_us", "ping_idle_p50"),
)
