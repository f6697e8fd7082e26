"""What a partition's vnet header may ask for (issue 20, items 1 and 5), as a
hostile tenant tries it: root in partition pa, a raw AF_PACKET socket with
PACKET_VNET_HDR on its eth0.

The daemon runs `--offloads emulate` (partitions get checksum and TSO
offloads whatever the uplink has) and the uplink's tx checksumming is off,
so the kernel completes checksums and cuts GSO frames in software on the
uplink: there a checksum asked for lands, 2 bytes the sender steers, at
csum_start + csum_offset, and a GSO frame becomes gso_size pieces. Every
absence below has, in the same capture, frames that had to arrive and did
(a blind capture fails the test); every wait is for a condition.
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
import subprocess
import time

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from system import (A, B, LAN_IF, LAN_NS, LAN_V4, UPLINK, Sniffer, lan_mac, marker_broadcast, send_frames,
                    set_features, wait_for)
from vnetshare.core.config import mac_bytes
from vnetshare.dataplane.guard import GSO_TCPV4, NEEDS_CSUM, Vnet
from vnetshare.linux import ethtool, netns
from vnetshare.linux.probe import iperf3

NOBODY = "198.18.0.250"    # on the LAN, no one's: frames to it get no answer


@pytest.fixture
def daemon_args() -> tuple[str, ...]:
    return ("--offloads", "emulate")


@pytest.fixture
def soft(two):
    """`two`, with the uplink's tx checksumming (and so TSO) off."""
    feats = set_features(UPLINK, None, tx_checksum_ip_generic=False)
    assert not feats["tx-tcp-segmentation"], feats
    # the partitions still have the offloads (emulate), so their kernels
    # hand checksum and GSO requests to the switch
    for name in (A[0], B[0]):
        got = netns.run_in(name, ethtool.query, "eth0").features
        assert got["tx-checksum-ip-generic"] and got["tx-tcp-segmentation"], (name, got)
    return two


# -- checksums, as the kernel completes them -----------------------------------

def _sum16(data: bytes) -> int:
    """The ones' complement sum of @data as big-endian 16-bit words, folded."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _completed(frame: bytes, start: int) -> int:
    """What skb_checksum_help() writes for NEEDS_CSUM at @start: the
    complement of the sum from @start to the frame's end."""
    return (~_sum16(frame[start:]) & 0xFFFF) or 0xFFFF


def _steer(frame: bytes, start: int, want: int, word: int) -> bytes:
    """@frame with the 16-bit word at @word (an even distance from @start)
    chosen so that the checksum completed from @start is @want."""
    assert (word - start) % 2 == 0
    frame = frame[:word] + b"\0\0" + frame[word + 2:]
    w = _sum16(struct.pack("!HH", ~want & 0xFFFF, ~_sum16(frame[start:]) & 0xFFFF))
    frame = frame[:word] + struct.pack("!H", w) + frame[word + 2:]
    assert _completed(frame, start) == want
    return frame


def _pseudo4(src: str, dst: str, proto: int, length: int) -> int:
    """The IPv4 pseudo-header sum a sender leaves in the L4 checksum field
    when it asks for the rest (NEEDS_CSUM), as the kernel's own senders do."""
    return _sum16(ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
                  + struct.pack("!BBH", 0, proto, length))


def _udp_offloaded(src_mac: str, dst_mac: str, src: str, dst: str, sport: int, dport: int,
                   payload: bytes) -> bytes:
    """A UDP datagram whose checksum is left to the device: the field holds
    the pseudo-header sum, csum_start 34, csum_offset 6."""
    n = 8 + len(payload)
    return bytes(Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst)
                 / UDP(sport=sport, dport=dport, chksum=_pseudo4(src, dst, 17, n)) / payload)


def _tcp_gso(src_mac: str, dst_mac: str, src: str, dst: str, sport: int, payload: bytes,
             seq: int = 1000) -> bytes:
    """A TCP segment of @payload whose checksum is left to the device (as a
    TSO sender leaves it: the pseudo-header sum of the whole length)."""
    n = 20 + len(payload)
    return bytes(Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst, flags="DF")
                 / TCP(sport=sport, dport=9, seq=seq, flags="PA", window=1024,
                       chksum=_pseudo4(src, dst, 6, n)) / payload)


