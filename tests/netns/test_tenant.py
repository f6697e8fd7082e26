"""A partition is a tenant (issue 8), as a user meets it: the `vnetshare` CLI,
ping, iperf3, raw sockets and the LAN host's own caches.

A hostile partition is root in its namespace and sends what it likes on its
eth0 with a raw socket. Every "not seen" below has, in the same capture, a
frame that had to be seen and was sent after the hostile ones: the switch
serves one partition's ring in order, so once the later frame is seen the
earlier ones were judged (a blind or slow capture fails the test, it does not
pass it). Every wait is for a condition, never a fixed sleep.
"""
from __future__ import annotations

import json
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import time

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dhcp6 import (DHCP6_Advertise, DHCP6_Solicit, DHCP6OptClientId, DHCP6OptServerId, DUID_LL,
                                DUID_LLT)
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_RA, ICMPv6NDOptDstLLAddr, ICMPv6NDOptPrefixInfo,
                                ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import ARP, LLC, SNAP, STP, Dot1Q, Dot3, Ether
from scapy.packet import Raw

from dataplane_helpers import Capture
from system import (A, B, LAN_IF, LAN_NS, LAN_V4, LAN_V6, DhcpServer, Sniffer, lan_mac, marker_broadcast,
                    send_frames, wait_for)
from vnetshare.core import config
from vnetshare.core.config import mac_bytes
from vnetshare.dataplane.guard import link_local
from vnetshare.linux import netns
from vnetshare.linux.probe import iperf3, ping

BCAST = "ff:ff:ff:ff:ff:ff"
# pyroute2's DHCP client (its pyroute2-dhcp-client command), run by this
# interpreter: where pip put the command depends on the install (a venv's
# bin, /usr/local/bin for Debian's python3)
PYROUTE2_DHCP = [sys.executable, "-c", "from pyroute2.dhcp.cli import run; run()"]
ALL_NODES_MAC = "33:33:00:00:00:01"
BAD_PREFIX = "2001:db8:bad::"          # what the hostile RA advertises
ROUTER_PREFIX = "2001:db8:7::"         # what a trusted router advertises


# -- helpers -----------------------------------------------------------------------

def _ns(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=30)
    assert not check or p.returncode == 0, f"{ns}: {' '.join(argv)}: {p.stdout}{p.stderr}"
    return p


def _mark(what: str) -> bytes:
    return f"{what}-".encode() + os.urandom(4).hex().encode()


def _neigh(ns: str) -> dict[str, str | None]:
    """The neighbour cache of @ns: address -> link-layer address."""
    return {n["dst"]: n.get("lladdr") for n in json.loads(_ns(ns, "ip", "-j", "neigh").stdout)}


def _v6_config(ns: str) -> str:
    """Every IPv6 address and route of @ns, as text."""
    return _ns(ns, "ip", "-6", "addr").stdout + _ns(ns, "ip", "-6", "route").stdout


def _l3(frame: bytes) -> bytes:
    """What follows a frame's Ethernet header (and its 802.1Q tag): the part
    that identifies it whatever tag or padding it carries on the way."""
    off = 18 if frame[12:14] == b"\x81\x00" else 14
    return frame[off:]


def _seen(frames: list[bytes], frame: bytes) -> bool:
    key = _l3(frame)
    return any(key in f for f in frames)


def _vid(frame: bytes) -> int | None:
    if frame[12:14] != b"\x81\x00":
        return None
    return struct.unpack_from("!H", frame, 14)[0] & 0xFFF


def _tag(frame: bytes, vid: int) -> bytes:
    return frame[:12] + struct.pack("!HH", 0x8100, vid) + frame[12:]


def _lan_send(frames: list[bytes]) -> None:
    """Send raw frames from the LAN host (tagged ones too: the bytes go as they are)."""
    send_frames(LAN_NS, frames, LAN_IF)


def _drops(s, name: str) -> dict[str, int]:
    return s.stats(name)["drops"]


def _counted(s, name: str, before: dict, want: dict[str, int]) -> bool:
    now = _drops(s, name)
    return all(now.get(r, 0) - before.get(r, 0) >= n for r, n in want.items())


def _ping_p50(ns: str, addr: str, count: int = 30) -> float:
    """Median RTT in ms of @count pings, 20 ms apart; every one must be answered."""
    p = _ns(ns, "ping", "-n", "-c", str(count), "-i", "0.02", "-W", "2", addr, check=False)
    times = [float(t) for t in re.findall(r"time=([\d.]+) ms", p.stdout)]
    assert len(times) == count, p.stdout + p.stderr
    return statistics.median(times)


def _settings(s, name: str) -> dict:
    """What `partition show` says of a partition, but its counters and agent."""
    show = s.cli_json("partition", "show", name)
    return {k: v for k, v in show.items() if k not in ("counters", "agent", "agent_pid", "state")}


# -- 1. the guard, class by class ------------------------------------------------------

