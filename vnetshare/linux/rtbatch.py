"""rtbatch.py - a new link's setup as one batch of NETLINK_ROUTE requests.

A partition's making sets its TAP's MTU, IPv6 address generation and
promote_secondaries, brings it and lo up, and adds its addresses and
routes: ten requests or so. Through pyroute2 each costs more Python than
kernel (an asyncio loop run, a link lookup, a decoded answer), and a sysctl
file written in a new namespace costs more than all of them. Here they are
encoded by hand, sent in one sendmsg() and their acknowledgements read
once: netns.configure() is the caller.

Rules:
1. The requests are the very ones the one-at-a-time calls of netns.py send
   (link_set(), sysctl() of promote_secondaries through IFLA_INET_CONF,
   lo_up(), add_address(), add_route()), in the same order; the kernel
   runs them in that order.
2. Every request asks for an acknowledgement; the first that failed is
   raised (the caller's NetnsError, with the kernel's errno and what the
   request was). The kernel goes on with the later ones of the batch: the
   caller's undo (deleting the link or the namespace) removes whatever they
   made.
3. The socket is made by the calling thread, so it acts in that thread's
   network namespace, and closed before send() returns.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Callable

NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 20, 24
IFF_UP = 0x1
LOOPBACK_IFINDEX = 1  # every namespace's lo (include/net/flow.h)
IFLA_MTU, IFLA_TXQLEN, IFLA_AF_SPEC = 4, 13, 26
IFLA_INET_CONF = 1
IPV4_DEVCONF_PROMOTE_SECONDARIES = 20  # include/uapi/linux/ip.h (pyroute2's ifinfmsg.inet field 20)
IFLA_INET6_ADDR_GEN_MODE = 8
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
IFA_F_NODAD = 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1  # pyroute2's route("add") defaults


def _attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * (-n & 3)


def _ip(text: str) -> tuple[int, bytes]:
    a = ipaddress.ip_address(text)
    return (socket.AF_INET6 if a.version == 6 else socket.AF_INET), a.packed


class Batch:
    """Requests for one namespace, each with the words that name it in an
    error; send() runs them all."""

    def __init__(self) -> None:
        self._msgs: list[tuple[int, int, bytes, str]] = []  # (type, flags, body, what)

    def _add(self, kind: int, flags: int, body: bytes, what: str) -> None:
        self._msgs.append((kind, NLM_F_REQUEST | NLM_F_ACK | flags, body, what))

    def link(self, index: int, what: str, *, mtu: int | None = None, up: bool | None = None,
             eui64: bool = False, promote_secondaries: bool = False, txqueuelen: int | None = None) -> None:
        """RTM_NEWLINK on link @index: MTU, transmit queue length, IPv6
        address generation from the MAC (@eui64), IPv4 promote_secondaries;
        then, in a second request as link_set() does, up or down."""
        attrs = b""
        if mtu is not None:
            attrs += _attr(IFLA_MTU, struct.pack("=I", mtu))
        if txqueuelen is not None:
            attrs += _attr(IFLA_TXQLEN, struct.pack("=I", txqueuelen))
        spec = b""
        if promote_secondaries:
            spec += _attr(socket.AF_INET, _attr(IFLA_INET_CONF, _attr(IPV4_DEVCONF_PROMOTE_SECONDARIES,
                                                                      struct.pack("=I", 1))))
        if eui64:
            spec += _attr(socket.AF_INET6, _attr(IFLA_INET6_ADDR_GEN_MODE, struct.pack("=B", 0)))
        if spec:
            attrs += _attr(IFLA_AF_SPEC, spec)
        if attrs:
            self._add(RTM_NEWLINK, 0, struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, 0, 0) + attrs, what)
        if up is not None:
            self._add(RTM_NEWLINK, 0, struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index,
                                                  IFF_UP if up else 0, IFF_UP), what)

    def address(self, index: int, cidr: str, what: str, nodad: bool = False) -> None:
        """RTM_NEWADDR @cidr on link @index, as netns.add_address() adds it."""
        iface = ipaddress.ip_interface(cidr)
        family = socket.AF_INET6 if iface.version == 6 else socket.AF_INET
        ip = iface.ip.packed
        attrs = _attr(IFA_LOCAL, ip) + _attr(IFA_ADDRESS, ip)
        if iface.version == 4 and iface.network.prefixlen < 31:
            attrs += _attr(IFA_BROADCAST, iface.network.broadcast_address.packed)
        if iface.version == 6 and nodad:
            attrs += _attr(IFA_FLAGS, struct.pack("=I", IFA_F_NODAD))
        body = struct.pack("=BBBBI", family, iface.network.prefixlen, 0, 0, index) + attrs
        self._add(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, what)

    def route(self, dst: str, gateway: str | None, what: str, oif: int | None = None) -> None:
        """RTM_NEWROUTE to @dst (a prefix or "default") via @gateway and/or
        out of link @oif, as netns.add_route() adds it."""
        attrs = b""
        if gateway:
            family, gw = _ip(gateway)
            attrs += _attr(RTA_GATEWAY, gw)
        if dst == "default":
            dst_len = 0
        else:
            net = ipaddress.ip_network(dst, strict=False)
            family = socket.AF_INET6 if net.version == 6 else socket.AF_INET
            dst_len = net.prefixlen
            attrs = _attr(RTA_DST, net.network_address.packed) + attrs
        if oif is not None:
            attrs += _attr(RTA_OIF, struct.pack("=i", oif))
        body = struct.pack("=BBBBBBBBI", family, dst_len, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC,
                           RT_SCOPE_UNIVERSE, RTN_UNICAST, 0) + attrs
        self._add(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, what)

    def send(self, fail: Callable[[int, str], Exception]) -> None:
        """Run every request (rule 2): fail(errno, what) of the first that
        failed is raised, once every answer is in."""
        if not self._msgs:
            return
        out = b"".join(struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body
                       for seq, (kind, flags, body, _what) in enumerate(self._msgs, 1))
        errors: dict[int, int] = {}
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((0, 0))
            s.sendall(out)
            pending = set(range(1, len(self._msgs) + 1))
            while pending:
                data = s.recv(1 << 16)
                off = 0
                while off + 16 <= len(data):
                    n, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
                    if n < 16:
                        break
                    if kind == NLMSG_ERROR and seq in pending:
                        pending.discard(seq)
                        (err,) = struct.unpack_from("=i", data, off + 16)
                        if err:
                            errors[seq] = -err
                    off += (n + 3) & ~3
        if errors:
            seq = min(errors)
            raise fail(errors[seq], self._msgs[seq - 1][3])
