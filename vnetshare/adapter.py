"""adapter.py - query the uplink's driver for its functions (claim 1 B, C).

query() asks the kernel what the uplink NIC does (MTU, speed, duplex, and
its ethtool features under the kernel's names); derive() turns that, purely,
into the functions a partition's virtual device gets: its MTU, the TAP
offloads for TUNSETOFFLOAD, and whether vnet headers carry GSO. Each derived
function is a row naming the uplink feature it came from, which is what
`vnetshare adapter` and `partition show` print.

Function ids in rows (and the TAP flag each sets):
  mtu, speed, duplex          copied from the uplink (speed in Mb/s, or None)
  csum      TUN_F_CSUM        the partition may hand over partially checksummed frames
  tso4      TUN_F_TSO4        TCP/IPv4 frames up to 64 KiB, segmented below
  tso6      TUN_F_TSO6        TCP/IPv6 likewise
  tso_ecn   TUN_F_TSO_ECN     TSO of frames with the ECN CWR bit
  uso4/uso6 TUN_F_USO4/USO6   UDP segmentation (UDP_L4 GSO)
  vnet_gso                    vnet headers may carry a gso_type other than NONE

Rules (mode "mirror", the kernel's own, netdev_fix_features() and tun.c
set_offload()):
1. csum is on when the uplink has any IP tx checksum offload
   (tx-checksum-ip-generic, -ipv4 or -ipv6). TUN_F_CSUM has no per-family
   bit; a family the NIC lacks is completed in software on the send path.
2. tso4 needs tx-tcp-segmentation, an IPv4 tx checksum (generic or ipv4)
   and tx-scatter-gather; tso6 likewise with tx-tcp6-segmentation and IPv6.
3. tso_ecn needs tx-tcp-ecn-segmentation and tso4 or tso6.
4. uso4 and uso6 come together or not at all: tx-udp-segmentation,
   checksum of both families, and SG.
5. No TSO/USO flag without TUN_F_CSUM. TUN_F_UFO is never set: the kernel
   dropped UFO and strips the bit.
   TUNSETOFFLOAD answers EINVAL to a TSO or USO flag without CSUM, TSO_ECN
   without a TSO flag, and USO4 without USO6 (probed on Linux 6.18), so
   rules 3-5 also keep every result acceptable to the TAP.
6. Mode "emulate" turns every offload on, whatever the uplink has: the
   kernel segments and checksums in software when the daemon sends a GSO
   frame through AF_PACKET to a NIC that can't. MTU, speed and duplex are
   the uplink's in both modes.
7. Only an Ethernet device can be the uplink (unusable()): partitions
   are Ethernet stations, and the switch sends and reads Ethernet frames.
   lo, a TUN, WireGuard, IP tunnels (their ARPHRD is not ARPHRD_ETHER)
   are refused, at start and when a device of that name comes back.
8. The uplink changes under a running daemon (its MTU, its features, the
   device itself): query() again, derive() again; feature_changes() says
   which features moved (hosting.py follows them, docs/design-notes.md).
9. With a backup uplink (failover), partitions get what both NICs offer,
   whichever serves: common() is the primary's info with the lower MTU,
   the lower speed, and a feature on only where both have it on; derive()
   runs on that.
Note: TUN_F_USO4/USO6 exist from Linux 6.2; an older kernel answers
TUNSETOFFLOAD with EINVAL when they are set: the partition manager then
takes drop_uso(functions) for every partition and retries (manager.py).
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field, replace

from .core import config
from .core.errors import ConfigError
from .linux import ethtool
from .linux.netns import NetnsError, NetnsRef, label, run_in

TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
TUN_F_UFO = 0x10  # never set (rule 5)
TUN_F_USO4 = 0x20
TUN_F_USO6 = 0x40

TUN_FLAG_NAMES = {
    TUN_F_CSUM: "TUN_F_CSUM",
    TUN_F_TSO4: "TUN_F_TSO4",
    TUN_F_TSO6: "TUN_F_TSO6",
    TUN_F_TSO_ECN: "TUN_F_TSO_ECN",
    TUN_F_UFO: "TUN_F_UFO",
    TUN_F_USO4: "TUN_F_USO4",
    TUN_F_USO6: "TUN_F_USO6",
}

MODES = config.OFFLOAD_MODES
EMULATED = "emulated (kernel software GSO/checksum)"

CSUM_GENERIC = "tx-checksum-ip-generic"
CSUM_IPV4 = "tx-checksum-ipv4"
CSUM_IPV6 = "tx-checksum-ipv6"
SG = "tx-scatter-gather"
TSO4 = "tx-tcp-segmentation"
TSO6 = "tx-tcp6-segmentation"
TSO_ECN = "tx-tcp-ecn-segmentation"
USO = "tx-udp-segmentation"


@dataclass(frozen=True)
class UplinkInfo:
    """What the uplink's driver reports."""

    ifname: str
    mtu: int
    ifindex: int = 0
    mac: str | None = None
    operstate: str = "UNKNOWN"
    speed: int | None = None        # Mb/s; None when the driver doesn't say
    duplex: str | None = None       # "Full", "Half" or None
    features: dict[str, bool] = field(default_factory=dict)  # kernel feature name -> enabled
    arphrd: int = ethtool.ARPHRD_ETHER  # link type (linux/if_arp.h ARPHRD_*): rule 7