class UdpSink:
    """A UDP socket of the LAN host: what it receives passed the kernel's
    checksum check, so it arrived intact; and from whom, as it arrived."""

    def __init__(self, addr: str, port: int):
        def opener() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((addr, port))
            s.setblocking(False)
            return s
        self.sock = netns.run_in(LAN_NS, opener)
        self.got: list[tuple[bytes, str]] = []

    def has(self, marker: bytes) -> bool:
        while True:
            try:
                data, (src, _) = self.sock.recvfrom(65536)
            except BlockingIOError:
                break
            self.got.append((data, src))
        return any(marker in d for d, _ in self.got)

    def close(self) -> None:
        self.sock.close()


def _ns(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=30,
                          check=check)


def _neigh(ns: str) -> dict:
    return {n["dst"]: n.get("lladdr") for n in json.loads(_ns(ns, "ip", "-j", "neigh").stdout)}


def _mark(what: str) -> bytes:
    return f"{what}-".encode() + os.urandom(4).hex().encode()


def test_a_checksum_request_cannot_rewrite_what_the_guard_checked(soft):
    a_mac = soft.cli_json("partition", "show", A[0])["mac"]
    b_mac = soft.cli_json("partition", "show", B[0])["mac"]
    lmac = lan_mac()
    # the LAN host knows pb, at pb's MAC: a poisoning would have to move it.
    # A stale entry, as after any exchange (ARP overrides it), made without
    # one: pb then has no entry of its own to probe, which would move it back
    _ns(LAN_NS, "ip", "neigh", "replace", B[1], "lladdr", b_mac, "dev", LAN_IF, "nud", "stale")
    assert _neigh(LAN_NS).get(B[1]) == b_mac, _neigh(LAN_NS)
    low = lambda ip: int.from_bytes(ipaddress.IPv4Address(ip).packed[2:], "big")  # noqa: E731

    # issue 20: "who-has the LAN host, tell <pa's address>" with its sender
    # address's low half (bytes 30-31) left to the checksum, steered by the
    # padding to pb's: it would leave as "tell 198.18.0.12" from pa's MAC
    arp = bytes(Ether(src=a_mac, dst=lmac) / ARP(op=1, hwsrc=a_mac, psrc=A[1], pdst=LAN_V4)) + bytes(18)
    arp = _steer(arp, 30, low(B[1]), 42)
    # issue 20: a datagram checked as from pa whose source's low half is the
    # checksum (csum_start 28); its IP header checksum is already pb's
    port = 40000 + os.getpid() % 20000
    forged = _mark("FORGED-SOURCE")
    udp = bytearray(bytes(Ether(src=a_mac, dst=lmac) / IP(src=B[1], dst=LAN_V4)
                          / UDP(sport=port, dport=port, chksum=0) / (forged + bytes(2))))
    udp[26:30] = ipaddress.IPv4Address(A[1]).packed
    udp = _steer(bytes(udp), 28, low(B[1]), len(udp) - 2)
    hostile = [(Vnet(NEEDS_CSUM, 0, 0, 0, 30, 0), arp), (Vnet(NEEDS_CSUM, 0, 0, 0, 28, 0), udp)]
    # and what must pass: a datagram whose UDP checksum the uplink's kernel
    # completes (the LAN host's socket takes it only if it is right)
    legit = _mark("OFFLOADED")
    good = (Vnet(NEEDS_CSUM, 0, 0, 0, 34, 6),
            _udp_offloaded(a_mac, lmac, A[1], LAN_V4, port, port, legit + bytes(101)))
    last = _mark("LAST")

    before = soft.stats(A[0])["drops"]
    sink = UdpSink(LAN_V4, port)
    lan = Sniffer(LAN_NS, LAN_IF)
    try:
        send_frames(A[0], hostile + [good, marker_broadcast(mac_bytes(a_mac), last)])
        assert wait_for(lambda: any(last in f for f in lan.frames), timeout=5), "the LAN host missed the last frame"
        assert wait_for(lambda: sink.has(legit), timeout=5), "the checksum-offloaded datagram did not arrive"
        counted = wait_for(lambda: soft.stats(A[0])["drops"]["csum_offset"] - before["csum_offset"] >= 2)
        sink.has(forged)
    finally:
        frames = lan.close()
        sink.close()
    assert [src for d, src in sink.got if legit in d] == [A[1]], sink.got
    assert not [src for d, src in sink.got if forged in d], f"the forged datagram arrived: {sink.got}"
    assert not any(forged in f for f in frames), "the forged datagram reached the LAN"
    assert not any(f[12:14] == b"\x08\x06" and f[6:12] == mac_bytes(a_mac) and f[28:32]
                   == ipaddress.IPv4Address(B[1]).packed for f in frames), "an ARP 'tell pb' from pa's MAC"
    assert _neigh(LAN_NS).get(B[1]) == b_mac, f"the LAN host's entry for pb moved: {_neigh(LAN_NS)}"
    assert counted, soft.stats(A[0])["drops"]


