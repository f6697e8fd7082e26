"""vnetshare verify builds its frames by hand; scapy reads each back as
what it claims to be, checksums included."""
import struct

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_RA, ICMPv6NDOptDstLLAddr,
                                ICMPv6NDOptPrefixInfo, IPv6)
from scapy.layers.l2 import ARP, Dot1Q, Ether

from vnetshare.frontends import verify as v

A = bytes.fromhex("02aabbccdd01")
B = bytes.fromhex("02aabbccdd02")


def test_ipv4_udp():
    f = v.eth(B, A, v.ETH_P_IP, v.ipv4("198.18.0.1", "198.18.0.2", 17, v.udp4(67, 68, b"hello")))
    p = Ether(f)
    assert p.src == "02:aa:bb:cc:dd:01" and p.dst == "02:aa:bb:cc:dd:02"
    assert p[IP].src == "198.18.0.1" and p[IP].dst == "198.18.0.2" and p[IP].len == 20 + 8 + 5
    assert p[UDP].sport == 67 and p[UDP].dport == 68 and bytes(p[UDP].payload) == b"hello"
    ours = p[IP].chksum
    del p[IP].chksum
    assert Ether(bytes(p))[IP].chksum == ours


def test_arp_reply():
    p = Ether(v.eth(B, A, v.ETH_P_ARP, v.arp_reply(A, "198.18.0.2", B, "198.18.0.2")))
    assert p[ARP].op == 2 and p[ARP].hwsrc == "02:aa:bb:cc:dd:01" and p[ARP].psrc == "198.18.0.2"


def test_neighbour_advert_and_router_advert_checksums():
    na = Ether(v.eth(B, A, v.ETH_P_IPV6, v.ipv6_icmp("fe80::1", "ff02::1", 136,
                                                     v.neighbour_advert("2001:db8::2", A))))
    assert na[IPv6].hlim == 255 and na[ICMPv6ND_NA].tgt == "2001:db8::2"
    assert na[ICMPv6ND_NA].O == 1 and na[ICMPv6NDOptDstLLAddr].lladdr == "02:aa:bb:cc:dd:01"
    ra = Ether(v.eth(B, A, v.ETH_P_IPV6, v.ipv6_icmp("fe80::1", "ff02::1", 134,
                                                     v.router_advert("2001:db8:bad::/64"))))
    assert ra[ICMPv6ND_RA].routerlifetime == 1800
    assert ra[ICMPv6NDOptPrefixInfo].prefix == "2001:db8:bad::" and ra[ICMPv6NDOptPrefixInfo].prefixlen == 64
    for pkt, layer in ((na, ICMPv6ND_NA), (ra, ICMPv6ND_RA)):
        ours = pkt[layer].cksum
        del pkt[layer].cksum
        assert Ether(bytes(pkt))[layer].cksum == ours


def test_tagged_frame():
    p = Ether(v.eth(B, A, v.ETH_P_IP, v.ipv4("198.18.0.1", "198.18.0.2", 17, v.udp4(1, 2, b"")), vlan=7))
    assert p[Dot1Q].vlan == 7 and p[Dot1Q].type == v.ETH_P_IP


def test_untag_matches_a_tagged_copy_of_a_frame():
    f = v.eth(B, A, v.ETH_P_EXPERIMENTAL, b"x" * 50)
    tagged = f[:12] + bytes.fromhex("8100 0ffe".replace(" ", "")) + f[12:]
    assert v._untag(tagged) == f and v._untag(f) == f


def _complete(frame: bytes, start: int, offset: int) -> bytes:
    """What the kernel makes of NEEDS_CSUM: the sum from @start, written at @start + @offset."""
    return frame[:start + offset] + struct.pack("!H", v._csum(frame[start:])) + frame[start + offset + 2:]


