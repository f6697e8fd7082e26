"""announce.py - tell a LAN that an address moved: gratuitous ARP, unsolicited NA.

When an address moves to another MAC (the host's, from the NIC to the host
port and back: hostport.py), the LAN's neighbour caches still name the old
one. A gratuitous ARP (an ARP request for the sender's own address,
broadcast) and an unsolicited neighbour advertisement (override flag, to
all nodes) make every station that has the address cached take the new
MAC at once, as bonding does after a failover (its num_grat_arp and
num_unsol_na). Stations that have not cached it learn nothing new: they
ask when they need it.

Rules:
1. The frames are built here, whole, by pure functions (arp_frame(),
   na_frame()), so a unit test reads them back with a packet library.
2. send() writes them on one device through an AF_PACKET socket opened in
   the caller's namespace and closed at once; nothing else is sent, and
   nothing is read.
3. A partition of an access VLAN is announced in its VLAN: the frame
   carries the 802.1Q tag the switch would give its own frames (tag()).
4. Many at once (every partition after an uplink failover, hosting.py):
   send_paced() writes at most PACED_PER_MS frames, then yields the loop
   for a millisecond, so 1,000 partitions are no storm on the LAN and the
   daemon's loop keeps answering meanwhile.
"""
from __future__ import annotations

import ipaddress
import socket
import struct

from ..core.config import mac_bytes

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"  # ff02::1
ALL_NODES = ipaddress.IPv6Address("ff02::1")
NA_OVERRIDE = 0x20000000
ICMPV6_NA = 136
ND_OPT_TARGET_LLADDR = 2
ETH_P_8021Q = 0x8100
PACED_PER_MS = 64  # frames per millisecond (rule 4): 1,000 partitions' 3,000 in about 50 ms


def arp_frame(mac: object, ip: str) -> bytes:
    """A gratuitous ARP request from @mac for its own @ip (RFC 5227's
    announcement: sender and target address both @ip), broadcast."""
    src = mac_bytes(mac)
    addr = ipaddress.IPv4Address(ip).packed
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src + addr + bytes(6) + addr
    return BROADCAST + src + struct.pack("!H", ETH_P_ARP) + arp + bytes(60 - 14 - len(arp))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def na_frame(mac: object, ip: str) -> bytes:
    """An unsolicited neighbour advertisement of @ip at @mac (RFC 4861
    7.2.6): from @ip to all nodes, hop limit 255, the override flag and the
    target link-layer address option."""
    src = mac_bytes(mac)
    addr = ipaddress.IPv6Address(ip).packed
    body = struct.pack("!BBHI", ICMPV6_NA, 0, 0, NA_OVERRIDE) + addr + bytes([ND_OPT_TARGET_LLADDR, 1]) + src
    pseudo = addr + ALL_NODES.packed + struct.pack("!I3xB", len(body), socket.IPPROTO_ICMPV6)
    body = body[:2] + struct.pack("!H", _checksum(pseudo + body)) + body[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(body), socket.IPPROTO_ICMPV6, 255) + addr + ALL_NODES.packed
    return ALL_NODES_MAC + src + struct.pack("!H", ETH_P_IPV6) + ip6 + body


def tag(frame: bytes, vlan: int) -> bytes:
    """@frame with an 802.1Q tag of @vlan after its MAC addresses (rule 3);
    @frame itself for VLAN 0."""
    if not vlan:
        return frame
    return frame[:12] + struct.pack("!HH", ETH_P_8021Q, vlan) + frame[12:]


def frames(mac: object, addresses: list[str], vlan: int = 0) -> list[bytes]:
    """The announcements of @addresses (IPv4 or IPv6, with or without a
    prefix length) at @mac, in @vlan (0: untagged): one frame each."""
    out = []
    for text in addresses:
        ip = ipaddress.ip_interface(text).ip
        out.append(tag(arp_frame(mac, str(ip)) if ip.version == 4 else na_frame(mac, str(ip)), vlan))
    return out


async def send_paced(ifname: str, todo: list[bytes], per_ms: int = PACED_PER_MS) -> tuple[int, int]:
    """Write @todo on @ifname, @per_ms frames a millisecond (rule 4):
    (frames sent, frames the device refused). OSError if the socket can't
    be had (the device gone)."""
    import asyncio

    sent = refused = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0) as s:
        s.bind((ifname, 0))
        s.setblocking(False)
        for i in range(0, len(todo), per_ms):
            if i:
                await asyncio.sleep(0.001)
            for frame in todo[i:i + per_ms]:
                try:
                    s.send(frame)
                    sent += 1
                except OSError:  # ENOBUFS, ENETDOWN: the caches learn it when they ask
                    refused += 1
    return sent, refused


def send(ifname: str, mac: object, addresses: list[str]) -> int:
    """Announce @addresses at @mac on @ifname (rule 2); the frames sent."""
    todo = frames(mac, addresses)
    if not todo:
        return 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0) as s:
        s.bind((ifname, 0))
        for frame in todo:
            s.send(frame)
    return len(todo)
