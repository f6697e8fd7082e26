"""guard.py - Python side of the frame guard (native/guard.c): a port's identity.

What a partition may send is decided in C, per frame, by guard_check_frame()
against a struct guard_port: the port's MAC, the IPv4 and IPv6 prefixes it
may send from, and three flags; the frame's vnet header (a Vnet) is part
of what it sends. This module builds that struct from a GuardPolicy, and
offers check() / check_frame() to ask the C guard about one frame (tests).

Rules:
1. A GuardPolicy is valid once built: a unicast MAC, prefixes without host
   bits, at most GUARD_ADDR_MAX per family, each family in its own field.
   A bad value raises ConfigError naming it.
2. A partition's own addresses are single addresses (/32, /128), whatever
   prefix length its interface has; --allow-ip prefixes are prefixes.
   GuardPolicy.for_partition() makes that distinction, and adds the EUI-64
   link-local address, which the daemon makes the TAP use.
3. No frame is judged here: check() copies the frame into private memory
   exactly as the switch does (the Ethernet header, the first
   GUARD_HDR_COPY bytes, and the longer copy the guard asks for a DHCP
   message, up to GUARD_HDR_COPY_MAX) and returns the C verdict's name;
   check_frame() returns what the guard found too (struct guard_frame: a
   GSO frame's headers and segments).
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Iterable

from ..core import config
from ._native import ffi, lib
from ..core.errors import ConfigError

#: Names of the verdicts, in enum guard_verdict order ("pass_*", "drop_*").
VERDICTS = tuple(
    ffi.string(lib.guard_verdict_name(i)).decode() for i in range(lib.GUARD__MAX)
)
#: The drop reasons, as counters show them: a "drop_X" verdict is reason X.
DROP_REASONS = tuple(v[len("drop_"):] for v in VERDICTS if v.startswith("drop_"))

HDR_COPY = lib.GUARD_HDR_COPY
HDR_COPY_MAX = lib.GUARD_HDR_COPY_MAX
ADDR_MAX = lib.GUARD_ADDR_MAX

_ETH_HLEN = 14

#: struct virtio_net_hdr flags and gso_type values (native/ring_abi.h)
NEEDS_CSUM = lib.RING_VNET_F_NEEDS_CSUM
GSO_NONE = lib.RING_VNET_GSO_NONE
GSO_TCPV4 = lib.RING_VNET_GSO_TCPV4
GSO_TCPV6 = lib.RING_VNET_GSO_TCPV6
GSO_UDP_L4 = lib.RING_VNET_GSO_UDP_L4
GSO_ECN = lib.RING_VNET_GSO_ECN
#: The least GSO segment the guard lets through (guard.h)
TCP_MIN_SND_MSS = lib.GUARD_TCP_MIN_SND_MSS
UDP_MAX_SEGMENTS = lib.GUARD_UDP_MAX_SEGMENTS

IPv4Prefix = ipaddress.IPv4Network
IPv6Prefix = ipaddress.IPv6Network


def link_local(mac: object) -> ipaddress.IPv6Address:
    """The EUI-64 link-local address of @mac (RFC 4291 appendix A).

    fe80::/64 with the interface identifier made from the MAC: ff:fe in the
    middle, the universal/local bit flipped: 02:00:5e:10:00:01 gives
    fe80::5eff:fe10:1, as the kernel does with addr_gen_mode eui64.
    """
    raw = bytearray(config.mac_bytes(mac))
    iid = bytes([raw[0] ^ 0x02]) + bytes(raw[1:3]) + b"\xff\xfe" + bytes(raw[3:6])
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid)


def _prefixes(values: Iterable[object], version: int, what: str) -> tuple:
    """Normalise @values to a tuple of networks of one IP @version (rule 1)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigError(f"{what} {values!r}: must be a list of prefixes")
    out: list = []
    for value in values:
        if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
            net = ipaddress.ip_network(value.ip)
        elif isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address,
                                ipaddress.IPv4Network, ipaddress.IPv6Network)):
            net = ipaddress.ip_network(value)
        elif isinstance(value, str):
            try:
                net = ipaddress.ip_network(value, strict=True)
            except ValueError as e:
                if "host bits set" in str(e):
                    iface = ipaddress.ip_interface(value)
                    raise ConfigError(
                        f"{what} {value!r}: has host bits set; give {iface.ip} "
                        f"(the address) or {iface.network} (the prefix)") from None
                raise ConfigError(f"{what} {value!r}: not an IP address or "
                                  f"prefix ({e})") from None
        else:
            raise ConfigError(f"{what} {value!r}: not an IP address or prefix")
        if net.version != version:
            raise ConfigError(f"{what} {value!r}: is IPv{net.version}, "
                              f"this list is IPv{version}")
        if net.network_address.is_multicast:
            raise ConfigError(f"{what} {value!r}: a multicast source is never valid")
        if net not in out:
            out.append(net)
    if len(out) > ADDR_MAX:
        raise ConfigError(f"{what}: {len(out)} prefixes, at most {ADDR_MAX} "
                          f"per address family ({', '.join(map(str, out))})")
    return tuple(out)


