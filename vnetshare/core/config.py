"""config.py - validate what a user gives vnetshare; pure, no netlink.

Every function takes one user value (from the CLI or a control message) and
returns it normalised, or raises a ConfigError whose message names the value
and says the rule it broke:  partition name 'a b': use 1-15 of ...

Rules:
1. A partition name is 1-15 letters, digits, '-', '_' or '.', and does not
   start with '-' or '.': it is a /run/netns file name, an argument to
   `ip netns exec`, and short enough (IFNAMSIZ - 1) to name a link.
2. An interface name follows the kernel's dev_valid_name(): 1-15 bytes, not
   '.' or '..', no '/', ':', NUL or whitespace.
3. Addresses carry an explicit prefix length; values that can never be a
   host's own address are refused (not_a_host()): unspecified (and IPv4's
   0.0.0.0/8), loopback, multicast, the limited broadcast 255.255.255.255,
   an IPv4 network or broadcast address (prefixes below /31), IPv6's
   subnet-router anycast (the prefix itself, below /127: the subnet's
   routers answer it) and its reserved subnet anycasts (RFC 2526), and
   IPv4-mapped IPv6 addresses.
4. A MAC is unicast and not all-zero; it is returned as lower-case colon form.
5. Nothing here touches the file system: whether a --netns path is a
   network namespace is netns.pin()'s check, on the descriptor it pins.
6. Within a VLAN an address is one partition's: address_owner() names the
   partition that has it already (the same address, whatever the prefix
   length). Another VLAN is another LAN: there it may be given again.
7. A gateway must be on a subnet the partition has (an address's, or an
   on-link route's) or IPv6 link-local: the kernel refuses a route to one
   it can't reach and drops the routes through a subnet that goes, so
   `partition set` refuses a change that would leave one off every subnet
   (unreachable_gateway()).
"""
from __future__ import annotations

import functools
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from typing import Iterable

from .errors import ConfigError

# Values of native/*.h mirrored here, so that the pure modules need no build
# (the CNI plugin, tests/unit): RING_SIZE_*, PARTITIONS_MAX_*, COALESCE_*,
# DIRECT_SHARE_DEFAULT, VLAN_MAX, FDB_AGE_*, MTU_MIN_IPV4, SNAPLEN_MAX,
# MAC_CONFLICT_MODES, BPF_MAXINSNS. tests/native/test_contract.py checks each against the
# built library: a new mirror gets a line there.
IFNAMSIZ = 16
NAME_MAX = IFNAMSIZ - 1
MTU_MIN = 1280        # a partition's least: IPv6's minimum (RFC 8200); every partition has IPv6
MTU_MIN_IPV4 = 68     # the IPv4 minimum (RFC 791), the kernel's ETH_MIN_MTU: named in the message
MTU_MAX = 65535
# native/ring_abi.h RING_SIZE_*
RING_SIZE_MIN = 256 * 1024
RING_SIZE_MAX = 1 << 30
RING_SIZE_DEFAULT = 4 << 20
# What the daemon keeps is split by how long it means something
# (docs/design-notes.md "Partitions outlive a reboot"): the partitions'
# records in STATE_DIR, which outlives a reboot (systemd's StateDirectory=);
# the control socket, the daemon's lock and the pins of adopted namespaces
# in RUN_DIR, a tmpfs that a reboot empties (RuntimeDirectory=), as their
# meaning ends with the boot.
STATE_DIR = "/var/lib/vnetshare"  # state.json and partitions/ (core/state.py)
RUN_DIR = "/run/vnetshare"  # the control socket, daemon.lock, netns/ pins, agent-uids/
DEFAULT_SOCKET = os.path.join(RUN_DIR, "control.sock")
NETNS_RUN_DIR = "/run/netns"  # iproute2's named network namespaces
NETNS_PIN_DIR = "netns"  # under the runtime dir: adopted namespaces, pinned (netns.pin)
LABELS_MAX = 16
LABEL_VALUE_MAX = 256
OFFLOAD_MODES = ("mirror", "emulate")  # adapter.derive(): partitions' offloads
# partitions one daemon serves at most: the switch's SW_PORTS_DEFAULT and
# SW_PORTS_LIMIT (its tables are sized at start, 16 bytes a partition)
PARTITIONS_MAX_DEFAULT, PARTITIONS_MAX_LIMIT = 4096, 65536
METRICS_ADDR_DEFAULT = "127.0.0.1"  # daemon --metrics PORT: loopback unless an address is given
COALESCE_USECS_DEFAULT = 100  # native/coalesce.h
DIRECT_SHARE_DEFAULT = 25  # native/switch.h SW_DIRECT_SHARE_PCT
COALESCE_USECS_MAX = 10000
# frames a partition's TAP queues for its agent before it drops (`ip link set
# txqueuelen`): short, so a stream the TAP orphans (no TCP Small Queues)
# backs off by loss instead of queueing milliseconds ahead of a ping
TAP_TXQUEUELEN_DEFAULT, TAP_TXQUEUELEN_MAX = 1000, 100000
# what an agent takes from its TAP ahead of the switch: "auto", a dynamic
# byte limit (native/dql.h), or "off", as much as the ring holds
TAP_BYTE_LIMIT_MODES = ("auto", "off")
TAP_BYTE_LIMIT_DEFAULT = "off"
VLAN_MIN, VLAN_MAX = 1, 4094  # 802.1Q: 0 and 4095 are reserved
# The switch's table of stations learned on the wire (native/fdb.h): an
# entry not seen for FDB_AGE_DEFAULT seconds is forgotten (802.1Q's default
# ageing time, the Linux bridge's and Open vSwitch's); up to FDB_AGE_MAX.
FDB_AGE_DEFAULT, FDB_AGE_MAX = 300, 1_000_000
# daemon --mac-conflict: a partition's MAC seen as a source on the wire;
# yield: the LAN's station gets that MAC's frames until it has been quiet
# for the ageing time (native/switch.h); keep: the partition keeps them
MAC_CONFLICT_MODES = ("yield", "keep")
MCAST_SNOOPING_MODES = ("on", "off")  # daemon --mcast-snooping
# Uplink failover (hosting.py, core/failover.py): when the daemon goes back
# to the primary NIC once it is up again: after it has stayed up for the
# hold time (hold, as bonding's updelay), at once (always), or not until
# the backup fails (never)
FAILBACK_MODES = ("hold", "always", "never")
FAILBACK_HOLD_DEFAULT, FAILBACK_HOLD_MAX = 5.0, 3600.0
# Storm control: broadcast/multicast frames a partition may send per second,
# by default. ARP, ND, MLD and mDNS of a busy host stay far below it.
STORM_PPS_DEFAULT = 1000
STORM_PPS_MAX = 10_000_000
# The agents' uids (and gids, the same numbers): one per partition, from a
# range reserved for vnetshare (agent.UidPool, docs/design-notes.md "Each
# agent its own uid"). The default is the first 65,536 ids of what
# systemd's UIDS-GIDS.md leaves unused between its container ranges
# (524288-1879048191) and 2^31: above regular and system users, nobody,
# systemd's dynamic users, shadow's /etc/subuid allocations (from 100000,
# up to 600100000 by default) and the kubelet's pod ranges (65536 * max
# pods), below the ids that some programs take for negative.
AGENT_UIDS_DEFAULT = (0x70000000, 0x7000FFFF)   # 1879048192-1879113727
AGENT_UID_MAX = (1 << 31) - 1
AGENT_UID_SPECIAL = {65534: "nobody", 65535: "16-bit (uid_t) -1"}
AGENT_UID_DIR = os.path.join(RUN_DIR, "agent-uids")  # one lock file per uid in use, host-wide
# One daemon per NIC: a lock file per uplink name (and network namespace),
# host-wide, whatever a daemon's socket and state directory (hosting.py)
UPLINK_LOCK_DIR = os.path.join(RUN_DIR, "uplinks")
# `vnetshare lab`: its own socket and state, beside a real deployment's
LAB_RUN_DIR = "/run/vnetshare-lab"
LAB_SOCKET = os.path.join(LAB_RUN_DIR, "control.sock")
# Rate limits: the default burst is what the rate gives in a window, but at
# least one 64 KiB GSO frame (bits) or BURST_PKTS_MIN packets. Transmit is
# shaped (frames wait), so 10 ms is enough; receive is policed (frames are
# dropped, a whole GSO frame at a time), and TCP needs room to settle near
# the rate: 100 ms, Open vSwitch's advice of a burst of 10 % of the rate.
# Measured (test_tenant.py): under --rx-limit 100mbit, TCP got 7.5-10
# Mbit/s with a 10 ms burst, 83-90 with 2 MB, 101-108 with 8 MB.
BURST_WINDOW_S = {"tx": 0.010, "rx": 0.100}
BURST_BITS_MIN = 64 * 1024 * 8
BURST_PKTS_MIN = 64
RATE_MAX_BITS = 400 * 10**9     # above any NIC today, below any overflow
RATE_MAX_PKTS = 1_000_000_000
# RATE units (as tc writes them): value -> (multiplier, bucket)
RATE_UNITS = {"bit": (1, "bits"), "kbit": (10**3, "bits"), "mbit": (10**6, "bits"),
              "gbit": (10**9, "bits"), "pps": (1, "pkts"), "kpps": (10**3, "pkts")}
