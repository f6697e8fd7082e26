"""The report: targets and their verdicts, the tables printed without
--json, and the line that says which machine ran it."""
from __future__ import annotations

import os
import platform
import time

from .common import Plan
from .paths import DAEMON_ARGS, PATHS, TX_LIMIT_MBPS, key, owner

# name -> (op, threshold, what); ratios are from the same run; op "within":
# |value - 1| <= threshold
TARGETS = {
    "ratio_ring_vs_socketpair_1500B_records": (">=", 10.0, "x socketpair"),
    "ring_64KiB_GBps": (">=", 5.0, "GB/s"),
    # issue 12 raised these from issue 4's 0.5 x
    "ratio_vns_vs_veth_tcp1": (">=", 0.8, "x veth"),
    "ratio_vns_lan_vs_macvlan_lan_tcp1": (">=", 0.8, "x macvlan"),
    "ratio_vns_vs_veth_tcp4": (">=", 0.6, "x veth"),
    "ratio_vns_lan_vs_macvlan_lan_tcp4": (">=", 0.6, "x macvlan"),
    "ratio_vns_vs_veth_udp64": (">=", 0.9, "x veth"),
    "ratio_vns_vs_veth_ping_idle_p50": ("<=", 3.0, "x veth"),
    "ratio_vns_lan_vs_veth_ping_idle_p50": ("<=", 3.0, "x veth"),
    "ratio_vns_lan_vs_vde_ping_idle_p50": ("<=", 0.5, "x vde_switch"),
    "vns_ping_load_p99_us": ("<=", 1000, "us"),
    "vns_lan_ping_load_p99_us": ("<=", 1000, "us"),
    "ratio_vns_vs_vde_tcp1": (">=", 10.0, "x vde_switch"),
    "ratio_vns_vs_vde_tcp4": (">=", 10.0, "x vde_switch"),
    "ratio_vns_vs_vde_ping_idle_p50": ("<=", 0.5, "x vde_switch"),  # issue 4: < 1
    "ratio_vns_vs_vde_udp64": (">=", 2.0, "x vde_switch"),
    "scale_64_idle_cpu_pct": ("<", 1.0, "% of a core"),
    "create_p50_s": ("<", 0.5, "s"),
    "scale_64_ok": (">=", 64, "partitions"),
    # issue 12: many partitions at once (1,000; --many)
    "many_mem_per_partition_MiB": ("<=", 4.0, "MiB"),
    "many_idle_cpu_pct": ("<", 1.0, "% of a core"),
    "many_create_p50_s": ("<", 0.05, "s"),
    "ratio_many_create_last10_vs_first10": ("<=", 1.25, "x the first ten"),
    "ratio_many_ok": (">=", 1.0, "of them reached the LAN host and a peer"),
    # issue 25: 1,000 partitions by one apply, and gone by one apply --prune
    "apply_create_all_s": ("<", 10.0, "s"),
    "apply_delete_all_s": ("<", 10.0, "s"),
    "apply_idle_cpu_pct": ("<", 1.0, "% of a core"),
    # issue 8: fair share, and the guard's cost (guard on against --allow-ip any)
    "ratio_vns_lan_storm_on_vs_off_tcp1": (">=", 0.8, "x without the storm"),
    "ratio_vns_lan_storm_on_vs_off_ping_p50": ("<=", 2.0, "x without the storm"),
    "ratio_vns_lan_txlimit_vs_limit_tcp1": ("within", 0.1, f"of {TX_LIMIT_MBPS:g} Mbit/s"),
    "ratio_vns_vs_vns_open_tcp1": (">=", 0.95, "x guard off"),
    "ratio_vns_vs_vns_open_udp64": (">=", 0.95, "x guard off"),
    "ratio_vns_lan_vs_vns_lan_open_tcp1": (">=", 0.95, "x guard off"),
    "ratio_vns_lan_vs_vns_lan_open_udp64": (">=", 0.95, "x guard off"),
    # issue 12: traffic back within 250 ms of a new daemon's exec, TCP surviving
    "restart_term_first_reply_s": ("<=", 0.25, "s after exec"),
    "restart_kill_first_reply_s": ("<=", 0.25, "s after exec"),
    "restart_term_tcp_survived_pct": (">=", 100, "% of rounds"),
    "restart_kill_tcp_survived_pct": (">=", 100, "% of rounds"),
    "failover_first_s": ("<=", 0.1, "s after carrier loss"),
    "failover_tcp_survived_pct": (">=", 100, "% of rounds"),
    # issue 25: a multicast stream to 1 partition of 1,000 costs about what unicast costs
    "ratio_mcast_group_vs_unicast": ("<=", 1.25, "x unicast"),    # the CPU a GB costs the whole machine, against the kernel's own paths
    "ratio_vns_vs_veth_cpu_machine": ("<=", 1.5, "x veth"),
    "ratio_vns_lan_vs_macvlan_lan_cpu_machine": ("<=", 1.5, "x macvlan"),
    # lead every userspace peer a container without a bridge gets, on every row
    **{f"ratio_vns_lan_vs_{peer}_{m}": (op, 1.0, f"x {peer}")
       for peer in ("pasta", "slirp4netns")
       for m, op in (("tcp1", ">="), ("tcp4", ">="), ("udp64", ">="), ("ping_idle_p50", "<="),
                     ("ping_load_p99", "<="), ("cpu_machine", "<="))},
}
SECTION_TARGETS = {
    "mcast": ("ratio_mcast_group_vs_unicast",),
    "failover": ("failover_first_s", "failover_tcp_survived_pct"),
    "ring": ("ratio_ring_vs_socketpair_1500B_records", "ring_64KiB_GBps"),
    "net": ("ratio_vns_vs_veth_tcp1", "ratio_vns_lan_vs_macvlan_lan_tcp1", "ratio_vns_vs_veth_tcp4",
            "ratio_vns_lan_vs_macvlan_lan_tcp4", "ratio_vns_vs_veth_udp64", "ratio_vns_vs_veth_ping_idle_p50",
            "ratio_vns_lan_vs_veth_ping_idle_p50", "ratio_vns_lan_vs_vde_ping_idle_p50", "vns_ping_load_p99_us",
            "vns_lan_ping_load_p99_us", "ratio_vns_vs_vde_tcp1",
            "ratio_vns_vs_vde_tcp4", "ratio_vns_vs_vde_ping_idle_p50", "ratio_vns_vs_vde_udp64",
            "ratio_vns_lan_storm_on_vs_off_tcp1", "ratio_vns_lan_storm_on_vs_off_ping_p50",
            "ratio_vns_lan_txlimit_vs_limit_tcp1", "ratio_vns_vs_vns_open_tcp1", "ratio_vns_vs_vns_open_udp64",
            "ratio_vns_lan_vs_vns_lan_open_tcp1", "ratio_vns_lan_vs_vns_lan_open_udp64",
            "ratio_vns_vs_veth_cpu_machine", "ratio_vns_lan_vs_macvlan_lan_cpu_machine",
            *(f"ratio_vns_lan_vs_{peer}_{m}" for peer in ("pasta", "slirp4netns")
              for m in ("tcp1", "tcp4", "udp64", "ping_idle_p50", "ping_load_p99", "cpu_machine"))),
    "scale": ("scale_64_idle_cpu_pct", "create_p50_s", "scale_64_ok", "many_mem_per_partition_MiB",
              "many_idle_cpu_pct", "many_create_p50_s", "ratio_many_create_last10_vs_first10", "ratio_many_ok",
              "apply_create_all_s", "apply_delete_all_s", "apply_idle_cpu_pct"),
    "restart": ("restart_term_first_reply_s", "restart_kill_first_reply_s", "restart_term_tcp_survived_pct",
                "restart_kill_tcp_survived_pct"),
}


