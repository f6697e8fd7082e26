"""Kernel facts native/tap.c and native/pump.c rely on: the vnet_hdr TAP.

The test plays a TCP peer by hand on the TAP (scapy answers the SYN), so
the partition's stack sends its first flight of data, which with TSO on the
TAP is one GSO frame.
"""
import os
import select
import struct
import time

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import dataplane_helpers as dh
from vnetshare.linux import netns
from vnetshare.dataplane.tap import open_tap

PEER_IP, PEER_MAC = "10.7.0.2", "02:00:00:00:00:99"
GSO_TCPV4 = 1


def test_tunsetiff_from_a_thread_in_the_namespace_makes_the_device_there(lab):
    ns = lab.netns("p")
    fd = open_tap("probe0", ns)
    lab.fds.append(fd)
    assert [link.ifname for link in netns.links(ns)] == ["lo", "probe0"]
    assert not os.path.exists("/sys/class/net/probe0")  # not in ours


def _read_frame(fd, timeout=3.0, fill=0xAA):
    """One read() from the TAP into a buffer pre-filled with @fill."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            buf = bytearray([fill]) * 70000
            n = os.readv(fd, [buf])
            return bytes(buf[:n]), bytes(buf[10:12])
    return None, None


def test_tap_read_gives_12_byte_header_and_gso_frames_with_tso(lab):
    ns = lab.netns("p")
    fd = open_tap("eth0", ns, mac="02:00:00:00:00:01", offloads=("csum", "tso4", "tso6"))
    lab.fds.append(fd)
    dh.nsexec(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    netns.add_address("eth0", "10.7.0.1/24", ns)
    netns.link_set("eth0", ns, up=True)
    dh.nsexec(ns, "ip", "neigh", "add", PEER_IP, "lladdr", PEER_MAC, "dev", "eth0")
    lab.popen(ns, "python3", "-c",
              f"import socket; c = socket.create_connection(('{PEER_IP}', 5001), timeout=10); "
              "c.sendall(b'y' * 1000000)")
    syn = None
    while syn is None:
        data, _ = _read_frame(fd)
        assert data is not None, "no SYN from the partition"
        pkt = Ether(data[12:])
        if TCP in pkt and pkt[TCP].flags == "S":
            syn = pkt
    synack = (Ether(src=PEER_MAC, dst=syn.src) / IP(src=PEER_IP, dst=syn[IP].src)
              / TCP(sport=5001, dport=syn[TCP].sport, flags="SA", seq=1000, ack=syn[TCP].seq + 1,
                    window=65535, options=[("MSS", 1460), ("WScale", 7)]))
    os.write(fd, bytes(12) + bytes(synack))
    big = None
    for _ in range(10):
        data, nb = _read_frame(fd)
        assert data is not None
        if len(data) - 12 > 1514:
            big = data
            break
    assert big is not None, "no GSO frame: TSO on the TAP did not give one"
    flags, gso_type, hdr_len, gso_size, cstart, coff = struct.unpack_from("<BBHHHH", big)
    assert gso_type == GSO_TCPV4 and gso_size == 1460 and flags & 1  # MSS, no timestamps
    assert (cstart, coff) == (34, 16) and hdr_len >= 54
    assert Ether(big[12:])[TCP].dport == 5001  # the frame starts right after 12 bytes
    # the kernel fills all 12 header bytes: num_buffers is zeroed, not left as is
    assert nb == b"\x00\x00"


# -- what a TAP hands the agent for checksum and GSO requests (guard.h) ------------

SENDER = r"""
import socket, struct, sys
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.setsockopt(263, 15, 1)                                # PACKET_VNET_HDR
s.bind(("eth0", 0))
ts = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]
tcp = bytes(Ether(src="02:00:00:00:00:01", dst="%s") / IP(src="10.7.0.1", dst="%s")
            / TCP(sport=7, dport=7, flags="A", options=ts) / bytes(6000))
for flags, hdr_len, gso_size in ((1, 0, 1000), (1, 200, 1000), (0, 0, 1000), (1, 66, 7), (1, 66, 65000)):
    s.send(struct.pack("<BBHHHH", flags, 1, hdr_len, gso_size, 34 if flags else 0, 16 if flags else 0) + tcp)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(17, 103, 1)                                # UDP_SEGMENT: 1-byte segments
for n in (128, 129):
    try:
        u.sendto(bytes(n), ("%s", 9))
        print(n, "sent")
    except OSError as e:
        print(n, e.errno)
""" % (PEER_MAC, PEER_IP, PEER_IP)


def test_tap_passes_gso_requests_as_the_kernel_mends_them(lab):
    """What reaches the agent: hdr_len is skb_headlen(), the kernel's
    linear hint (never less than the headers, a raw socket's own hint as
    it is); GSO always comes with NEEDS_CSUM at the L4 header; a gso_size
    of 7 passes the kernel (the guard's least segment is its own check); a
    gso_size over the payload is "not GSO": one frame over the MTU (the
    guard's drop_mtu); UDP GSO takes at most 128 segments (UDP_MAX_SEGMENTS
    on Linux 6.18, the guard's bound)."""
    ns = lab.netns("p")
    fd = open_tap("eth0", ns, mac="02:00:00:00:00:01", offloads=("csum", "tso4", "tso6", "uso4", "uso6"))
    lab.fds.append(fd)
    dh.nsexec(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    netns.add_address("eth0", "10.7.0.1/24", ns)
    netns.link_set("eth0", ns, up=True)
    dh.nsexec(ns, "ip", "neigh", "add", PEER_IP, "lladdr", PEER_MAC, "dev", "eth0")
    out = dh.nsexec(ns, "python3", "-c", SENDER).stdout.split("\n")
    assert out[:2] == ["128 sent", "129 22"], out            # EINVAL past 128 segments
    got = []
    while len(got) < 6:
        data, _ = _read_frame(fd)
        assert data is not None, got
        if Ether(data[12:]).haslayer(TCP) or Ether(data[12:]).haslayer("UDP"):
            got.append((struct.unpack_from("<BBHHHH", data), len(data) - 12))
    tcp_len = 14 + 20 + 32 + 6000
    assert got == [
        ((1, GSO_TCPV4, 66, 1000, 34, 16), tcp_len),         # hdr_len 0: the kernel pulled the headers
        ((1, GSO_TCPV4, 200, 1000, 34, 16), tcp_len),        # a hint passes as it is
        ((1, GSO_TCPV4, 66, 1000, 34, 16), tcp_len),         # no NEEDS_CSUM: the kernel set it
        ((1, GSO_TCPV4, 66, 7, 34, 16), tcp_len),
        ((1, 0, 0, 0, 34, 16), tcp_len),                     # not GSO, 6,066 bytes
        ((1, 5, 42, 1, 34, 6), 14 + 20 + 8 + 128),           # UDP_L4, 128 segments of 1 byte
    ], got