def test_every_guard_class_from_a_hostile_partition_is_dropped_counted_and_poisons_nothing(two):
    a_mac = two.cli_json("partition", "show", A[0])["mac"]
    b_mac = two.cli_json("partition", "show", B[0])["mac"]
    lmac = lan_mac()
    a_ll = str(link_local(a_mac))
    # the LAN host knows pb, at pb's MAC: a poisoning would have to overwrite it
    _ns(LAN_NS, "ping", "-c", "1", "-W", "2", B[1])
    _ns(LAN_NS, "ping", "-c", "1", "-W", "2", B[2])
    assert _neigh(LAN_NS).get(B[1]) == b_mac and _neigh(LAN_NS).get(B[2]) == b_mac, _neigh(LAN_NS)

    echo = _mark("FORGED-ECHO")
    hostile = {
        "ip_spoof": [
            # pb's address: if it passed, the LAN host would answer pb
            Ether(src=a_mac, dst=lmac) / IP(src=B[1], dst=LAN_V4) / ICMP(id=0x7e57) / echo,
        ],
        "arp_spoof": [
            Ether(src=a_mac, dst=lmac) / ARP(op=2, hwsrc=a_mac, psrc=B[1], hwdst=lmac, pdst=LAN_V4),
            Ether(src=a_mac, dst=BCAST) / ARP(op=2, hwsrc=a_mac, psrc=B[1], hwdst=BCAST, pdst=B[1]),
            # a request from "pb at pa's MAC": Linux overwrites the sender's entry for it
            Ether(src=a_mac, dst=lmac) / ARP(op=1, hwsrc=a_mac, psrc=B[1], pdst=LAN_V4),
        ],
        "nd_spoof": [
            Ether(src=a_mac, dst=ALL_NODES_MAC) / IPv6(src=a_ll, dst="ff02::1", hlim=255)
            / ICMPv6ND_NA(tgt=B[2], R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=a_mac),
            Ether(src=a_mac, dst=lmac) / IPv6(src=a_ll, dst=LAN_V6, hlim=255)
            / ICMPv6ND_NA(tgt=B[2], R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=a_mac),
        ],
        "ra": [
            Ether(src=a_mac, dst=ALL_NODES_MAC) / IPv6(src=a_ll, dst="ff02::1", hlim=255)
            / ICMPv6ND_RA(routerlifetime=1800)
            / ICMPv6NDOptPrefixInfo(prefix=BAD_PREFIX, prefixlen=64, L=1, A=1,
                                    validlifetime=86400, preferredlifetime=14400)
            / ICMPv6NDOptSrcLLAddr(lladdr=a_mac),
        ],
        "dhcp_server": [
            Ether(src=a_mac, dst=BCAST) / IP(src=A[1], dst="255.255.255.255") / UDP(sport=67, dport=68)
            / BOOTP(op=2, xid=0x7e57, yiaddr="198.18.0.99", siaddr=A[1], chaddr=mac_bytes(b_mac))
            / DHCP(options=[("message-type", "offer"), ("router", A[1]), "end"]),
            Ether(src=a_mac, dst=ALL_NODES_MAC) / IPv6(src=a_ll, dst="ff02::1") / UDP(sport=547, dport=546)
            / DHCP6_Advertise(trid=0x7e57),
        ],
        "vlan": [
            Ether(src=a_mac, dst=BCAST) / Dot1Q(vlan=10) / IP(src=A[1], dst=LAN_V4) / ICMP() / _mark("TAGGED"),
        ],
    }
    hostile = {r: [bytes(f) for f in fs] for r, fs in hostile.items()}
    legit = _mark("LEGIT")
    before = _drops(two, A[0])
    lan = Sniffer(LAN_NS, LAN_IF)
    peer = Sniffer(B[0], "eth0")
    try:
        send_frames(A[0], [f for fs in hostile.values() for f in fs] + [marker_broadcast(mac_bytes(a_mac), legit)])
        # positive control, same captures: the legit frame sent after them all
        for cap, where in ((lan, "the LAN host"), (peer, "pb")):
            assert wait_for(lambda: any(legit in f for f in cap.frames), timeout=5), f"{where} missed the legit frame"
        want = {r: len(fs) for r, fs in hostile.items()}
        assert wait_for(lambda: _counted(two, A[0], before, want), timeout=5), (want, _drops(two, A[0]))
        # the LAN host's caches and pb's and the LAN host's configuration
        assert _neigh(LAN_NS).get(B[1]) in (b_mac, None), f"LAN ARP cache poisoned: {_neigh(LAN_NS)}"
        assert _neigh(LAN_NS).get(B[2]) in (b_mac, None), f"LAN neighbour cache poisoned: {_neigh(LAN_NS)}"
        for ns in (LAN_NS, B[0]):
            assert "2001:db8:bad" not in _v6_config(ns), f"{ns} took the hostile RA: {_v6_config(ns)}"
            assert a_ll not in _ns(ns, "ip", "-6", "route").stdout, f"{ns} has a route via pa"
        assert ping(A[0], LAN_V4, count=1).ok  # and pa's own traffic still flows
    finally:
        got = {"the LAN host": lan.close(), "pb": peer.close()}
    for where, frames in got.items():
        for reason, fs in hostile.items():
            leaked = [i for i, f in enumerate(fs) if _seen(frames, f)]
            assert not leaked, f"{where} saw {reason} frame(s) {leaked}"
    # the LAN host never answered pb for the forged request
    assert not any(echo in f for f in got["pb"]), "the LAN host answered pb: the forged IPv4 source got through"


# -- 2. what must still work --------------------------------------------------------------