# -- GSO: bounded, and charged as the segments it becomes --------------------------

MSS = 1460                 # a 1500-byte MTU, no TCP options
SEGS = 10


def _segments(frames: list[bytes], sport: int) -> list[bytes]:
    return [f for f in frames if f[12:14] == b"\x08\x00" and f[23] == 6
            and struct.unpack_from("!H", f, 34)[0] == sport]


def _tcp_ok(frame: bytes) -> bool:
    """Is the TCP checksum of this IPv4 frame right?"""
    ihl = (frame[14] & 0xF) * 4
    tot = struct.unpack_from("!H", frame, 16)[0]
    seg = frame[14 + ihl:14 + tot]
    return _sum16(struct.pack("!4s4sBBH", frame[26:30], frame[30:34], 0, 6, len(seg)) + seg) == 0xFFFF


def test_gso_is_bounded_and_charged_as_the_segments_it_becomes(soft):
    a_mac = soft.cli_json("partition", "show", A[0])["mac"]
    b_mac = soft.cli_json("partition", "show", B[0])["mac"]
    lmac = lan_mac()
    sport = 30000 + os.getpid() % 20000
    hostile_sport = sport + 1
    # issue 20: 60 KB of TCP with gso_size 1 (60,000 frames on the LAN, charged 1)
    # (a GSO type that is not the packet's, or no NEEDS_CSUM, the sender's
    # kernel refuses or mends itself; an agent writing its ring could send
    # them: tests/native/test_guard.py)
    big = _tcp_gso(a_mac, lmac, A[1], NOBODY, hostile_sport, os.urandom(60000))
    hostile = [
        (Vnet(NEEDS_CSUM, GSO_TCPV4, 54, 1, 34, 16), big),
        (Vnet(NEEDS_CSUM, GSO_TCPV4, 54, 47, 34, 16), big),            # under TCP's least segment
        (Vnet(NEEDS_CSUM, GSO_TCPV4, 54, MSS + 1, 34, 16), big),       # segments over the MTU
    ]
    # gso_size over the payload: "not GSO" to the kernel, one 60 KB frame
    oversized = (Vnet(NEEDS_CSUM, GSO_TCPV4, 54, 65000, 34, 16), big)
    # what must pass: legitimate GSO frames of SEGS segments each, to the LAN
    # and to pb; and from the LAN host to pa. All to an address no one has,
    # so no stack answers (a reset would be counted too)
    payloads = [os.urandom(SEGS * MSS) for _ in range(3)]
    legit = [(Vnet(NEEDS_CSUM, GSO_TCPV4, 54, MSS, 34, 16),
              _tcp_gso(a_mac, lmac, A[1], NOBODY, sport, p, seq=1000 + i * len(p)))
             for i, p in enumerate(payloads)]
    to_b = (Vnet(NEEDS_CSUM, GSO_TCPV4, 54, MSS, 34, 16),
            _tcp_gso(a_mac, b_mac, A[1], NOBODY, sport, os.urandom(SEGS * MSS)))
    from_lan = (Vnet(NEEDS_CSUM, GSO_TCPV4, 54, MSS, 34, 16),
                _tcp_gso(lmac, a_mac, LAN_V4, NOBODY, sport, os.urandom(SEGS * MSS)))
    last = _mark("LAST")

    before = {n: soft.stats(n) for n in (A[0], B[0])}
    lan = Sniffer(LAN_NS, LAN_IF)
    at_a, at_b = Sniffer(A[0], "eth0"), Sniffer(B[0], "eth0")
    try:
        send_frames(A[0], hostile + [oversized] + legit + [to_b, marker_broadcast(mac_bytes(a_mac), last)])
        send_frames(LAN_NS, [from_lan], LAN_IF)
        assert wait_for(lambda: any(last in f for f in lan.frames), timeout=5), "the LAN host missed the last frame"
        assert wait_for(lambda: len(_segments(lan.frames, sport)) >= 3 * SEGS, timeout=5), \
            len(_segments(lan.frames, sport))
        assert wait_for(lambda: _segments(at_b.frames, sport), timeout=5), "pb missed the GSO frame"
        assert wait_for(lambda: _segments(at_a.frames, sport), timeout=5), "pa missed the LAN host's GSO frame"
        counted = wait_for(lambda: soft.stats(A[0])["drops"]["gso"] - before[A[0]]["drops"]["gso"] >= len(hostile)
                           and soft.stats(A[0])["drops"]["mtu"] > before[A[0]]["drops"]["mtu"])
        after = {n: soft.stats(n) for n in (A[0], B[0])}
    finally:
        frames = lan.close()
        at_a.close()
        at_b.close()
    # nothing of the hostile ones on the LAN
    assert not _segments(frames, hostile_sport), f"{len(_segments(frames, hostile_sport))} hostile segments"
    assert not any(len(f) > 1514 for f in frames), "a frame over the MTU reached the LAN"
    assert counted, after[A[0]]["drops"]
    # the legitimate ones, segmented on the LAN side, intact
    segs = _segments(frames, sport)
    assert len(segs) == 3 * SEGS and all(len(f) <= 1514 and _tcp_ok(f) for f in segs), \
        [(len(f), _tcp_ok(f)) for f in segs]
    got = b"".join(bytes(Ether(f)[TCP].payload) for f in sorted(segs, key=lambda f: struct.unpack_from("!I", f, 38)))
    assert got == b"".join(payloads)
    # charged as the segments: 3 to the LAN and 1 to pb, SEGS each, and the
    # last frame; pa's own chatter (ND, MLD) may add a frame or two
    frame_len = 14 + 20 + 20 + SEGS * MSS
    dt = {k: after[A[0]][k] - before[A[0]][k] for k in ("tx_frames", "tx_bytes", "tx_to_wire")}
    assert 4 * SEGS + 1 <= dt["tx_frames"] <= 4 * SEGS + 5, dt
    assert dt["tx_bytes"] >= 4 * (frame_len + (SEGS - 1) * 54) + len(marker_broadcast(b"\0" * 6, last)), dt
    assert dt["tx_to_wire"] >= 3 * SEGS + 1, dt
    for name, sent in ((B[0], 1), (A[0], 1)):     # pb from pa, pa from the LAN host
        rx = after[name]["rx_frames"] - before[name]["rx_frames"]
        assert sent * SEGS <= rx <= sent * SEGS + 5, (name, rx)