# BURST units: bytes (1024-based, as tc's "kb") or packets
BURST_UNITS = {"b": (8, "bits"), "kb": (8 * 1024, "bits"), "mb": (8 * 1024 * 1024, "bits"),
               "p": (1, "pkts"), "pkts": (1, "pkts"), "packets": (1, "pkts")}


_QUANTITY_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)")
_PARTITION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")
_LABEL_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}")
_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}")


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{what} {value!r}: must be a string")
    return value


def partition_name(name: object) -> str:
    """A partition (and netns) name: rule 1."""
    name = _require_str(name, "partition name")
    if not _PARTITION_RE.fullmatch(name):
        raise ConfigError(
            f"partition name {name!r}: use 1-{NAME_MAX} letters, digits, '-', '_' or '.', "
            "not starting with '-' or '.'"
        )
    return name


def ifname(name: object, what: str = "interface name") -> str:
    """An interface name as the kernel accepts it: rule 2."""
    name = _require_str(name, what)
    size = len(name.encode("utf-8", "surrogateescape"))
    if not 1 <= size <= NAME_MAX:
        raise ConfigError(f"{what} {name!r}: must be 1-{NAME_MAX} bytes long")
    if name in (".", ".."):
        raise ConfigError(f"{what} {name!r}: '.' and '..' are not interface names")
    bad = sorted({c for c in name if c in "/:\0" or c.isspace()})
    if bad:
        raise ConfigError(f"{what} {name!r}: must not contain {', '.join(map(repr, bad))}")
    return name


_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
# RFC 2526: in a subnet with 64-bit (EUI-64 format) interface identifiers,
# the highest 128 are reserved subnet anycast addresses
_RESERVED_ANYCAST_IID = range(0xFDFF_FFFF_FFFF_FF80, 0xFDFF_FFFF_FFFF_FFFF + 1)