def test_pseudo_header_seed_completes_to_the_right_checksum():
    for proto, l4 in ((17, v.udp4(1, 2, b"x" * 33)), (6, v.tcp4(1, 2, 7, b"y" * 40))):
        seeded = (v.udp4(1, 2, b"x" * 33, v.pseudo4("198.18.0.1", "198.18.0.2", 17, len(l4))) if proto == 17
                  else v.tcp4(1, 2, 7, b"y" * 40, v.pseudo4("198.18.0.1", "198.18.0.2", 6, len(l4))))
        f = v.eth(B, A, v.ETH_P_IP, v.ipv4("198.18.0.1", "198.18.0.2", proto, seeded))
        done = Ether(_complete(f, 34, 6 if proto == 17 else 16))
        layer = UDP if proto == 17 else TCP
        ours = done[layer].chksum
        del done[layer].chksum
        assert Ether(bytes(done))[layer].chksum == ours


def test_vnet_rows_ask_for_what_their_names_say():
    s = {"mac": "02:aa:bb:cc:dd:01", "ips": ["198.18.7.1/24", "2001:db8:7::1/64"], "mtu": 1500}
    r = {"mac": "02:aa:bb:cc:dd:02", "ips": ["198.18.7.2/24", "2001:db8:7::2/64"], "mtu": 1500}
    checks = {c.check: c for c in v._plan(s, r, 0)[0]}
    arp = checks["a checksum asked for over the ARP sender address"]
    (f,) = arp.frames
    at = arp.vnet.csum_start + arp.vnet.csum_offset
    assert Ether(f)[ARP].psrc == "198.18.7.1" and 28 <= at <= 30 and arp.reason == "csum_offset"
    src = checks["a checksum asked for over the IPv4 source"]
    at = src.vnet.csum_start + src.vnet.csum_offset
    assert 26 <= at <= 28 and Ether(src.frames[0])[IP].src == "198.18.7.1"
    ok = checks["checksum-offloaded datagram (control)"]
    assert (ok.vnet.csum_start, ok.vnet.csum_offset) == (34, 6) and ok.reason is None
    done = Ether(_complete(ok.frames[0], 34, 6))
    ours = done[UDP].chksum
    del done[UDP].chksum
    assert Ether(bytes(done))[UDP].chksum == ours
    gso, bad = checks["GSO frame of MTU-sized segments (control)"], checks["GSO frame with gso_size 1"]
    assert gso.frames != bad.frames and Ether(gso.frames[0])[TCP].dataofs == 5
    assert gso.vnet.gso_size + 20 + 20 == 1500 and len(gso.frames[0]) > 2 * 1514
    assert bad.vnet.gso_size == 1 and bad.reason == "gso"


def test_dhcp_messages_are_real_ones():
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.dhcp6 import DHCP6_Advertise

    f = Ether(v.eth(B, A, v.ETH_P_IP, v.ipv4("198.18.0.1", "198.18.0.2", 17, v.udp4(
        68, 67, v.bootp(1, A, 7, ciaddr="198.18.0.2", options=bytes([54, 4, 198, 18, 0, 9]))))))
    assert f[BOOTP].op == 1 and f[BOOTP].chaddr[:6] == A and f[BOOTP].ciaddr == "198.18.0.2"
    assert ("message-type", 7) in f[DHCP].options and ("server_id", "198.18.0.9") in f[DHCP].options
    adv = Ether(v.eth(B, A, v.ETH_P_IPV6, v.ipv6_udp("2001:db8::1", "2001:db8::2", 1547, 546,
                                                      b"\x02\x7e\x57\x00")))
    assert adv[UDP].sport == 1547 and adv[UDP].dport == 546 and adv.haslayer(DHCP6_Advertise)
    ours = adv[UDP].chksum
    del adv[UDP].chksum
    assert Ether(bytes(adv))[UDP].chksum == ours


