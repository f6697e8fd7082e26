"""Kernel facts native/uplink.c relies on: AF_PACKET with PACKET_VNET_HDR.

Each test proves one behaviour on this kernel; docs/kernel-facts.md quotes
them. A veth pair pka <-> pkb in the sandbox namespace stands for the NIC:
we send on pka and look at what pkb receives.
"""
import contextlib
import errno
import mmap
import select
import socket
import struct
import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import dataplane_helpers as dh
from vnetshare.linux import netns

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_VERSION = 10
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
PACKET_VNET_HDR_SZ = 24  # Linux 6.2; not in Debian 12's headers
TPACKET_V2 = 1
TP_STATUS_USER = 1
ETH_P_ALL = 0x0003
VNET_F_NEEDS_CSUM = 1
GSO_TCPV4 = 1
TP2_HDR = struct.Struct("<IIIHHIIHH4x")  # struct tpacket2_hdr


@pytest.fixture
def veth():
    tag = dh.Lab().tag
    a, b = f"pka{tag}", f"pkb{tag}"
    netns.veth_pair(a, b)
    try:
        for dev in (a, b):
            dh.sh("sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
            netns.link_set(dev, up=True)
        yield a, b
    finally:
        netns.quietly(netns.delete_link, a)


def vnet_gso(gso_type=GSO_TCPV4, gso_size=1448, hdr_len=54) -> bytes:
    return struct.pack("<BBHHHH", VNET_F_NEEDS_CSUM, gso_type, hdr_len, gso_size, 34, 16)


def tcp_frame(payload: int) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")
                 / IP(src="10.6.0.1", dst="10.6.0.2") / TCP(sport=4000, dport=5000, flags="A")
                 / (b"x" * payload))


def packet_socket(dev: str, vnet: bool = True) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    if vnet:
        s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    s.bind((dev, 0))
    return s


