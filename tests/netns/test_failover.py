"""Uplink failover: `vnetshare daemon --uplink vsu0 --backup-uplink vsu1`, as a user sees it.

    host (daemon)                 vst-lan (the LAN)
    vsu0 (primary) ──veth── lanp ─┐
                                  br0  198.18.0.1, fd00:5e::1 (the LAN host)
    vsu1 (backup)  ──veth── lanb ─┘

The LAN is a Linux bridge with a port to each of the host's NICs. Carrier
loss is the LAN's end of a veth set down (the host's end then has no
carrier, as a NIC whose cable is pulled). Everything is watched through
the CLI (`events --follow`, `status`, `stats`), the LAN bridge's FDB, ping,
iperf3 and captures on the LAN's ports.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time

import pytest
from scapy.layers.l2 import ARP, Dot1Q, Ether

from vnetshare.linux import netns
from vnetshare.linux.probe import netns_cmd, ping

from dataplane_helpers import Capture
from system import A, B, LAN_NS, LAN_V4, LAN_V6, UPLINK, System, wait_for
from test_events import Follower
from test_follow import Pinger
from test_metrics import free_port, scrape, value

BACKUP = "vsu1"
PORT_P, PORT_B = "lanp", "lanb"  # the LAN bridge's ports to the primary and to the backup
C = ("pc", "198.18.0.13", "fd00:5e::13")  # sends nothing: only the announcements move it
LAN_MAC = "02:00:5e:00:53:01"
HOLD = 2.0
LOSS_MAX = 50  # pings of 10 ms lost over a move: 0.5 s (the bench measures the gap itself)
SEQ = re.compile(r"icmp_seq=(\d+)")


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


class FailoverSystem(System):
    """system.System on the topology above (its LAN host is br0)."""

    def __init__(self, tmp_path):
        self.dir = str(tmp_path)
        self.sock = os.path.join(self.dir, "control.sock")
        self.state_dir = self.dir
        self.runtime_dir = None
        self.state_path = os.path.join(self.state_dir, "state.json")
        self.daemon = None
        self.log_path = os.path.join(self.dir, "daemon.log")
        netns.create(LAN_NS)
        netns.lo_up(LAN_NS)
        # the LAN host's MAC is its own: a bridge's default is its ports'
        # lowest, which changes when the backup's veth goes
        ip("-n", LAN_NS, "link", "add", "br0", "address", LAN_MAC, "type", "bridge")
        for nic, port in ((UPLINK, PORT_P), (BACKUP, PORT_B)):
            netns.veth_pair(nic, port, None, LAN_NS)
            ip("-n", LAN_NS, "link", "set", port, "master", "br0", "up")
            netns.link_set(nic, None, up=True)
        netns.link_set("br0", LAN_NS, up=True)
        netns.add_address("br0", f"{LAN_V4}/24", LAN_NS, nodad=True)
        netns.add_address("br0", f"{LAN_V6}/64", LAN_NS, nodad=True)

    def close(self) -> None:
        try:
            super().close()
        finally:
            netns.quietly(netns.delete_link, BACKUP)

    def port_of(self, mac: str) -> str | None:
        """The LAN bridge's port that has learned @mac (`bridge fdb`)."""
        out = subprocess.run(["bridge", "-n", LAN_NS, "-j", "fdb", "show", "br", "br0"], capture_output=True,
                             text=True, check=True, timeout=30).stdout
        return next((e.get("ifname") for e in json.loads(out) if e["mac"] == mac.lower()
                     and "permanent" not in e.get("state", "")), None)

    def status(self) -> dict:
        """`vnetshare status --json` (exit 1 while degraded: an uplink down)."""
        return json.loads(self.cli("status", "--json", check=False).stdout)

    def carrier(self, port: str, up: bool) -> None:
        """The LAN's end of a NIC's veth up or down: that NIC's carrier."""
        netns.link_set(port, LAN_NS, up=up)


@pytest.fixture
def fo(tmp_path, request):
    s = FailoverSystem(tmp_path)
    s.metrics_port = free_port()
    try:
        s.start_daemon("--backup-uplink", BACKUP, "--metrics", f"127.0.0.1:{s.metrics_port}",
                       *getattr(request, "param", ("--failback-hold", str(HOLD))))
        for name, v4, v6 in (A, B, C):
            s.create(name, "--ip", f"{v4}/24", "--ip", f"{v6}/64", "--gateway", LAN_V4)
        yield s
    finally:
        s.close()
    assert netns.names() == [], f"namespaces left behind: {netns.names()}"