def not_a_host(iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> str | None:
    """Why @iface's address can never be a partition's own (rule 3), as the
    end of a sentence, or None if it can be."""
    ip, net = iface.ip, iface.network
    if ip.is_unspecified:
        return "is the unspecified address"
    if ip.version == 4:
        if ip in _THIS_NETWORK:
            return "is in 0.0.0.0/8 ('this network'): only a source while a host learns its address"
        if ip == _LIMITED_BROADCAST:
            return "is the limited broadcast address"
    elif ip.ipv4_mapped is not None:
        return "is an IPv4-mapped IPv6 address: give the IPv4 address"
    if ip.is_loopback:
        return "is a loopback address"
    if ip.is_multicast:
        return "is a multicast address"
    if ip.version == 4 and net.prefixlen < 31:
        if ip == net.network_address:
            return f"is the network address of {net}"
        if ip == net.broadcast_address:
            return f"is the broadcast address of {net}"
    if ip.version == 6 and net.prefixlen < 127 and ip == net.network_address:
        return f"is the subnet-router anycast address of {net}: the subnet's routers answer it"
    if ip.version == 6 and net.prefixlen <= 64 and int(ip) & (2**64 - 1) in _RESERVED_ANYCAST_IID:
        return f"is a reserved subnet anycast address of {net} (RFC 2526)"
    return None


def cidr(text: object) -> str:
    """An address with its prefix length, IPv4 or IPv6: rule 3.

    Returns the compressed form, e.g. 'fd00::1/64'.
    """
    text = _require_str(text, "address")
    forms = "ADDRESS/PREFIX, e.g. 192.0.2.10/24 or 2001:db8::10/64"
    addr, slash, prefix = text.partition("/")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise ConfigError(f"address {text!r}: {addr!r} is not an IPv4 or IPv6 address; give {forms}") from None
    if not slash:
        raise ConfigError(f"address {text!r}: give a prefix length, e.g. {text}/"
                          + ("24" if ip.version == 4 else "64"))
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise ConfigError(f"address {text!r}: prefix length {prefix!r}: must be a number from 0 to "
                          f"{ip.max_prefixlen} for IPv{ip.version}") from None
    why = not_a_host(iface)
    if why:
        raise ConfigError(f"address {text!r}: {why}, not a partition's address")
    return iface.with_prefixlen


def _list(texts: object, what: str) -> list | tuple:
    if not isinstance(texts, (list, tuple)):
        raise ConfigError(f"{what} {texts!r}: must be a list")
    return texts


def cidrs(texts: object) -> list[str]:
    """A list of addresses (each by cidr()), no address given twice."""
    out: list[str] = []
    seen: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
    for text in _list(texts, "addresses"):
        value = cidr(text)
        ip = ipaddress.ip_interface(value).ip
        if ip in seen:
            raise ConfigError(f"address {text!r}: {ip} is given twice ({seen[ip]!r})")
        seen[ip] = text
        out.append(value)
    return out


def vlan_name(vid: int) -> str:
    """A VLAN as messages name it: 'VLAN 10', or 'untagged' for 0."""
    return f"VLAN {vid}" if vid else "untagged"


def address_owner(ips: list[str], vlan: int,
                  others: Iterable[tuple[str, int, Iterable[str]]]) -> tuple[str, str] | None:
    """Rule 6: the first of @ips (normalised CIDRs) that one of @others
    (name, VLAN, its CIDRs) in VLAN @vlan has already, whatever its prefix
    length, as (that CIDR of @ips, the other's name); None if none is taken."""
    wanted = {_host(c): c for c in ips}
    for name, their_vlan, theirs in others:
        if their_vlan != vlan:
            continue
        for c in theirs:
            ip = _host(c)
            if ip in wanted:
                return wanted[ip], name
    return None


@functools.lru_cache(maxsize=1 << 16)
def _host(cidr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address of a normalised CIDR, parsed once: address_owner() asks
    for every partition's at each create (at 1,000 partitions, parsing them
    again was 40 % of a create)."""
    return ipaddress.ip_interface(cidr).ip


def gateway(text: object, addresses: list[str]) -> str:
    """A default gateway for a partition with @addresses (normalised CIDRs).

    It must be of a family one of @addresses has; it need not lie inside one
    of their prefixes (an on-link route is the user's business).
    """
    text = _require_str(text, "gateway")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"gateway {text!r}: not an IPv4 or IPv6 address") from None
    if ip.is_unspecified or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise ConfigError(f"gateway {text!r}: can't be a gateway")
    own = [ipaddress.ip_interface(a) for a in addresses]
    if not any(a.version == ip.version for a in own):
        raise ConfigError(f"gateway {text!r}: the partition has no IPv{ip.version} address to reach it from")
    if any(a.ip == ip for a in own):
        raise ConfigError(f"gateway {text!r}: is one of the partition's own addresses")
    return str(ip)


def unreachable_gateway(addresses: list[str], gateway_ip: str | None,
                        routes: Iterable[str]) -> str | None:
    """Rule 7: the first gateway, of the default route (@gateway_ip) or of a
    route of @routes (config.route() form), that the partition would have
    no way to: on none of the subnets of @addresses, of the on-link routes
    of @routes, and not IPv6 link-local. Returned as words for a message
    ("gateway 10.1.0.1", "route '10.9.0.0/16 via 10.1.0.1'"), or None."""
    nets = [ipaddress.ip_interface(a).network for a in addresses]
    nets += [ipaddress.ip_network(r) for r in routes if " via " not in r]
    wanted = [(gateway_ip, f"gateway {gateway_ip}")] if gateway_ip else []
    wanted += [(r.partition(" via ")[2], f"route {r!r}") for r in routes if " via " in r]
    for gw, what in wanted:
        ip = ipaddress.ip_address(gw)
        if ip.version == 6 and ip.is_link_local:
            continue
        if not any(ip.version == n.version and ip in n for n in nets):
            return what
    return None


def route(text: object, addresses: list[str] | None = None) -> str:
    """A partition's route, `DST [via GW]` as `ip route` writes it (DST a
    prefix or `default`); returns it normalised. Without `via` the route is
    on-link. A gateway must be of DST's family and, when @addresses are
    known (not None), of a family the partition has an address of."""
    text = _require_str(text, "route")
    words = text.split()
    if len(words) not in (1, 3) or (len(words) == 3 and words[1] != "via"):
        raise ConfigError(f"route {text!r}: not DST or DST via GATEWAY")
    gw = None
    if len(words) == 3:
        try:
            gw = ipaddress.ip_address(words[2])
        except ValueError:
            raise ConfigError(f"route {text!r}: gateway {words[2]!r} is not an IP address") from None
    if words[0] == "default":
        if gw is None:
            raise ConfigError(f"route {text!r}: a default route needs `via GATEWAY`")
        dst = ipaddress.ip_network("0.0.0.0/0" if gw.version == 4 else "::/0")
    else:
        try:
            dst = ipaddress.ip_network(words[0], strict=False)
        except ValueError:
            raise ConfigError(f"route {text!r}: {words[0]!r} is not a prefix") from None
    if gw is None:
        return str(dst)
    if gw.version != dst.version:
        raise ConfigError(f"route {text!r}: the gateway is IPv{gw.version}, the destination IPv{dst.version}")
    if addresses is not None:
        try:
            gateway(str(gw), addresses)
        except ConfigError as e:
            raise ConfigError(f"route {text!r}: {e}") from None
    return f"{dst} via {gw}"


def mac(text: object) -> str:
    """A unicast MAC, aa:bb:cc:dd:ee:ff or aa-bb-..., as lower-case colon form: rule 4."""
    text = _require_str(text, "MAC")
    if not _MAC_RE.fullmatch(text):
        raise ConfigError(f"MAC {text!r}: write six hex byte pairs, e.g. 02:00:5e:10:00:01")
    value = text.lower().replace("-", ":")
    first = int(value[:2], 16)
    if first & 0x01:
        raise ConfigError(f"MAC {text!r}: is a multicast address (low bit of the first byte set)")
    if value == "00:00:00:00:00:00":
        raise ConfigError(f"MAC {text!r}: the all-zero address is not a station address")
    return value


def mac_bytes(value: object) -> bytes:
    """A MAC as six bytes, for the C calls: six bytes as they are, else mac()."""
    if isinstance(value, (bytes, bytearray)) and len(value) == 6:
        return bytes(value)
    return bytes.fromhex(mac(value).replace(":", ""))


def random_mac() -> str:
    """A random locally administered unicast MAC (first byte 0bxxxxxx10)."""
    raw = bytearray(secrets.token_bytes(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def mtu(value: object, upper: int = MTU_MAX) -> int:
    """A partition's MTU, from MTU_MIN to min(@upper, MTU_MAX); @upper is the
    uplink's MTU. The least is IPv6's, not IPv4's: every partition speaks
    IPv6 (its link-local address at least), and the kernel turns IPv6 off
    on a device below 1280 (the partition's set-up then fails with
    EAFNOSUPPORT, "Address family not supported by protocol")."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"MTU {value!r}: must be an integer")
    top = min(upper, MTU_MAX)
    allowed = (f"a partition's MTU is {MTU_MIN} to " + (f"{top} (the uplink's MTU)" if upper < MTU_MAX else
                                                         f"the uplink's MTU (at most {MTU_MAX})")
               + f": IPv6, which every partition has, needs {MTU_MIN} or more (IPv4 alone "
               f"would take {MTU_MIN_IPV4})")
    if value < MTU_MIN or value > top:
        raise ConfigError(f"MTU {value}: {'below' if value < MTU_MIN else 'above'} the range; {allowed}")
    return value


def coalesce_usecs(value: object) -> int:
    """A coalescing window in microseconds: 0 (off) to COALESCE_USECS_MAX."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= COALESCE_USECS_MAX:
        raise ConfigError(f"coalescing window {value!r}: must be 0 to {COALESCE_USECS_MAX} microseconds")
    return value


def tap_txqueuelen(value: object) -> int:
    """A partition TAP's transmit queue in frames: 1 to TAP_TXQUEUELEN_MAX."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= TAP_TXQUEUELEN_MAX:
        raise ConfigError(f"TAP transmit queue {value!r}: must be 1 to {TAP_TXQUEUELEN_MAX} frames")
    return value


def ring_size(value: object, minimum: int = RING_SIZE_MIN, maximum: int = RING_SIZE_MAX) -> int:
    """A ring data area size: a power of two from @minimum to @maximum bytes."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < minimum
        or value > maximum
        or value & (value - 1)
    ):
        raise ConfigError(f"ring size {value!r}: must be a power of two from {minimum} to {maximum}")
    return value


def allow_ip(text: object) -> str:
    """An --allow-ip value: a prefix without host bits ('10.1.0.0/16',
    'fd00::/64', an address alone is /32 or /128), or 'any' (L3 guard off)."""
    text = _require_str(text, "--allow-ip")
    if text == "any":
        return text
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        if "host bits set" in str(e):
            iface = ipaddress.ip_interface(text)
            raise ConfigError(f"--allow-ip {text!r}: has host bits set; give {iface.ip} "
                              f"(one address) or {iface.network} (the prefix)") from None
        raise ConfigError(f"--allow-ip {text!r}: not a prefix or 'any'") from None
    if net.network_address.is_multicast:
        raise ConfigError(f"--allow-ip {text!r}: a multicast source is never valid")
    return net.with_prefixlen


def allow_ips(texts: object) -> list[str]:
    """A list of allow_ip() values, each once; 'any' stands alone."""
    out = list(dict.fromkeys(allow_ip(t) for t in _list(texts, "--allow-ip")))
    if "any" in out and len(out) > 1:
        raise ConfigError(f"--allow-ip any: turns the address guard off; "
                          f"don't give prefixes with it ({', '.join(v for v in out if v != 'any')})")
    return out


CAPTURE_DIRECTIONS = ("in", "out", "both")  # the partition's view: in = it received
# `vnetshare capture`: most bytes of a frame kept; native/switch.h's capture
# record has a 16-byte header in a frame of at most RING_FRAME_MAX (65553)
SNAPLEN_MAX = 65535 + 18 - 16
CAPTURE_RING_SIZE = 4 << 20  # a capture's ring: what a reader may lag behind


def _whole(what: str, value: object) -> object:
    """@value as an int if it is a decimal string (the CLI's), else as it
    is, for the caller's range check; a string that is no number names it."""
    if not isinstance(value, str):
        return value
    try:
        return int(value, 10)
    except ValueError:
        raise ConfigError(f"{what} {value!r}: not a number") from None


def direct_share(value: object) -> int:
    """`daemon --direct-share PCT`: 0 (off) to 100 percent of a core."""
    n = _whole("direct share", value)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 100:
        raise ConfigError(f"direct share {value!r}: must be 0 (off) to 100 percent")
    return n


def fdb_age(value: object) -> int:
    """`daemon --fdb-age SECONDS`: 1 to FDB_AGE_MAX."""
    n = _whole("FDB ageing time", value)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= FDB_AGE_MAX:
        raise ConfigError(f"FDB ageing time {value!r}: must be 1 to {FDB_AGE_MAX} seconds")
    return n


def failback(value: object) -> str:
    """`daemon --failback`: when to go back to the primary uplink."""
    if value not in FAILBACK_MODES:
        raise ConfigError(f"failback mode {value!r}: must be {', '.join(FAILBACK_MODES)}")
    return str(value)


def failback_hold(value: object) -> float:
    """`daemon --failback-hold SECONDS`: 0 to FAILBACK_HOLD_MAX, decimals allowed."""
    try:
        n = float(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    except ValueError:
        n = None
    if n is None or not 0 <= n <= FAILBACK_HOLD_MAX:
        raise ConfigError(f"failback hold {value!r}: must be 0 to {FAILBACK_HOLD_MAX:g} seconds")
    return n


def mac_conflict(value: object) -> str:
    """`daemon --mac-conflict`: what a partition's MAC seen on the wire does."""
    if value not in MAC_CONFLICT_MODES:
        raise ConfigError(f"MAC conflict mode {value!r}: must be {' or '.join(MAC_CONFLICT_MODES)}")
    return str(value)


def mcast_snooping(value: object) -> str:
    """`daemon --mcast-snooping on|off`: IGMP/MLD snooping in the switch."""
    if value not in MCAST_SNOOPING_MODES:
        raise ConfigError(f"multicast snooping {value!r}: must be {' or '.join(MCAST_SNOOPING_MODES)}")
    return str(value)


def max_partitions(value: object) -> int:
    """`daemon --max-partitions N`: 1 to PARTITIONS_MAX_LIMIT."""
    n = _whole("max partitions", value)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= PARTITIONS_MAX_LIMIT:
        raise ConfigError(f"max partitions {value!r}: must be 1 to {PARTITIONS_MAX_LIMIT}")
    return n


def agent_uids(text: object) -> tuple[int, int]:
    """`daemon --agent-uids FIRST-LAST`: the agents' uids and gids, as
    (FIRST, LAST): 1 to AGENT_UID_MAX, without nobody (65534) or 65535."""
    text = _require_str(text, "agent uid range")
    what = f"agent uid range {text!r}"
    first, dash, last = text.partition("-")
    if not dash or not all(v.isascii() and v.isdigit() for v in (first, last)):
        raise ConfigError(f"{what}: not FIRST-LAST, e.g. {AGENT_UIDS_DEFAULT[0]}-{AGENT_UIDS_DEFAULT[1]}")
    lo, hi = int(first), int(last)
    if not 1 <= lo <= hi:
        raise ConfigError(f"{what}: FIRST must be at least 1 and not above LAST")
    if hi > AGENT_UID_MAX:
        raise ConfigError(f"{what}: above {AGENT_UID_MAX} (ids from 2^31 on are taken for negative "
                          "by some programs)")
    for uid, name in AGENT_UID_SPECIAL.items():
        if lo <= uid <= hi:
            raise ConfigError(f"{what}: holds {uid} ({name}), which no agent may have")
    return lo, hi


def capture_direction(value: object) -> str:
    """Which of a partition's frames a capture takes: in, out or both."""
    if value not in CAPTURE_DIRECTIONS:
        raise ConfigError(f"direction {value!r}: must be in, out or both")
    return str(value)


def snaplen(value: object) -> int:
    """Bytes of each frame a capture keeps: 14 (an Ethernet header) to
    SNAPLEN_MAX; 0 means SNAPLEN_MAX, as for tcpdump -s 0."""
    n = _whole("snaplen", value)
    if isinstance(n, bool) or not isinstance(n, int) or not (n == 0 or 14 <= n <= SNAPLEN_MAX):
        raise ConfigError(f"snaplen {value!r}: must be 14 to {SNAPLEN_MAX}, or 0 for the whole frame")
    return n or SNAPLEN_MAX


BPF_MAXINSNS = 4096  # native/cbpf.h CBPF_MAXINSNS, the kernel's BPF_MAXINSNS


def bpf_program(value: object) -> list[tuple[int, int, int, int]]:
    """A capture filter as classic BPF: 1 to BPF_MAXINSNS instructions, each
    [code, jt, jf, k] (u16, u8, u8, u32), as `tcpdump -ddd` prints them.
    Only the shape is checked here; the C validator (native/cbpf.c) checks
    what the program does."""
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= BPF_MAXINSNS:
        n = len(value) if isinstance(value, (list, tuple)) else type(value).__name__
        raise ConfigError(f"capture filter: {n} instructions: must be 1 to {BPF_MAXINSNS}")
    out = []
    for i, insn in enumerate(value):
        ok = isinstance(insn, (list, tuple)) and len(insn) == 4 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in insn)
        if ok:
            code, jt, jf, k = insn
            ok = 0 <= code <= 0xFFFF and 0 <= jt <= 0xFF and 0 <= jf <= 0xFF and 0 <= k <= 0xFFFFFFFF
        if not ok:
            raise ConfigError(f"capture filter: instruction {i} {insn!r}: must be [code, jt, jf, k] "
                              "(0-65535, 0-255, 0-255, 0-4294967295)")
        out.append(tuple(insn))
    return out


def vlan(value: object) -> int:
    """An access VLAN: 1-4094, or 0 for 'none' (untagged). A string "0" is
    refused: that is 802.1p priority tagging, not a VLAN."""
    if value == "none":
        return 0
    bad = ConfigError(f"VLAN {value!r}: must be {VLAN_MIN}-{VLAN_MAX}, or none")
    if isinstance(value, str):
        try:
            n = int(value, 10)
        except ValueError:
            raise ConfigError(f"VLAN {value!r}: not a number (1-4094, or none)") from None
        if n == 0:
            raise bad
    else:
        n = value
    if isinstance(n, bool) or not isinstance(n, int) or not (n == 0 or VLAN_MIN <= n <= VLAN_MAX):
        raise bad
    return n


def storm_limit(value: object) -> int:
    """Broadcast/multicast frames per second a partition may send: a whole
    number of pps (as 'PPS', 'PPSpps' or 'Nkpps'), 0 or 'none' for no limit."""
    if value == "none":
        return 0
    if isinstance(value, str):
        n, unit = _quantity(value, "storm limit")
        if unit not in ("", "pps", "kpps"):
            raise ConfigError(f"storm limit {value!r}: unit {unit!r} is not pps or kpps")
        value = round(n * (1000 if unit == "kpps" else 1))
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= STORM_PPS_MAX:
        raise ConfigError(f"storm limit {value!r}: must be 0-{STORM_PPS_MAX} frames/s, or none")
    return value


def storm_burst(pps: int) -> int:
    """The storm bucket's depth for @pps: a tenth of a second, at least 32."""
    return max(pps // 10, 32) if pps else 0


def _quantity(text: str, what: str) -> tuple[float, str]:
    m = _QUANTITY_RE.fullmatch(text.strip().lower())
    if not m:
        raise ConfigError(f"{what} {text!r}: not a number with a unit")
    n = float(m.group(1))
    if n > 1e18:  # hundreds of digits make float('inf'): no rate or size is near
        raise ConfigError(f"{what} {text!r}: too large")
    return n, m.group(2)


@dataclass(frozen=True)
class Rate:
    """A rate limit of one direction: token buckets in bits and in packets
    per second, each with its depth; 0 = no limit in that unit. The same
    fields as the switch's struct sw_rate."""

    bits_per_sec: int = 0
    bits_burst: int = 0
    pkts_per_sec: int = 0
    pkts_burst: int = 0

    def __post_init__(self) -> None:
        for name in ("bits_per_sec", "bits_burst", "pkts_per_sec", "pkts_burst"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 64:
                raise ConfigError(f"{name} {v!r}: must be an integer from 0 to 2**64-1")
        for unit in ("bits", "pkts"):
            if getattr(self, f"{unit}_per_sec") and not getattr(self, f"{unit}_burst"):
                raise ConfigError(f"{unit}_per_sec {getattr(self, f'{unit}_per_sec')}: "
                                  f"needs a {unit}_burst above 0")

    @property
    def limited(self) -> bool:
        return bool(self.bits_per_sec or self.pkts_per_sec)

    def describe(self, bursts: bool = True) -> str:
        """As the user would write it: '200mbit burst 250kb, 10kpps burst 100p'
        (without @bursts: '200mbit, 10kpps')."""
        parts = []
        if self.bits_per_sec:
            parts.append(_human(self.bits_per_sec, ('bit', 'kbit', 'mbit', 'gbit'), 1000)
                         + (f" burst {_human(self.bits_burst // 8, ('b', 'kb', 'mb'), 1024)}" if bursts else ""))
        if self.pkts_per_sec:
            parts.append(_human(self.pkts_per_sec, ('pps', 'kpps'), 1000)
                         + (f" burst {self.pkts_burst}p" if bursts else ""))
        return ", ".join(parts) or "none"


# The one JSON shape of a partition's policy, in every --json output, the
# stats snapshot and the metrics (docs/cli.md, "JSON output"): numbers with
# their unit in the key, null for none.
RATE_KEYS = ("limit_bps", "burst_bytes", "limit_pps", "burst_frames")


def policy_json(vlan: int, storm_pps: int, tx: Rate, rx: Rate) -> dict:
    """{"vlan": null (untagged) or the id, "storm_limit_pps": null (no
    limit) or frames/s, and per direction d: "d_limit_bps", "d_burst_bytes",
    "d_limit_pps", "d_burst_frames", each null when that limit is not set}."""
    out: dict = {"vlan": vlan or None, "storm_limit_pps": storm_pps or None}
    for d, rate in (("tx", tx), ("rx", rx)):
        out[f"{d}_limit_bps"] = rate.bits_per_sec or None
        out[f"{d}_burst_bytes"] = rate.bits_burst // 8 if rate.bits_per_sec else None
        out[f"{d}_limit_pps"] = rate.pkts_per_sec or None
        out[f"{d}_burst_frames"] = rate.pkts_burst if rate.pkts_per_sec else None
    return out


def rate_of(fields: dict, direction: str) -> Rate:
    """The Rate of @direction ("tx", "rx") from policy_json() @fields."""
    def get(key: str) -> int:
        return fields.get(f"{direction}_{key}") or 0
    return Rate(bits_per_sec=get("limit_bps"), bits_burst=get("burst_bytes") * 8,
                pkts_per_sec=get("limit_pps"), pkts_burst=get("burst_frames"))


def _human(n: int, units: tuple[str, ...], step: int) -> str:
    i = 0
    while i + 1 < len(units) and n % step == 0 and n >= step:
        n //= step
        i += 1
    return f"{n}{units[i]}"


def rate_limit(rates: object, bursts: object = (), what: str = "rate limit",
               direction: str = "tx") -> Rate:
    """A Rate from --tx-limit/--rx-limit values (RATE: a number with kbit,
    mbit, gbit, bit, pps or kpps; 'none' for no limit; at most one bit and
    one packet rate) and --tx-burst/--rx-burst values (a size with b, kb, mb,
    or packets with p). A missing burst is BURST_WINDOW_S[@direction] of the rate, at
    least BURST_BITS_MIN bits (a 64 KiB GSO frame; rounded up to whole KiB)
    or BURST_PKTS_MIN packets."""
    if isinstance(rates, str):
        rates = [rates]
    if isinstance(bursts, str):
        bursts = [bursts]
    if not isinstance(rates, (list, tuple)) or not isinstance(bursts, (list, tuple)):
        raise ConfigError(f"{what} {rates!r}: must be a list of rates")
    got: dict[str, int] = {}
    for text in rates:
        text = _require_str(text, what)
        if text == "none":
            if len(rates) > 1:
                raise ConfigError(f"{what} 'none': removes the limit; don't give rates with it")
            continue
        n, unit = _quantity(text, what)
        if unit not in RATE_UNITS:
            raise ConfigError(f"{what} {text!r}: unit {unit or '(none)'!r} is not one of "
                              f"{', '.join(RATE_UNITS)}")
        mult, bucket = RATE_UNITS[unit]
        value = round(n * mult)
        top = RATE_MAX_BITS if bucket == "bits" else RATE_MAX_PKTS
        if not 1 <= value <= top:
            raise ConfigError(f"{what} {text!r}: out of range (more than 0, at most {top} {bucket}/s)")
        if bucket in got:
            raise ConfigError(f"{what} {text!r}: a second {'bit' if bucket == 'bits' else 'packet'} rate")
        got[bucket] = value
    depth: dict[str, int] = {}
    for text in bursts:
        text = _require_str(text, f"{what} burst")
        n, unit = _quantity(text, f"{what} burst")
        if unit not in BURST_UNITS:
            raise ConfigError(f"{what} burst {text!r}: unit {unit or '(none)'!r} is not one of "
                              f"{', '.join(BURST_UNITS)}")
        mult, bucket = BURST_UNITS[unit]
        if bucket not in got:
            raise ConfigError(f"{what} burst {text!r}: there is no {'bit' if bucket == 'bits' else 'packet'} "
                              "rate for it")
        value = round(n * mult)
        floor = BURST_BITS_MIN if bucket == "bits" else 1
        if value < floor or value > 10**12:
            raise ConfigError(f"{what} burst {text!r}: must be at least "
                              f"{'64kb (one GSO frame)' if bucket == 'bits' else '1p'}")
        depth[bucket] = value
    bits, pkts = got.get("bits", 0), got.get("pkts", 0)
    window = BURST_WINDOW_S[direction]
    return Rate(
        bits_per_sec=bits,
        bits_burst=depth.get("bits", max(-(-int(bits * window) // 8192) * 8192,
                                          BURST_BITS_MIN)) if bits else 0,
        pkts_per_sec=pkts,
        pkts_burst=depth.get("pkts", max(int(pkts * window), BURST_PKTS_MIN)) if pkts else 0,
    )


def labels(value: object) -> dict[str, str]:
    """A partition's labels: who made it and why (the CNI plugin records its
    network, container id and ifname here). At most LABELS_MAX; a key is
    1-63 of letters, digits and ._/- (starting with a letter or digit), a
    value a printable string of at most LABEL_VALUE_MAX characters."""
    if not isinstance(value, dict):
        raise ConfigError(f"labels: must be an object of strings, not {type(value).__name__}")
    if len(value) > LABELS_MAX:
        raise ConfigError(f"labels: {len(value)} of them, at most {LABELS_MAX}")
    out = {}
    for key, text in value.items():
        if not isinstance(key, str) or not _LABEL_KEY_RE.fullmatch(key):
            raise ConfigError(f"label {key!r}: a key is 1-63 letters, digits and ._/-, "
                              "starting with a letter or digit")
        if not isinstance(text, str) or len(text) > LABEL_VALUE_MAX or not text.isprintable():
            raise ConfigError(f"label {key!r}: the value must be a printable string of at most "
                              f"{LABEL_VALUE_MAX} characters")
        out[key] = text
    return out


def label_change(text: object) -> tuple[str, str | None]:
    """`partition set --label`: KEY=VALUE adds or replaces, KEY- removes (as
    kubectl label); (KEY, None) for a removal."""
    text = _require_str(text, "label")
    if "=" not in text and text.endswith("-"):
        key = text[:-1]
        if not _LABEL_KEY_RE.fullmatch(key):
            raise ConfigError(f"label {text!r}: a key is 1-63 letters, digits and ._/-, "
                              "starting with a letter or digit")
        return key, None
    if "=" not in text:
        raise ConfigError(f"label {text!r}: not KEY=VALUE (set or replace) or KEY- (remove)")
    return label(text)


def burst_buckets(bursts: Iterable[str]) -> set[str]:
    """The buckets ("bits", "pkts") that --tx-burst/--rx-burst values
    (checked by rate_limit()) set."""
    return {BURST_UNITS[_quantity(b, "burst")[1]][1] for b in bursts}


def rate_text(rate: "Rate") -> list[str]:
    """@rate's limits as rate_limit() reads them (["100000000bit"]), without
    their bursts: `set --tx-burst` alone keeps the rate it has."""
    return ([f"{rate.bits_per_sec}bit"] if rate.bits_per_sec else []) + (
        [f"{rate.pkts_per_sec}pps"] if rate.pkts_per_sec else [])


def label(text: object) -> tuple[str, str]:
    """--label KEY=VALUE."""
    text = _require_str(text, "label")
    key, eq, value = text.partition("=")
    if not eq:
        raise ConfigError(f"label {text!r}: not KEY=VALUE")
    return next(iter(labels({key: value}).items()))


def netns_path(path: object) -> str:
    """A path to a network namespace, for --netns and CNI_NETNS: absolute,
    no NUL. Only its syntax: whether it is a network namespace is checked
    by the daemon once, through the descriptor it then pins (netns.pin(),
    rule 7 of linux/netns.py); a check here would be a second look at a
    path that can change in between. Symlinks are kept: /proc/PID/ns/net
    is a magic link whose target is no path."""
    path = _require_str(path, "netns path")
    if not path or "\0" in path:
        raise ConfigError(f"netns path {path!r}: not a path")
    if not os.path.isabs(path):
        raise ConfigError(f"netns path {path!r}: must be absolute")
    return path


def metrics_address(text: object) -> tuple[str, int]:
    """`daemon --metrics [ADDR:]PORT`: where to serve /metrics, as (ADDR,
    PORT). PORT is 1-65535; ADDR an IP address (an IPv6 one in brackets,
    [::1]:10477), METRICS_ADDR_DEFAULT when left out: loopback unless
    asked. No host names: the daemon binds what it is told, no lookup."""
    text = _require_str(text, "metrics address")
    what = f"metrics address {text!r}"
    if text.startswith("["):
        host, bracket, port = text[1:].partition("]")
        if not bracket or not port.startswith(":"):
            raise ConfigError(f"{what}: not [IPV6]:PORT, e.g. [::1]:10477")
        port = port[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{what}: {host!r} in brackets is not an IPv6 address") from None
    elif text.count(":") > 1:
        raise ConfigError(f"{what}: write an IPv6 address in brackets, e.g. [::1]:10477")
    elif ":" in text:
        host, _, port = text.partition(":")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ConfigError(f"{what}: {host!r} is not an IP address (no host names: "
                              "[ADDR:]PORT, e.g. 127.0.0.1:10477)") from None
    else:
        host, port = METRICS_ADDR_DEFAULT, text
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ConfigError(f"{what}: port {port!r} is not a number from 1 to 65535")
    ip = ipaddress.ip_address(host)
    if ip.is_multicast:
        raise ConfigError(f"{what}: {host} is a multicast address, not one to listen on")
    return str(ip), int(port)


def format_address(addr: tuple[str, int]) -> str:
    """(ADDR, PORT) as a user writes it: 127.0.0.1:9477, [::1]:9477."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class DaemonConfig:
    """What `vnetshare daemon` was told, every default filled here, once.

    The CLI builds it (cli.cmd_daemon) and the daemon, the partition
    manager and the agents' hello read it; nothing below fills a default
    again. Built with the CLI's values, which are validated by then.
    """

    uplink: str
    offloads: str = "mirror"
    socket: str = DEFAULT_SOCKET
    state_dir: str = STATE_DIR  # the records: they outlive a reboot
    # the lock and the pins, gone at reboot; None: RUN_DIR with the default
    # state_dir, else state_dir itself (everything in one directory, as a
    # lab's or a test's temporary one, or a state dir in /run from before
    # the split)
    runtime_dir: str | None = None
    ring_size: int = RING_SIZE_DEFAULT
    coalesce_usecs: int = COALESCE_USECS_DEFAULT
    tap_txqueuelen: int = TAP_TXQUEUELEN_DEFAULT  # each partition's TAP, set when it is made
    tap_byte_limit: str = TAP_BYTE_LIMIT_DEFAULT  # TAP_BYTE_LIMIT_MODES, each agent's, at its start
    storm_limit: int = STORM_PPS_DEFAULT  # partitions' default, 0 = none
    metrics: tuple[str, int] | None = None  # (ADDR, PORT) to serve /metrics on; None: off
    max_partitions: int = PARTITIONS_MAX_DEFAULT  # the switch's port table (native/switch.h)
    direct_share: int = DIRECT_SHARE_DEFAULT  # % of a core a partition's direct writes may take; 0: off
    agent_uids: tuple[int, int] = AGENT_UIDS_DEFAULT  # (FIRST, LAST): each agent its own uid and gid
    agent_uid_dir: str = AGENT_UID_DIR  # their lock files, shared by every daemon of the host
    uplink_lock_dir: str = UPLINK_LOCK_DIR  # one lock per uplink, shared by every daemon of the host
    fdb_age: int = FDB_AGE_DEFAULT  # seconds a station learned on the wire is remembered
    mac_conflict: str = "yield"  # MAC_CONFLICT_MODES: who gets a MAC a partition and the wire both use
    mcast_snooping: str = "on"  # MCAST_SNOOPING_MODES: a group's frames only to its members (native/mcast.c)
    host_port: str | None = None  # the host's own port on the switch, a device of that name (hostport.py)
    host_port_mac: str | None = None  # its MAC; None: derived from the uplink's MAC and its name
    take_address: bool = False  # move the uplink's addresses and routes onto the host port while it runs
    backup_uplink: str | None = None  # a second NIC on the same LAN: failover (core/failover.py)
    failback: str = "hold"  # FAILBACK_MODES: when to go back to the primary
    failback_hold: float = FAILBACK_HOLD_DEFAULT  # seconds the primary stays up before "hold" goes back

    def __post_init__(self) -> None:
        """Defaults that follow other options (the runtime directory), and
        what one option says of another, for every front end (flags, a
        config file): one line naming the options."""
        if self.runtime_dir is None:
            object.__setattr__(self, "runtime_dir", RUN_DIR if self.state_dir == STATE_DIR else self.state_dir)
        if self.backup_uplink == self.uplink:
            raise ConfigError(f"--backup-uplink {self.backup_uplink!r}: is the uplink; name a second NIC")
        if self.backup_uplink is not None and self.backup_uplink == self.host_port:
            raise ConfigError(f"--backup-uplink {self.backup_uplink!r}: is the host port")
        if self.host_port is None:
            for option, given in (("--take-address", self.take_address),
                                  ("--host-port-mac", self.host_port_mac is not None)):
                if given:
                    raise ConfigError(f"{option}: needs --host-port NAME (the device it is about)")
            return
        if self.host_port == self.uplink:
            raise ConfigError(f"--host-port {self.host_port!r}: is the uplink; name a new device "
                              "(e.g. vnshost0)")
        if self.max_partitions >= PARTITIONS_MAX_LIMIT:
            raise ConfigError(f"--max-partitions {self.max_partitions}: the host port takes one of the "
                              f"switch's {PARTITIONS_MAX_LIMIT} ports; at most {PARTITIONS_MAX_LIMIT - 1} "
                              "with --host-port")

    @property
    def state_path(self) -> str:
        return os.path.join(self.state_dir, "state.json")

    @property
    def lock_path(self) -> str:
        return os.path.join(self.runtime_dir, "daemon.lock")

    @property
    def pin_dir(self) -> str:
        """Where adopted namespaces are pinned (netns.pin), a shared mount."""
        return os.path.join(self.runtime_dir, NETNS_PIN_DIR)

    @property
    def old_state_path(self) -> str | None:
        """Where a vnetshare from before the split kept the records of this
        runtime dir (its state dir was /run/vnetshare by default), when that
        is not where they are now: state.migrate() moves them."""
        if os.path.abspath(self.runtime_dir) == os.path.abspath(self.state_dir):
            return None
        return os.path.join(self.runtime_dir, "state.json")
