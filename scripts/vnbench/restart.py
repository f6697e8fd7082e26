"""restart: how long traffic stops when the vnetshare daemon is replaced (issue 12).

The lab topology (paths.start_vns: a veth uplink to a LAN namespace, the
daemon on it) with two partitions of its own, vnb-ra and vnb-rb. In each
round: ping every 10 ms from vnb-ra to vnb-rb (p2p) and to the LAN host
(lan), a TCP stream (iperf3) from vnb-rb to the LAN host, all started a
second before the daemon is ended (SIGTERM, waited for; or SIGKILL) and a
new one is started on the same state directory (its exec is the moment
the clock starts: the time just before the Popen). Per kind, the median
over --reps rounds of:
  first reply    exec of the new daemon -> the first ping reply after it
  gap            the longest stretch without a reply, as the pinger saw it
  kill to reply  the signal -> the first reply (restart included)
and for TCP whether the stream survived every round (iperf3 ended with
status 0 and no error) and the bytes it moved from 1 s after the exec to
its end. Then once (SIGKILL) with --many idle partitions more (1,000; 100
with --quick), IPv6 only: the first reply, the first reply of the last
partition made (pinging the LAN host), and when the new daemon answered
on its control socket with every partition adopted.

Everything is made through paths.Made (removed by name and PID); every
child is bounded in time (ping -w, iperf3 -t).
"""
from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import time

from vnetshare.linux.probe import netns_cmd

from .common import BenchError, Plan, die_with_parent, say, stop
from .measure import IperfServer, wait_reachable, wait_servers
from .paths import (DAEMON_ARGS, LAN_V4, VNS_LAN_NS, VNS_UPLINK, Made, create_idle, create_partition,
                    delete_partition, start_vns)

PA, PB = ("vnb-ra", "198.18.0.31"), ("vnb-rb", "198.18.0.32")
KINDS = (("term", signal.SIGTERM), ("kill", signal.SIGKILL))
PORT = 5480
BEFORE_S = 1.0      # traffic runs this long before the daemon is ended
AFTER_S = 3.0       # and this long after the new one was started
LAN_V6 = "fd00:5e::1"  # the LAN host (paths.start_vns)