@dataclass(frozen=True)
class GuardPolicy:
    """What one port may send from: the C struct guard_port, validated.

    ipv4 and ipv6 are tuples of networks (an address is a /32 or /128);
    strings, addresses, networks and interfaces (taken as their address)
    are accepted and normalised. l3_any turns the address checks off
    (--allow-ip any); trusted_router lets RAs, redirects and DHCP server
    messages through (--trusted-router); allow_llc lets 802.3 length
    frames (LLC, SNAP) through (--allow-llc).
    """

    mac: str
    ipv4: tuple = ()
    ipv6: tuple = ()
    l3_any: bool = False
    trusted_router: bool = False
    allow_llc: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.mac, (bytes, bytearray)) and len(self.mac) == 6:
            mac = ":".join(f"{b:02x}" for b in self.mac)
        else:
            mac = self.mac
        object.__setattr__(self, "mac", config.mac(mac))
        object.__setattr__(self, "ipv4", _prefixes(self.ipv4, 4, "allowed IPv4"))
        object.__setattr__(self, "ipv6", _prefixes(self.ipv6, 6, "allowed IPv6"))
        for name in ("l3_any", "trusted_router", "allow_llc"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} {getattr(self, name)!r}: must be true or false")

    @classmethod
    def for_partition(cls, mac: object, ips: Iterable[str] = (),
                      allow_ips: Iterable[str] = (),
                      trusted_router: bool = False,
                      allow_llc: bool = False) -> "GuardPolicy":
        """A partition's policy from its options (rule 2).

        @ips are its --ip CIDRs ("10.0.0.2/24": the address 10.0.0.2 only);
        @allow_ips its --allow-ip prefixes, or "any"; its EUI-64 link-local
        address is added. @trusted_router and @allow_llc are its flags.
        """
        v4: list = []
        v6: list = [link_local(mac)]
        for text in ips:
            ip = ipaddress.ip_interface(config.cidr(text)).ip
            (v4 if ip.version == 4 else v6).append(ip)
        l3_any = False
        for text in allow_ips:
            if text == "any":
                l3_any = True
                continue
            if not isinstance(text, str):
                raise ConfigError(f"--allow-ip {text!r}: give a prefix or 'any'")
            try:
                net = ipaddress.ip_network(text, strict=True)
            except ValueError as e:
                raise ConfigError(f"--allow-ip {text!r}: not a prefix or 'any' ({e})") from None
            (v4 if net.version == 4 else v6).append(net)
        return cls(mac, tuple(v4), tuple(v6), l3_any=l3_any,
                   trusted_router=bool(trusted_router), allow_llc=bool(allow_llc))

    def to_c(self):
        """A new cffi ``struct guard_port *`` with this policy, owned by Python."""
        port = ffi.new("struct guard_port *")
        port.mac = list(config.mac_bytes(self.mac))
        port.n_ip4 = len(self.ipv4)
        port.n_ip6 = len(self.ipv6)
        for i, net in enumerate(self.ipv4):
            port.ip4[i].addr = list(net.network_address.packed)
            port.ip4[i].len = net.prefixlen
        for i, net in enumerate(self.ipv6):
            port.ip6[i].addr = list(net.network_address.packed)
            port.ip6[i].len = net.prefixlen
        port.flags = ((lib.GUARD_F_L3_ANY if self.l3_any else 0)
                      | (lib.GUARD_F_TRUSTED_ROUTER if self.trusted_router else 0)
                      | (lib.GUARD_F_ALLOW_LLC if self.allow_llc else 0))
        return port


