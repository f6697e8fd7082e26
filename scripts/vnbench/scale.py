"""scale: vnetshare only, with more and more partitions.

At each level: whether every partition reaches the LAN host, the CPU of
daemon + agents while idle, and the aggregate TCP throughput of one iperf3
stream per partition to its own server on the LAN host (bytes leaving the
uplink over a window). Then the time to create a partition (the control
request, and the whole `vnetshare partition create` command) and the memory
a partition costs (agent PSS, daemon growth, ring memfd pages).

Then many (issue 12: 1,000; --many N): that many partitions at once, IPv6
only (fd00:5e::1:N/64, on the LAN host's link), each pinging the LAN host
and another partition; the create time of the first ten and of the last
ten; the idle CPU of daemon + agents; MemAvailable before and after,
divided by their number (what a partition costs the machine, kernel
included); UDP 64 B (iperf3) and ping p50 between the first two partitions
when they are the only two and again among all N (the MAC table, the
rounds and floods at N ports); the time to delete them all. Then the same
number made by one `vnetshare apply` request (the time it took), the idle
CPU of daemon + agents and of the machine 15 s after it answered, and all
deleted by one `apply --prune` of none.

Partitions are checked in pairs (2k and 2k+1 ping each other, and each
pings the LAN host) and in waves of at most REACH_WAVE partitions, each
wave after the last one's neighbour entries can be collected: the kernel's
neighbour tables are one per host, shared by every namespace, an entry is
held while REACHABLE (up to 1.5 x base_reachable_time, 45 s by default) and
collected 5 s after it turned STALE, and past gc_thresh3 (1,024 entries by
default) with none to collect a new neighbour fails ("neighbor table
overflow") whatever carries the frames: a veth or a bridge does the same.
A pair and the LAN host leave three entries a partition. All at once, 747
of 1,000 reached; in waves of 200 five seconds apart, 831 (2026-11-29).
"""
from __future__ import annotations

import re
import statistics
import subprocess
import time

from vnetshare.linux import procs
from vnetshare.linux.probe import iperf3, ping

from .common import BenchError, Plan, say, stop
from .measure import (IperfClient, IperfServer, link_counter, machine_cpu, mem_kib, pct, ping_times, proc_cpu,
                      ring_memfds, wait_servers)
from .paths import (LAN_V4, VNS_LAN_NS, VNS_UPLINK, Made, create_idle, create_partition, delete_partition,
                    start_vns, vns_pids)

LAN_V6 = "fd00:5e::1"  # the LAN host (start_vns)
REACH_WAVE = 250       # partitions checked at once: 3 neighbour entries each, under gc_thresh3