def test_link_local_dad_and_default_route_with_the_guard_on(two):
    b_mac = two.cli_json("partition", "show", B[0])["mac"]
    # link-local: deterministic (EUI-64 from the MAC), and reachable
    b_ll = str(link_local(b_mac))
    assert b_ll in _ns(B[0], "ip", "-6", "addr", "show", "dev", "eth0").stdout
    r = _ns(A[0], "ping", "-n", "-c", "3", "-i", "0.1", "-W", "2", "-I", "eth0", b_ll, check=False)
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    assert _neigh(A[0]).get(b_ll) == b_mac

    # the default route: an address of the LAN host outside the partitions' prefix
    _ns(LAN_NS, "ip", "addr", "add", "192.0.2.1/32", "dev", "lo")
    assert ping(A[0], "192.0.2.1", count=2).ok

    # DAD: pa may send from fd00:5e::/120; a free address there passes DAD
    # (its probe from :: reaches the LAN), the LAN host's own address fails it
    # (the LAN host's answer reaches pa)
    two.cli("partition", "set", A[0], "--allow-ip", "fd00:5e::/120")
    lan = Sniffer(LAN_NS, LAN_IF)
    try:
        _ns(A[0], "ip", "-6", "addr", "add", "fd00:5e::21/64", "dev", "eth0")
        _ns(A[0], "ip", "-6", "addr", "add", f"{LAN_V6}/64", "dev", "eth0")

        def flags(addr):
            out = _ns(A[0], "ip", "-6", "addr", "show", "dev", "eth0").stdout
            m = re.search(rf"inet6 {re.escape(addr)}/64 scope global ?([^\n]*)", out)
            return m.group(1) if m else None
        assert wait_for(lambda: flags("fd00:5e::21") is not None and "tentative" not in flags("fd00:5e::21"),
                        timeout=10), flags("fd00:5e::21")
        assert wait_for(lambda: "dadfailed" in (flags(LAN_V6) or ""), timeout=10), flags(LAN_V6)
    finally:
        frames = lan.close()
    dad = [Ether(f) for f in frames if f[12:14] == b"\x86\xdd"]
    probes = [p for p in dad if p[IPv6].src == "::" and p[IPv6].nh == 58 and p.haslayer("ICMPv6ND_NS")
              and p["ICMPv6ND_NS"].tgt == "fd00:5e::21"]
    assert probes, "pa's DAD probe did not reach the LAN"
    _ns(A[0], "ip", "-6", "addr", "del", f"{LAN_V6}/64", "dev", "eth0")  # the failed one goes
    r = _ns(A[0], "ping", "-n", "-c", "2", "-i", "0.1", "-W", "2", "-I", "fd00:5e::21", LAN_V6, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_allow_ip_any_prefix_and_trusted_router(system):
    any_, pfx, rtr = ("pany", "198.18.0.31"), ("ppfx", "198.18.0.32"), ("prtr", "198.18.0.33")
    system.create(any_[0], "--ip", f"{any_[1]}/24", "--allow-ip", "any")
    system.create(pfx[0], "--ip", f"{pfx[1]}/24", "--allow-ip", "203.0.113.0/24")
    system.create(rtr[0], "--ip", f"{rtr[1]}/24", "--trusted-router")
    show = {n: system.cli_json("partition", "show", n) for n in (any_[0], pfx[0], rtr[0])}
    assert show[any_[0]]["guard"] == "off (--allow-ip any)"
    assert show[pfx[0]]["guard"] == "on" and show[pfx[0]]["allow_ips"] == ["203.0.113.0/24"]
    assert show[rtr[0]]["guard"] == "on (--trusted-router)"
    mac = {n: show[n]["mac"] for n in show}
    lmac = lan_mac()

    def echo(name, src, marker):
        return bytes(Ether(src=mac[name], dst=lmac) / IP(src=src, dst=LAN_V4) / ICMP() / marker)

    def ra(name, prefix):
        ll = str(link_local(mac[name]))
        return bytes(Ether(src=mac[name], dst=ALL_NODES_MAC) / IPv6(src=ll, dst="ff02::1", hlim=255)
                     / ICMPv6ND_RA(routerlifetime=1800)
                     / ICMPv6NDOptPrefixInfo(prefix=prefix, prefixlen=64, L=1, A=1,
                                             validlifetime=86400, preferredlifetime=14400)
                     / ICMPv6NDOptSrcLLAddr(lladdr=mac[name]))

    m_any, m_in, m_out = _mark("ANY-SRC"), _mark("IN-PREFIX"), _mark("OTHER-PREFIX")
    any_echo = echo(any_[0], "198.51.100.9", m_any)
    any_ra = ra(any_[0], BAD_PREFIX)
    in_echo, out_echo = echo(pfx[0], "203.0.113.7", m_in), echo(pfx[0], "203.0.114.7", m_out)
    rtr_ra = ra(rtr[0], ROUTER_PREFIX)
    before = {n: _drops(system, n) for n in show}
    lan = Sniffer(LAN_NS, LAN_IF)
    try:
        legit = {n: _mark(f"LEGIT-{n}") for n in show}
        send_frames(any_[0], [any_echo, any_ra, marker_broadcast(mac_bytes(mac[any_[0]]), legit[any_[0]])])
        send_frames(pfx[0], [out_echo, in_echo, marker_broadcast(mac_bytes(mac[pfx[0]]), legit[pfx[0]])])
        send_frames(rtr[0], [rtr_ra, marker_broadcast(mac_bytes(mac[rtr[0]]), legit[rtr[0]])])
        for n, m in legit.items():
            assert wait_for(lambda: any(m in f for f in lan.frames), timeout=5), f"the LAN missed {n}'s legit frame"
        assert wait_for(lambda: _counted(system, any_[0], before[any_[0]], {"ra": 1})), _drops(system, any_[0])
        assert wait_for(lambda: _counted(system, pfx[0], before[pfx[0]], {"ip_spoof": 1})), _drops(system, pfx[0])
        # the trusted router's RA configured the LAN host, so the absence of
        # the hostile prefix below is not the LAN host ignoring RAs
        assert wait_for(lambda: "2001:db8:7:" in _v6_config(LAN_NS), timeout=5), _v6_config(LAN_NS)
        assert "2001:db8:bad" not in _v6_config(LAN_NS)
    finally:
        frames = lan.close()
    assert _seen(frames, any_echo), "--allow-ip any: a frame from any address did not reach the LAN host"
    assert not _seen(frames, any_ra), "--allow-ip any let an RA through"
    assert _seen(frames, in_echo), "--allow-ip 203.0.113.0/24: 203.0.113.7 did not pass"
    assert not _seen(frames, out_echo), "--allow-ip 203.0.113.0/24: 203.0.114.7 passed"
    assert _seen(frames, rtr_ra), "--trusted-router: its RA did not pass"
    assert _drops(system, rtr[0]).get("ra", 0) == before[rtr[0]].get("ra", 0)
    # and the allowed prefix works end to end: pa answers ARP for it, the LAN host replies
    _ns(pfx[0], "ip", "addr", "add", "203.0.113.7/32", "dev", "eth0")
    _ns(LAN_NS, "ip", "route", "add", "203.0.113.0/24", "dev", LAN_IF)
    r = _ns(pfx[0], "ping", "-n", "-c", "2", "-i", "0.1", "-W", "2", "-I", "203.0.113.7", LAN_V4, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


# -- 3. storm -------------------------------------------------------------------------------

FLOODER = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
frame, end, n = bytes.fromhex(sys.argv[1]), time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    for _ in range(500):
        try:
            s.send(frame)
        except OSError:
            pass
    n += 500
print(n)
"""


def test_a_broadcast_storm_keeps_a_neighbours_latency_and_throughput(two):
    a_mac = two.cli_json("partition", "show", A[0])["mac"]
    limit = two.cli_json("partition", "show", A[0])["storm_limit_pps"]      # the daemon's default
    p50_idle = _ping_p50(B[0], LAN_V4)
    tcp_idle = iperf3(LAN_NS, B[0], LAN_V4, seconds=2)
    assert tcp_idle.ok, tcp_idle.error
    before = two.stats(A[0])
    frame = marker_broadcast(mac_bytes(a_mac), b"STORM" + bytes(100))
    t0 = time.monotonic()
    flood = subprocess.Popen(["ip", "netns", "exec", A[0], sys.executable, "-c", FLOODER, frame.hex(), "7"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # it floods: the switch is dropping it
        assert wait_for(lambda: _drops(two, A[0])["storm"] > before["drops"]["storm"] + 10_000, timeout=5), \
            _drops(two, A[0])
        p50_storm = _ping_p50(B[0], LAN_V4)
        tcp_storm = iperf3(LAN_NS, B[0], LAN_V4, seconds=2)
        assert flood.poll() is None, "the flood ended before the measurement did: make it longer"
    finally:
        out, err = flood.communicate(timeout=30)
    elapsed = time.monotonic() - t0
    assert flood.returncode == 0, err
    assert tcp_storm.ok, tcp_storm.error
    after = two.stats(A[0])
    dropped = after["drops"]["storm"] - before["drops"]["storm"]
    passed = after["tx_frames"] - before["tx_frames"]
    print(f"storm: {int(out)} frames written, {dropped} dropped, {passed} passed in {elapsed:.1f} s; "
          f"p50 {p50_idle:.3f} -> {p50_storm:.3f} ms; tcp {tcp_idle.gbps:.2f} -> {tcp_storm.gbps:.2f} Gbit/s")
    # what passed is what the limit allows (a burst, then the rate), the rest was counted
    assert passed <= limit * elapsed + config.storm_burst(limit) + 20, (passed, limit, elapsed)
    assert dropped > 10 * passed, (dropped, passed)
    assert tcp_storm.gbps >= 0.5 * tcp_idle.gbps, (tcp_idle.gbps, tcp_storm.gbps)
    assert p50_storm <= 3 * p50_idle + 1.0, (p50_idle, p50_storm)


# -- 4. rate limits ---------------------------------------------------------------------------

def test_tx_limit_holds_is_lifted_live_and_rx_limit_drops(two):
    name = A[0]
    two.cli("partition", "set", name, "--tx-limit", "200mbit")
    assert two.cli_json("partition", "show", name)["tx_limit_bps"] == 200_000_000
    before = two.stats(name)
    limited = iperf3(LAN_NS, name, LAN_V4, seconds=2)
    assert limited.ok, limited.error
    after = two.stats(name)
    assert 0.6 * 0.2 <= limited.gbps <= 1.15 * 0.2, f"{limited.gbps * 1000:.0f} Mbit/s under a 200 Mbit/s limit"
    assert after["tx_throttled"] > before["tx_throttled"], after
    for reason in ("storm", "rx_rate"):      # over-budget transmit waits, it is not dropped
        assert after["drops"][reason] == before["drops"][reason], after["drops"]

    two.cli("partition", "set", name, "--tx-limit", "none")
    free = iperf3(LAN_NS, name, LAN_V4, seconds=2)
    assert free.ok and free.gbps > 2 * limited.gbps, (limited.gbps, free.gbps)

    # receive: over the budget dropped. A policer drops whole GSO frames (64 KiB
    # of TCP at once), so TCP needs a deeper bucket than the default to get
    # near the rate (see the xfail test below)
    two.cli("partition", "set", name, "--rx-limit", "100mbit", "--rx-burst", "2mb")
    before = two.stats(name)["drops"]["rx_rate"]
    rx = iperf3(LAN_NS, name, LAN_V4, seconds=2, extra=["-R"])
    assert rx.ok, rx.error
    assert 0.5 * 0.1 <= rx.gbps <= 1.15 * 0.1, f"{rx.gbps * 1000:.0f} Mbit/s received under a 100 Mbit/s limit"
    assert two.stats(name)["drops"]["rx_rate"] > before


def test_rx_limit_with_the_default_burst_does_not_starve_tcp(two):
    # A policer with the default bucket (100 ms of the rate) drops whole GSO
    # frames; TCP settles at about half the rate: 49-55 Mbit/s in eight runs
    # on this 2-vCPU machine (2 s and 4 s runs, 2026-12-03). The bound is 40%
    # with the first second (slow start) left out: starvation (a few Mbit/s)
    # fails it, the noise of a loaded CI machine does not.
    two.cli("partition", "set", A[0], "--rx-limit", "100mbit")
    rx = iperf3(LAN_NS, A[0], LAN_V4, seconds=4, extra=["-R", "-O", "1"])
    assert rx.ok, rx.error
    assert rx.gbps >= 0.4 * 0.1, f"{rx.gbps * 1000:.0f} Mbit/s received under a 100 Mbit/s limit"


# -- 5. VLANs ------------------------------------------------------------------------------------

def test_vlan_members_only_tagged_on_the_uplink_isolated_from_untagged(system):
    v1, v2, u = ("pv1", "198.18.0.41"), ("pv2", "198.18.0.42"), ("pu", "198.18.0.43")
    for n, ip in (v1, v2):
        system.create(n, "--ip", f"{ip}/24", "--vlan", "10")
    system.create(u[0], "--ip", f"{u[1]}/24")
    mac = {n: system.cli_json("partition", "show", n)["mac"] for n in (v1[0], v2[0], u[0])}
    assert system.cli_json("partition", "show", v1[0])["vlan"] == 10
    lmac = lan_mac()

    # members reach each other; across VLANs never
    assert ping(v1[0], v2[1], count=2, interval=0.1).ok
    assert ping(v1[0], u[1], count=1, timeout=1).received == 0
    assert ping(u[0], v2[1], count=1, timeout=1).received == 0

    caps = {n: Capture(n, "eth0", vlan=True) for n in mac}
    lan = Capture(LAN_NS, LAN_IF, vlan=True)
    try:
        from_v1, from_u = _mark("BCAST-V1"), _mark("BCAST-U")
        send_frames(v1[0], [marker_broadcast(mac_bytes(mac[v1[0]]), from_v1)])
        send_frames(u[0], [marker_broadcast(mac_bytes(mac[u[0]]), from_u)])
        # the LAN saw both (so the switch judged both), v1's tagged 10, u's untagged
        assert wait_for(lambda: any(from_v1 in f for f in lan.incoming), timeout=5)
        assert wait_for(lambda: any(from_u in f for f in lan.incoming), timeout=5)
        # a tagged echo request from the LAN to v1 (the LAN host has no VLAN
        # device, so v1 learns its MAC statically to answer); the same tagged
        # broadcast, and an untagged one that only u may see, after it
        _ns(v1[0], "ip", "neigh", "replace", LAN_V4, "lladdr", lmac, "dev", "eth0")
        req = _mark("LAN-ECHO")
        lan_tagged, lan_untagged = _mark("LAN-V10"), _mark("LAN-UNTAGGED")
        _lan_send([bytes(Ether(src=lmac, dst=mac[v1[0]]) / Dot1Q(vlan=10) / IP(src=LAN_V4, dst=v1[1])
                         / ICMP(id=0x7e57, seq=1) / req),
                   _tag(marker_broadcast(mac_bytes(lmac), lan_tagged), 10),
                   marker_broadcast(mac_bytes(lmac), lan_untagged)])
        assert wait_for(lambda: any(lan_tagged in f for f in caps[v1[0]].incoming), timeout=5)
        assert wait_for(lambda: any(lan_tagged in f for f in caps[v2[0]].incoming), timeout=5)
        assert wait_for(lambda: any(lan_untagged in f for f in caps[u[0]].incoming), timeout=5)
        reply = lambda f: _vid(f) == 10 and req in f and Ether(f)[ICMP].type == 0  # noqa: E731
        assert wait_for(lambda: any(reply(f) for f in lan.incoming), timeout=5), "v1's echo reply did not come back tagged"
    finally:
        for c in caps.values():
            c.close()
        lan_frames = lan.close()
    inc = {n: caps[n].incoming for n in caps}
    # tagged on the uplink: every frame of v1's
    assert [_vid(f) for f in lan_frames if from_v1 in f] == [10], "v1's broadcast not tagged 10 on the uplink"
    assert [_vid(f) for f in lan_frames if from_u in f] == [None], "u's broadcast tagged on the uplink"
    # the tagged request reached v1 untagged, and only v1
    to_v1 = [f for f in inc[v1[0]] if req in f]
    assert len(to_v1) == 1 and _vid(to_v1[0]) is None and to_v1[0][:6] == mac_bytes(mac[v1[0]]), to_v1
    assert all(_vid(f) is None for f in inc[v1[0]] + inc[v2[0]] if lan_tagged in f)
    # members only: u saw none of VLAN 10, v1 and v2 none of the untagged side
    assert not any(from_v1 in f or lan_tagged in f or req in f for f in inc[u[0]]), "u saw VLAN 10 traffic"
    for n in (v1[0], v2[0]):
        assert not any(from_u in f or lan_untagged in f for f in inc[n]), f"{n} saw untagged traffic"
    assert any(from_v1 in f for f in inc[v2[0]]), "v2 missed v1's broadcast"


# -- 6. live changes survive a restart; bad values change nothing -------------------------------

BAD_SET = [
    (["--vlan", "4095"], "4095"),
    (["--vlan", "ten"], "ten"),
    (["--tx-limit", "12furlongs"], "12furlongs"),
    (["--rx-limit", "100mbit", "--rx-limit", "200mbit"], "200mbit"),
    (["--storm-limit", "lots"], "lots"),
    (["--allow-ip", "10.0.0.1/8"], "10.0.0.1/8"),
    (["--allow-ip", "any", "--allow-ip", "10.0.0.0/8"], "10.0.0.0/8"),
    (["--ip", "fd00:5e::50/64"], "198.18.0.1"),      # the gateway is IPv4: the daemon refuses
    ([f"--allow-ip=10.{i}.0.0/16" for i in range(17)], "at most 16"),
]


def test_set_survives_a_daemon_restart_and_bad_values_change_nothing(system):
    name, ip = "pset", "198.18.0.51"
    system.create(name, "--ip", f"{ip}/24", "--gateway", LAN_V4)
    system.cli("partition", "set", name, "--vlan", "10", "--tx-limit", "300mbit", "--rx-limit", "20kpps",
               "--storm-limit", "500", "--allow-ip", "203.0.113.0/24", "--allow-llc")
    want = _settings(system, name)
    assert want["vlan"] == 10 and want["storm_limit_pps"] == 500 and want["allow_ips"] == ["203.0.113.0/24"]
    assert want["allow_llc"] is True
    assert want["tx_limit_bps"] == 300_000_000 and want["rx_limit_pps"] == 20_000, want

    assert system.stop_daemon() == 0
    system.start_daemon()
    assert _settings(system, name) == want
    # and the switch has it again: its frames leave tagged 10
    mac = want["mac"]
    lan = Capture(LAN_NS, LAN_IF, vlan=True)
    try:
        m = _mark("AFTER-RESTART")
        assert wait_for(lambda: system.cli_json("partition", "show", name)["agent"].startswith("running"))
        send_frames(name, [marker_broadcast(mac_bytes(mac), m)])
        assert wait_for(lambda: any(m in f for f in lan.incoming), timeout=5)
    finally:
        frames = lan.close()
    assert [_vid(f) for f in frames if m in f] == [10]

    state = system.state_record(name)
    assert f'"name":"{name}"' in state  # the record, read where it lives
    for argv, needle in BAD_SET + [(["--vlan", "3"], "nosuch")]:
        target = "nosuch" if needle == "nosuch" else name
        p = system.cli("partition", "set", target, *argv, check=False)
        lines = p.stderr.strip().splitlines()
        assert p.returncode != 0, (argv, p.stdout)
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in p.stderr, (argv, p.stderr)
        assert _settings(system, name) == want, argv
        assert system.state_record(name) == state, argv
    # nor did the refused --ip touch the partition's addresses
    out = _ns(name, "ip", "addr", "show", "dev", "eth0").stdout
    assert re.findall(r"inet (\S+)", out) == [f"{ip}/24"] and "fd00:5e::50" not in out, out


# -- 7. vnetshare verify -------------------------------------------------------------------------

def test_verify_passes_without_disturbing_and_reports_leaks_with_the_guard_off(two):
    macs = {n: mac_bytes(two.cli_json("partition", "show", n)["mac"]) for n in (A[0], B[0])}
    rx = {n: two.stats(n)["rx_frames"] for n in (A[0], B[0])}
    caps = {n: Sniffer(n, "eth0") for n in (A[0], B[0])}
    try:
        p = two.cli("verify", "--json", check=False)
        # positive control, same captures: each partition sees the other's broadcast
        done = {n: _mark(f"AFTER-VERIFY-{n}") for n in caps}
        for n in caps:
            send_frames(n, [marker_broadcast(macs[n], done[n])])
        for n, other in ((A[0], B[0]), (B[0], A[0])):
            assert wait_for(lambda: any(done[other] in f for f in caps[n].frames), timeout=5), f"{n}'s capture is blind"
    finally:
        frames = {n: c.close() for n, c in caps.items()}
    assert p.returncode == 0, p.stdout + p.stderr
    rep = json.loads(p.stdout)
    assert rep["ok"] and all(r["verdict"] == "ok" for r in rep["checks"]), rep
    # the control plane and the agents were looked at too (issue 20, items 2, 3, 6)
    checks = {r["check"] for r in rep["checks"]}
    assert {"a partition with the uplink's MAC", "a partition with another partition's MAC",
            "a partition with another's address, same VLAN", "a partition with the address 255.255.255.255",
            "the sender set to the receiver's addresses", "agents run under their own uids", "agents confined",
            "agents in their partitions' namespaces", "one agent's uid signals or reads the other"} <= checks, checks
    storm = [r for r in rep["checks"] if r.get("reason") == "storm"]
    assert storm and storm[0]["receiver"] > 0, storm       # its storm did flood its own receiver
    # but not ours: the storm and the hostile frames stayed on verify's own VLAN
    for n in (A[0], B[0]):
        assert not any(b"vnetshare-verify" in f for f in frames[n]), f"{n} saw a frame of verify's"
        moved = two.stats(n)["rx_frames"] - rx[n]   # 2: the controls; the rest the fixture's fresh IPv6 chatter
        assert moved < 15, f"{n} received {moved} frames during verify (its storm was {storm[0]['receiver']})"
    assert ping(A[0], B[1], count=2).ok and ping(B[0], LAN_V4, count=2).ok

    p = two.cli("verify", "--sender-allow-ip", "any", check=False)
    assert p.returncode != 0, p.stdout
    for reason in ("ip_spoof", "arp_spoof", "nd_spoof"):
        row = [line for line in p.stdout.splitlines() if f"({reason})" in line]
        assert len(row) == 1 and "LEAK" in row[0], (reason, p.stdout)
    assert "FAILED" in p.stdout

    # verify leaves nothing behind
    assert [x["name"] for x in two.cli_json("partition", "list")] == [A[0], B[0]]
    assert two.state_names() == [A[0], B[0]]
    assert sorted(netns.names()) == sorted([LAN_NS, A[0], B[0]])
    assert len(two.agent_pids()) == 2


def test_verify_agent_probe_sees_a_hole_where_there_is_one():
    """verify's probe of one agent's uid against another can fail: against a
    process of its own uid it is allowed to signal (the hole it looks for),
    against one of another uid it is not."""
    from vnetshare.frontends import verify
    uid = 1879113000   # in the agents' default range, which no account has
    sleeper = subprocess.Popen(["sleep", "30"], user=uid, group=uid, extra_groups=[])
    try:
        assert wait_for(lambda: os.stat(f"/proc/{sleeper.pid}").st_uid == uid)
        assert "signal allowed" in verify._as_uid_try(uid, sleeper.pid)
        assert verify._as_uid_try(uid + 1, sleeper.pid) == []
    finally:
        sleeper.kill()
        sleeper.wait()


# -- 8. DHCP guard and link-layer control frames (issue 20, items 4 and 7) ----------------------------

CISCO_GROUP, PVST_GROUP = "01:00:0c:cc:cc:cc", "01:00:0c:cc:cc:cd"
DHCP6_MAC = "33:33:00:01:00:02"      # All_DHCP_Relay_Agents_and_Servers, ff02::1:2


def _dhcp4(mac: str, dst_mac: str, src: str, dst: str, msg: str, chaddr: str, sport: int = 68,
           dport: int = 67, op: int = 1, options=(), **bootp) -> bytes:
    return bytes(Ether(src=mac, dst=dst_mac) / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport)
                 / BOOTP(op=op, chaddr=mac_bytes(chaddr), xid=int.from_bytes(os.urandom(4), "big"), **bootp)
                 / DHCP(options=[("message-type", msg), *options, "end"]))


def _snap(mac: str, dst: str, oui: int, code: int, payload) -> bytes:
    return bytes(Dot3(src=mac, dst=dst) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=oui, code=code) / payload)


def test_dhcp_and_link_layer_control_attacks_are_dropped_counted_and_reach_no_one(two):
    a_mac = two.cli_json("partition", "show", A[0])["mac"]
    b_mac = two.cli_json("partition", "show", B[0])["mac"]
    lmac = lan_mac()
    a_ll = str(link_local(a_mac))
    hostile = {
        "dhcp_server": [
            # an OFFER from port 1067: clients take anything sent to port 68
            _dhcp4(a_mac, BCAST, A[1], "255.255.255.255", "offer", b_mac, sport=1067, dport=68, op=2,
                   yiaddr="198.18.0.99", siaddr=A[1],
                   options=[("server_id", A[1]), ("router", A[1]), ("lease_time", 86400)]),
            bytes(Ether(src=a_mac, dst=ALL_NODES_MAC) / IPv6(src=a_ll, dst="ff02::1") / UDP(sport=1547, dport=546)
                  / DHCP6_Advertise(trid=0x7E57) / DHCP6OptServerId(duid=DUID_LL(lladdr=a_mac))
                  / DHCP6OptClientId(duid=DUID_LL(lladdr=b_mac))),
        ],
        "dhcp_spoof": [
            # pool starvation: a DISCOVER with pb's hardware address
            _dhcp4(a_mac, BCAST, "0.0.0.0", "255.255.255.255", "discover", b_mac),
            # pb's lease released: pb's address, then pb's address and hardware address
            _dhcp4(a_mac, lmac, A[1], LAN_V4, "release", a_mac, ciaddr=B[1], options=[("server_id", LAN_V4)]),
            _dhcp4(a_mac, lmac, A[1], LAN_V4, "release", b_mac, ciaddr=B[1], options=[("server_id", LAN_V4)]),
        ],
        "cisco_group": [
            # one PVST+ BPDU shuts a BPDU-guarded switch port: the shared uplink
            _snap(a_mac, PVST_GROUP, 0x0C, 0x010B, STP(rootid=0, rootmac=a_mac, bridgeid=0, bridgemac=a_mac)),
            # CDP (DTP and VTP use the same group)
            _snap(a_mac, CISCO_GROUP, 0x0C, 0x2000, Raw(b"\x02\xb4\x00\x00" + _mark("CDP"))),
        ],
        "mac_control": [
            bytes(Ether(src=a_mac, dst=lmac, type=0x8808) / Raw(b"\x00\x01\xff\xff" + _mark("PAUSE").ljust(42, b"\0"))),
            bytes(Ether(src=a_mac, dst=lmac, type=0x8809) / Raw(b"\x01\x01" + _mark("LACP").ljust(108, b"\0"))),
        ],
        "eapol": [bytes(Ether(src=a_mac, dst=lmac, type=0x888E) / Raw(b"\x02\x01\x00\x00" + _mark("EAPOL")))],
        "llc": [bytes(Dot3(src=a_mac, dst=BCAST) / LLC(dsap=0xF0, ssap=0xF0, ctrl=3) / Raw(_mark("NETBIOS")))],
    }
    # positive controls of the same kinds, after the hostile ones: pa's own
    # DISCOVER and SOLICIT (DUID-LL of its MAC), and a broadcast
    legit = [_dhcp4(a_mac, BCAST, "0.0.0.0", "255.255.255.255", "discover", a_mac),
             bytes(Ether(src=a_mac, dst=DHCP6_MAC) / IPv6(src=a_ll, dst="ff02::1:2") / UDP(sport=546, dport=547)
                   / DHCP6_Solicit(trid=0x5011) / DHCP6OptClientId(duid=DUID_LL(lladdr=a_mac))),
             marker_broadcast(mac_bytes(a_mac), _mark("LEGIT"))]
    before = _drops(two, A[0])
    lan = Sniffer(LAN_NS, LAN_IF)
    peer = Sniffer(B[0], "eth0")
    try:
        send_frames(A[0], [f for fs in hostile.values() for f in fs] + legit)
        for cap, where in ((lan, "the LAN host"), (peer, "pb")):
            for i, f in enumerate(legit):
                assert wait_for(lambda: _seen(cap.frames, f), timeout=5), f"{where} missed legit frame {i}"
        want = {r: len(fs) for r, fs in hostile.items()}
        assert wait_for(lambda: _counted(two, A[0], before, want), timeout=5), (want, _drops(two, A[0]))
    finally:
        got = {"the LAN host": lan.close(), "pb": peer.close()}
    for where, frames in got.items():
        for reason, fs in hostile.items():
            leaked = [i for i, f in enumerate(fs) if _seen(frames, f)]
            assert not leaked, f"{where} saw {reason} frame(s) {leaked}"
    # exactly those, nothing else counted for the controls
    assert {r: _drops(two, A[0])[r] - before[r] for r in want} == want


def test_allow_llc_is_per_partition_live_and_lets_nothing_else_through(system):
    name, ip = "pllc", "198.18.0.61"
    rtr = ("prtr", "198.18.0.62")
    system.create(name, "--ip", f"{ip}/24")
    system.create(rtr[0], "--ip", f"{rtr[1]}/24", "--trusted-router")
    mac = {n: system.cli_json("partition", "show", n)["mac"] for n in (name, rtr[0])}
    assert system.cli_json("partition", "show", name)["allow_llc"] is False

    def round_of(tag: str):
        llc = bytes(Dot3(src=mac[name], dst=BCAST) / LLC(dsap=0xFE, ssap=0xFE, ctrl=3) / Raw(_mark(f"LLC-{tag}")))
        others = [_snap(mac[name], PVST_GROUP, 0x0C, 0x010B, STP(rootmac=mac[name], bridgemac=mac[name])),
                  bytes(Ether(src=mac[name], dst=BCAST, type=0x888E) / Raw(b"\x02\x01\x00\x00" + _mark("EAPOL"))),
                  bytes(Ether(src=mac[name], dst=BCAST, type=0x8808) / Raw(b"\x00\x01\x00\x10" + _mark("PAUSE")))]
        legit = marker_broadcast(mac_bytes(mac[name]), _mark(f"LEGIT-{tag}"))
        lan = Sniffer(LAN_NS, LAN_IF)
        try:
            send_frames(name, [llc] + others + [legit])
            assert wait_for(lambda: _seen(lan.frames, legit), timeout=5), "the LAN missed the legit frame"
        finally:
            frames = lan.close()
        assert not [f for f in others if _seen(frames, f)], "--allow-llc let a control frame through"
        return _seen(frames, llc)

    before = _drops(system, name)
    assert not round_of("default")
    assert wait_for(lambda: _counted(system, name, before, {"llc": 1, "cisco_group": 1, "eapol": 1,
                                                             "mac_control": 1}))
    system.cli("partition", "set", name, "--allow-llc")
    show = system.cli_json("partition", "show", name)
    assert show["allow_llc"] is True and show["guard"] == "on (--allow-llc)"
    assert "guard     on (--allow-llc)" in system.cli("partition", "show", name).stdout
    assert round_of("allowed"), "--allow-llc: the LLC frame did not reach the LAN"
    system.cli("partition", "set", name, "--no-allow-llc")
    assert not round_of("again")

    # a trusted router serves DHCP, from any port
    offer = _dhcp4(mac[rtr[0]], BCAST, rtr[1], "255.255.255.255", "offer", "02:00:00:00:00:99", sport=1067,
                   dport=68, op=2, yiaddr="198.18.0.99", options=[("server_id", rtr[1])])
    lan = Sniffer(LAN_NS, LAN_IF)
    try:
        send_frames(rtr[0], [offer])
        assert wait_for(lambda: _seen(lan.frames, offer), timeout=5), "the trusted router's OFFER did not pass"
    finally:
        lan.close()


DHCLIENT_SCRIPT = """#!/bin/sh
# dhclient -sf: only the address on the partition's device (no resolv.conf, no routes)
case "$reason" in
BOUND6|RENEW6|REBIND6|REBOOT6)
    ip -6 addr replace "$new_ip6_address/${new_ip6_prefixlen:-128}" dev "$interface" nodad ;;
RELEASE6|EXPIRE6|STOP6)
    [ -z "$old_ip6_address" ] || ip -6 addr del "$old_ip6_address/${old_ip6_prefixlen:-128}" dev "$interface" ;;
