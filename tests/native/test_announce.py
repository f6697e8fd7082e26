"""The announcements of a moved address, read back by scapy as a LAN host would."""
from __future__ import annotations

from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from vnetshare.hostport import host_mac
from vnetshare.linux import announce

MAC = "02:5e:00:00:00:fe"


def test_gratuitous_arp_names_the_address_at_the_mac():
    f = Ether(announce.arp_frame(MAC, "198.18.0.254"))
    assert f.dst == "ff:ff:ff:ff:ff:ff" and f.src == MAC and len(bytes(f)) == 60
    a = f[ARP]
    assert (a.op, a.hwsrc, a.psrc, a.pdst, a.hwdst) == (1, MAC, "198.18.0.254", "198.18.0.254",
                                                         "00:00:00:00:00:00")


def test_unsolicited_na_overrides_to_all_nodes_with_a_valid_checksum():
    raw = announce.na_frame(MAC, "fd00:5e::fe")
    f = Ether(raw)
    assert f.dst == "33:33:00:00:00:01" and f.src == MAC
    ip = f[IPv6]
    assert (ip.src, ip.dst, ip.hlim) == ("fd00:5e::fe", "ff02::1", 255)
    na = f[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (0, 0, 1, "fd00:5e::fe")
    assert f[ICMPv6NDOptDstLLAddr].lladdr == MAC
    sent = na.cksum
    del na.cksum  # scapy computes it again
    assert Ether(bytes(f))[ICMPv6ND_NA].cksum == sent


def test_one_frame_per_address_of_its_family():
    out = announce.frames(MAC, ["198.18.0.254/24", "fd00:5e::fe/64", "10.0.0.1"])
    assert [Ether(f).type for f in out] == [0x0806, 0x86DD, 0x0806]


def test_the_host_ports_mac_is_stable_local_and_unicast():
    a = host_mac("52:54:00:12:34:56", "vnshost")
    assert a == host_mac("52:54:00:12:34:56", "vnshost")          # every start the same
    assert a != host_mac("52:54:00:12:34:56", "vnshost1")         # its name and
    assert a != host_mac("52:54:00:12:34:57", "vnshost")          # its uplink make it
    first = int(a[:2], 16)
    assert first & 0x02 and not first & 0x01                     # locally administered, unicast


def test_a_vlan_partitions_announcements_carry_its_tag():
    from scapy.layers.l2 import Dot1Q

    v4, v6 = announce.frames(MAC, ["198.18.0.7", "fe80::5e:7"], vlan=42)
    for raw, inner in ((v4, ARP), (v6, ICMPv6ND_NA)):
        f = Ether(raw)
        assert f.type == 0x8100 and f[Dot1Q].vlan == 42 and inner in f, f.show(dump=True)
    assert Ether(v4)[ARP].psrc == "198.18.0.7" and Ether(v6)[ICMPv6ND_NA].tgt == "fe80::5e:7"
    assert announce.frames(MAC, ["198.18.0.7"], vlan=0) == [announce.arp_frame(MAC, "198.18.0.7")]