def bench_scale(made: Made, plan: Plan, errors: list[str]) -> list[dict]:
    from vnetshare.frontends.client import DaemonError, DaemonUnreachable

    if made.daemon is None:
        start_vns(made)
    for name in list(made.partitions):  # net's partitions: scale counts its own
        try:
            delete_partition(made, name)
        except DaemonError as e:  # one net failed to create: its error is counted already
            say(f"scale: {name}: {e}")
    time.sleep(0.5)
    base = mem_kib(made.daemon.pid)
    rows: list[dict] = []
    creates: list[float] = []
    have: list[str] = []
    bad: set[str] = set()

    def row(name: str, value, unit: str) -> None:
        rows.append({"name": name, "value": value, "unit": unit})

    for level in plan.levels:
        new = []
        for i in range(len(have), level):
            name = f"vnb-s{i}"
            try:
                creates.append(create_partition(made, name, f"198.18.0.{100 + i}"))
                have.append(name)
                new.append(name)
            except (BenchError, OSError, DaemonUnreachable) as e:
                errors.append(f"scale: {e}")
                bad.add(name)
        say(f"scale: {len(have)} partitions")
        for name in new:
            r = ping(name, LAN_V4, count=1, timeout=2)
            if not r.received:
                r = ping(name, LAN_V4, count=2, timeout=2)
            if not r.received:
                errors.append(f"scale: {name}: LAN host unreachable")
                bad.add(name)
        # idle: nothing moves; daemon + agents should sleep (after the new
        # partitions' IPv6 start-up chatter: router solicitations, MLD)
        time.sleep(plan.idle_settle)
        pids = vns_pids(made)
        c0, t0 = proc_cpu(pids), time.monotonic()
        time.sleep(plan.idle_seconds)
        c1, t1 = proc_cpu(pids), time.monotonic()
        row(f"scale_{level}_idle_cpu_pct", round((c1 - c0) / (t1 - t0) * 100, 2), "% of a core")
        # aggregate: one TCP stream per partition to its own server on the LAN host
        servers = [IperfServer(made, VNS_LAN_NS, LAN_V4, 5300 + i) for i in range(len(have))]
        agg = []
        try:
            wait_servers(servers, timeout=30)
            for rep in range(plan.reps):
                say(f"scale: {len(have)} streams ({rep + 1}/{plan.reps})")
                dur = plan.seconds + 3
                clients = [IperfClient(made, name, LAN_V4, 5300 + i, dur) for i, name in enumerate(have)]
                time.sleep(2.0)  # every client connected and ramped up
                b0, w0 = link_counter(VNS_UPLINK, "tx_bytes"), time.monotonic()
                time.sleep(plan.seconds)
                b1, w1 = link_counter(VNS_UPLINK, "tx_bytes"), time.monotonic()
                deadline = time.monotonic() + dur + 30
                for name, c in zip(have, clients):
                    try:
                        if not c.result(deadline):
                            raise BenchError("no bytes")
                    except BenchError as e:
                        errors.append(f"scale: {name} stream: {e}")
                        bad.add(name)
                made.forget_ended()
                agg.append((b1 - b0) * 8 / (w1 - w0) / 1e9)
        except BenchError as e:
            errors.append(f"scale: {level}: {e}")
        finally:
            for s in servers:
                stop(s.p)
            made.forget_ended()
        if agg:
            row(f"scale_{level}_tcp_Gbps", round(statistics.median(agg), 3), "Gbit/s")
        row(f"scale_{level}_ok", level - len(bad), "partitions")

    # memory per partition, at the top level, after its traffic
    n = len(have)
    if n:
        agents = made.agent_pids()
        am = [mem_kib(p) for p in agents]
        dm = mem_kib(made.daemon.pid)
        agent_pss = statistics.mean(m.get("Pss_Anon", 0) + m.get("Pss_File", 0) for m in am) / 1024
        agent_rss = statistics.mean(m.get("RssAnon", 0) + m.get("RssFile", 0) for m in am) / 1024
        # anonymous memory only: the daemon's PSS of shared files shrinks as
        # more agents share the same interpreter and libraries
        growth = (dm.get("RssAnon", 0) - base.get("RssAnon", 0)) / 1024 / n
        count, alloc, size = ring_memfds(made.daemon.pid)
        rings = alloc / 2**20 / n
        row("mem_agent_pss_MiB", round(agent_pss, 2), "MiB")
        row("mem_agent_rss_MiB", round(agent_rss, 2), "MiB")
        row("mem_daemon_growth_MiB", round(growth, 2), "MiB")
        row("mem_rings_MiB", round(rings, 2), "MiB")
        row("mem_rings_size_MiB", round(size / 2**20 / n, 2), "MiB")
        row("mem_per_partition_MiB", round(agent_pss + growth + rings, 2), "MiB")
    if creates:
        row("create_p50_s", round(statistics.median(creates), 3), "s")
        row("create_p99_s", round(pct(creates, 99), 3), "s")
    # the whole CLI command, as a user times it (interpreter start included)
    cli = []
    for _ in range(plan.cli_creates):
        made.partitions.append("vnb-cli")
        t0 = time.perf_counter()
        r = subprocess.run(procs.python_argv("vnetshare", "--socket", made.sock, "partition", "create",
                            "vnb-cli", "--ip", "198.18.0.250/24"), capture_output=True, text=True, timeout=60)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            errors.append(f"scale: vnetshare partition create: {r.stderr.strip()}")
            made.partitions.remove("vnb-cli")
            break
        cli.append(dt)
        try:
            delete_partition(made, "vnb-cli")
        except (DaemonError, DaemonUnreachable) as e:
            errors.append(f"scale: partition delete: {e}")
            break
    if cli:
        row("create_cli_p50_s", round(statistics.median(cli), 3), "s")
    for name in list(have):
        try:
            delete_partition(made, name)
        except (DaemonError, DaemonUnreachable) as e:
            errors.append(f"scale: partition delete {name}: {e}")
    if plan.many:
        rows += bench_many(made, plan, errors)
    return rows


