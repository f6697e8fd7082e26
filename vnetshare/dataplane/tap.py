"""tap.py - open a partition's vnet_hdr TAP inside its network namespace.

Thin wrapper of native/tap.c. The TAP is opened by a C thread that entered
the namespace (TUNSETIFF makes the device in the caller's namespace), so the
returned descriptor is the partition's device and works from anywhere.

Rules:
1. The device always has IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a 12-byte
   vnet header: the agent moves the header between TAP and ring untouched.
2. The descriptor is non-blocking and close-on-exec; the caller owns it.
"""
from __future__ import annotations

import os

from ..core import config
from ..linux import netns
from ._native import ffi, lib
from ..core.errors import ConfigError, check

#: TUNSETOFFLOAD bits by name (the TAP's side of the adapter's functions).
OFFLOADS = {
    "csum": lib.TAP_F_CSUM,
    "tso4": lib.TAP_F_TSO4,
    "tso6": lib.TAP_F_TSO6,
    "tso_ecn": lib.TAP_F_TSO_ECN,
    "uso4": lib.TAP_F_USO4,
    "uso6": lib.TAP_F_USO6,
}
#: Full offloads: checksum, TSO v4/v6 (+ECN). USO is left to the caller.
OFFLOADS_FULL = ("csum", "tso4", "tso6", "tso_ecn")


def offload_bits(offloads) -> int:
    """Names (iterable of str) or an int of TAP_F_* bits -> the int."""
    if isinstance(offloads, int):
        return offloads
    bits = 0
    for name in offloads:
        if name not in OFFLOADS:
            raise ConfigError(f"TAP offload {name!r}: must be one of {', '.join(OFFLOADS)}")
        bits |= OFFLOADS[name]
    return bits


def _netns_fd(ns) -> tuple[int, bool]:
    """(descriptor, owned) for None / a name / a path / a descriptor."""
    if ns is None:
        return -1, False
    if isinstance(ns, int):
        return ns, False
    return netns.open_fd(ns), True


def open_tap(ifname: str, netns=None, mac=None, offloads=OFFLOADS_FULL,
             persist: bool = False) -> int:
    """Open (or create) the vnet_hdr TAP @ifname in @netns; return its fd.

    @netns: None for this namespace, a name under /run/netns, a path
    (/proc/PID/ns/net) or an open namespace descriptor. @mac: "02:..:.."
    or 6 bytes, None to keep the kernel's. @offloads: names from OFFLOADS
    or an int of bits. @persist: TUNSETPERSIST, the device outlives the fd.
    """
    name = ifname.encode()
    if not 0 < len(name) < 16:
        raise ConfigError(f"interface name {ifname!r}: must be 1 to 15 bytes")
    bits = offload_bits(offloads)
    mac_c = ffi.from_buffer(config.mac_bytes(mac)) if mac is not None else ffi.NULL
    nsfd, owned = _netns_fd(netns)
    out = ffi.new("int *")
    try:
        check(
            lib.tap_open(nsfd, name, mac_c, bits, lib.TAP_PERSIST if persist else 0, out),
            f"tap_open {ifname}",
        )
    finally:
        if owned:
            os.close(nsfd)
    return out[0]


def set_offload(fd: int, offloads) -> None:
    """TUNSETOFFLOAD on an open TAP."""
    check(lib.tap_set_offload(fd, offload_bits(offloads)), "tap_set_offload")


def set_persist(fd: int, persist: bool) -> None:
    """TUNSETPERSIST on an open TAP (False lets the device go with its last fd)."""
    check(lib.tap_set_persist(fd, 1 if persist else 0), "tap_set_persist")
