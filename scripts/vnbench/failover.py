"""failover: how long traffic stops when the uplink loses its carrier, and
how long announcing 1,000 partitions takes.

The test's topology (tests/netns/test_failover.py): a LAN namespace whose
bridge has a port to each of two veth NICs, vnb-up (the daemon's --uplink)
and vnb-bk (its --backup-uplink, --failback always). One partition,
vnb-fa, pings the LAN host every 10 ms and sends it a TCP stream (iperf3).
In each round the LAN's end of vnb-up is set down (carrier loss: the clock
starts just before), then up again a second later (failback), and per
round:
  first reply   carrier loss -> the first ping reply after it
  gap           the longest stretch without a reply around the move
  move          carrier loss -> the daemon's uplink.failover event
  announced     the daemon's announcement of its partitions (its event)
and whether the TCP stream survived every round. The medians go out.

Announcing 1,000 partitions is measured on the announcer itself
(linux/announce.py send_paced(), the daemon's code) with 1,000 synthetic
partitions (3 frames each: a gratuitous ARP, an NA for an address, one
for the link-local address) written on vnb-bk, into the LAN's bridge:
creating 1,000 real partitions takes minutes, and the daemon announces
exactly this list (Daemon.announcements()).
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import time

from vnetshare.linux.probe import netns_cmd

from .common import BenchError, Plan, die_with_parent, say, stop
from .measure import IperfServer, wait_reachable, wait_servers
from .paths import DAEMON_ARGS, LAN_V4, VNS_LAN_NS, VNS_UPLINK, Made, create_partition, delete_partition
from .restart import _collect, _pinger, _tcp

BACKUP = "vnb-bk"
PORT_P, PORT_B = "vnb-lp", "vnb-lb"
LAN_MAC = "02:00:5e:00:53:01"
PA = ("vnb-fa", "198.18.0.41")
PORT = 5490
BEFORE_S, AFTER_S = 1.0, 1.5
MANY = 1000


def _ip(*argv: str) -> None:
    r = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30)
    if r.returncode:
        raise BenchError(f"ip {' '.join(argv)}: {r.stderr.strip()}")


def start_failover(made: Made) -> None:
    """The topology of the module's docstring, the daemon on it."""
    from vnetshare.frontends.lab import LabError, start_daemon

    os.makedirs(made.tmp, mode=0o700, exist_ok=True)  # Made.close() of an earlier section removed it
    made.ns(VNS_LAN_NS)
    _ip("-n", VNS_LAN_NS, "link", "add", "br0", "address", LAN_MAC, "type", "bridge")
    for nic, port in ((VNS_UPLINK, PORT_P), (BACKUP, PORT_B)):
        made.root_link(nic)
        made.nsmod.veth_pair(nic, port, None, VNS_LAN_NS)
        _ip("-n", VNS_LAN_NS, "link", "set", port, "master", "br0", "up")
        made.nsmod.link_set(nic, None, up=True)
    made.nsmod.link_set("br0", VNS_LAN_NS, up=True)
    made.nsmod.add_address("br0", f"{LAN_V4}/24", VNS_LAN_NS, nodad=True)
    made.nsmod.add_address("br0", "fd00:5e::1/64", VNS_LAN_NS, nodad=True)
    made.sock = os.path.join(made.tmp, "control.sock")
    try:
        made.daemon = start_daemon(made.sock, VNS_UPLINK, made.tmp, os.path.join(made.tmp, "daemon.log"),
                                   ("--backup-uplink", BACKUP, "--failback", "always", *DAEMON_ARGS), timeout=20,
                                   preexec_fn=die_with_parent)
    except LabError as e:
        raise BenchError(str(e)) from None


def _events(made: Made, kind: str, after: float) -> list[dict]:
    from vnetshare.frontends.client import call

    return [e for e in call(made.sock, "events", follow=False, timeout=30)["events"]
            if e["event"] == kind and e["time"] >= after]


def _wait_event(made: Made, kind: str, after: float, timeout: float = 5.0) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _events(made, kind, after)
        if got:
            return got[0]
        time.sleep(0.05)
    return None