def _neigh_hold_s() -> float:
    """Seconds until a neighbour entry confirmed now can be collected: its
    longest REACHABLE time (1.5 x base_reachable) + the 5 s of neigh_forced_gc."""
    out = subprocess.run(["ip", "-s", "ntable", "show", "name", "ndisc_cache"], capture_output=True,
                         text=True, timeout=10).stdout
    m = re.search(r"base_reachable (\d+)", out)
    return 1.5 * (int(m.group(1)) if m else 30000) / 1000 + 5


def _mem_available_kib() -> int:
    with open("/proc/meminfo") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("MemAvailable:"))


def bench_many(made: Made, plan: Plan, errors: list[str]) -> list[dict]:
    """plan.many partitions at once (see the module's docstring)."""
    from concurrent.futures import ThreadPoolExecutor

    from vnetshare.frontends.client import DaemonError, DaemonUnreachable

    n = plan.many
    rows: list[dict] = []

    def row(name: str, value, unit: str) -> None:
        rows.append({"name": name, "value": value, "unit": unit})

    def addr(i: int) -> str:
        return f"fd00:5e::1:{i:x}"

    def pair(label: str) -> None:
        """UDP 64 B and ping from the first partition to the second, now."""
        src, dst = names[0], addr(1)
        try:
            r = iperf3(names[1], src, dst, seconds=plan.seconds, udp_len=64)
            if not r.ok:
                raise BenchError(f"iperf3: {r.error}")
            row(f"many_udp64_{label}_pps", round(r.received_packets / plan.seconds), "pps")
            t, _ = ping_times(src, dst, plan.pings)
            row(f"many_ping_{label}_p50_us", round(statistics.median(t), 1), "us")
        except BenchError as e:
            errors.append(f"many: {label} partitions, {src} -> {dst}: {e}")

    time.sleep(1.0)
    before = _mem_available_kib()
    creates: list[float] = []
    t_all = time.monotonic()
    # the first two alone first: their UDP and ping before the rest exist
    names = create_idle(made, ["vnb-m0", "vnb-m1"], lambda i: f"{addr(i)}/64", errors, "many", creates)
    t_pair = 0.0
    if len(names) == 2:
        t0 = time.monotonic()
        pair("2")
        t_pair = time.monotonic() - t0
        names += create_idle(made, [f"vnb-m{i}" for i in range(2, n)], lambda i: f"{addr(i + 2)}/64",
                             errors, "many", creates)
    say(f"many: {len(names)} partitions in {time.monotonic() - t_all - t_pair:.0f} s")

    def reach(i: int) -> bool:
        peer = i ^ 1 if (i ^ 1) < len(names) else (i + 1) % len(names)
        for dst in (LAN_V6, addr(peer)):
            if not any(ping(names[i], dst, count=1, timeout=2).received for _ in range(3)):
                return False
        return True

    ok: list[bool] = []
    with ThreadPoolExecutor(max_workers=16) as pool:
        for start in range(0, len(names), REACH_WAVE):  # see the module's docstring
            if start:  # the last wave's entries stale and collectable
                time.sleep(_neigh_hold_s())
            ok += pool.map(reach, range(start, min(start + REACH_WAVE, len(names))))
    unreachable = [names[i] for i, good in enumerate(ok) if not good]
    if unreachable:
        errors.append(f"many: {len(unreachable)} partitions did not reach the LAN host and a peer, "
                      f"first {unreachable[0]}")
    time.sleep(plan.idle_settle)
    pids = vns_pids(made)
    c0, t0 = proc_cpu(pids), time.monotonic()
    time.sleep(plan.idle_seconds)
    c1, t1 = proc_cpu(pids), time.monotonic()
    after = _mem_available_kib()
    if len(names) > 2:
        pair(str(len(names)))
        a, b = (next((r["value"] for r in rows if r["name"] == f"many_udp64_{k}_pps"), None)
                for k in ("2", str(len(names))))
        if a and b:
            row("ratio_many_udp64_vs_2", round(b / a, 3), "x")
    row("many_partitions", len(names), "partitions")
    row("many_ok", len(names) - len(unreachable), "partitions")
    if names:
        row("ratio_many_ok", round((len(names) - len(unreachable)) / len(names), 3), "x")
    row("many_idle_cpu_pct", round((c1 - c0) / (t1 - t0) * 100, 2), "% of a core")
    if names:
        row("many_mem_per_partition_MiB", round((before - after) / 1024 / len(names), 2), "MiB")
    if len(creates) >= 20:
        first, last = statistics.median(creates[:10]), statistics.median(creates[-10:])
        row("many_create_p50_s", round(statistics.median(creates), 3), "s")
        row("many_create_first10_p50_s", round(first, 3), "s")
        row("many_create_last10_p50_s", round(last, 3), "s")
        row("ratio_many_create_last10_vs_first10", round(last / first, 3), "x")
    t_del = time.monotonic()
    for name in names:
        try:
            delete_partition(made, name)
        except (DaemonError, DaemonUnreachable) as e:
            errors.append(f"many: partition delete {name}: {e}")
    say(f"many: deleted in {time.monotonic() - t_del:.0f} s")
    if names:
        row("many_delete_all_s", round(time.monotonic() - t_del, 1), "s")
    rows += bench_apply(made, plan, errors)
    return rows