def verdict(name: str, value) -> str:
    op, thr, _ = TARGETS[name]
    if value is None:
        return "not measured"
    ok = {">=": value >= thr, "<": value < thr, "<=": value <= thr, "within": abs(value - 1) <= thr}[op]
    return "met" if ok else "NOT MET"


def target_unit(op: str, thr: float, what: str) -> str:
    return f"within {thr * 100:g} % {what}" if op == "within" else f"{op} {thr:g} {what}"


def fmt(v) -> str:
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100 or float(v).is_integer():
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if a >= 1 else f"{v:.3f}"


def machine_line() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 2**20
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return (f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus ({cpu}), {mem:.0f} GiB, "
            f"kernel {platform.release()}, python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}, load {load}")


NET_METRICS = (
    ("tcp1_Gbps", "TCP 1 stream", "Gbit/s"),
    ("tcp2_Gbps", "TCP 2 streams", "Gbit/s"),
    ("tcp4_Gbps", "TCP 4 streams", "Gbit/s"),
    ("udp64_pps", "UDP 64 B received", "kpps"),
    ("ping_idle_p50_us", "ping idle p50", "us"),
    ("ping_idle_p99_us", "ping idle p99", "us"),
    ("ping_load_p50_us", "ping under TCP p50", "us"),
    ("ping_load_p99_us", "ping under TCP p99", "us"),
    ("ping_load_lost", "ping under TCP lost", "pkts"),
    ("cpu_switch_s_per_GB", "CPU switch procs", "s/GB"),
    ("cpu_machine_s_per_GB", "CPU whole machine", "s/GB"),
    ("cpu_softirq_s_per_GB", "  of which softirq", "s/GB"),
    # storm: the same sender, a neighbour flooding broadcasts (on) or not (off)
    ("storm_off_tcp1_Gbps", "TCP, no storm", "Gbit/s"),
    ("storm_on_tcp1_Gbps", "TCP, storm", "Gbit/s"),
    ("storm_off_ping_p50_us", "ping p50, no storm", "us"),
    ("storm_on_ping_p50_us", "ping p50, storm", "us"),
    ("storm_off_ping_p99_us", "ping p99, no storm", "us"),
    ("storm_on_ping_p99_us", "ping p99, storm", "us"),
    ("storm_on_ping_lost", "ping lost, storm", "pkts"),
    ("storm_sent_pps", "storm frames sent", "kpps"),
    ("storm_dropped_pps", "  storm-limited", "kpps"),
    # capture: the sender's TCP with `vnetshare capture` of it running (on) or not (off)
    ("capture_off_tcp1_Gbps", "TCP, no capture", "Gbit/s"),
    ("capture_on_tcp1_Gbps", "TCP, captured", "Gbit/s"),
    ("capture_frames", "  frames to capture", "pkts"),
    ("capture_lost", "  not captured", "pkts"),
    ("capture_filtered_tcp1_Gbps", "TCP, capture filtered by 'icmp'", "Gbit/s"),
    ("capture_filtered_frames", "  refused by the filter", "pkts"),
    ("txlimit_tcp1_Mbps", "TCP, --tx-limit 200mbit", "Mbit/s"),
    ("txlimit_uplink_Mbps", "  bytes out the uplink", "Mbit/s"),
)


