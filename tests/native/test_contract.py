"""The C/Python contract: the built library against every constant and
name the Python side keeps for itself.

native/build_ffi.py gives cffi the headers' own declarations; a #define
with a literal value there is checked by cffi against the compiler when
lib first reads it (test_every_constant_cffi_declares_is_the_compilers).
core/config.py cannot import the C (it is pure: tests/unit, the CNI
plugin), so it mirrors a few values; this file is where a mirror that
drifts from its header fails, naming both.
"""
import pytest

from vnetshare import events
from vnetshare.core import config
from vnetshare.dataplane import switch
from vnetshare.dataplane._native import ffi, lib


def test_every_constant_cffi_declares_is_the_compilers():
    names = [n for n in dir(lib) if isinstance(getattr(lib, n), int)]
    assert len(names) > 100 and {"SW_DIRECT_SHARE_PCT", "SW_VLAN_MAX", "RING_FRAME_MAX"} <= set(names)


# config.py's name, its value there, the C's
MIRRORS = [
    ("RING_SIZE_MIN", config.RING_SIZE_MIN, lib.RING_SIZE_MIN),
    ("RING_SIZE_MAX", config.RING_SIZE_MAX, lib.RING_SIZE_MAX),
    ("RING_SIZE_DEFAULT", config.RING_SIZE_DEFAULT, lib.RING_SIZE_DEFAULT),
    ("COALESCE_USECS_DEFAULT", config.COALESCE_USECS_DEFAULT, lib.COALESCE_USECS_DEFAULT),
    ("COALESCE_USECS_MAX", config.COALESCE_USECS_MAX, lib.COALESCE_USECS_MAX),
    ("DIRECT_SHARE_DEFAULT", config.DIRECT_SHARE_DEFAULT, lib.SW_DIRECT_SHARE_PCT),
    ("VLAN_MAX", config.VLAN_MAX, lib.SW_VLAN_MAX),
    ("VLAN_MAX (the uplink's tags)", config.VLAN_MAX, lib.UPLINK_VID_MAX),
    ("PARTITIONS_MAX_DEFAULT", config.PARTITIONS_MAX_DEFAULT, lib.SW_PORTS_DEFAULT),
    ("PARTITIONS_MAX_LIMIT", config.PARTITIONS_MAX_LIMIT, lib.SW_PORTS_LIMIT),
    ("FDB_AGE_DEFAULT", config.FDB_AGE_DEFAULT, lib.FDB_AGE_DEFAULT_S),
    ("FDB_AGE_MAX", config.FDB_AGE_MAX, lib.FDB_AGE_MAX_S),
    ("MTU_MIN_IPV4", config.MTU_MIN_IPV4, lib.SW_MTU_MIN),   # a partition's own least (1280, IPv6) is policy
    ("BPF_MAXINSNS", config.BPF_MAXINSNS, lib.CBPF_MAXINSNS),
    ("SNAPLEN_MAX", config.SNAPLEN_MAX, lib.RING_FRAME_MAX - ffi.sizeof("struct sw_cap_hdr")),
    ("MAC_CONFLICT_MODES", config.MAC_CONFLICT_MODES,
     tuple(sorted(("yield", "keep"), key=lambda m: getattr(lib, f"SW_MAC_CONFLICT_{m.upper()}")))),
]


@pytest.mark.parametrize("name, ours, theirs", MIRRORS, ids=[m[0] for m in MIRRORS])
def test_config_py_mirrors_the_headers(name, ours, theirs):
    assert ours == theirs, f"core/config.py {name} = {ours!r}, the C's is {theirs!r}"


def test_watched_reasons_are_the_guards_storm_and_other_vlan_not_congestion():
    reasons = events.watched_reasons()
    assert {"spoof", "ip_spoof", "arp_spoof", "mtu", "ra", "storm", "other_vlan"} <= reasons
    assert not reasons & {"rx_rate", "h2a_full", "flood_share", "uplink_tx"}
    assert not [r for r in reasons if r.startswith("ring_")]
    # the two the watcher names by hand are the switch's own drop names
    assert {"storm", "other_vlan"} <= set(switch.CAPTURE_DROPS)