def _replies(text: str) -> list[float]:
    """Arrival times (Unix) of the replies in `ping -D` output."""
    return [float(t) for t in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", text, re.M)]


def _restart(made: Made, sig: int) -> tuple[float, float, float]:
    """End the daemon with @sig (waited for), start a new one on the same
    state directory; (signal time, exec time, answering time), Unix time."""
    from vnetshare.frontends.lab import LabError, start_daemon

    t_sig = time.time()
    made.daemon.send_signal(sig)
    try:
        made.daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the daemon did not end within 30 s of {signal.Signals(sig).name}") from None
    made.daemon = None
    t_exec = time.time()
    try:
        made.daemon = start_daemon(made.sock, VNS_UPLINK, made.tmp, os.path.join(made.tmp, "daemon.log"),
                                   tuple(DAEMON_ARGS), timeout=60, preexec_fn=die_with_parent)
    except LabError as e:
        raise BenchError(f"the new daemon: {e}") from None
    return t_sig, t_exec, time.time()


def _pinger(made: Made, dst: str, seconds: float, ns: str = PA[0]) -> subprocess.Popen:
    return made.proc(netns_cmd(ns, ["ping", "-D", "-n", "-i", "0.01", "-W", "1", "-w", f"{seconds:.0f}", dst]),
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _collect(p: subprocess.Popen, seconds: float) -> list[float]:
    try:
        out, _ = p.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        stop(p)
        raise BenchError("ping did not end in time") from None
    return _replies(out)


def _first_and_gap(stamps: list[float], t_exec: float) -> tuple[float | None, float | None]:
    after = [t for t in stamps if t > t_exec]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return (after[0] - t_exec if after else None), (max(gaps) if gaps else None)


def _round(made: Made, sig: int, tcp: bool, last: str | None = None) -> dict:
    """One restart with the traffic of the module's docstring; @last: a
    partition that also pings the LAN host (IPv6), path "last"."""
    seconds = BEFORE_S + AFTER_S + 1
    pings = {"p2p": _pinger(made, PB[1], seconds), "lan": _pinger(made, LAN_V4, seconds)}
    if last is not None:
        pings["last"] = _pinger(made, LAN_V6, seconds, ns=last)
    client = None
    t_client = time.time()
    if tcp:
        out = os.path.join(made.tmp, "iperf3-restart.json")
        with open(out, "wb") as f:
            client = made.proc(netns_cmd(PB[0], ["iperf3", "-c", LAN_V4, "-p", str(PORT), "-t", f"{seconds:.0f}",
                                                 "-i", "0.1", "-J"]), stdout=f, stderr=subprocess.STDOUT)
    time.sleep(BEFORE_S)
    t_sig, t_exec, t_ready = _restart(made, sig)
    got: dict = {"ready_s": t_ready - t_exec}
    for path, p in pings.items():
        got[f"{path}_first_s"], got[f"{path}_gap_s"] = _first_and_gap(_collect(p, seconds), t_exec)
    both = (got["p2p_first_s"], got["lan_first_s"])
    got["kill_s"] = None if None in both else (t_exec - t_sig) + max(both)
    if client is not None:
        try:
            client.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            stop(client)
        got["tcp_ok"], got["tcp_after_MB"] = _tcp(out, client.returncode, t_exec + 1.0 - t_client)
    made.forget_ended()
    return got


def _tcp(path: str, status: int | None, after: float) -> tuple[bool, float]:
    """(survived, MB received in the intervals that began @after s into the run)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False, 0.0
    later = sum(i["sum"]["bytes"] for i in data.get("intervals", []) if i["sum"]["start"] >= after)
    return status == 0 and "error" not in data, later / 1e6


def bench_restart(made: Made, plan: Plan, errors: list[str]) -> list[dict]:
    if made.daemon is None:
        start_vns(made)
    rows: list[dict] = []

    def row(name: str, value, unit: str) -> None:
        rows.append({"name": name, "value": value, "unit": unit})

    for name, ip in (PA, PB):
        create_partition(made, name, ip)
    for name, ip in (PA, PB):
        wait_reachable(name, LAN_V4)
    wait_reachable(PA[0], PB[1])
    server = IperfServer(made, VNS_LAN_NS, LAN_V4, PORT)
    try:
        wait_servers([server])
        for kind, sig in KINDS:
            got: list[dict] = []
            for rep in range(plan.reps):
                say(f"restart: {kind} ({rep + 1}/{plan.reps})")
                try:
                    got.append(_round(made, sig, tcp=True))
                except BenchError as e:
                    errors.append(f"restart {kind}: {e}")
                    if made.daemon is None:
                        raise
                    continue
                time.sleep(0.5)
            if not got:
                continue
            for metric, unit in (("p2p_first_s", "s"), ("lan_first_s", "s"), ("p2p_gap_s", "s"),
                                 ("lan_gap_s", "s"), ("kill_s", "s"), ("ready_s", "s"), ("tcp_after_MB", "MB")):
                vals = [g[metric] for g in got if g.get(metric) is not None]
                if len(vals) < len(got) and metric.endswith("first_s"):
                    errors.append(f"restart {kind}: {metric[:3]}: no reply after the restart in "
                                  f"{len(got) - len(vals)} of {len(got)} rounds")
                if vals:
                    row(f"restart_{kind}_{metric}", round(statistics.median(vals), 3), unit)
            firsts = [max(g["p2p_first_s"], g["lan_first_s"]) for g in got
                      if g["p2p_first_s"] is not None and g["lan_first_s"] is not None]
            if firsts:
                row(f"restart_{kind}_first_reply_s", round(statistics.median(firsts), 3), "s")
            row(f"restart_{kind}_tcp_survived_pct", round(100 * sum(g["tcp_ok"] for g in got) / len(got)),
                "% of rounds")
    finally:
        stop(server.p)
        made.forget_ended()
    if plan.many:
        rows += _many(made, plan, errors)
    for name, _ in (PA, PB):
        try:
            delete_partition(made, name)
        except (OSError, BenchError) as e:
            errors.append(f"restart: delete {name}: {e}")
    return rows


def _many(made: Made, plan: Plan, errors: list[str]) -> list[dict]:
    """One SIGKILL round with plan.many idle partitions more."""
    from vnetshare.frontends.client import DaemonError, DaemonUnreachable, call

    t0 = time.monotonic()
    names = create_idle(made, [f"vnb-rm{i}" for i in range(plan.many)], lambda i: f"fd00:5e::3:{i:x}/64",
                        errors, "restart many")
    say(f"restart: {len(names) + 2} partitions in {time.monotonic() - t0:.0f} s; restarting (kill)")
    rows = []
    try:
        got = _round(made, signal.SIGKILL, tcp=False, last=names[-1] if names else None)
        served = call(made.sock, "partition.list", timeout=60)["partitions"]
        rows = [{"name": "restart_many_partitions", "value": len(names) + 2, "unit": "partitions"},
                {"name": "restart_many_adopted", "value": sum(p["agent"].startswith("running") for p in served),
                 "unit": "partitions"},
                {"name": "restart_many_ready_s", "value": round(got["ready_s"], 3), "unit": "s"}]
        if got["p2p_first_s"] is not None and got["lan_first_s"] is not None:
            rows.append({"name": "restart_many_first_reply_s",
                         "value": round(max(got["p2p_first_s"], got["lan_first_s"]), 3), "unit": "s"})
        else:
            errors.append("restart many: no reply after the restart")
        if got.get("last_first_s") is not None:
            rows.append({"name": "restart_many_last_first_reply_s", "value": round(got["last_first_s"], 3),
                         "unit": "s"})
    except (BenchError, DaemonError, DaemonUnreachable) as e:
        errors.append(f"restart many: {e}")
    for name in names:
        try:
            delete_partition(made, name)
        except (DaemonError, DaemonUnreachable) as e:
            errors.append(f"restart many: delete {name}: {e}")
    return rows
