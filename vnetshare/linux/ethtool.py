"""ethtool.py - a link's MTU, MAC, state, speed, duplex and features, without pyroute2.

What adapter.query() asks the kernel about the uplink, with one rtnetlink
RTM_GETLINK and three ethtool ioctls (ETHTOOL_GSTRINGS of the feature
names, ETHTOOL_GFEATURES, ETHTOOL_GSET): a daemon that must bring its data
path back quickly (issue 12: 250 ms after a restart) does not import
pyroute2 (about 130 ms of imports on the test machine) to ask four things.

Rules:
1. Everything acts in the calling thread's network namespace: call it
   through netns.run_in() for another one.
2. A missing link is NetnsError(ENODEV); a driver without link settings
   (lo, some virtual devices) has speed and duplex None, as pyroute2's
   Ethtool.get_link_mode() says for them; an unknown speed (0, -1) is None.
3. A feature is on when its bit is set in the `active` word of
   ETHTOOL_GFEATURES (what `ethtool -k` prints, what pyroute2 calls enable).
4. The link's hardware type is the ifinfomsg's ifi_type, an ARPHRD_*
   number (linux/if_arp.h): ARPHRD_ETHER for Ethernet (and veth, bridges,
   bonds, macvlan), ARPHRD_LOOPBACK for lo, ARPHRD_NONE for an L3 device
   (a TUN, WireGuard).
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
from dataclasses import dataclass, field

SIOCETHTOOL = 0x8946
ETHTOOL_GSET = 0x00000001
ETHTOOL_GSTRINGS = 0x0000001B
ETHTOOL_GSSET_INFO = 0x00000037
ETHTOOL_GFEATURES = 0x0000003A
ETH_SS_FEATURES = 4
ETH_GSTRING_LEN = 32
SPEED_UNKNOWN = 0xFFFFFFFF
DUPLEX = {0: "Half", 1: "Full"}

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK = 16, 18
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_OPERSTATE = 1, 3, 4, 16
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFLA_EXT_MASK = 29
ARPHRD_ETHER, ARPHRD_LOOPBACK, ARPHRD_NONE = 1, 772, 0xFFFE  # linux/if_arp.h (rule 4)
# IF_OPER_* (RFC 2863), as pyroute2 and iproute2 name them
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")


@dataclass(frozen=True)
class LinkFacts:
    ifname: str
    ifindex: int
    mtu: int
    mac: str | None
    operstate: str
    speed: int | None              # Mb/s
    duplex: str | None             # "Full", "Half"
    features: dict[str, bool] = field(default_factory=dict)
    arphrd: int = ARPHRD_ETHER     # its hardware type (rule 4)


def _error(err: int, what: str) -> OSError:
    from .netns import NetnsError  # netns imports nothing heavy either

    return NetnsError(err, f"{what}: {os.strerror(err)}")


def _attr(rta_type: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("HH", n, rta_type) + payload + bytes((-n) % 4)


def _getlink(ifname: str) -> tuple[int, int, dict[int, bytes]]:
    """(ifindex, ARPHRD type, {IFLA_*: payload}) of @ifname by one RTM_GETLINK."""
    body = struct.pack("BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0)  # struct ifinfomsg
    body += _attr(IFLA_IFNAME, ifname.encode() + b"\0")
    body += _attr(IFLA_EXT_MASK, struct.pack("I", RTEXT_FILTER_SKIP_STATS))
    msg = struct.pack("IHHII", 16 + len(body), RTM_GETLINK, NLM_F_REQUEST, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE) as s:
        s.send(msg)
        data = s.recv(65536)
    length, kind = struct.unpack_from("IH", data)
    if kind == NLMSG_ERROR:
        err = -struct.unpack_from("i", data, 16)[0]
        raise _error(err or errno.EIO, f"link {ifname!r}")
    if kind != RTM_NEWLINK:
        raise _error(errno.EPROTO, f"link {ifname!r}: netlink answered type {kind}")
    arphrd, ifindex = struct.unpack_from("=Hi", data, 16 + 2)  # ifinfomsg: ifi_type, ifi_index
    attrs: dict[int, bytes] = {}
    off = 16 + 16
    while off + 4 <= length:
        n, t = struct.unpack_from("HH", data, off)
        if n < 4:
            break
        attrs[t & 0x3FFF] = data[off + 4:off + n]
        off += (n + 3) & ~3
    return ifindex, arphrd, attrs


def _ethtool(sock: socket.socket, ifname: str, buf: ctypes.Array) -> None:
    """SIOCETHTOOL with struct ifreq {name, ifr_data = @buf}: @buf is filled in."""
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(buf)) + bytes(16)
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)


def _features(sock: socket.socket, ifname: str) -> dict[str, bool]:
    info = ctypes.create_string_buffer(struct.pack("IIQI", ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_FEATURES, 0))
    _ethtool(sock, ifname, info)
    mask, count = struct.unpack_from("QI", info, 8)
    if not mask & (1 << ETH_SS_FEATURES) or not count:
        return {}
    strings = ctypes.create_string_buffer(struct.pack("III", ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count)
                                          + bytes(count * ETH_GSTRING_LEN))
    _ethtool(sock, ifname, strings)
    count = min(count, struct.unpack_from("I", strings, 8)[0])
    raw = strings.raw[12:12 + count * ETH_GSTRING_LEN]
    names = [raw[i:i + ETH_GSTRING_LEN].split(b"\0", 1)[0].decode() for i in range(0, len(raw), ETH_GSTRING_LEN)]
    blocks = (count + 31) // 32
    feats = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_GFEATURES, blocks) + bytes(16 * blocks))
    _ethtool(sock, ifname, feats)
    active = [struct.unpack_from("IIII", feats, 8 + 16 * b)[2] for b in range(blocks)]
    return {name: bool(active[i // 32] >> (i % 32) & 1) for i, name in enumerate(names) if name}


def _speed_duplex(sock: socket.socket, ifname: str) -> tuple[int | None, str | None]:
    cmd = ctypes.create_string_buffer(struct.pack("I", ETHTOOL_GSET) + bytes(40))  # struct ethtool_cmd
    try:
        _ethtool(sock, ifname, cmd)
    except OSError:  # no link settings (rule 2)
        return None, None
    speed_lo, duplex = struct.unpack_from("HB", cmd, 12)
    speed = speed_lo | struct.unpack_from("H", cmd, 28)[0] << 16  # speed_hi
    return (None if speed in (0, SPEED_UNKNOWN) else speed), DUPLEX.get(duplex)


def query(ifname: str) -> LinkFacts:
    """What the kernel says of link @ifname in this thread's namespace (rule 1)."""
    try:
        ifindex, arphrd, attrs = _getlink(ifname)
    except OSError as e:
        if e.errno == errno.ENODEV:
            raise _error(errno.ENODEV, f"link {ifname!r}") from None
        raise
    mac = attrs.get(IFLA_ADDRESS)
    oper = attrs.get(IFLA_OPERSTATE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            feats = _features(sock, ifname)
        except OSError as e:
            raise _error(e.errno or errno.EIO, f"link {ifname!r}: ethtool features") from None
        speed, duplex = _speed_duplex(sock, ifname)
    return LinkFacts(
        ifname=ifname, ifindex=ifindex,
        mtu=struct.unpack("I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0,
        mac=":".join(f"{b:02x}" for b in mac) if mac else None,
        operstate=OPERSTATES[oper[0]] if oper and oper[0] < len(OPERSTATES) else "UNKNOWN",
        speed=speed, duplex=duplex, features=feats, arphrd=arphrd)