def print_net(rows: list[dict], plan: Plan) -> None:
    by = {r["name"]: r["value"] for r in rows}

    def has(p: str) -> bool:
        return any(owner(n) == p for n in by)

    paths = [p for p in PATHS if has(p)]
    print(f"# net: median of {plan.reps} run(s); iperf3 {plan.seconds:g} s, {plan.pings} pings 10 ms apart")
    if DAEMON_ARGS:
        print(f"# vnetshare daemon {' '.join(DAEMON_ARGS)}")
    w = max(len(x[1]) for x in NET_METRICS)
    cw = max([12] + [len(p) + 2 for p in paths])
    print(f"{'workload':<{w}}  {'unit':<6}" + "".join(f"{p:>{cw}}" for p in paths))
    for metric, label, unit in NET_METRICS:
        cells = []
        for p in paths:
            v = by.get(f"{key(p)}_{metric}")
            if v is not None and unit == "kpps":
                v = v / 1000
            cells.append(fmt(v))
        if any(c != "-" for c in cells):
            print(f"{label:<{w}}  {unit:<6}" + "".join(f"{c:>{cw}}" for c in cells))
    for r in rows:
        if r["unit"] == "note":
            print(f"# {owner(r['name'])}: not measured: {r['value']}")
    ratios = [r for r in rows if r["name"].startswith("ratio_")]
    if ratios:
        print("# ratios (same run)")
        for r in ratios:
            print(f"{r['name']:<44} {fmt(r['value']):>10} x")