def test_a_packet_rate_limit_holds_against_gso(soft):
    a_mac = soft.cli_json("partition", "show", A[0])["mac"]
    lmac = lan_mac()
    rate, burst, n = 200, 10, 10          # 10 GSO frames of SEGS segments: 100 packets
    soft.cli("partition", "set", A[0], "--tx-limit", f"{rate}pps", "--tx-burst", f"{burst}p")
    sport = 30000 + os.getpid() % 20000
    frames = [(Vnet(NEEDS_CSUM, GSO_TCPV4, 54, MSS, 34, 16),
               _tcp_gso(a_mac, lmac, A[1], NOBODY, sport, os.urandom(SEGS * MSS), seq=1000 + i * SEGS * MSS))
              for i in range(n)]
    throttled = soft.stats(A[0])["tx_throttled"]
    lan = Sniffer(LAN_NS, LAN_IF)
    try:
        t0 = time.monotonic()
        send_frames(A[0], frames)
        assert wait_for(lambda: len(_segments(lan.frames, sport)) >= n * SEGS, timeout=10), \
            len(_segments(lan.frames, sport))
        elapsed = time.monotonic() - t0
    finally:
        lan.close()
    # the limit counts segments: n * SEGS packets at `rate` after a burst,
    # less one frame (SEGS packets) that conforms while the bucket is above
    # zero and leaves it in debt (native/tbucket.h rule 4); 0.404 s was seen
    # against the 0.405 s this bound had without that frame
    assert elapsed >= 0.9 * (n * SEGS - burst - SEGS) / rate, f"{n * SEGS} packets in {elapsed:.2f} s at {rate} pps"
    # (charged one packet a frame, the ten frames would pass at once, in the burst)
    assert soft.stats(A[0])["tx_throttled"] > throttled
    soft.cli("partition", "set", A[0], "--tx-limit", "none")

    # and real TCP, whose kernel hands the TAP 64 KiB GSO frames, is held to
    # its packet rate: about 1448 bytes a packet
    soft.cli("partition", "set", A[0], "--tx-limit", "5kpps")
    r = iperf3(LAN_NS, A[0], LAN_V4, seconds=2)
    assert r.ok, r.error
    cap = 5000 * 1514 * 8 / 1e9
    assert r.gbps <= 1.15 * cap, f"{r.gbps * 1000:.0f} Mbit/s under 5 kpps ({cap * 1000:.0f} Mbit/s of full frames)"
    assert r.gbps >= 0.4 * cap, f"{r.gbps * 1000:.0f} Mbit/s under 5 kpps"