def since(f: Follower, seen: int, pred, timeout: float = 10.0) -> dict | None:
    """The first event after the first @seen that satisfies @pred."""
    return wait_for(lambda: next((e for e in f.events[seen:] if pred(e)), None), timeout=timeout)


def lost(lines: list[str]) -> int:
    seqs = {int(m.group(1)) for line in lines if "bytes from" in line for m in [SEQ.search(line)] if m}
    return max(seqs) - min(seqs) + 1 - len(seqs) if seqs else -1


class Stream:
    """An iperf3 TCP stream from a partition to the LAN host, in the background."""

    def __init__(self, ns: str, seconds: int):
        self.server = subprocess.Popen(netns_cmd(LAN_NS, ["iperf3", "-s", "-1", "--forceflush", "-B", LAN_V4, "-p", "5211"]),
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert "listening" in (self.server.stdout.readline() or "") + self.server.stdout.readline()
        self.client = subprocess.Popen(netns_cmd(ns, ["iperf3", "-c", LAN_V4, "-p", "5211", "-t", str(seconds),
                                                      "-i", "0.5", "-J"]),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self._t = threading.Thread(target=lambda: self.out.append(self.client.communicate(timeout=60)[0]),
                                   daemon=True)
        self._t.start()

    def result(self) -> dict:
        self._t.join(timeout=60)
        for p in (self.client, self.server):
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        return json.loads(self.out[0])


def move(fo, f: Follower, action, kind: str, to: str, port: str) -> dict:
    """Do @action under a 10 ms ping and a TCP stream; then the event @kind
    to @to came, the ping lost at most LOSS_MAX, the stream kept going, and
    the LAN's bridge has every partition's MAC on @port."""
    macs = {n: fo.cli_json("partition", "show", n)["mac"] for n in (A[0], B[0], C[0])}
    seen = len(f.events)
    stream = Stream(B[0], 4)
    pinger = Pinger(A[0], LAN_V4)
    try:
        assert pinger.reply_after(0, timeout=5) is not None, pinger.lines[-5:]
        action()
        ev = since(f, seen, lambda e: e["event"] == kind and e.get("to") == to, timeout=HOLD + 10)
        assert ev is not None, (f.events[seen:], fo.log())
        announced = since(f, seen, lambda e: e["event"] == "uplink.announced" and e["ifname"] == to)
        # 3 partitions: a gratuitous ARP, an NA for its address and one for its link-local address
        assert announced and announced["partitions"] == 3 and announced["frames"] == 9, announced
        assert wait_for(lambda: all(fo.port_of(m) == port for m in macs.values()), timeout=5), \
            {n: fo.port_of(m) for n, m in macs.items()}
        assert pinger.reply_after(announced["time"] + 0.2), pinger.lines[-5:]  # it goes on after the move
    finally:
        pinger.stop()
    res = stream.result()
    assert "error" not in res, res
    bytes_per = [iv["sum"]["bytes"] for iv in res["intervals"]]
    assert res["end"]["sum_received"]["bytes"] > 0 and all(bytes_per[-2:]), bytes_per  # it kept going
    n = lost(pinger.lines)
    assert 0 <= n <= LOSS_MAX, (n, pinger.lines[-20:])
    print(f"{kind} to {to}: {n} of {len(pinger.lines)} pings lost, TCP {bytes_per}")
    return ev


def test_failover_to_the_backup_and_back_after_the_hold(fo):
    f = Follower(fo)
    try:
        for name, v4, v6 in (A, B):
            assert ping(name, LAN_V4, count=2).ok and ping(name, LAN_V6, count=2).ok
        a_mac = fo.cli_json("partition", "show", A[0])["mac"]
        assert fo.port_of(a_mac) == PORT_P  # over the primary
        st = fo.status()
        assert st["active_uplink"] == UPLINK and st["uplink_moves"] == 0, st
        # the LAN floods its broadcasts to both NICs: the backup's copy is
        # counted, not delivered: no ping from the LAN is answered twice
        r = subprocess.run(netns_cmd(LAN_NS, ["ping", "-n", "-c", "3", "-i", "0.2", A[1]]), capture_output=True,
                           text=True, timeout=30)
        assert " 0% packet loss" in r.stdout and "DUP!" not in r.stdout, r.stdout
        assert fo.cli_json("stats")["uplink"]["drops"]["rx_inactive"] >= 1

        ev = move(fo, f, lambda: fo.carrier(PORT_P, False), "uplink.failover", BACKUP, PORT_B)
        assert ev["from"] == UPLINK and ev["reason"] == "primary down", ev
        st = fo.status()
        assert st["active_uplink"] == BACKUP and st["uplink_moves"] == 1, st
        assert [u["active"] for u in st["uplinks"]] == [False, True], st["uplinks"]
        assert "primary  vsu0 down" in fo.cli("status", check=False).stdout
        got = scrape(fo.metrics_port)
        assert value(got, "vnetshare_uplink_active", uplink=BACKUP, role="backup") == 1
        assert value(got, "vnetshare_uplink_active", uplink=UPLINK, role="primary") == 0
        assert value(got, "vnetshare_uplink_moves_total", uplink=UPLINK) == 1
        assert "backup   vsu1 up" in fo.cli("adapter").stdout and "1 move(s)" in fo.cli("adapter").stdout

        t_up = time.time()
        ev = move(fo, f, lambda: fo.carrier(PORT_P, True), "uplink.failback", UPLINK, PORT_P)
        assert ev["time"] - t_up >= HOLD - 0.1, (ev, t_up)  # not before the hold time
        assert ev["from"] == BACKUP, ev
        st = fo.status()
        assert st["active_uplink"] == UPLINK and st["uplink_moves"] == 2 and st["state"] == "running", st
    finally:
        f.close()


@pytest.mark.parametrize("fo", [("--failback", "never")], indirect=True)
def test_the_backup_deleted_while_active_goes_back_to_the_primary(fo):
    f = Follower(fo)
    try:
        fo.carrier(PORT_P, False)
        assert f.wait(lambda e: e["event"] == "uplink.failover" and e["to"] == BACKUP), fo.log()
        fo.carrier(PORT_P, True)  # failback never: the backup stays
        assert wait_for(lambda: fo.status()["uplinks"][0]["up"], timeout=5)
        assert ping(A[0], LAN_V4, count=3).ok and fo.status()["active_uplink"] == BACKUP
        assert fo.port_of(fo.cli_json("partition", "show", A[0])["mac"]) == PORT_B
        netns.delete_link(BACKUP)
        ev = f.wait(lambda e: e["event"] == "uplink.failback" and e["to"] == UPLINK)
        assert ev and ev["reason"] == "backup down", (f.events, fo.log())
        assert f.wait(lambda e: e["event"] == "uplink.gone" and e.get("role") == "backup")
        assert wait_for(lambda: ping(A[0], LAN_V4, count=1).ok, timeout=5), fo.log()
        assert fo.status()["active_uplink"] == UPLINK
    finally:
        f.close()


def test_both_down_drops_and_counts_and_either_brings_it_back(fo):
    f = Follower(fo)
    try:
        fo.carrier(PORT_B, False)
        fo.carrier(PORT_P, False)
        ev = f.wait(lambda e: e["event"] == "uplink.failover" and e["to"] is None)
        assert ev and ev["reason"] == "both down", (f.events, fo.log())
        assert not ping(A[0], LAN_V4, count=3, interval=0.05, timeout=0.3).received
        assert ping(A[0], B[1], count=2).ok  # the partitions still reach each other
        assert fo.stats(A[0])["drops"]["no_uplink"] >= 1
        assert fo.cli_json("stats")["uplink"]["drops"]["tx_no_uplink"] >= 1
        st = fo.status()
        assert st["active_uplink"] is None and st["state"] == "degraded", st
        fo.carrier(PORT_B, True)  # the backup first: it serves
        assert f.wait(lambda e: e["event"] == "uplink.failover" and e["to"] == BACKUP), f.events
        assert wait_for(lambda: ping(A[0], LAN_V4, count=1).ok, timeout=5)
        assert ping(A[0], LAN_V6, count=2).ok
    finally:
        f.close()


@pytest.mark.parametrize("fo", [("--host-port", "vfohost0")], indirect=True)
def test_a_vlan_partitions_announcement_goes_out_tagged(fo):
    """And the host port's, for the address the host has on it."""
    netns.add_address("vfohost0", "198.18.0.254/24", None, nodad=True)
    host_mac = netns.link("vfohost0").mac
    fo.create("pv", "--vlan", "7", "--ip", "198.18.7.11/24")
    pv_mac = fo.cli_json("partition", "show", "pv")["mac"]
    a_mac = fo.cli_json("partition", "show", A[0])["mac"]
    f = Follower(fo)
    lanb = Capture(LAN_NS, PORT_B, vlan=True)  # the tag the kernel takes out, put back
    try:
        fo.carrier(PORT_P, False)
        assert f.wait(lambda e: e["event"] == "uplink.announced" and e["ifname"] == BACKUP), fo.log()
    finally:
        lanb.close()
        frames = [Ether(x) for x in lanb.incoming]
        f.close()
    untagged = [x for x in frames if x.src == a_mac and ARP in x and Dot1Q not in x]
    assert untagged and untagged[0][ARP].psrc == A[1], [x.summary() for x in frames]  # the capture sees
    pv = [x for x in frames if x.src == pv_mac and ARP in x]
    assert pv and all(Dot1Q in x and x[Dot1Q].vlan == 7 for x in pv), [x.summary() for x in pv]
    assert pv[0][ARP].psrc == "198.18.7.11"
    host = [x for x in frames if x.src == host_mac and ARP in x]
    assert host and host[0][ARP].psrc == "198.18.0.254" and Dot1Q not in host[0], [x.summary() for x in frames]


def test_a_backup_missing_at_start_is_served_when_it_appears(tmp_path):
    """A second NIC unplugged at start: the daemon serves on the primary,
    degraded, the backup down (absent); the NIC plugged in, it is served
    (uplink.rebound, uplink.up, both with role backup), and a failover to
    it works."""
    s = FailoverSystem(tmp_path)
    f = None
    try:
        netns.delete_link(BACKUP)  # its LAN end (lanb) goes with it
        s.start_daemon("--backup-uplink", BACKUP, "--failback", "never")
        f = Follower(s)
        a = s.create(A[0], "--ip", f"{A[1]}/24", "--gateway", LAN_V4)
        assert ping(A[0], LAN_V4, count=2).ok, s.log()
        st = s.status()
        assert st["state"] == "degraded" and st["active_uplink"] == UPLINK, st
        assert f"backup uplink {BACKUP} is down (absent)" in st["problems"], st
        assert st["uplinks"][1]["ifindex"] is None and st["uplinks"][1]["up"] is False, st["uplinks"]
        down = f.wait(lambda e: e["event"] == "uplink.down" and e.get("role") == "backup")
        assert down["ifname"] == BACKUP and down["operstate"] == "absent", down
        assert not [e for e in f.events if e["event"] == "uplink.down" and "role" not in e], f.events

        netns.veth_pair(BACKUP, PORT_B, None, LAN_NS)  # plugged in
        ip("-n", LAN_NS, "link", "set", PORT_B, "master", "br0", "up")
        netns.link_set(BACKUP, None, up=True)
        served = f.wait(lambda e: e["event"] == "uplink.rebound" and e.get("role") == "backup")
        assert served["ifname"] == BACKUP and "served, through" in served["message"], served
        assert f.wait(lambda e: e["event"] == "uplink.up" and e.get("role") == "backup"), f.events
        assert wait_for(lambda: s.status()["state"] == "running", timeout=5), s.status()
        assert s.status()["uplinks"][1]["ifindex"] == netns.link(BACKUP).index

        s.carrier(PORT_P, False)  # and it serves when the primary goes
        ev = f.wait(lambda e: e["event"] == "uplink.failover" and e["to"] == BACKUP)
        assert ev["reason"] == "primary down", ev
        assert wait_for(lambda: ping(A[0], LAN_V4, count=1).ok, timeout=5), s.log()
        assert wait_for(lambda: s.port_of(a["mac"]) == PORT_B, timeout=5)
    finally:
        if f is not None:
            f.close()
        s.close()


def test_a_backup_that_cannot_serve_is_refused_at_start_in_one_line(tmp_path):
    from vnetshare.frontends.lab import LabError, start_daemon
    from vnetshare.linux import procs

    def refused(*extra: str) -> str:
        """The start error of a daemon on UPLINK with @extra; one that
        starts is stopped (by its PID) and fails the test."""
        try:
            p = start_daemon(s.sock, UPLINK, s.state_dir, s.log_path, extra, timeout=20, new_session=False)
        except LabError as e:
            return str(e)
        procs.stop(p, grace=20)
        raise AssertionError(f"the daemon started with {extra}")

    s = FailoverSystem(tmp_path)
    try:
        assert "--backup-uplink: uplink 'lo': the loopback device" in refused("--backup-uplink", "lo")
        assert "--backup-uplink 'vsu0': is the uplink" in refused("--backup-uplink", UPLINK)
        # one daemon per NIC, the backup's too
        other = os.path.join(s.dir, "other")
        os.mkdir(other)
        s.daemon = start_daemon(os.path.join(other, "control.sock"), BACKUP, other, s.log_path, (), timeout=20,
                                new_session=False)
        assert f"backup uplink {BACKUP}: another daemon (pid {s.daemon.pid}" in refused("--backup-uplink", BACKUP)
    finally:
        s.close()
