"""The capture's file and lines, without a daemon: pcapng read back by scapy, summaries."""
from __future__ import annotations

import io

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.utils import rdpcap

from vnetshare.frontends.capture import PcapngWriter, line, summary

A_MAC, B_MAC = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def test_pcapng_round_trip_keeps_bytes_times_directions_and_drop_reasons(tmp_path):
    frames = [bytes(Ether(src=A_MAC, dst=B_MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP() / (b"x" * n))
              for n in (0, 1, 2, 3, 500)]
    buf = io.BytesIO()
    w = PcapngWriter(buf, "vnetshare:web", 65537, "test")
    t0 = 1_790_000_000_123_456_789
    for i, f in enumerate(frames):
        w.write(t0 + i, f[:60], len(f), "in" if i % 2 else "out", "spoof" if i == 4 else None)
    path = tmp_path / "x.pcapng"
    path.write_bytes(buf.getvalue())
    pkts = rdpcap(str(path))
    assert [bytes(p) for p in pkts] == [f[:60] for f in frames]  # snapped: 60 bytes at most
    assert [p.wirelen for p in pkts] == [len(f) for f in frames]
    assert [int(p.direction) & 3 for p in pkts] == [2, 1, 2, 1, 2]
    assert int(pkts[1].time * 1_000_000_000) // 1000 == (t0 + 1) // 1000
    assert [list(p.comments or []) for p in pkts][3:] == [[], [b"vnetshare-drop: spoof"]]


@pytest.mark.parametrize("frame, want", [
    (Ether(src=A_MAC, dst=B_MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8),
     f"{A_MAC} > {B_MAC}, IPv4 10.0.0.1 > 10.0.0.2: ICMP echo request, length 8"),
    (Ether(src=A_MAC, dst=B_MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80),
     "IPv4 10.0.0.1.1234 > 10.0.0.2.80: TCP, length 20"),
    (Ether(src=A_MAC, dst=B_MAC) / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=5, dport=53) / b"abcd",
     "IPv6 fd00::1.5 > fd00::2.53: UDP, length 12"),
    (Ether(src=A_MAC, dst=B_MAC) / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest(),
     "IPv6 fd00::1 > fd00::2: ICMP6 echo request"),
    (Ether(src=A_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.2"),
     "ARP who-has 10.0.0.2 tell 10.0.0.1"),
    (Ether(src=A_MAC, dst=B_MAC) / Dot1Q(vlan=7) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(),
     ", vlan 7, IPv4 10.0.0.1 > 10.0.0.2"),
    (Ether(src=A_MAC, dst=B_MAC, type=0x88B5) / b"hello",
     "ethertype 0x88b5"),
])
def test_summary_says_what_the_frame_is(frame, want):
    assert want in summary(bytes(frame))


def test_summary_survives_any_bytes():
    for n in range(0, 80):
        summary(bytes(range(n)))  # never raises
    assert summary(b"\x01" * 5) == "truncated frame, 5 bytes"


def test_line_shows_direction_snap_and_drop():
    f = bytes(Ether(src=A_MAC, dst=B_MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP())
    text = line(1_790_000_000_000_000_000, "out", f[:20], len(f), "ip_spoof")
    assert " out " in text and f"[20 of {len(f)} bytes]" in text and text.endswith("DROPPED: ip_spoof")