def print_scale(rows: list[dict], plan: Plan) -> None:
    by = {r["name"]: r["value"] for r in rows}
    print(f"# scale: vnetshare, every partition one TCP stream to the LAN host ({plan.seconds:g} s window, "
          f"median of {plan.reps}); idle over {plan.idle_seconds:g} s, {plan.idle_settle:g} s after the last create")
    print(f"{'partitions':>10}  {'aggregate Gbit/s':>16}  {'idle CPU % of a core':>20}  {'working':>8}")
    for n in plan.levels:
        print(f"{n:>10}  {fmt(by.get(f'scale_{n}_tcp_Gbps')):>16}  "
              f"{fmt(by.get(f'scale_{n}_idle_cpu_pct')):>20}  {fmt(by.get(f'scale_{n}_ok')):>8}")
    if "create_p50_s" in by:
        print(f"create a partition: p50 {by['create_p50_s']:.3f} s, p99 {by['create_p99_s']:.3f} s "
              f"(control request); whole CLI command p50 {fmt(by.get('create_cli_p50_s'))} s")
    if "mem_per_partition_MiB" in by:
        print(f"memory per partition: {by['mem_per_partition_MiB']:.1f} MiB = agent PSS "
              f"{by['mem_agent_pss_MiB']:.1f} + daemon growth {by['mem_daemon_growth_MiB']:.2f} + ring pages "
              f"{by['mem_rings_MiB']:.2f} (of {by['mem_rings_size_MiB']:.1f} MiB of rings); "
              f"agent RSS without rings {by['mem_agent_rss_MiB']:.1f} MiB")
    if "many_partitions" in by:
        print(f"many: {fmt(by['many_partitions'])} partitions at once, {fmt(by.get('many_ok'))} reached the LAN "
              f"host and a peer; idle CPU {fmt(by.get('many_idle_cpu_pct'))} % of a core; memory "
              f"{fmt(by.get('many_mem_per_partition_MiB'))} MiB a partition (MemAvailable); create p50 "
              f"{fmt(by.get('many_create_p50_s'))} s (first ten {fmt(by.get('many_create_first10_p50_s'))}, "
              f"last ten {fmt(by.get('many_create_last10_p50_s'))}); all deleted in "
              f"{fmt(by.get('many_delete_all_s'))} s")
        n = int(by["many_partitions"])
        print(f"many: first to second partition, UDP 64 B {fmt(by.get('many_udp64_2_pps'))} pps and ping p50 "
              f"{fmt(by.get('many_ping_2_p50_us'))} us with 2 partitions; {fmt(by.get(f'many_udp64_{n}_pps'))} pps "
              f"and {fmt(by.get(f'many_ping_{n}_p50_us'))} us with {n} ({fmt(by.get('ratio_many_udp64_vs_2'))} x)")
    if "apply_create_all_s" in by:
        print(f"apply: {fmt(by.get('apply_created'))} partitions made by one `apply` in "
              f"{fmt(by['apply_create_all_s'])} s; idle 15 s after: daemon + agents "
              f"{fmt(by.get('apply_idle_cpu_pct'))} % of a core, the whole machine "
              f"{fmt(by.get('apply_idle_machine_cpu_pct'))} %; all deleted by `apply --prune` in "
              f"{fmt(by.get('apply_delete_all_s'))} s")


def print_restart(rows: list[dict], plan: Plan) -> None:
    by = {r["name"]: r["value"] for r in rows}
    print(f"# restart: the daemon ended (SIGTERM, or SIGKILL) and a new one started on its state; pings every "
          f"10 ms, a TCP stream across; median of {plan.reps}; times from the new daemon's exec")
    print(f"{'kind':<6}  {'first reply s':>13}  {'p2p s':>6}  {'lan s':>6}  {'gap p2p s':>9}  {'gap lan s':>9}  "
          f"{'kill->reply s':>13}  {'answers s':>9}  {'TCP survived':>12}  {'MB after':>8}")
    for kind in ("term", "kill"):
        k = f"restart_{kind}_"
        if k + "tcp_survived_pct" not in by:
            continue
        print(f"{kind:<6}  {fmt(by.get(k + 'first_reply_s')):>13}  {fmt(by.get(k + 'p2p_first_s')):>6}  "
              f"{fmt(by.get(k + 'lan_first_s')):>6}  {fmt(by.get(k + 'p2p_gap_s')):>9}  "
              f"{fmt(by.get(k + 'lan_gap_s')):>9}  {fmt(by.get(k + 'kill_s')):>13}  {fmt(by.get(k + 'ready_s')):>9}  "
              f"{fmt(by.get(k + 'tcp_survived_pct')) + ' %':>12}  {fmt(by.get(k + 'tcp_after_MB')):>8}")
    if "restart_many_partitions" in by:
        print(f"many: SIGKILL with {fmt(by['restart_many_partitions'])} partitions: first reply "
              f"{fmt(by.get('restart_many_first_reply_s'))} s after exec (the last partition made: "
              f"{fmt(by.get('restart_many_last_first_reply_s'))} s), control socket answering after "
              f"{fmt(by.get('restart_many_ready_s'))} s, {fmt(by.get('restart_many_adopted'))} adopted")


def target_rows(rows: list[dict], sections: list[str]) -> list[dict]:
    by = {r["name"]: r["value"] for r in rows}
    out = []
    for s in sections:
        for name in SECTION_TARGETS.get(s, ()):
            op, thr, what = TARGETS[name]
            out.append({"name": f"target_{name}", "value": verdict(name, by.get(name)),
                        "unit": target_unit(op, thr, what), "measured": by.get(name)})
    return out


def print_targets(targets: list[dict]) -> None:
    print("# targets (ratios from this run)")
    w = max(len(t["name"]) for t in targets) - len("target_")
    for t in targets:
        print(f"{t['name'][len('target_'):]:<{w}}  {fmt(t['measured']):>10}   target {t['unit']:<30} {t['value']}")


def print_table(title: str, rows: list[dict]) -> None:
    print(f"# {title}")
    print(f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        target = TARGETS.get(r["name"])
        mark = ""
        if target:
            mark = f"   target {target_unit(*target)}: {verdict(r['name'], r['value'])}"
        print(f"{r['name']:<{width}}  {r['value']:>14,}  {r['unit']:<10}{mark}")