def _round(made: Made) -> dict:
    seconds = BEFORE_S + AFTER_S + 1
    ping = _pinger(made, LAN_V4, seconds, ns=PA[0])
    out = os.path.join(made.tmp, "iperf3-failover.json")
    t_client = time.time()
    with open(out, "wb") as f:
        client = made.proc(netns_cmd(PA[0], ["iperf3", "-c", LAN_V4, "-p", str(PORT), "-t", f"{seconds:.0f}",
                                             "-i", "0.1", "-J"]), stdout=f, stderr=subprocess.STDOUT)
    time.sleep(BEFORE_S)
    t0 = time.time()
    made.nsmod.link_set(PORT_P, VNS_LAN_NS, up=False)
    moved = _wait_event(made, "uplink.failover", t0)
    announced = _wait_event(made, "uplink.announced", t0)
    stamps = _collect(ping, seconds)
    try:
        client.wait(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        stop(client)
    t1 = time.time()
    made.nsmod.link_set(PORT_P, VNS_LAN_NS, up=True)
    back = _wait_event(made, "uplink.failback", t1)
    made.forget_ended()
    after = [t for t in stamps if t > t0]
    near = [t for t in stamps if t0 - 0.5 <= t <= t0 + 1.0]
    got = {"first_s": after[0] - t0 if after else None,
           "gap_s": max((b - a for a, b in zip(near, near[1:])), default=None),
           "move_s": moved["time"] - t0 if moved else None,
           "announce_ms": announced["ms"] if announced else None,
           "failback_s": back["time"] - t1 if back else None}
    got["tcp_ok"], _ = _tcp(out, client.returncode, t0 + 0.5 - t_client)
    return got


def announce_many(n: int = MANY) -> tuple[float, int]:
    """send_paced() of @n synthetic partitions' announcements on BACKUP:
    (seconds, frames sent)."""
    from vnetshare.dataplane.guard import link_local
    from vnetshare.linux import announce

    todo: list[bytes] = []
    for i in range(n):
        mac = f"02:5e:00:00:{i >> 8:02x}:{i & 0xff:02x}"
        todo += announce.frames(mac, [f"198.19.{i >> 8}.{i & 0xff}", f"fd00:5e::4:{i:x}", str(link_local(mac))])
    t0 = time.perf_counter()
    sent, _ = asyncio.run(announce.send_paced(BACKUP, todo))
    return time.perf_counter() - t0, sent


def bench_failover(made: Made, plan: Plan, errors: list[str]) -> list[dict]:
    start_failover(made)
    rows: list[dict] = []

    def row(name: str, value, unit: str) -> None:
        rows.append({"name": name, "value": value, "unit": unit})

    create_partition(made, *PA)
    wait_reachable(PA[0], LAN_V4)
    server = IperfServer(made, VNS_LAN_NS, LAN_V4, PORT)
    got: list[dict] = []
    try:
        wait_servers([server])
        for rep in range(plan.reps):
            say(f"failover: round {rep + 1}/{plan.reps}")
            got.append(_round(made))
            time.sleep(0.5)
    finally:
        stop(server.p)
        made.forget_ended()
    for metric, unit in (("first_s", "s"), ("gap_s", "s"), ("move_s", "s"), ("announce_ms", "ms"),
                         ("failback_s", "s")):
        vals = [g[metric] for g in got if g.get(metric) is not None]
        if len(vals) < len(got):
            errors.append(f"failover: {metric}: missing in {len(got) - len(vals)} of {len(got)} rounds")
        if vals:
            row(f"failover_{metric}", round(statistics.median(vals), 4 if unit == "s" else 1), unit)
    if got:
        row("failover_tcp_survived_pct", round(100 * sum(g["tcp_ok"] for g in got) / len(got)), "% of rounds")
    seconds, sent = announce_many()
    row("failover_announce_1000_s", round(seconds, 3), "s")
    row("failover_announce_1000_frames", sent, "frames")
    say("failover rounds: " + json.dumps(got))
    delete_partition(made, PA[0])
    return rows
