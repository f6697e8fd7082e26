"""core/failover.py: which uplink the switch serves, rule by rule."""
from __future__ import annotations

import pytest

from vnetshare.core.failover import BACKUP, PRIMARY, decide

BOTH = {PRIMARY: True, BACKUP: True}
ONLY_P = {PRIMARY: True, BACKUP: False}
ONLY_B = {PRIMARY: False, BACKUP: True}
NONE = {PRIMARY: False, BACKUP: False}


def test_the_active_uplink_stays_while_usable():
    assert decide(PRIMARY, BOTH, 0.0, 100.0).target == PRIMARY
    assert decide(PRIMARY, BOTH, 0.0, 100.0).kind is None


def test_the_primary_down_fails_over_to_the_backup():
    d = decide(PRIMARY, ONLY_B, None, 100.0)
    assert (d.target, d.kind, d.reason) == (BACKUP, "failover", "primary down")


@pytest.mark.parametrize("mode", ["hold", "always", "never"])
def test_the_backup_down_goes_back_to_the_primary_whatever_the_failback(mode):
    d = decide(BACKUP, ONLY_P, 99.9, 100.0, mode, hold=5)
    assert (d.target, d.kind, d.reason) == (PRIMARY, "failback", "backup down")


def test_hold_waits_for_the_primary_to_stay_up_then_fails_back():
    d = decide(BACKUP, BOTH, 100.0, 102.0, "hold", hold=5)
    assert d.target == BACKUP and d.kind is None and d.recheck == pytest.approx(105.0)
    d = decide(BACKUP, BOTH, 100.0, 105.0, "hold", hold=5)
    assert (d.target, d.kind) == (PRIMARY, "failback")


def test_always_fails_back_at_once_and_never_does_not():
    assert decide(BACKUP, BOTH, 100.0, 100.0, "always", hold=5).target == PRIMARY
    d = decide(BACKUP, BOTH, 0.0, 1e6, "never", hold=5)
    assert d.target == BACKUP and d.recheck is None


def test_both_down_serves_neither_and_the_first_back_is_taken():
    d = decide(BACKUP, NONE, None, 100.0)
    assert (d.target, d.kind, d.reason) == (None, "failover", "both down")
    assert decide(None, NONE, None, 101.0).target is None
    d = decide(None, ONLY_B, None, 102.0)
    assert (d.target, d.kind) == (BACKUP, "failover")
    d = decide(None, BOTH, 102.0, 102.0, "hold", hold=5)
    assert (d.target, d.kind) == (PRIMARY, "failback")  # no hold when nothing serves


def test_the_settings_name_what_is_wrong():
    from vnetshare.core import config
    from vnetshare.core.errors import ConfigError

    with pytest.raises(ConfigError, match="--backup-uplink 'eth1': is the uplink"):
        config.DaemonConfig(uplink="eth1", backup_uplink="eth1")
    with pytest.raises(ConfigError, match="failback mode 'sometimes'"):
        config.failback("sometimes")
    with pytest.raises(ConfigError, match="failback hold '-1'"):
        config.failback_hold("-1")
    assert config.failback_hold("0.5") == 0.5 and config.DaemonConfig(uplink="eth1").failback == "hold"