APPLY_IDLE_AFTER = 15.0  # s after the last create before the idle CPU is measured


def bench_apply(made: Made, plan: Plan, errors: list[str]) -> list[dict]:
    """plan.many partitions made by one `apply` (the control request the
    CLI sends: one line, the daemon runs the manager's create for each),
    the idle CPU of daemon + agents and of the whole machine from
    APPLY_IDLE_AFTER s after it answered, then all deleted by one `apply
    --prune` of an empty file."""
    from vnetshare.frontends.client import DaemonError, DaemonUnreachable, call

    n = plan.many
    rows: list[dict] = []
    parts = [{"name": f"vnb-m{i}", "ips": [f"fd00:5e::2:{i:x}/64"]} for i in range(n)]
    made.partitions += [p["name"] for p in parts]
    t0 = time.monotonic()
    try:
        ans = call(made.sock, "apply", timeout=60 + n, partitions=parts)
    except (DaemonError, DaemonUnreachable) as e:
        errors.append(f"apply: {n} partitions: {e}")
        return rows
    took = time.monotonic() - t0
    made_now = {d["name"] for d in ans["done"] if d["action"] == "created"}
    for f in ans["failed"][:3]:
        errors.append(f"apply: {f['action']} {f['name']}: {f['error']['message']}")
    made.partitions = [m for m in made.partitions if not m.startswith("vnb-m") or m in made_now]
    say(f"apply: {len(made_now)} partitions in {took:.1f} s")
    row = lambda name, value, unit: rows.append({"name": name, "value": value, "unit": unit})  # noqa: E731
    row("apply_create_all_s", round(took, 2), "s")
    row("apply_created", len(made_now), "partitions")
    time.sleep(APPLY_IDLE_AFTER)
    pids = vns_pids(made)
    c0, (m0, _s0), w0 = proc_cpu(pids), machine_cpu(), time.monotonic()
    time.sleep(plan.idle_seconds)
    c1, (m1, _s1), w1 = proc_cpu(pids), machine_cpu(), time.monotonic()
    row("apply_idle_cpu_pct", round((c1 - c0) / (w1 - w0) * 100, 2), "% of a core")
    row("apply_idle_machine_cpu_pct", round((m1 - m0) / (w1 - w0) * 100, 2), "% of a core")
    t0 = time.monotonic()
    try:
        ans = call(made.sock, "apply", timeout=60 + n, partitions=[], prune=True)
    except (DaemonError, DaemonUnreachable) as e:
        errors.append(f"apply --prune: {e}")
        return rows
    row("apply_delete_all_s", round(time.monotonic() - t0, 2), "s")
    gone = {d["name"] for d in ans["done"] if d["action"] == "deleted"}
    made.partitions = [m for m in made.partitions if m not in gone]
    for f in ans["failed"][:3]:
        errors.append(f"apply --prune: {f['action']} {f['name']}: {f['error']['message']}")
    return rows
