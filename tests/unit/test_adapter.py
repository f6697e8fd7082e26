"""adapter.derive(): the partition device's functions from the uplink's, row by row."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vnetshare import ConfigError
from vnetshare import adapter as a
from vnetshare.adapter import UplinkInfo, derive

# what a veth reports (probed): generic checksum, SG, TSO v4/v6 + ECN, USO
VETH = {
    "tx-scatter-gather": True, "tx-checksum-ipv4": False, "tx-checksum-ip-generic": True,
    "tx-checksum-ipv6": False, "tx-tcp-segmentation": True, "tx-tcp-ecn-segmentation": True,
    "tx-tcp6-segmentation": True, "tx-udp-segmentation": True, "rx-gro": False,
}
ALL_TSO_USO = a.TUN_F_TSO4 | a.TUN_F_TSO6 | a.TUN_F_TSO_ECN | a.TUN_F_USO4 | a.TUN_F_USO6


def uplink(mtu=1500, **changes):
    feats = dict(VETH)
    feats.update({k.replace("_", "-"): v for k, v in changes.items()})
    return UplinkInfo(ifname="up0", mtu=mtu, speed=10000, duplex="Full", features=feats)


def row(fns, name):
    return next(r for r in fns.rows if r.function == name)


def test_veth_mirror_gets_everything():
    f = derive(uplink())
    assert f.tun_offloads == a.TUN_F_CSUM | ALL_TSO_USO
    assert f.vnet_gso
    assert row(f, "tso4").source == "tx-tcp-segmentation"
    assert "tx-tcp-segmentation on" in row(f, "tso4").source_value
    assert a.offload_names(f.tun_offloads) == ["TUN_F_CSUM", "TUN_F_TSO4", "TUN_F_TSO6", "TUN_F_TSO_ECN",
                                               "TUN_F_USO4", "TUN_F_USO6"]


def test_no_tso():
    f = derive(uplink(tx_tcp_segmentation=False, tx_tcp6_segmentation=False, tx_udp_segmentation=False))
    assert f.tun_offloads == a.TUN_F_CSUM
    assert not f.vnet_gso
    assert f.value("tso4") is False and f.value("tso_ecn") is False  # ECN needs a TSO
    assert row(f, "tso4").source_value.startswith("tx-tcp-segmentation off")


def test_tso4_only():
    f = derive(uplink(tx_tcp6_segmentation=False, tx_udp_segmentation=False))
    assert f.tun_offloads == a.TUN_F_CSUM | a.TUN_F_TSO4 | a.TUN_F_TSO_ECN
    assert f.vnet_gso
    assert f.value("tso6") is False and f.value("uso4") is False and f.value("uso6") is False


def test_csum_off_means_no_tso_no_uso():
    f = derive(uplink(tx_checksum_ip_generic=False))
    assert f.tun_offloads == 0
    assert not f.vnet_gso
    assert f.value("csum") is False and f.value("tso4") is False
    # the row says why: the uplink had TSO but no checksum offload
    assert "tx-tcp-segmentation on" in row(f, "tso4").source_value
    assert "tx-checksum-ip-generic off" in row(f, "tso4").source_value


def test_per_family_checksum():
    # IPv4 checksum only: CSUM and TSO4, but no TSO6 and no USO (needs both families)
    f = derive(uplink(tx_checksum_ip_generic=False, tx_checksum_ipv4=True))
    assert f.tun_offloads == a.TUN_F_CSUM | a.TUN_F_TSO4 | a.TUN_F_TSO_ECN
    f = derive(uplink(tx_checksum_ip_generic=False, tx_checksum_ipv4=True, tx_checksum_ipv6=True))
    assert f.tun_offloads == a.TUN_F_CSUM | ALL_TSO_USO


def test_no_scatter_gather_means_no_segmentation():
    f = derive(uplink(tx_scatter_gather=False))
    assert f.tun_offloads == a.TUN_F_CSUM


def test_uso_flags_come_in_pairs_and_never_ufo():
    for feats in ({}, {"tx_checksum_ip_generic": False, "tx_checksum_ipv6": True}, {"tx_udp_segmentation": False}):
        flags = derive(uplink(**feats)).tun_offloads
        assert bool(flags & a.TUN_F_USO4) == bool(flags & a.TUN_F_USO6)
        assert not flags & a.TUN_F_UFO
        if flags & (a.TUN_F_TSO4 | a.TUN_F_TSO6 | a.TUN_F_USO4):
            assert flags & a.TUN_F_CSUM


FEATURE_NAMES = [a.SG, a.CSUM_GENERIC, a.CSUM_IPV4, a.CSUM_IPV6, a.TSO4, a.TSO6, a.TSO_ECN, a.USO]


@given(st.fixed_dictionaries({n: st.booleans() for n in FEATURE_NAMES}), st.sampled_from(a.MODES))
def test_every_result_is_accepted_by_tunsetoffload(feats, mode):
    # tun.c set_offload() answers EINVAL otherwise (probed on Linux 6.18)
    flags = derive(UplinkInfo(ifname="up0", mtu=1500, features=feats), mode).tun_offloads
    if flags & (a.TUN_F_TSO4 | a.TUN_F_TSO6 | a.TUN_F_USO4 | a.TUN_F_USO6):
        assert flags & a.TUN_F_CSUM
    if flags & a.TUN_F_TSO_ECN:
        assert flags & (a.TUN_F_TSO4 | a.TUN_F_TSO6)
    assert bool(flags & a.TUN_F_USO4) == bool(flags & a.TUN_F_USO6)
    assert not flags & a.TUN_F_UFO


def test_emulate_turns_everything_on():
    bare = UplinkInfo(ifname="up0", mtu=1500, features={})
    f = derive(bare, "emulate")
    assert f.tun_offloads == a.TUN_F_CSUM | ALL_TSO_USO
    assert f.vnet_gso and f.mode == "emulate"
    for name in ("csum", "tso4", "tso6", "tso_ecn", "uso4", "uso6", "vnet_gso"):
        r = row(f, name)
        assert r.value is True and r.source == a.EMULATED == "emulated (kernel software GSO/checksum)"
    assert "tx-tcp-segmentation off" in row(f, "tso4").source_value  # what the uplink really has
    assert derive(bare).tun_offloads == 0


@pytest.mark.parametrize("mode", ["mirror", "emulate"])
@pytest.mark.parametrize("mtu", [576, 1500, 9000])
def test_mtu_speed_duplex_propagate(mode, mtu):
    f = derive(uplink(mtu=mtu), mode)
    assert f.mtu == mtu == f.value("mtu")
    assert row(f, "mtu").source == "mtu" and row(f, "mtu").source_value == str(mtu)
    assert f.speed == 10000 and row(f, "speed").source_value == "10000 Mb/s"
    assert f.duplex == "Full"


def test_unknown_speed():
    f = derive(UplinkInfo(ifname="up0", mtu=1500))
    assert f.speed is None and row(f, "speed").source_value == "unknown"
    assert row(f, "duplex").source_value == "unknown"


def test_bad_mode_names_it():
    with pytest.raises(ConfigError, match=r"offload mode 'turbo': use one of mirror, emulate"):
        derive(uplink(), "turbo")


def test_drop_uso_for_a_kernel_before_6_2():
    full = a.derive(a.UplinkInfo("up0", 1500), "emulate")
    assert full.tun_offloads == a.TUN_F_CSUM | ALL_TSO_USO
    old = a.drop_uso(full)
    assert old.tun_offloads == a.TUN_F_CSUM | a.TUN_F_TSO4 | a.TUN_F_TSO6 | a.TUN_F_TSO_ECN
    assert old.value("uso4") is False and old.value("uso6") is False and old.value("vnet_gso") is True
    assert {r.source for r in old.rows if r.function.startswith("uso")} == {a.NO_KERNEL_USO}
    assert [r.function for r in old.rows] == [r.function for r in full.rows]


def test_rows_are_complete_and_ordered():
    assert [r.function for r in derive(uplink()).rows] == [
        "mtu", "speed", "duplex", "csum", "tso4", "tso6", "tso_ecn", "uso4", "uso6", "vnet_gso"]


@pytest.mark.parametrize("arphrd, words", [
    (772, "the loopback device (ARPHRD 772), not an Ethernet NIC"),
    (0xFFFE, "a layer-3 device (TUN, WireGuard: no link-layer header) (ARPHRD 65534)"),
    (778, "a GRE tunnel (ARPHRD 778)"),
    (4242, "a device of link type 4242 (ARPHRD 4242)"),
])
def test_only_an_ethernet_device_can_be_the_uplink(arphrd, words):
    info = UplinkInfo(ifname="x0", mtu=1500, arphrd=arphrd)
    assert words in a.unusable(info)
    with pytest.raises(ConfigError) as e:
        a.check_uplink(info)
    assert str(e.value).startswith("uplink 'x0': ") and words in str(e.value) and "\n" not in str(e.value)
    ether = UplinkInfo(ifname="x0", mtu=1500)
    assert a.unusable(ether) is None and a.check_uplink(ether) is ether


def test_feature_changes_name_what_moved_both_ways():
    before = uplink(rx_gro=False)
    after = uplink(tx_tcp_segmentation=False, rx_gro=True)
    del after.features["tx-udp-segmentation"]  # a feature the new device does not list: off
    after.features["rx-gro-list"] = True       # and one only the new device lists
    assert a.feature_changes(before, after) == {
        "rx-gro": (False, True), "rx-gro-list": (False, True), "tx-tcp-segmentation": (True, False),
        "tx-udp-segmentation": (True, False)}
    assert a.feature_changes(before, before) == {}
    # what the partitions get follows from derive() on the new facts
    assert not derive(after).tun_offloads & a.TUN_F_TSO4 and derive(before).tun_offloads & a.TUN_F_TSO4


def test_with_a_backup_partitions_get_what_both_uplinks_offer():
    from vnetshare import adapter as ad

    a = ad.UplinkInfo("eth1", 9000, speed=10000, duplex="Full",
                      features={ad.CSUM_GENERIC: True, ad.SG: True, ad.TSO4: True, ad.USO: True})
    b = ad.UplinkInfo("eth2", 1500, speed=1000, duplex="Full",
                      features={ad.CSUM_GENERIC: True, ad.SG: True, ad.TSO4: False})
    both = ad.common(a, b)
    assert (both.ifname, both.mtu, both.speed, both.duplex) == ("eth1", 1500, 1000, "Full")
    f = ad.derive(both)
    assert f.value("csum") and not f.value("tso4") and not f.value("uso4") and f.mtu == 1500
    assert ad.common(a, None) is a