def recv_matching(s: socket.socket, size: int, timeout: float = 2.0) -> bytes | None:
    """First datagram of @size bytes (other traffic is skipped)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([s], [], [], 0.1)
        if r:
            d = s.recv(1 << 17)
            if len(d) == size:
                return d
    return None


def test_vnet_send_of_a_64k_tcpv4_gso_frame_is_one_skb(veth):
    a, b = veth
    frame = tcp_frame(65000)
    tx, rx = packet_socket(a), packet_socket(b)
    try:
        # gathered from three pieces, as uplink.c sends: vnet, l2, rest
        n = tx.sendmsg([vnet_gso(), frame[:14], frame[14:]])
        assert n == 10 + len(frame)  # the count includes the vnet header
        got = recv_matching(rx, 10 + len(frame))
        assert got is not None, "the GSO frame did not arrive as one frame"
        flags, gso_type, hdr_len, gso_size, cstart, coff = struct.unpack_from("<BBHHHH", got)
        assert gso_type == GSO_TCPV4 and gso_size == 1448
        assert got[10:24] == frame[:14]
    finally:
        tx.close()
        rx.close()


def test_vnet_send_of_gso_none_over_mtu_fails_emsgsize(veth):
    a, _ = veth
    tx = packet_socket(a)
    try:
        with pytest.raises(OSError) as e:
            tx.sendmsg([bytes(10), tcp_frame(3000)])
        assert e.value.errno == errno.EMSGSIZE
    finally:
        tx.close()


def _v2_ring(dev: str, frame_size: int, frame_nr: int = 8):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    block = frame_size * frame_nr
    s.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack("<IIII", block, 1, frame_size, frame_nr))
    m = mmap.mmap(s.fileno(), block)
    s.bind((dev, ETH_P_ALL))
    return s, m


def _find_slot(m, frame_size, frame_nr, tp_len, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for i in range(frame_nr):
            h = TP2_HDR.unpack_from(m, i * frame_size)
            if h[0] & TP_STATUS_USER and h[1] == tp_len:
                return i, h
        time.sleep(0.01)
    return None, None


@contextlib.contextmanager
def _gso_frame_into_v2_ring(veth, frame_size: int, payload: int):
    """Send a TCPv4 GSO frame of @payload bytes on the first device into a
    TPACKET_V2 ring of 8 slots of @frame_size on the second; yield (ring
    mmap, frame, slot index, slot header), the last two None if it never
    showed up."""
    a, b = veth
    rx, m = _v2_ring(b, frame_size)
    tx = packet_socket(a)
    try:
        frame = tcp_frame(payload)
        tx.sendmsg([vnet_gso(), frame])
        i, h = _find_slot(m, frame_size, 8, len(frame))
        yield m, frame, i, h
    finally:
        m.close()
        rx.close()
        tx.close()


def test_rx_ring_v2_slot_layout_vnet_header_right_before_mac(veth):
    frame_size = 1 << 17
    with _gso_frame_into_v2_ring(veth, frame_size, 65000) as (m, frame, i, h):
        assert h is not None
        status, tp_len, snaplen, tp_mac, tp_net = h[:5]
        assert snaplen == tp_len == len(frame)  # a 64 KiB GSO frame in one slot
        assert tp_net == tp_mac + 14
        # the 10-byte virtio_net_hdr sits right before the MAC header
        base = i * frame_size
        flags, gso_type, hdr_len, gso_size, cstart, coff = struct.unpack_from("<BBHHHH", m, base + tp_mac - 10)
        assert (gso_type, gso_size) == (GSO_TCPV4, 1448)
        assert flags & VNET_F_NEEDS_CSUM and (cstart, coff) == (34, 16)
        assert m[base + tp_mac:base + tp_mac + 14] == frame[:14]
        assert tp_mac == 80 - 14 + 10, tp_mac  # TPACKET_ALIGN(52 + 16) + 10 - 14: see kernel-facts.md


def test_rx_ring_slot_too_small_shows_truncation(veth):
    with _gso_frame_into_v2_ring(veth, 4096, 20000) as (_, _, _, h):
        assert h is not None
        assert h[2] < h[1]  # tp_snaplen < tp_len: uplink.c drops such frames, counted


def sizes_until(s: socket.socket, size: int, timeout: float = 2.0) -> list[int] | None:
    """Sizes of every datagram up to the first one of @size; None if it never came."""
    seen = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([s], [], [], 0.1)
        if r:
            seen.append(len(s.recv(1 << 17)))
            if seen[-1] == size:
                return seen
    return None


def test_ignore_outgoing_hides_what_the_host_sends(veth):
    a, b = veth
    frame = tcp_frame(100)
    # then one from the far end: every socket on @a must see it, after
    # @frame had it seen that (positive control in the same capture)
    incoming = tcp_frame(200)
    sender = packet_socket(a, vnet=False)
    plain = packet_socket(a, vnet=False)
    ign = packet_socket(a, vnet=False)
    ign.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    peer = packet_socket(b, vnet=False)
    try:
        sender.send(frame)
        peer.send(incoming)
        # another packet socket sees every outgoing frame of the device...
        seen = sizes_until(plain, len(incoming))
        assert seen is not None and len(frame) in seen, seen
        # ...one with PACKET_IGNORE_OUTGOING does not
        seen = sizes_until(ign, len(incoming))
        assert seen is not None and len(frame) not in seen, seen
        # and a socket never sees its own transmissions anyway (skb_loop_sk)
        seen = sizes_until(sender, len(incoming))
        assert seen is not None and len(frame) not in seen, seen
    finally:
        for s in (sender, plain, ign, peer):
            s.close()


def test_vnet_hdr_sz_12_is_accepted_on_this_kernel():
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        s.setsockopt(SOL_PACKET, PACKET_VNET_HDR_SZ, 12)  # Linux >= 6.2 only
        with pytest.raises(OSError):
            s.setsockopt(SOL_PACKET, PACKET_VNET_HDR_SZ, 11)
    finally:
        s.close()


def test_unicast_membership_on_a_device_without_filter_goes_promiscuous(veth):
    a, _ = veth
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        idx = socket.if_nametoindex(a)
        mreq = struct.pack("<iHH8s", idx, 3, 6, bytes.fromhex("020000000077") + bytes(2))  # PACKET_MR_UNICAST
        s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        out = dh.sh("ip", "-d", "link", "show", a).stdout
        promiscuity = int(out.split("promiscuity ")[1].split()[0])
        # veth has no IFF_UNICAST_FLT: the kernel turns promiscuity on itself
        assert promiscuity >= 1, out
    finally:
        s.close()


def test_a_socket_stays_unbound_when_its_device_is_made_again(veth):
    """The device a packet socket is bound to is unregistered: ENETDOWN on
    the socket (POLLERR), and the socket is bound to nothing from then on:
    a new device of the same name (a new ifindex) neither reaches it nor
    takes its sends. So the daemon opens a new socket on the new device
    (hosting.py rule 6, sw_uplink_attach())."""
    a, b = veth
    old = socket.if_nametoindex(a)
    s = packet_socket(a, vnet=False)
    try:
        netns.delete_link(a)
        r, _, x = select.select([s], [], [s], 2.0)
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ENETDOWN
        netns.veth_pair(a, b)
        for dev in (a, b):
            dh.sh("sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
            netns.link_set(dev, up=True)
        assert socket.if_nametoindex(a) != old
        fresh = packet_socket(a, vnet=False)  # positive control: the new device's frames
        peer = packet_socket(b, vnet=False)
        try:
            peer.send(tcp_frame(300))
            assert recv_matching(fresh, len(tcp_frame(300))) is not None
            assert recv_matching(s, len(tcp_frame(300)), timeout=0.5) is None
            with pytest.raises(OSError) as e:
                s.send(tcp_frame(100))
            assert e.value.errno == errno.ENXIO, e.value
        finally:
            fresh.close()
            peer.close()
    finally:
        s.close()


def test_an_up_link_can_be_renamed_and_its_socket_keeps_it(veth):
    """A link may be renamed while up (this kernel allows it), and a packet
    socket bound to it goes on with it under its new name: the socket is
    bound to the device, not the name. The daemon serves the name
    (hosting.py rule 6), so a rename away is a change it acts on: it lets
    the device go (uplink.gone) and its per-NIC lock stays the name's."""
    a, b = veth
    s = packet_socket(a, vnet=False)
    peer = packet_socket(b, vnet=False)
    try:
        p = dh.sh("ip", "link", "set", a, "name", "pkrename0", check=False)
        assert p.returncode == 0, p.stderr
        peer.send(tcp_frame(300))
        assert recv_matching(s, len(tcp_frame(300))) is not None
    finally:
        s.close()
        peer.close()
        dh.sh("ip", "link", "set", "pkrename0", "name", a, check=False)