esac
exit 0
"""


def _addresses(ns: str, family: str) -> list[str]:
    out = json.loads(_ns(ns, "ip", "-j", f"-{family}", "addr", "show", "dev", "eth0").stdout)
    return [a["local"] for link in out for a in link.get("addr_info", [])
            if a.get("scope") == "global" and not a.get("tentative")]


def test_a_real_dhcp_exchange_leases_and_releases_through_the_guard(system, tmp_path):
    """dnsmasq on the LAN host; in a partition, pyroute2's DHCP client and
    ISC dhclient -6 (DUID-LLT of the partition's MAC) get their leases, use
    them, and release them: every client message passes the guard."""
    name = "pdhcp"
    server = DhcpServer(str(tmp_path))
    clients: list[subprocess.Popen] = []
    try:
        system.create(name, "--allow-ip", "198.18.0.128/26", "--allow-ip", "fd00:5e::100/120")
        mac = system.cli_json("partition", "show", name)["mac"]
        before = _drops(system, name)

        # DHCPv4: DISCOVER, OFFER, REQUEST, ACK; the client sets the address and route
        v4 = subprocess.Popen(["ip", "netns", "exec", name, *PYROUTE2_DHCP, "eth0", "--log-level", "INFO"],
                              cwd=str(tmp_path), stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "dhcp4.log", "w"))
        clients.append(v4)
        lease4 = wait_for(lambda: _addresses(name, "4"), timeout=30)
        assert lease4, f"no DHCPv4 lease: {(tmp_path / 'dhcp4.log').read_text()[-2000:]} {server.log()[-2000:]}"
        assert lease4[0] in server.leases() and mac in server.leases()
        assert ping(name, LAN_V4, count=2).ok

        # DHCPv6: SOLICIT, ADVERTISE, REQUEST, REPLY, with dhclient's DUID-LLT
        script = tmp_path / "dhclient-script"
        script.write_text(DHCLIENT_SCRIPT)
        script.chmod(0o755)
        d6 = ["-lf", str(tmp_path / "dhclient6.leases"), "-pf", str(tmp_path / "dhclient6.pid"), "-sf", str(script)]
        lan = Sniffer(LAN_NS, LAN_IF)
        try:
            v6 = subprocess.Popen(["ip", "netns", "exec", name, "dhclient", "-6", "-d", "-1", *d6, "eth0"],
                                  stdout=subprocess.DEVNULL, stderr=open(tmp_path / "dhcp6.log", "w"))
            clients.append(v6)
            lease6 = wait_for(lambda: [a for a in _addresses(name, "6") if a.startswith("fd00:5e::1")],
                              timeout=30)
        finally:
            frames = lan.close()
        assert lease6, f"no DHCPv6 lease: {(tmp_path / 'dhcp6.log').read_text()[-2000:]} {server.log()[-2000:]}"
        solicits = [Ether(f) for f in frames if f[12:14] == b"\x86\xdd" and Ether(f).haslayer(DHCP6_Solicit)]
        assert solicits and isinstance(solicits[0][DHCP6OptClientId].duid, DUID_LLT)
        assert solicits[0][DHCP6OptClientId].duid.lladdr == mac, "dhclient's DUID is not of the partition's MAC"
        _ns(name, "ip", "-6", "route", "add", "fd00:5e::/64", "dev", "eth0")   # the on-link prefix an RA gives
        r = _ns(name, "ping", "-n", "-c", "2", "-i", "0.1", "-W", "2", "-I", lease6[0], LAN_V6, check=False)
        assert r.returncode == 0, r.stdout + r.stderr

        # RELEASE, both: the server frees the leases (pyroute2's client
        # releases when interrupted)
        v4.send_signal(signal.SIGINT)
        v4.wait(timeout=20)
        _ns(name, "dhclient", "-6", "-r", *d6, "eth0")
        assert wait_for(lambda: lease4[0] not in server.leases() and lease6[0] not in server.leases(),
                        timeout=10), server.leases()
        drops = _drops(system, name)
        assert {r: drops[r] - before[r] for r in ("dhcp_server", "dhcp_spoof", "malformed", "hidden", "ip_spoof")} \
            == dict.fromkeys(("dhcp_server", "dhcp_spoof", "malformed", "hidden", "ip_spoof"), 0)
    finally:
        for p in clients:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        server.close()
