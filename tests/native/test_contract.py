"""The C/Python contract: every constant and name list the pure Python
side keeps for itself (core/config.py, the event watcher) is the built
library's. core/config.py cannot import the C (it is pure: tests/unit,
the CNI plugin), so it mirrors these values, and this file is where a
mirror that drifts from its header fails."""
from vnetshare import events
from vnetshare.core import config
from vnetshare.dataplane._native import lib


def test_coalesce_limits_match_native_coalesce_h():
    assert (config.COALESCE_USECS_DEFAULT, config.COALESCE_USECS_MAX) == (
        lib.COALESCE_USECS_DEFAULT, lib.COALESCE_USECS_MAX)


def test_watched_reasons_are_the_guards_storm_and_other_vlan_not_congestion():
    reasons = events.watched_reasons()
    assert {"spoof", "ip_spoof", "arp_spoof", "mtu", "ra", "storm", "other_vlan"} <= reasons
    assert not reasons & {"rx_rate", "h2a_full", "flood_share", "uplink_tx"}
    assert not [r for r in reasons if r.startswith("ring_")]