@dataclass(frozen=True)
class Function:
    """One partition function and the uplink feature it came from."""

    function: str        # an id from the module docstring
    value: int | bool | str | None
    source: str          # uplink feature name(s), or EMULATED
    source_value: str    # what the uplink has, e.g. "on", "off", "1500"


@dataclass(frozen=True)
class PartitionFunctions:
    """What a partition's virtual device gets."""

    mode: str
    mtu: int
    speed: int | None
    duplex: str | None
    tun_offloads: int    # the TUNSETOFFLOAD argument
    vnet_gso: bool       # vnet headers may carry GSO both ways
    rows: tuple[Function, ...]

    def value(self, function: str) -> int | bool | str | None:
        """The value of the row named @function (KeyError if none)."""
        for row in self.rows:
            if row.function == function:
                return row.value
        raise KeyError(function)


def offload_names(flags: int) -> list[str]:
    """['TUN_F_CSUM', 'TUN_F_TSO4', ...] for the bits of @flags."""
    return [name for bit, name in TUN_FLAG_NAMES.items() if flags & bit]


USO_BITS = TUN_F_USO4 | TUN_F_USO6
NO_KERNEL_USO = "kernel before 6.2: no TUN_F_USO4/6"


def drop_uso(functions: PartitionFunctions) -> PartitionFunctions:
    """@functions for a kernel whose TAP refuses TUN_F_USO4/6 (before 6.2):
    no UDP segmentation, each row saying why, vnet_gso recomputed."""
    flags = functions.tun_offloads & ~USO_BITS
    vnet_gso = bool(flags & (TUN_F_TSO4 | TUN_F_TSO6))
    rows = []
    for r in functions.rows:
        if r.function in ("uso4", "uso6"):
            r = Function(r.function, False, NO_KERNEL_USO, r.source_value)
        elif r.function == "vnet_gso":
            r = Function(r.function, vnet_gso, r.source, "yes" if vnet_gso else "no")
        rows.append(r)
    return PartitionFunctions(mode=functions.mode, mtu=functions.mtu, speed=functions.speed,
                              duplex=functions.duplex, tun_offloads=flags, vnet_gso=vnet_gso,
                              rows=tuple(rows))


def _onoff(v: bool) -> str:
    return "on" if v else "off"


def derive(uplink: UplinkInfo, mode: str = "mirror") -> PartitionFunctions:
    """The partition device's functions for @uplink in @mode (rules 1-6)."""
    if mode not in MODES:
        raise ConfigError(f"offload mode {mode!r}: use one of {', '.join(MODES)}")
    feats = uplink.features

    def on(name: str) -> bool:
        return bool(feats.get(name, False))

    def state(*names: str) -> str:
        return ", ".join(f"{n} {_onoff(on(n))}" for n in names)

    sg = on(SG)
    csum4 = on(CSUM_GENERIC) or on(CSUM_IPV4)
    csum6 = on(CSUM_GENERIC) or on(CSUM_IPV6)
    csum = csum4 or csum6
    tso4 = on(TSO4) and csum4 and sg
    tso6 = on(TSO6) and csum6 and sg
    ecn = on(TSO_ECN) and (tso4 or tso6)
    uso = on(USO) and csum4 and csum6 and sg
    wanted = {"csum": csum, "tso4": tso4, "tso6": tso6, "tso_ecn": ecn, "uso4": uso, "uso6": uso}
    sources = {
        "csum": (CSUM_GENERIC, CSUM_IPV4, CSUM_IPV6),
        "tso4": (TSO4, CSUM_GENERIC, CSUM_IPV4, SG),
        "tso6": (TSO6, CSUM_GENERIC, CSUM_IPV6, SG),
        "tso_ecn": (TSO_ECN,),
        "uso4": (USO, CSUM_GENERIC, CSUM_IPV4, CSUM_IPV6, SG),
        "uso6": (USO, CSUM_GENERIC, CSUM_IPV4, CSUM_IPV6, SG),
    }
    bits = {"csum": TUN_F_CSUM, "tso4": TUN_F_TSO4, "tso6": TUN_F_TSO6,
            "tso_ecn": TUN_F_TSO_ECN, "uso4": TUN_F_USO4, "uso6": TUN_F_USO6}
    if mode == "emulate":
        wanted = {k: True for k in wanted}

    rows = [
        Function("mtu", uplink.mtu, "mtu", str(uplink.mtu)),
        Function("speed", uplink.speed, "speed", f"{uplink.speed} Mb/s" if uplink.speed else "unknown"),
        Function("duplex", uplink.duplex, "duplex", uplink.duplex or "unknown"),
    ]
    flags = 0
    for fn, value in wanted.items():
        if value:
            flags |= bits[fn]
        names = sources[fn]
        rows.append(Function(fn, value, EMULATED if mode == "emulate" else names[0], state(*names)))
    vnet_gso = bool(flags & (TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6))
    rows.append(Function("vnet_gso", vnet_gso, EMULATED if mode == "emulate" else "tso4, tso6, uso4, uso6",
                         "yes" if vnet_gso else "no"))
    return PartitionFunctions(mode=mode, mtu=uplink.mtu, speed=uplink.speed, duplex=uplink.duplex,
                              tun_offloads=flags, vnet_gso=vnet_gso, rows=tuple(rows))