def test_snap_frame_is_an_8023_length_frame_of_no_protocol():
    from scapy.layers.l2 import LLC, SNAP, Dot3

    p = Dot3(v.snap(v.PVST_GROUP, A, b"x" * 40))
    assert p.dst == "01:00:0c:cc:cc:cd" and p.len == 8 + 40
    assert p[LLC].dsap == p[LLC].ssap == 0xAA and p[SNAP].OUI == 0 and p[SNAP].code == v.ETH_P_EXPERIMENTAL


def test_every_hostile_frame_gets_its_reason_from_the_guard():
    """verify's frames, judged by the C guard as the sender's port: each
    hostile one under the reason its check counts, the control passes."""
    from vnetshare.dataplane.guard import GuardPolicy, check

    s = {"mac": "02:aa:bb:cc:dd:01", "ips": ["198.18.7.1/24", "2001:db8:7::1/64"], "mtu": 1500}
    r = {"mac": "02:aa:bb:cc:dd:02", "ips": ["198.18.7.2/24", "2001:db8:7::2/64"], "mtu": 1500}
    checks, _, r_barrier, u_barrier = v._plan(s, r, 0)
    policy = GuardPolicy.for_partition(s["mac"], s["ips"])
    got = {c.check: [check(policy, f, vnet=c.vnet) for f in c.frames] for c in checks}
    want = {c.check: ["pass_unicast" if c.reason is None else f"drop_{c.reason}"] * len(c.frames)
            for c in checks}
    assert got == want
    assert {c.reason for c in checks} >= {"dhcp_server", "dhcp_spoof", "cisco_group", "mac_control",
                                          "eapol", "llc", "csum_offset", "gso"}
    assert check(policy, r_barrier) == "pass_unicast" and check(policy, u_barrier) == "pass_unicast"


def test_identity_rows_report_a_daemon_that_gives_anything_away(monkeypatch):
    """verify's control-plane checks can fail: against a daemon that accepts
    every create and set, each row is a leak, and what it made is handed
    back for deletion; against one that refuses as it must, each is ok."""
    s = {"name": "_vfys", "mac": "02:aa:bb:cc:dd:01", "ips": ["198.18.7.1/24"], "vlan": 7}
    r = {"name": "_vfyr", "mac": "02:aa:bb:cc:dd:02", "ips": ["198.18.7.2/24", "2001:db8:7::2/64"], "vlan": 7}
    status = {"uplink_mac": "02:aa:bb:cc:dd:ff"}
    asked = []

    def accepts(sock, op, **args):
        asked.append((op, args))
        return {}
    monkeypatch.setattr(v, "call", accepts)
    made: list[str] = []
    rows = v._identity_rows("sock", status, s, r, "_vfyx", made)
    assert len(rows) == 5 and all(row["verdict"].startswith("LEAK") for row in rows), rows
    assert made == ["_vfyx"] * 4
    # the leaked set is undone: the sender gets its own addresses back
    assert asked[-1] == ("partition.set", {"name": "_vfys", "ips": ["198.18.7.1/24"]})
    assert ("partition.create", {"name": "_vfyx", "mac": "02:aa:bb:cc:dd:ff", "vlan": 7}) in asked

    def refuses(sock, op, **args):
        if args.get("ips") == ["255.255.255.255/32"]:
            raise v.DaemonError("EINVAL", "address 255.255.255.255/32: no host may have it")
        raise v.DaemonError("EADDRINUSE", "in use")
    monkeypatch.setattr(v, "call", refuses)
    made = []
    rows = v._identity_rows("sock", status, s, r, "_vfyx", made)
    assert [row["verdict"] for row in rows] == ["ok"] * 5 and made == []

    def wrong_code(sock, op, **args):
        raise v.DaemonError("EEXIST", "exists")
    monkeypatch.setattr(v, "call", wrong_code)
    rows = v._identity_rows("sock", status, s, r, "_vfyx", [])
    assert all(row["verdict"].startswith("FAIL: refused, but as EEXIST") for row in rows), rows