def test_real_traffic_with_offloads_completed_in_software(soft):
    """TCP between partitions and to the LAN, its checksums and segments
    done by the kernel on the uplink: every frame passes the guard."""
    for server, addr in ((B[0], B[1]), (LAN_NS, LAN_V4)):
        r = iperf3(server, A[0], addr, seconds=2)
        assert r.ok and r.gbps > 0.3, (addr, r)
    r = iperf3(LAN_NS, A[0], LAN_V4, seconds=1, udp_len=1400)
    assert r.ok, r.error
    drops = soft.stats(A[0])["drops"]
    assert drops["csum_offset"] == drops["gso"] == 0, drops


# -- vnetshare verify ----------------------------------------------------------------

def _verify(s, *argv: str) -> tuple[int, dict]:
    p = s.cli("verify", "--json", *argv, check=False)
    return p.returncode, json.loads(p.stdout)


def test_verify_sends_the_vnet_classes_and_says_when_it_cannot(soft):
    code, rep = _verify(soft)
    rows = {r["check"]: r for r in rep["checks"]}
    assert code == 0 and rep["ok"], rep
    for name, reason in (("a checksum asked for over the ARP sender address", "csum_offset"),
                         ("a checksum asked for over the IPv4 source", "csum_offset"),
                         ("GSO frame with gso_size 1", "gso")):
        assert rows[name]["reason"] == reason and rows[name]["counted"] >= 1, rows[name]
        assert rows[name]["receiver"] == 0 and rows[name]["verdict"] == "ok", rows[name]
    for control in ("checksum-offloaded datagram (control)", "GSO frame of MTU-sized segments (control)"):
        assert rows[control]["receiver"] == 1 and rows[control]["verdict"] == "ok", rows[control]

    # a daemon whose partitions get no offloads (mirror mode, an uplink
    # without checksumming): their kernels finish such frames themselves,
    # there is nothing to prove, and verify says so instead of failing
    assert soft.stop_daemon() == 0
    soft.start_daemon()
    code, rep = _verify(soft)
    rows = {r["check"]: r for r in rep["checks"]}
    assert code == 0 and rep["ok"], rep
    for name in ("a checksum asked for over the IPv4 source", "GSO frame with gso_size 1"):
        assert rows[name]["verdict"].startswith("n/a: the partitions have no tx-"), rows[name]
    assert rows["forged IPv4 source"]["verdict"] == "ok"