# rule 7: what a link of another type is, for the one line that refuses it
ARPHRD_NAMES = {
    ethtool.ARPHRD_LOOPBACK: "the loopback device",
    ethtool.ARPHRD_NONE: "a layer-3 device (TUN, WireGuard: no link-layer header)",
    32: "an InfiniBand device",
    512: "a PPP link",
    768: "an IP-in-IP tunnel",
    769: "an IPv6-in-IPv6 tunnel",
    776: "an IPv6-in-IPv4 (sit) tunnel",
    778: "a GRE tunnel",
    801: "an 802.11 monitor device",
    823: "an IPv6 GRE tunnel",
}


def unusable(info: UplinkInfo) -> str | None:
    """Why @info's device cannot be the uplink (rule 7), as the end of a
    sentence about it, or None if it can."""
    if info.arphrd == ethtool.ARPHRD_ETHER:
        return None
    what = ARPHRD_NAMES.get(info.arphrd, f"a device of link type {info.arphrd}")
    return f"{what} (ARPHRD {info.arphrd}), not an Ethernet NIC: vnetshare shares an Ethernet device"


def check_uplink(info: UplinkInfo) -> UplinkInfo:
    """@info, or ConfigError "uplink 'lo': the loopback device ..." (rule 7)."""
    why = unusable(info)
    if why is not None:
        raise ConfigError(f"uplink {info.ifname!r}: {why}")
    return info


def common(primary: UplinkInfo, backup: UplinkInfo | None) -> UplinkInfo:
    """What both uplinks offer (rule 9): @primary's identity, the lower
    MTU and speed, the features both have on; @primary if no @backup."""
    if backup is None:
        return primary
    speeds = [s for s in (primary.speed, backup.speed) if s]
    features = {n: bool(on and backup.features.get(n)) for n, on in primary.features.items()}
    return replace(primary, mtu=min(primary.mtu, backup.mtu), speed=min(speeds) if speeds else None,
                   duplex=primary.duplex if primary.duplex == backup.duplex else None, features=features)


def feature_changes(before: UplinkInfo, after: UplinkInfo) -> dict[str, tuple[bool, bool]]:
    """{feature: (was on, is on)} for each ethtool feature that differs
    between @before and @after (rule 8); a name one side lacks is off there."""
    names = sorted(set(before.features) | set(after.features))
    return {n: (bool(before.features.get(n)), bool(after.features.get(n))) for n in names
            if bool(before.features.get(n)) != bool(after.features.get(n))}


def query(ifname: str, netns: NetnsRef = None) -> UplinkInfo:
    """Ask the kernel about uplink @ifname in @netns (None: the caller's).

    Runs in a thread inside @netns (netns.run_in): the netlink and ethtool
    sockets (linux/ethtool.py: no pyroute2, which a restarting daemon
    cannot afford to import) talk to the namespace they were made in.
    Raises NetnsError(ENODEV) "uplink 'xyz' not found".
    """
    ifname = config.ifname(ifname, "uplink")

    def ask() -> UplinkInfo:
        try:
            f = ethtool.query(ifname)
        except OSError as e:
            if e.errno == errno.ENODEV:
                raise NetnsError(errno.ENODEV, f"uplink {ifname!r} not found{label(netns)}") from None
            raise
        return UplinkInfo(ifname=ifname, mtu=f.mtu, ifindex=f.ifindex, mac=f.mac, operstate=f.operstate,
                          speed=f.speed, duplex=f.duplex, features=f.features, arphrd=f.arphrd)

    return run_in(netns, ask)