@dataclass(frozen=True)
class Vnet:
    """A frame's virtio_net header: what it asks of whoever finishes it.

    The fields of struct virtio_net_hdr, as a TAP writes them and a socket
    with PACKET_VNET_HDR takes them: NEEDS_CSUM in @flags asks for a
    checksum of the bytes from @csum_start on, written at @csum_start +
    @csum_offset; a @gso_type asks for segments of @gso_size payload bytes,
    led by copies of the headers (@hdr_len: how many, a hint).
    """

    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    def pack(self) -> bytes:
        """The 10-byte struct virtio_net_hdr, little endian (PACKET_VNET_HDR)."""
        return struct.pack("<BBHHHH", self.flags, self.gso_type, self.hdr_len,
                           self.gso_size, self.csum_start, self.csum_offset)


@dataclass(frozen=True)
class Checked:
    """The guard's answer on one frame: its verdict and struct guard_frame."""

    verdict: str
    l4_off: int
    l4_proto: int
    hdr_len: int
    segs: int
    bytes: int


def check_frame(policy: GuardPolicy, frame: bytes, mtu: int = 1500,
                vnet: Vnet | None = None) -> Checked:
    """What the C guard says of @frame, with @vnet, sent by the port of @policy (rule 3)."""
    frame = bytes(frame)
    if not _ETH_HLEN <= len(frame) <= lib.RING_FRAME_MAX:
        raise ConfigError(f"frame of {len(frame)} bytes: a ring frame is "
                          f"{_ETH_HLEN} to {lib.RING_FRAME_MAX} bytes")
    vnet = vnet or Vnet()
    rec = ffi.new("struct ring_rec *")
    for name in ("flags", "gso_type", "hdr_len", "gso_size", "csum_start", "csum_offset"):
        setattr(rec.vnet, name, getattr(vnet, name))
    rec.l2 = list(frame[:_ETH_HLEN])
    rec.frame_len = len(frame)
    shared = ffi.new("uint8_t[]", frame)     # stands for ring memory: never read
    rec.frame = shared
    port = policy.to_c()
    hdr = ffi.new("uint8_t[]", frame[:HDR_COPY])
    gf = ffi.new("struct guard_frame *")
    v = lib.guard_check_frame(port, rec, hdr, len(hdr), mtu, gf)
    want = gf.want
    if want and len(hdr) < want <= min(len(frame), HDR_COPY_MAX):
        hdr = ffi.new("uint8_t[]", frame[:want])   # the switch's longer copy
        v = lib.guard_check_frame(port, rec, hdr, len(hdr), mtu, gf)
    return Checked(VERDICTS[v], gf.l4_off, gf.l4_proto, gf.hdr_len, gf.segs, gf.bytes)


def check(policy: GuardPolicy, frame: bytes, mtu: int = 1500, vnet: Vnet | None = None) -> str:
    """The C guard's verdict name on @frame (and its @vnet header) sent by
    the port of @policy (rule 3)."""
    return check_frame(policy, frame, mtu, vnet).verdict


#: enum guard_scope_kind by value: who needs a group frame (guard.h).
SCOPES = ("all", "routers", "arp", "solicited")


def scope(frame: bytes) -> tuple[str, bytes]:
    """guard_group_scope() on an untagged frame: (its kind, its key)."""
    frame = bytes(frame)
    if len(frame) < _ETH_HLEN:
        raise ConfigError(f"frame of {len(frame)} bytes: shorter than an Ethernet header")
    sc = ffi.new("struct guard_scope *")
    l3 = ffi.new("uint8_t[]", frame[_ETH_HLEN:] or b"\0")
    lib.guard_group_scope(frame[:_ETH_HLEN], l3, len(frame) - _ETH_HLEN, sc)
    return SCOPES[sc.kind], bytes(sc.key)


def wants(policy: GuardPolicy, frame: bytes) -> bool:
    """Would the switch copy the group @frame to the port of @policy?"""
    frame = bytes(frame)
    sc = ffi.new("struct guard_scope *")
    l3 = ffi.new("uint8_t[]", frame[_ETH_HLEN:] or b"\0")
    lib.guard_group_scope(frame[:_ETH_HLEN], l3, len(frame) - _ETH_HLEN, sc)
    return bool(lib.guard_port_wants(policy.to_c(), sc))
