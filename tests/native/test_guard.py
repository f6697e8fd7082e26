"""The frame guard (native/guard.c) through vnetshare.dataplane.guard: one test per class.

Every hostile frame is judged next to a legitimate one of its kind that must
pass (a positive control), so a guard that drops everything fails too. The
frames are built with scapy and judged by guard_check_frame() on the same
private copies the switch makes (vnetshare.dataplane.guard.check()). No root needed.
"""
import ipaddress

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dhcp6 import (
    DHCP6_Advertise,
    DHCP6_Decline,
    DHCP6_InfoRequest,
    DHCP6_Reconf,
    DHCP6_RelayForward,
    DHCP6_RelayReply,
    DHCP6_Release,
    DHCP6_Renew,
    DHCP6_Reply,
    DHCP6_Request,
    DHCP6_Solicit,
    DHCP6OptClientId,
    DHCP6OptIA_NA,
    DHCP6OptIA_TA,
    DHCP6OptIAAddress,
    DUID_EN,
    DUID_LL,
    DUID_LLT,
    DUID_UUID,
)
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6MLDone,
    ICMPv6MLReport,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
    RouterAlert,
)
from scapy.layers.l2 import ARP, LLC, SNAP, STP, Dot1Q, Dot3, Ether
from scapy.packet import Raw

from vnetshare import ConfigError
from vnetshare.dataplane._native import ffi, lib
from vnetshare.dataplane.guard import (
    ADDR_MAX,
    DROP_REASONS,
    GSO_ECN,
    GSO_TCPV4,
    GSO_TCPV6,
    GSO_UDP_L4,
    HDR_COPY,
    HDR_COPY_MAX,
    NEEDS_CSUM,
    TCP_MIN_SND_MSS,
    UDP_MAX_SEGMENTS,
    VERDICTS,
    GuardPolicy,
    Vnet,
    check,
    check_frame,
    link_local,
)

MAC = "02:00:00:00:00:0a"
OTHER_MAC = "02:00:00:00:00:0b"
LAN_MAC = "02:00:00:00:00:01"
BCAST = "ff:ff:ff:ff:ff:ff"
IP4 = "10.0.0.2"
OTHER4 = "10.0.0.3"
LAN4 = "10.0.0.1"
IP6 = "fd00::2"
OTHER6 = "fd00::3"
LAN6 = "fd00::1"
LL = str(link_local(MAC))
POLICY = GuardPolicy.for_partition(MAC, [f"{IP4}/24", f"{IP6}/64"],
                                   ["192.168.5.0/24", "2001:db8:5::/48"])
TRUSTED = GuardPolicy.for_partition(MAC, [f"{IP4}/24", f"{IP6}/64"], trusted_router=True)
ANY = GuardPolicy.for_partition(MAC, [f"{IP4}/24", f"{IP6}/64"], ["any"])
LLC_OK = GuardPolicy.for_partition(MAC, [f"{IP4}/24", f"{IP6}/64"], allow_llc=True)
EVERY_FLAG = GuardPolicy.for_partition(MAC, [f"{IP4}/24", f"{IP6}/64"], ["any"], trusted_router=True,
                                       allow_llc=True)


def eth(dst=LAN_MAC, src=MAC):
    return Ether(src=src, dst=dst)


def judge(pairs, policy=POLICY, mtu=1500):
    """Check (frame, expected verdict) pairs; report every mismatch at once."""
    bad = []
    for frame, want in pairs:
        got = check(policy, bytes(frame), mtu)
        if got != want:
            bad.append(f"{frame!r}: {got}, expected {want}")
    assert not bad, "\n".join(bad)


def solicited_node(addr):
    a = ipaddress.IPv6Address(addr).packed
    return str(ipaddress.IPv6Address(bytes.fromhex("ff0200000000000000000001ff") + a[13:]))


def sn_mac(addr):
    a = ipaddress.IPv6Address(solicited_node(addr)).packed
    return "33:33:" + ":".join(f"{b:02x}" for b in a[12:])


def test_verdict_names_are_the_counters_contract():
    assert VERDICTS[:6] == ("pass_unicast", "pass_group", "drop_spoof", "drop_vlan",
                            "drop_mtu", "drop_loop")
    assert all(v.startswith(("pass_", "drop_")) for v in VERDICTS)
    assert len(set(VERDICTS)) == len(VERDICTS)
    for reason in ("ip_spoof", "arp_spoof", "nd_spoof", "ra", "redirect",
                   "dhcp_server", "hidden", "malformed", "fragment", "bridge_group",
                   "dhcp_spoof", "cisco_group", "mac_control", "eapol", "llc"):
        assert reason in DROP_REASONS


def test_l2_checks_unchanged():
    ok = eth() / IP(src=IP4, dst=LAN4) / UDP(sport=9, dport=9) / b"x"
    judge([
        (ok, "pass_unicast"),
        (eth(dst=BCAST) / IP(src=IP4, dst="10.0.0.255") / UDP(), "pass_group"),
        (eth(src=OTHER_MAC) / IP(src=IP4, dst=LAN4) / UDP(), "drop_spoof"),
        (eth() / Dot1Q(vlan=10) / IP(src=IP4, dst=LAN4) / UDP(), "drop_vlan"),
        (eth() / IP(src=IP4, dst=LAN4) / UDP() / bytes(1500), "drop_mtu"),
        (eth(dst=MAC) / IP(src=IP4, dst=IP4) / UDP(), "drop_loop"),
    ])
    big = bytes(eth() / IP(src=IP4, dst=LAN4) / TCP() / bytes(8000))
    assert check(POLICY, big, 1500, Vnet(NEEDS_CSUM, GSO_TCPV4, 54, 1460, 34, 16)) == "pass_unicast"


def test_bridge_group_dropped():
    stp = eth(dst="01:80:c2:00:00:00") / Raw(b"\x00\x26\x42\x42\x03" + bytes(40))
    judge([
        (eth(dst="01:80:c2:00:00:10") / Raw(bytes(46)), "pass_group"),   # not reserved
        (stp, "drop_bridge_group"),
        (eth(dst="01:80:c2:00:00:01") / Raw(b"\x88\x08" + bytes(44)), "drop_bridge_group"),
        (eth(dst="01:80:c2:00:00:0e") / Raw(bytes(46)), "drop_bridge_group"),
    ])
    assert check(ANY, bytes(stp)) == check(TRUSTED, bytes(stp)) == "drop_bridge_group"


def test_other_ethertypes_pass():
    judge([(Ether(src=MAC, dst=LAN_MAC, type=0x88b5) / Raw(bytes(46)), "pass_unicast"),
           (Ether(src=MAC, dst=BCAST, type=0x88cc) / Raw(bytes(46)), "pass_group")])


def test_ipv4_source_in_set():
    judge([
        (eth() / IP(src=IP4, dst=LAN4) / ICMP(), "pass_unicast"),
        (eth() / IP(src="192.168.5.77", dst=LAN4) / TCP(), "pass_unicast"),
        (eth() / IP(src=OTHER4, dst=LAN4) / ICMP(), "drop_ip_spoof"),
        (eth() / IP(src="192.168.6.1", dst=LAN4) / TCP(), "drop_ip_spoof"),
        (eth(dst=BCAST) / IP(src="255.255.255.255", dst=LAN4) / UDP(), "drop_ip_spoof"),
    ])


def test_dhcp_discover_from_zero_only():
    discover = (eth(dst=BCAST) / IP(src="0.0.0.0", dst="255.255.255.255")
                / UDP(sport=68, dport=67) / BOOTP(op=1, chaddr=bytes.fromhex("02000000000a"))
                / DHCP(options=[("message-type", "discover"), "end"]))
    judge([
        (discover, "pass_group"),
        (eth(dst=BCAST) / IP(src="0.0.0.0", dst="255.255.255.255") / ICMP(), "drop_ip_spoof"),
        (eth(dst=BCAST) / IP(src="0.0.0.0", dst="255.255.255.255")
         / UDP(sport=68, dport=67) / BOOTP(op=2), "drop_ip_spoof"),
        (eth(dst=BCAST) / IP(src="0.0.0.0", dst="255.255.255.255", flags="MF")
         / UDP(sport=68, dport=67) / BOOTP(op=1), "drop_ip_spoof"),
        (eth(dst=BCAST) / IP(src="0.0.0.0", dst="255.255.255.255", frag=10)
         / Raw(bytes(16)), "drop_ip_spoof"),
    ])


def test_dhcp_server_guard():
    offer = (eth(dst=BCAST) / IP(src=IP4, dst="255.255.255.255") / UDP(sport=67, dport=68)
             / BOOTP(op=2, yiaddr=OTHER4) / DHCP(options=[("message-type", "offer"), "end"]))
    adv = eth(dst="33:33:00:01:00:02") / IPv6(src=LL, dst="ff02::1:2") / UDP(sport=547, dport=546) / DHCP6_Advertise()
    sol = eth(dst="33:33:00:01:00:02") / IPv6(src=LL, dst="ff02::1:2") / UDP(sport=546, dport=547) / DHCP6_Solicit()
    request = (eth(dst=BCAST) / IP(src=IP4, dst="255.255.255.255") / UDP(sport=68, dport=67)
               / BOOTP(op=1, chaddr=CHADDR) / DHCP(options=[("message-type", "request"), "end"]))
    judge([(request, "pass_group"), (sol, "pass_group"),
           (offer, "drop_dhcp_server"), (adv, "drop_dhcp_server")])
    judge([(offer, "pass_group"), (adv, "pass_group")], TRUSTED)


# -- DHCP: server messages by port and type, client messages for the port itself --

CHADDR = bytes.fromhex(MAC.replace(":", ""))
OTHER_CHADDR = bytes.fromhex(OTHER_MAC.replace(":", ""))
SERVER4 = "10.0.0.1"


def dhcp4(msg_type, chaddr=CHADDR, src=IP4, dst="255.255.255.255", sport=68, dport=67, op=1,
          ciaddr="0.0.0.0", options=(), end=True, **bootp):
    """A DHCP message from the port (by default a client's, broadcast);
    @options are scapy's (name, value) pairs or raw bytes."""
    opts = ([("message-type", msg_type)] if msg_type else []) + list(options) + (["end"] if end else [])
    return (eth(dst=BCAST if dst == "255.255.255.255" else LAN_MAC) / IP(src=src, dst=dst)
            / UDP(sport=sport, dport=dport) / BOOTP(op=op, chaddr=chaddr, ciaddr=ciaddr, **bootp)
            / DHCP(options=opts))


def dhcp6(msg, src=LL, sport=546, dport=547):
    """A DHCPv6 message from the port's link-local address to All_DHCP_Relay_Agents_and_Servers."""
    return eth(dst="33:33:00:01:00:02") / IPv6(src=src, dst="ff02::1:2") / UDP(sport=sport, dport=dport) / msg


def client_id(duid):
    return DHCP6OptClientId(duid=duid)


def test_dhcp_server_messages_by_port_and_type():
    # what clients take: anything to port 68 / 546 (they filter on nothing else)
    offer = dhcp4("offer", sport=1067, dport=68, op=2, yiaddr=OTHER4)
    adv = dhcp6(DHCP6_Advertise(trid=1) / client_id(DUID_LL(lladdr=OTHER_MAC)), sport=1547, dport=546)
    server = [
        (offer, "drop_dhcp_server"),
        (dhcp4("offer", sport=67, dport=68, op=2, yiaddr=OTHER4), "drop_dhcp_server"),
        (dhcp4("ack", sport=67, dport=1068, op=2), "drop_dhcp_server"),      # from the server port
        (dhcp4("offer", sport=68, dport=67, op=2), "drop_dhcp_server"),      # BOOTREPLY, to a relay
        (dhcp4("ack", sport=68, dport=67, op=1), "drop_dhcp_server"),        # a server's type
        (dhcp4("nak"), "drop_dhcp_server"),
        (dhcp4("force_renew"), "drop_dhcp_server"),
        (dhcp4("lease_query"), "drop_dhcp_server"),                          # a relay agent's
        (adv, "drop_dhcp_server"),
        (dhcp6(DHCP6_Advertise(trid=1)), "drop_dhcp_server"),                # 546 -> 547, by type
        (dhcp6(DHCP6_Reply(trid=1)), "drop_dhcp_server"),
        (dhcp6(DHCP6_Reconf(trid=1)), "drop_dhcp_server"),
        (dhcp6(DHCP6_RelayForward(linkaddr="::", peeraddr=OTHER6)), "drop_dhcp_server"),
        (dhcp6(DHCP6_RelayReply(linkaddr="::", peeraddr=OTHER6)), "drop_dhcp_server"),
        (dhcp6(DHCP6_Reply(trid=1), sport=547, dport=547), "drop_dhcp_server"),
    ]
    legit = [
        (dhcp4("discover"), "pass_group"),
        (dhcp4("request", options=[("requested_addr", IP4), ("server_id", SERVER4)]), "pass_group"),
        (dhcp4("inform", src=IP4, ciaddr=IP4), "pass_group"),
        (dhcp6(DHCP6_Solicit(trid=1) / client_id(DUID_LL(lladdr=MAC))), "pass_group"),
        (dhcp6(DHCP6_InfoRequest(trid=1)), "pass_group"),
        (eth() / IP(src=IP4, dst=LAN4) / UDP(sport=1067, dport=1068) / Raw(bytes(300)), "pass_unicast"),
    ]
    judge(server + legit)
    # a trusted router serves: its server messages pass, whatever their ports
    judge([(f, "pass_group") for f, _ in server if f[Ether].dst != LAN_MAC] + legit, TRUSTED)
    judge(server, ANY)


def test_dhcp_client_message_carries_the_ports_mac():
    def with_cid(cid):
        return dhcp4("discover", options=[("client_id", cid)])
    iaid = b"\x00\x00\x00\x01"
    duid_ll_own = bytes(DUID_LL(lladdr=MAC))
    duid_llt_other = bytes(DUID_LLT(lladdr=OTHER_MAC, timeval=1))
    spoofs = [
        dhcp4("discover", chaddr=OTHER_CHADDR),              # pool starvation
        dhcp4("request", chaddr=OTHER_CHADDR, options=[("requested_addr", OTHER4)]),
        dhcp4("discover", htype=6),                           # IEEE 802, not Ethernet
        dhcp4("discover", hlen=16),
        dhcp4(None, chaddr=OTHER_CHADDR),                     # plain BOOTP
        with_cid(b"\x01" + OTHER_CHADDR),                     # the lease is keyed on this
        with_cid(b"\x01" + CHADDR + b"\x00"),
        with_cid(b"\xff" + iaid + duid_llt_other),
        with_cid(b"\xff" + iaid + bytes(DUID_LL(lladdr=OTHER_MAC))),
    ]
    legit = [
        dhcp4("discover"),
        dhcp4(None),
        dhcp4("discover", src="0.0.0.0"),
        with_cid(b"\x01" + CHADDR),
        with_cid(b"\xff" + iaid + duid_ll_own),
        with_cid(b"\xff" + iaid + bytes(DUID_LLT(lladdr=MAC, timeval=7))),
        with_cid(b"\xff" + iaid + bytes(DUID_EN(enterprisenum=32473, id=b"machine-1"))),
        with_cid(b"\x00host-a"),                              # opaque: names no MAC
    ]
    judge([(f, "drop_dhcp_spoof") for f in spoofs] + [(f, "pass_group") for f in legit])
    # whatever the flags: a router serves, it does not borrow a client's MAC
    judge([(f, "drop_dhcp_spoof") for f in spoofs], EVERY_FLAG)


def test_dhcp_release_and_decline_only_of_the_ports_addresses():
    def release(ciaddr, chaddr=CHADDR):
        return dhcp4("release", src=IP4, dst=SERVER4, chaddr=chaddr, ciaddr=ciaddr,
                     options=[("server_id", SERVER4)])

    def decline(addr):
        opts = [("server_id", SERVER4)] + ([("requested_addr", addr)] if addr else [])
        return dhcp4("decline", options=opts)
    judge([
        (release(IP4), "pass_unicast"),
        (release("192.168.5.40"), "pass_unicast"),            # in an --allow-ip prefix
        (decline(IP4), "pass_group"),
        (release(OTHER4), "drop_dhcp_spoof"),                 # a neighbour's lease
        (release(OTHER4, OTHER_CHADDR), "drop_dhcp_spoof"),
        (release("0.0.0.0"), "drop_dhcp_spoof"),
        (decline(OTHER4), "drop_dhcp_spoof"),
        (decline(None), "drop_dhcp_spoof"),
    ])
    # --allow-ip any: every address is its own, never another's MAC
    judge([(release(OTHER4), "pass_unicast"), (decline(OTHER4), "pass_group"),
           (release(OTHER4, OTHER_CHADDR), "drop_dhcp_spoof")], ANY)


def test_dhcpv6_client_identifier_names_the_ports_mac():
    def solicit(*duids):
        msg = DHCP6_Solicit(trid=7)
        for d in duids:
            msg = msg / client_id(d)
        return dhcp6(msg)
    judge([
        (solicit(DUID_LL(lladdr=MAC)), "pass_group"),
        (solicit(DUID_LLT(lladdr=MAC, timeval=700000000)), "pass_group"),
        (solicit(DUID_EN(enterprisenum=32473, id=b"\x01\x02\x03\x04")), "pass_group"),
        (solicit(DUID_UUID(uuid="8aa2b44a-3c6d-4c2b-a0b4-3f2c5d6e7f80")), "pass_group"),
        (solicit(), "pass_group"),
        (solicit(DUID_LL(lladdr=OTHER_MAC)), "drop_dhcp_spoof"),
        (solicit(DUID_LLT(lladdr=OTHER_MAC, timeval=700000000)), "drop_dhcp_spoof"),
        (solicit(DUID_LL(hwtype=6, lladdr=MAC)), "drop_dhcp_spoof"),
        (dhcp6(DHCP6_Renew(trid=1) / client_id(DUID_LLT(lladdr=OTHER_MAC))), "drop_dhcp_spoof"),
        # two identifiers: the server reads one, the guard would have read the other
        (solicit(DUID_LL(lladdr=MAC), DUID_EN(enterprisenum=1, id=b"x")), "drop_malformed"),
        (solicit(DUID_LL(lladdr=MAC), DUID_LL(lladdr=OTHER_MAC)), "drop_malformed"),
    ])
    judge([(solicit(DUID_LL(lladdr=OTHER_MAC)), "drop_dhcp_spoof")], EVERY_FLAG)


def test_dhcpv6_release_and_decline_only_of_the_ports_addresses():
    def msg(kind, addr, ia=DHCP6OptIA_NA):
        opts = [DHCP6OptIAAddress(addr=addr, preflft=0, validlft=0)]
        return dhcp6(kind(trid=9) / client_id(DUID_LL(lladdr=MAC))
                     / (ia(iaid=1, ianaopts=opts) if ia is DHCP6OptIA_NA else ia(iaid=1, iataopts=opts)),
                     src=IP6)
    judge([
        (msg(DHCP6_Release, IP6), "pass_group"),
        (msg(DHCP6_Release, "2001:db8:5::44"), "pass_group"),      # in an --allow-ip prefix
        (msg(DHCP6_Decline, IP6, DHCP6OptIA_TA), "pass_group"),
        (msg(DHCP6_Renew, OTHER6), "pass_group"),                  # the server checks bindings
        (msg(DHCP6_Request, OTHER6), "pass_group"),
        (msg(DHCP6_Release, OTHER6), "drop_dhcp_spoof"),
        (msg(DHCP6_Decline, OTHER6), "drop_dhcp_spoof"),
        (msg(DHCP6_Release, OTHER6, DHCP6OptIA_TA), "drop_dhcp_spoof"),
    ])
    judge([(msg(DHCP6_Release, OTHER6), "pass_group")], ANY)


def test_dhcp_message_is_read_whole_from_a_longer_private_copy():
    discover = bytes(dhcp4("discover", options=[("client_id", b"\x01" + OTHER_CHADDR)]))
    assert HDR_COPY < len(discover) <= HDR_COPY_MAX
    # the first copy is too short: the guard says so, and how much it needs
    rec = ffi.new("struct ring_rec *")
    rec.l2 = list(discover[:14])
    rec.frame_len = len(discover)
    shared = ffi.new("uint8_t[]", discover)
    rec.frame = shared
    gf = ffi.new("struct guard_frame *")
    port = POLICY.to_c()
    v = lib.guard_check_frame(port, rec, ffi.new("uint8_t[]", discover[:HDR_COPY]), HDR_COPY, 1500, gf)
    assert (VERDICTS[v], gf.want) == ("drop_hidden", len(discover))
    # the longer copy decides (the option 61 far past byte 128); one byte short stays hidden
    v = lib.guard_check_frame(port, rec, ffi.new("uint8_t[]", discover), len(discover), 1500, gf)
    assert (VERDICTS[v], gf.want) == ("drop_dhcp_spoof", 0)
    short = len(discover) - 1
    v = lib.guard_check_frame(port, rec, ffi.new("uint8_t[]", discover[:short]), short, 1500, gf)
    assert (VERDICTS[v], gf.want) == ("drop_hidden", len(discover))
    # not a DHCP message: nothing wanted, whatever its length
    ping = bytes(eth() / IP(src=IP4, dst=LAN4) / ICMP() / bytes(400))
    rec.l2 = list(ping[:14])
    rec.frame_len = len(ping)
    v = lib.guard_check_frame(port, rec, ffi.new("uint8_t[]", ping[:HDR_COPY]), HDR_COPY, 1500, gf)
    assert (VERDICTS[v], gf.want) == ("pass_unicast", 0)

    # up to GUARD_HDR_COPY_MAX (a standard Ethernet frame), not past it
    def padded(total):      # a DISCOVER of @total bytes: site-specific options (224, 225) fill it
        fill = total - len(dhcp4("discover"))
        return dhcp4("discover", options=[(224, b"p" * 255)] * (fill // 257)
                     + [(225, b"p" * (fill % 257 - 2))])
    judge([(padded(HDR_COPY_MAX), "pass_group"), (padded(HDR_COPY_MAX + 10), "drop_hidden")], mtu=9000)
    assert len(padded(HDR_COPY_MAX)) == HDR_COPY_MAX


def test_dhcp_client_message_malformed_fragmented_or_segmented():
    good = bytes(dhcp4("discover"))
    udp = 14 + 20
    long_udp = bytearray(good)
    long_udp[udp + 4:udp + 6] = (len(good) - udp + 1).to_bytes(2, "big")
    short_bootp = bytes(eth(dst=BCAST) / IP(src=IP4, dst="255.255.255.255") / UDP(sport=68, dport=67)
                        / Raw(bytes(bytes(BOOTP(op=1, chaddr=CHADDR))[:200])))
    judge([
        (Raw(bytes(long_udp)), "drop_malformed"),                        # UDP length past the packet
        (short_bootp, "drop_malformed"),                                 # BOOTP header cut short
        (dhcp4("discover", op=3), "drop_malformed"),
        (dhcp4("discover", options=[("message-type", "request")]), "drop_malformed"),   # type twice
        (dhcp4("release", options=[("requested_addr", IP4), ("requested_addr", OTHER4)]),
         "drop_malformed"),
        (dhcp4("discover", options=[b"\x3d\x09\x01"], end=False), "drop_malformed"),   # past the message
        (dhcp4("discover", options=[b"\x3d\x09\x01"]), "drop_malformed"),   # past the next one
        (dhcp4("discover", options=[b"\x35\x02\x01\x01"]), "drop_malformed"),   # a type of 2 bytes
        (dhcp4("discover", options=[("client_id", b"\xff\x00\x00")]), "drop_malformed"),
        (dhcp6(DHCP6_Solicit(trid=1) / Raw(b"\x00\x01\x00\x20\x00\x03")), "drop_malformed"),
        (dhcp6(Raw(b"\x01\x00\x00")), "drop_malformed"),                  # shorter than its header
        # a client message in a first fragment: the rest would be read by no check
        (eth(dst=BCAST) / IP(src=IP4, dst="255.255.255.255", flags="MF", proto=17)
         / Raw(good[udp:udp + 200]), "drop_fragment"),
        (eth(dst="33:33:00:01:00:02") / IPv6(src=LL, dst="ff02::1:2") / IPv6ExtHdrFragment(m=1, nh=17)
         / UDP(sport=546, dport=547) / DHCP6_Solicit(), "drop_fragment"),
        (good, "pass_group"),
    ])
    # each segment of a GSO frame would be a message of its own
    # (a UDP GSO request the vnet rules alone would let pass: the DHCP guard decides first)
    gso = Vnet(flags=NEEDS_CSUM, gso_type=GSO_UDP_L4, hdr_len=udp + 8, gso_size=100,
               csum_start=udp, csum_offset=6)
    assert check(POLICY, good, vnet=gso) == "drop_gso"


def test_dhcp_option_overload_is_followed():
    def overloaded(area, opts, what=1):
        raw = bytes(opts) + b"\xff"
        field = {"file": raw.ljust(128, b"\0"), "sname": raw.ljust(64, b"\0")}[area]
        return dhcp4("discover" if what else None, options=[b"\x34\x01" + bytes([1 if area == "file" else 2])],
                     **{area: field})
    judge([
        (overloaded("file", b"\x0c\x03abc"), "pass_group"),                      # a hostname there
        (overloaded("file", b"\x35\x01\x02", what=0), "drop_dhcp_server"),       # an OFFER there
        (overloaded("sname", b"\x3d\x07\x01" + OTHER_CHADDR), "drop_dhcp_spoof"),
        (overloaded("sname", b"\x35\x01\x01"), "drop_malformed"),                # its type twice
        (overloaded("file", b"\x0c\x7f"), "drop_malformed"),                     # past the field
    ])


# -- link-layer control frames ------------------------------------------------------

CDP = "01:00:0c:cc:cc:cc"
PVST = "01:00:0c:cc:cc:cd"


def test_link_layer_control_frames_each_under_its_reason():
    cdp = Dot3(src=MAC, dst=CDP) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0x0C, code=0x2000) / bytes(40)
    dtp = Dot3(src=MAC, dst=CDP) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0x0C, code=0x2004) / bytes(40)
    pvst = Dot3(src=MAC, dst=PVST) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0x0C, code=0x010B) / STP()
    pause = Ether(src=MAC, dst=LAN_MAC, type=0x8808) / Raw(b"\x00\x01\xff\xff" + bytes(42))
    pause_bcast = Ether(src=MAC, dst=BCAST, type=0x8808) / Raw(b"\x00\x01\xff\xff" + bytes(42))
    lacp = Ether(src=MAC, dst=LAN_MAC, type=0x8809) / Raw(b"\x01\x01" + bytes(108))
    oam = Ether(src=MAC, dst=BCAST, type=0x8809) / Raw(b"\x03" + bytes(45))
    eapol = Ether(src=MAC, dst=LAN_MAC, type=0x888E) / Raw(b"\x02\x01\x00\x00" + bytes(42))
    eapol_bcast = Ether(src=MAC, dst=BCAST, type=0x888E) / Raw(b"\x02\x01\x00\x00" + bytes(42))
    llc = Dot3(src=MAC, dst=LAN_MAC) / LLC(dsap=0xF0, ssap=0xF0, ctrl=3) / bytes(43)      # NetBIOS
    isis = Dot3(src=MAC, dst="09:00:2b:00:00:05") / LLC(dsap=0xFE, ssap=0xFE, ctrl=3) / bytes(43)
    top = Ether(src=MAC, dst=LAN_MAC, type=0x05FF) / bytes(46)
    hostile = [
        (cdp, "drop_cisco_group"), (dtp, "drop_cisco_group"), (pvst, "drop_cisco_group"),
        (pause, "drop_mac_control"), (pause_bcast, "drop_mac_control"),
        (lacp, "drop_mac_control"), (oam, "drop_mac_control"),
        (eapol, "drop_eapol"), (eapol_bcast, "drop_eapol"),
        # to the 802.1D group (pause, slow protocols, the PAE address) the older reason holds
        (Ether(src=MAC, dst="01:80:c2:00:00:01", type=0x8808) / bytes(46), "drop_bridge_group"),
        (Ether(src=MAC, dst="01:80:c2:00:00:02", type=0x8809) / bytes(46), "drop_bridge_group"),
        (Ether(src=MAC, dst="01:80:c2:00:00:03", type=0x888E) / bytes(46), "drop_bridge_group"),
    ]
    llc_frames = [(llc, "pass_unicast"), (isis, "pass_group"), (top, "pass_unicast"),
                  (Dot3(src=MAC, dst=BCAST) / LLC() / bytes(43), "pass_group")]
    legit = [
        (Ether(src=MAC, dst=LAN_MAC, type=0x0600) / bytes(46), "pass_unicast"),   # the first EtherType
        (Ether(src=MAC, dst="01:00:0c:cc:cc:ce", type=0x88B5) / bytes(46), "pass_group"),
        (Ether(src=MAC, dst="01:00:0c:cc:cc:cb", type=0x88B5) / bytes(46), "pass_group"),
        (Ether(src=MAC, dst=LAN_MAC, type=0x880B) / bytes(46), "pass_unicast"),
        (eth() / IP(src=IP4, dst=LAN4) / ICMP(), "pass_unicast"),
    ]
    judge(hostile + [(f, "drop_llc") for f, _ in llc_frames] + legit)
    # --allow-llc lets 802.3 length frames pass, nothing else; no flag changes the rest
    judge(hostile + llc_frames + legit, LLC_OK)
    judge(hostile + llc_frames + legit, EVERY_FLAG)
    judge(hostile + [(f, "drop_llc") for f, _ in llc_frames], ANY)
    judge(hostile + [(f, "drop_llc") for f, _ in llc_frames], TRUSTED)
    # the source MAC, a tag and the MTU come first
    judge([(Dot3(src=OTHER_MAC, dst=CDP) / LLC() / bytes(43), "drop_spoof"),
           (Ether(src=MAC, dst=LAN_MAC) / Dot1Q(vlan=5, type=0x8808) / bytes(46), "drop_vlan")], LLC_OK)


def test_ipv4_malformed():
    good = eth() / IP(src=IP4, dst=LAN4, options=[b"\x94\x04\x00\x00"]) / UDP()
    raw = bytearray(bytes(eth() / IP(src=IP4, dst=LAN4) / UDP() / b"payload"))
    v5 = bytearray(raw)
    v5[14] = 0x55
    ihl4 = bytearray(raw)
    ihl4[14] = 0x44
    long_tot = bytearray(raw)
    long_tot[16:18] = (len(raw)).to_bytes(2, "big")
    short_tot = bytearray(raw)
    short_tot[16:18] = (19).to_bytes(2, "big")
    judge([(good, "pass_unicast"), (Raw(bytes(v5)), "drop_malformed"),
           (Raw(bytes(ihl4)), "drop_malformed"), (Raw(bytes(long_tot)), "drop_malformed"),
           (Raw(bytes(short_tot)), "drop_malformed"),
           (Raw(bytes(raw[:30])), "drop_malformed"),
           (eth() / IP(src=IP4, dst=LAN4, proto=17) / Raw(b"\x00\x35\x00"), "drop_malformed")])


def test_ipv4_fragments():
    # A TCP header (20 bytes) split after 8: the first fragment is a tiny one.
    tcp = bytes(TCP(sport=1234, dport=22, flags="S"))
    first = eth() / IP(src=IP4, dst=LAN4, proto=6, flags="MF", frag=0) / Raw(tcp + bytes(4))
    tiny = eth() / IP(src=IP4, dst=LAN4, proto=6, flags="MF", frag=0) / Raw(tcp[:8])
    later = eth() / IP(src=IP4, dst=LAN4, proto=6, frag=3) / Raw(b"\x86" + bytes(30))
    judge([(first, "pass_unicast"), (later, "pass_unicast"),
           (tiny, "drop_fragment"),
           (eth() / IP(src=OTHER4, dst=LAN4, proto=6, frag=3) / Raw(bytes(31)), "drop_ip_spoof")])


def test_icmp_redirect():
    redirect = eth() / IP(src=IP4, dst=LAN4) / ICMP(type=5, code=1, gw=IP4) / IP(src=LAN4, dst="8.8.8.8") / UDP()
    judge([(eth() / IP(src=IP4, dst=LAN4) / ICMP(type=8), "pass_unicast"),
           (redirect, "drop_redirect")])
    judge([(redirect, "pass_unicast")], TRUSTED)


def test_arp():
    judge([
        (eth(dst=BCAST) / ARP(op=1, hwsrc=MAC, psrc=IP4, pdst=LAN4), "pass_group"),
        (eth(dst=BCAST) / ARP(op=1, hwsrc=MAC, psrc="0.0.0.0", pdst=IP4), "pass_group"),   # probe
        (eth(dst=BCAST) / ARP(op=2, hwsrc=MAC, psrc=IP4, pdst=IP4), "pass_group"),          # gratuitous
        (eth() / ARP(op=2, hwsrc=MAC, psrc=IP4, hwdst=LAN_MAC, pdst=LAN4), "pass_unicast"),
        (eth() / ARP(op=2, hwsrc=MAC, psrc=OTHER4, hwdst=LAN_MAC, pdst=LAN4), "drop_arp_spoof"),
        (eth(dst=BCAST) / ARP(op=2, hwsrc=MAC, psrc=OTHER4, pdst=OTHER4), "drop_arp_spoof"),
        (eth(dst=BCAST) / ARP(op=1, hwsrc=OTHER_MAC, psrc=IP4, pdst=LAN4), "drop_arp_spoof"),
        (eth(dst=BCAST) / ARP(op=1, hwsrc=MAC, psrc=IP4, pdst=LAN4, plen=16), "drop_malformed"),
        (eth(dst=BCAST) / ARP(op=3, hwsrc=MAC, psrc=IP4, pdst=LAN4), "drop_malformed"),
        (Raw(bytes(eth(dst=BCAST) / ARP(op=1, hwsrc=MAC, psrc=IP4, pdst=LAN4))[:30]),
         "drop_malformed"),
    ])


def test_ipv6_source_in_set():
    judge([
        (eth() / IPv6(src=IP6, dst=LAN6) / ICMPv6EchoRequest(), "pass_unicast"),
        (eth() / IPv6(src=LL, dst="fe80::1") / ICMPv6EchoRequest(), "pass_unicast"),
        (eth() / IPv6(src="2001:db8:5:7::99", dst=LAN6) / TCP(), "pass_unicast"),
        (eth() / IPv6(src=OTHER6, dst=LAN6) / ICMPv6EchoRequest(), "drop_ip_spoof"),
        (eth() / IPv6(src="fe80::ff:fe00:b", dst="fe80::1") / UDP(), "drop_ip_spoof"),
        (eth() / IPv6(src="::", dst=LAN6) / ICMPv6EchoRequest(), "drop_ip_spoof"),
        (eth() / IPv6(src="::", dst=LAN6) / UDP(sport=546, dport=547), "drop_ip_spoof"),
    ])


def test_ipv6_malformed():
    raw = bytearray(bytes(eth() / IPv6(src=IP6, dst=LAN6) / UDP() / b"x"))
    v4 = bytearray(raw)
    v4[14] = 0x40
    long_pl = bytearray(raw)
    long_pl[18:20] = (len(raw)).to_bytes(2, "big")
    judge([(eth() / IPv6(src=IP6, dst=LAN6) / UDP() / b"x", "pass_unicast"),
           (Raw(bytes(v4)), "drop_malformed"), (Raw(bytes(long_pl)), "drop_malformed"),
           (Raw(bytes(raw[:50])), "drop_malformed")])


def test_dad_ns_from_unspecified():
    def dad(target, *opts):
        pkt = (eth(dst=sn_mac(target)) / IPv6(src="::", dst=solicited_node(target), hlim=255)
               / ICMPv6ND_NS(tgt=target))
        for o in opts:
            pkt = pkt / o
        return pkt
    nonce = Raw(b"\x0e\x01" + bytes(6))
    judge([
        (dad(IP6, nonce), "pass_group"),
        (dad(LL), "pass_group"),
        (dad(OTHER6), "drop_nd_spoof"),
        (dad(IP6, ICMPv6NDOptSrcLLAddr(lladdr=MAC)), "drop_malformed"),
    ])


def test_mld_report_from_unspecified():
    hbh = IPv6ExtHdrHopByHop(options=[RouterAlert()])
    v2 = eth(dst="33:33:00:00:00:16") / IPv6(src="::", dst="ff02::16", hlim=1) / hbh / ICMPv6MLReport2()
    v1 = eth(dst="33:33:00:00:00:fb") / IPv6(src="::", dst="ff02::fb", hlim=1) / hbh / ICMPv6MLReport(mladdr="ff02::fb")
    done = eth(dst="33:33:00:00:00:02") / IPv6(src="::", dst="ff02::2", hlim=1) / hbh / ICMPv6MLDone(mladdr="ff02::fb")
    judge([(v2, "pass_group"), (v1, "pass_group"), (done, "drop_ip_spoof")])


def test_neighbour_advertisement_and_solicitation():
    def na(target, lladdr=MAC, src=LL):
        return (eth(dst="33:33:00:00:00:01") / IPv6(src=src, dst="ff02::1", hlim=255)
                / ICMPv6ND_NA(tgt=target, R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=lladdr))

    def ns(lladdr):
        return (eth(dst=sn_mac(LAN6)) / IPv6(src=IP6, dst=solicited_node(LAN6), hlim=255)
                / ICMPv6ND_NS(tgt=LAN6) / ICMPv6NDOptSrcLLAddr(lladdr=lladdr))
    judge([
        (na(IP6), "pass_group"),
        (na(LL), "pass_group"),
        (eth() / IPv6(src=IP6, dst=LAN6, hlim=255) / ICMPv6ND_NA(tgt=IP6, S=1), "pass_unicast"),
        (ns(MAC), "pass_group"),
        (eth(dst="33:33:00:00:00:02") / IPv6(src=LL, dst="ff02::2", hlim=255)
         / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=MAC), "pass_group"),
        (na(OTHER6), "drop_nd_spoof"),
        (na(IP6, lladdr=OTHER_MAC), "drop_nd_spoof"),
        (ns(OTHER_MAC), "drop_nd_spoof"),
        (eth(dst="33:33:00:00:00:02") / IPv6(src=LL, dst="ff02::2", hlim=255)
         / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=OTHER_MAC), "drop_nd_spoof"),
        (na(IP6) / Raw(b"\x01\x00" + bytes(6)), "drop_malformed"),      # option length 0
        (na(IP6) / Raw(b"\x0e\x02" + bytes(6)), "drop_malformed"),      # runs past the message
        (Raw(bytes(na(IP6))[:14 + 40 + 20]), "drop_malformed"),         # NA cut short
    ])


def test_nd_options_past_the_copy_are_hidden():
    def na(npad, last):
        pad = Raw((b"\x0e\x01" + bytes(6)) * npad)     # unknown options, 8 bytes each
        return (eth(dst="33:33:00:00:00:01") / IPv6(src=LL, dst="ff02::1", hlim=255)
                / ICMPv6ND_NA(tgt=IP6, O=1) / pad / ICMPv6NDOptDstLLAddr(lladdr=last))
    # 14 + 40 + 24 + 3 * 8 + 8 = 110 bytes: every option in the copy
    assert len(na(3, MAC)) <= HDR_COPY < len(na(6, MAC))
    judge([(na(3, MAC), "pass_group"), (na(3, OTHER_MAC), "drop_nd_spoof"),
           (na(6, OTHER_MAC), "drop_hidden"), (na(6, MAC), "drop_hidden")])


def test_ra_and_redirect_guard():
    ra = (eth(dst="33:33:00:00:00:01") / IPv6(src=LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA()
          / ICMPv6NDOptSrcLLAddr(lladdr=MAC) / ICMPv6NDOptPrefixInfo(prefix="2001:db8:bad::", prefixlen=64))
    redirect = (eth() / IPv6(src=LL, dst="fe80::1", hlim=255)
                / ICMPv6ND_Redirect(tgt=LL, dst="2001:db8::1"))
    unreach = eth() / IPv6(src=IP6, dst=LAN6) / ICMPv6DestUnreach() / IPv6(src=LAN6, dst=IP6) / UDP()
    judge([(unreach, "pass_unicast"), (ra, "drop_ra"), (redirect, "drop_redirect")])
    judge([(ra, "pass_group"), (redirect, "pass_unicast")], TRUSTED)


def test_allow_ip_any_passes_forged_sources_but_not_ra():
    na = (eth(dst="33:33:00:00:00:01") / IPv6(src=OTHER6, dst="ff02::1", hlim=255)
          / ICMPv6ND_NA(tgt=OTHER6, O=1) / ICMPv6NDOptDstLLAddr(lladdr=MAC))
    ra = eth(dst="33:33:00:00:00:01") / IPv6(src="fe80::99", dst="ff02::1", hlim=255) / ICMPv6ND_RA()
    offer = eth(dst=BCAST) / IP(src="172.16.0.1", dst="255.255.255.255") / UDP(sport=67, dport=68) / BOOTP(op=2)
    forged = [
        (eth() / IP(src="8.8.8.8", dst=LAN4) / UDP(), "pass_unicast"),
        (eth() / IPv6(src="2001:db8::99", dst=LAN6) / TCP(), "pass_unicast"),
        (eth(dst=BCAST) / ARP(op=2, hwsrc=MAC, psrc=OTHER4, pdst=OTHER4), "pass_group"),
        (na, "pass_group"),
    ]
    judge([(f, want) for (f, _), want in
           zip(forged, ["drop_ip_spoof", "drop_ip_spoof", "drop_arp_spoof", "drop_ip_spoof"])])
    judge(forged, ANY)
    judge([(ra, "drop_ra"), (offer, "drop_dhcp_server"),
           (eth(dst=BCAST) / ARP(op=1, hwsrc=OTHER_MAC, psrc=OTHER4, pdst=LAN4), "drop_arp_spoof")], ANY)


def test_extension_headers_walked_up_to_four():
    def chain(n, upper):
        pkt = eth() / IPv6(src=IP6, dst=LAN6)
        hdrs = [IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrRouting(addresses=[]),
                IPv6ExtHdrDestOpt(), IPv6ExtHdrDestOpt()]
        for h in hdrs[:n]:
            pkt = pkt / h
        return pkt / upper
    ra = ICMPv6ND_RA()
    judge([
        (chain(4, ICMPv6EchoRequest()), "pass_unicast"),
        (chain(3, ra), "drop_ra"),
        (chain(5, ICMPv6EchoRequest()), "drop_hidden"),
        (chain(5, ra), "drop_hidden"),
        (eth() / IPv6(src=IP6, dst=LAN6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop()
         / ICMPv6EchoRequest(), "drop_malformed"),
        # one destination options header of 80 bytes pushes the RA past the copy
        (eth() / IPv6(src=IP6, dst=LAN6) / IPv6ExtHdrDestOpt(options=[PadN(optdata=bytes(76))])
         / ra, "drop_hidden"),
    ])


def test_ipv6_fragments():
    frag = IPv6ExtHdrFragment
    judge([
        (eth() / IPv6(src=IP6, dst=LAN6) / frag(offset=0, m=1, nh=58) / ICMPv6EchoRequest() / bytes(16),
         "pass_unicast"),
        (eth() / IPv6(src=IP6, dst=LAN6) / frag(offset=10, m=0, nh=58) / Raw(b"\x86" + bytes(23)),
         "pass_unicast"),
        (eth() / IPv6(src="::", dst=LAN6) / frag(offset=10, m=0, nh=58) / Raw(bytes(24)), "drop_ip_spoof"),
        (eth() / IPv6(src=OTHER6, dst=LAN6) / frag(offset=10, nh=58) / Raw(bytes(24)), "drop_ip_spoof"),
        (eth() / IPv6(src=IP6, dst=LAN6) / frag(offset=0, m=1, nh=6) / Raw(bytes(8)), "drop_fragment"),
        (eth() / IPv6(src=IP6, dst=LAN6) / frag(offset=0, m=1, nh=58) / Raw(b"\x86"), "drop_fragment"),
        (eth() / IPv6(src=IP6, dst=LAN6) / frag(offset=0, m=1, nh=58) / ICMPv6ND_NA(tgt=IP6),
         "drop_fragment"),
        (eth() / IPv6(src=IP6, dst=LAN6) / frag(offset=0, m=1, nh=58) / ICMPv6ND_RA(), "drop_ra"),
    ])


def test_bytes_past_the_copy_never_matter():
    base = bytes(eth() / IPv6(src=IP6, dst=LAN6) / UDP(sport=1, dport=2) / bytes(300))
    for tail in (bytes(200), b"\xff" * 200, bytes(range(200))):
        frame = base[:HDR_COPY] + tail + base[HDR_COPY + 200:]
        assert check(POLICY, frame) == "pass_unicast"


def test_link_local_is_eui64():
    assert str(link_local("02:00:5e:10:00:01")) == "fe80::5eff:fe10:1"
    assert str(link_local("52:54:00:12:34:56")) == "fe80::5054:ff:fe12:3456"
    assert str(link_local(bytes.fromhex("00163e000001"))) == "fe80::216:3eff:fe00:1"
    assert ipaddress.ip_network(f"{LL}/128") in POLICY.ipv6


def test_policy_is_validated_naming_the_value():
    cases = [
        (lambda: GuardPolicy("01:00:5e:00:00:01"), "01:00:5e:00:00:01"),
        (lambda: GuardPolicy("nonsense"), "nonsense"),
        (lambda: GuardPolicy(MAC, ipv4=["10.0.0.2/24"]), "10.0.0.2/24"),
        (lambda: GuardPolicy(MAC, ipv4=["fd00::1"]), "fd00::1"),
        (lambda: GuardPolicy(MAC, ipv6=["10.9.8.7"]), "10.9.8.7"),
        (lambda: GuardPolicy(MAC, ipv4=["224.0.0.1"]), "224.0.0.1"),
        (lambda: GuardPolicy(MAC, ipv4=["10.0.0.300"]), "10.0.0.300"),
        (lambda: GuardPolicy(MAC, ipv4=[f"10.1.{i}.1" for i in range(ADDR_MAX + 1)]),
         str(ADDR_MAX + 1)),
        (lambda: GuardPolicy(MAC, l3_any="yes"), "yes"),
        (lambda: GuardPolicy.for_partition(MAC, ["10.0.0.2"]), "10.0.0.2"),
        (lambda: GuardPolicy.for_partition(MAC, allow_ips=["10.0.0.0/33"]), "10.0.0.0/33"),
        (lambda: GuardPolicy.for_partition(MAC, allow_ips=["10.0.0.1/24"]), "10.0.0.1/24"),
    ]
    for make, named in cases:
        with pytest.raises(ConfigError) as e:
            make()
        assert named in str(e.value), str(e.value)
    p = GuardPolicy(MAC, ipv4=["10.0.0.2", "10.0.0.2/32", ipaddress.ip_interface("10.0.0.9/24")])
    assert p.ipv4 == (ipaddress.ip_network("10.0.0.2/32"), ipaddress.ip_network("10.0.0.9/32"))
    with pytest.raises(ConfigError, match="5 bytes"):
        check(POLICY, bytes(5))


# -- group scope: which ports need a flood (guard_group_scope, guard_port_wants) --

OWNER = GuardPolicy.for_partition(MAC, [f"{IP4}/24", f"{IP6}/64"])  # and the EUI-64 link-local
NOBODY_ELSE = GuardPolicy.for_partition(OTHER_MAC, ["10.0.0.9/24", "fd00::9/64"])


def _sn(addr: str) -> str:
    """The solicited-node multicast MAC of an IPv6 address."""
    b = ipaddress.IPv6Address(addr).packed
    return "33:33:ff:" + ":".join(f"{x:02x}" for x in b[13:])


@pytest.mark.parametrize("frame, kind, owner_wants, other_wants", [
    # ND: only the port whose address is in the solicited-node group
    (Ether(src=LAN_MAC, dst=_sn(IP6)) / IPv6(src=LAN6, dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt=IP6),
     "solicited", True, False),
    (Ether(src=LAN_MAC, dst=_sn(LL)) / IPv6(src="::", dst="ff02::1:ff00:a") / ICMPv6ND_NS(tgt=LL),
     "solicited", True, False),
    (Ether(src=LAN_MAC, dst=_sn("fd00::77")) / IPv6(src=LAN6, dst="ff02::1:ff00:77") / ICMPv6ND_NS(tgt="fd00::77"),
     "solicited", False, False),
    # ARP: only the owner of the target; gratuitous ARP to everyone
    (Ether(src=LAN_MAC, dst=BCAST) / ARP(op=1, psrc=LAN4, pdst=IP4), "arp", True, False),
    (Ether(src=LAN_MAC, dst=BCAST) / ARP(op=1, psrc=LAN4, pdst="10.0.0.77"), "arp", False, False),
    (Ether(src=LAN_MAC, dst=BCAST) / ARP(op=1, psrc=LAN4, pdst=LAN4), "all", True, True),
    (Ether(src=LAN_MAC, dst=BCAST) / ARP(op=2, psrc=LAN4, pdst=IP4), "all", True, True),
    # what only routers act on
    (Ether(src=MAC, dst="33:33:00:00:00:02") / IPv6(src=LL, dst="ff02::2") / ICMPv6ND_RS(), "routers", False, False),
    (Ether(src=MAC, dst="33:33:00:00:00:16") / IPv6(src=LL, dst="ff02::16", hlim=1)
     / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLReport2(), "routers", False, False),
    (Ether(src=MAC, dst="33:33:00:00:00:02") / IPv6(src=LL, dst="ff02::2", hlim=1)
     / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLDone(), "routers", False, False),
    (Ether(src=MAC, dst="01:00:5e:00:00:16") / IP(src=IP4, dst="224.0.0.22", proto=2) / Raw(bytes(8)),
     "routers", False, False),
    # everything else floods as before
    (Ether(src=MAC, dst=BCAST) / IP(src=IP4, dst="10.0.0.255") / UDP(dport=137), "all", True, True),
    (Ether(src=MAC, dst="33:33:00:00:00:fb") / IPv6(src=LL, dst="ff02::fb") / UDP(dport=5353), "all", True, True),
    (Ether(src=MAC, dst="33:33:00:00:00:01") / IPv6(src=LL, dst="ff02::1") / ICMPv6ND_RA(), "all", True, True),
])
def test_group_scope(frame, kind, owner_wants, other_wants):
    from vnetshare.dataplane.guard import scope, wants

    assert scope(bytes(frame))[0] == kind
    assert wants(OWNER, bytes(frame)) is owner_wants
    assert wants(NOBODY_ELSE, bytes(frame)) is other_wants
    assert wants(TRUSTED, bytes(frame)) is (owner_wants or kind in ("routers", "all"))
    assert wants(ANY, bytes(frame)) is (kind != "routers")  # --allow-ip any may own any address


def test_group_scope_survives_any_bytes():
    """Garbage after the Ethernet header, or a frame cut anywhere: the scope
    is what the bytes that are there say, and no more. Garbage narrows
    nothing (only a solicited-node MAC does, by itself); a cut frame is
    flooded to everyone ("all") or scoped as the whole frame, never as
    something its missing bytes might have said."""
    from vnetshare.dataplane.guard import scope

    by_mac = {BCAST: ("all", bytes(4)), "33:33:00:00:00:16": ("all", bytes(4)),
              "33:33:ff:00:00:02": ("solicited", b"\x00\x00\x02\x00")}
    for head, want in by_mac.items():
        for etype in (0x0800, 0x0806, 0x86DD):
            got = {n: scope(bytes(Ether(src=MAC, dst=head, type=etype)) + bytes([0x60 | (n & 0xf)] * n))
                   for n in range(0, 90)}
            assert {n: g for n, g in got.items() if g != want} == {}, (head, hex(etype))
    whole = [Ether(src=LAN_MAC, dst=BCAST) / ARP(op=1, psrc=LAN4, pdst=IP4),
             Ether(src=MAC, dst="33:33:00:00:00:16") / IPv6(src=LL, dst="ff02::16", hlim=1)
             / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLReport2(),
             Ether(src=MAC, dst="01:00:5e:00:00:16") / IP(src=IP4, dst="224.0.0.22", proto=2) / Raw(bytes(8))]
    for frame in map(bytes, whole):
        full = scope(frame)
        assert full[0] in ("arp", "routers"), full  # the positive control: whole, it is narrowed
        cuts = {cut: scope(frame[:cut]) for cut in range(14, len(frame))}
        assert {c: g for c, g in cuts.items() if g[0] != "all" and g != full} == {}, full
        assert cuts[14][0] == "all"  # no L3 at all: everyone


# -- what the vnet header may ask for: checksum offsets, GSO (issue 20) -----------

TS = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]      # 12 bytes of TCP options


def csum(start, offset):
    return Vnet(NEEDS_CSUM, 0, 0, 0, start, offset)


def gso(kind, size, hdr_len, start, offset, flags=NEEDS_CSUM):
    return Vnet(flags, kind, hdr_len, size, start, offset)


def written(frame, at, value=b"\xa5\x5a"):
    """@frame as it leaves once the checksum asked for is written at @at."""
    frame = bytes(frame)
    return frame[:at] + value + frame[at + 2:]


def test_a_checksum_only_at_the_parsed_l4_headers_checksum_field():
    tcp4 = eth() / IP(src=IP4, dst=LAN4) / TCP(sport=1, dport=2) / (b"x" * 100)
    udp4 = eth() / IP(src=IP4, dst=LAN4) / UDP(sport=1, dport=2) / (b"x" * 100)
    opts4 = eth() / IP(src=IP4, dst=LAN4, options=b"\x01\x01\x01\x00") / UDP(sport=1, dport=2) / b"x"
    tcp6 = eth() / IPv6(src=IP6, dst=LAN6) / TCP(sport=1, dport=2) / (b"x" * 100)
    udp6 = eth() / IPv6(src=IP6, dst=LAN6) / IPv6ExtHdrDestOpt() / UDP(sport=1, dport=2) / b"x"
    good = [(tcp4, 34, 16), (udp4, 34, 6), (opts4, 38, 6), (tcp6, 54, 16), (udp6, 62, 6)]
    for frame, start, offset in good:
        for policy in (POLICY, ANY):
            got = check_frame(policy, bytes(frame), vnet=csum(start, offset))
            assert (got.verdict, got.l4_off) == ("pass_unicast", start), (frame, got)
            # what the kernel writes there moves nothing the guard decided on
            assert check(policy, written(frame, start + offset), vnet=csum(start, offset)) == "pass_unicast"

    arp = eth(dst=BCAST) / ARP(op=1, hwsrc=MAC, psrc=IP4, pdst=LAN4)
    # UDP from port 0x8600: with next header 58 its first byte is type 134, an RA
    ra_bait = eth() / IPv6(src=IP6, dst=LAN6) / UDP(sport=0x8600, dport=2) / (b"x" * 40)
    bad = [
        (arp, 30, 0),            # issue 20: the sender IP's low half
        (arp, 22, 0),            # the sender MAC
        (udp4, 28, 0),           # issue 20: the IPv4 source
        (udp4, 14 + 9 - 1, 0),   # the IPv4 protocol
        (ra_bait, 20, 0),        # the IPv6 next header (UDP -> ICMPv6)
        (ra_bait, 14, 8),        # the IPv6 source
        (tcp4, 34, 6),           # a TCP packet's "UDP checksum"
        (udp4, 34, 16),          # past the UDP header
        (tcp4, 34, 0),           # the TCP ports
        (tcp6, 34, 16),          # not where the L4 header is
        (eth() / IP(src=IP4, dst=LAN4) / ICMP() / b"x", 34, 2),            # ICMP: the kernel sums it
        (eth() / IPv6(src=IP6, dst=LAN6) / ICMPv6EchoRequest(), 54, 2),    # ICMPv6 likewise
        (eth() / IP(src=IP4, dst=LAN4, proto=6, flags="MF") / Raw(bytes(TCP()) + bytes(8)), 34, 16),
        (eth() / IP(src=IP4, dst=LAN4, proto=6, frag=3) / Raw(bytes(28)), 34, 16),
        (eth() / IPv6(src=IP6, dst=LAN6) / IPv6ExtHdrFragment(nh=17, m=1) / UDP() / b"x", 62, 6),
        (Ether(src=MAC, dst=LAN_MAC, type=0x88b5) / Raw(bytes(46)), 14, 0),
    ]
    for frame, start, offset in bad:
        for policy in (POLICY, ANY, TRUSTED):
            assert check(policy, bytes(frame), vnet=csum(start, offset)) == "drop_csum_offset", (frame, start)
    # what those writes would have made: frames the guard refuses as they are
    forged_arp = written(arp, 30, b"\x00\x03")                        # 10.0.0.3: another's address
    assert check(POLICY, forged_arp) == "drop_arp_spoof"
    assert check(POLICY, written(udp4, 28, b"\x00\x03")) == "drop_ip_spoof"
    assert check(POLICY, written(ra_bait, 20, b"\x3a\xff")) == "drop_ra"       # next header 58


def test_gso_only_of_the_packet_it_is_in_segments_the_kernel_makes():
    tcp4 = bytes(eth() / IP(src=IP4, dst=LAN4) / TCP(sport=1, dport=2, options=TS) / bytes(60000))
    tcp6 = bytes(eth() / IPv6(src=IP6, dst=LAN6) / TCP(sport=1, dport=2) / bytes(30000))
    udp4 = bytes(eth() / IP(src=IP4, dst=LAN4) / UDP(sport=1, dport=2) / bytes(5000))
    # what a TAP hands the agent (tests/netns/probes/test_probe_tap.py)
    real = [
        (tcp4, gso(GSO_TCPV4, 1448, 66, 34, 16), 66, 42),
        (tcp4, gso(GSO_TCPV4 | GSO_ECN, 1448, 66, 34, 16), 66, 42),
        (tcp4, gso(GSO_TCPV4, 1448, 200, 34, 16), 66, 42),       # a raw socket's hint passes through
        (tcp6, gso(GSO_TCPV6, 1440, 74, 54, 16), 74, 21),
        (udp4, gso(GSO_UDP_L4, 1000, 42, 34, 6), 42, 5),
    ]
    for frame, vnet, hdr_len, segs in real:
        got = check_frame(POLICY, frame, 1500, vnet)
        assert got.verdict == "pass_unicast", (vnet, got)
        assert (got.hdr_len, got.segs) == (hdr_len, segs), (vnet, got)
        assert got.bytes == len(frame) + (segs - 1) * hdr_len   # what the wire carries
        assert check_frame(POLICY, written(frame, 34 + vnet.csum_offset), 1500, vnet) == got

    bad = [
        gso(GSO_TCPV4, 1, 66, 34, 16),                  # issue 20: 60,000 frames charged as 1
        gso(GSO_TCPV4, TCP_MIN_SND_MSS - 12 - 1, 66, 34, 16),
        gso(GSO_TCPV4, 1500 - 52 + 1, 66, 34, 16),      # a segment over the MTU
        gso(GSO_TCPV4, 65000, 66, 34, 16),              # "not GSO": one frame of 60 KB
        gso(GSO_TCPV6, 1448, 66, 34, 16),               # the wrong IP version
        gso(GSO_UDP_L4, 1448, 66, 34, 16),              # the wrong protocol
        gso(GSO_TCPV4, 1448, 66, 34, 16, flags=0),      # the kernel would find the L4 header itself
        gso(GSO_TCPV4, 1448, 65, 34, 16),               # hdr_len short of the headers
        gso(GSO_TCPV4, 1448, 54, 34, 16),               # ... of the TCP options
        gso(GSO_TCPV4, 0, 66, 34, 16),
        gso(0x03, 1448, 66, 34, 16),                    # UFO
        gso(GSO_ECN, 1448, 66, 34, 16),                 # ECN alone
    ]
    for vnet in bad:
        for policy in (POLICY, ANY, TRUSTED):
            got = check_frame(policy, tcp4, 1500, vnet)
            assert (got.verdict, got.segs) == ("drop_gso", 1), (vnet, got)
    assert check(POLICY, udp4, 1500, gso(GSO_TCPV4, 1000, 42, 34, 6)) == "drop_gso"
    assert check(POLICY, udp4, 1500, gso(GSO_UDP_L4 | GSO_ECN, 1000, 42, 34, 6)) == "drop_gso"
    assert check(POLICY, tcp4, 1500, gso(GSO_TCPV4, 1448, 66, 34, 6)) == "drop_csum_offset"
    arp = bytes(eth() / ARP(op=1, hwsrc=MAC, psrc=IP4, pdst=LAN4))
    assert check(POLICY, arp, 1500, gso(GSO_TCPV4, 1448, 42, 30, 0, flags=0)) == "drop_gso"


def test_the_least_gso_segment_is_the_kernels():
    def tcp(options, pay=4000):
        return bytes(eth() / IP(src=IP4, dst=LAN4) / TCP(options=options) / bytes(pay))

    # TCP: payload + options of a segment >= TCP_MIN_SND_MSS (48)
    sack = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2)), ("NOP", None), ("NOP", None),
            ("SAck", (1, 2, 3, 4, 5, 6))]          # 12 + 28 = 40 bytes of options
    for options, opts in (([], 0), (TS, 12), (sack, 40)):
        hl = 54 + opts
        least = TCP_MIN_SND_MSS - opts
        ok = check_frame(POLICY, tcp(options), 1500, gso(GSO_TCPV4, least, hl, 34, 16))
        assert (ok.verdict, ok.segs) == ("pass_unicast", -(-4000 // least)), (opts, ok)
        assert check(POLICY, tcp(options), 1500, gso(GSO_TCPV4, least - 1, hl, 34, 16)) == "drop_gso"
    # UDP: any size, at most UDP_MAX_SEGMENTS segments
    for n in (1, 7):
        udp = bytes(eth() / IP(src=IP4, dst=LAN4) / UDP() / bytes(n * UDP_MAX_SEGMENTS))
        ok = check_frame(POLICY, udp, 1500, gso(GSO_UDP_L4, n, 42, 34, 6))
        assert (ok.verdict, ok.segs) == ("pass_unicast", UDP_MAX_SEGMENTS)
        more = bytes(eth() / IP(src=IP4, dst=LAN4) / UDP() / bytes(n * UDP_MAX_SEGMENTS + 1))
        assert check(POLICY, more, 1500, gso(GSO_UDP_L4, n, 42, 34, 6)) == "drop_gso"
    # the largest: what fits the port's MTU, whatever the MTU
    for mtu in (1280, 1500, 9000):
        fits = mtu - 20 - 32
        assert check(POLICY, tcp(TS, 20000), mtu, gso(GSO_TCPV4, fits, 66, 34, 16)) == "pass_unicast"
        assert check(POLICY, tcp(TS, 20000), mtu, gso(GSO_TCPV4, fits + 1, 66, 34, 16)) == "drop_gso"
    # a GSO frame whose payload fits one segment is one frame
    one = check_frame(POLICY, tcp([], 1000), 1500, gso(GSO_TCPV4, 1460, 54, 34, 16))
    assert (one.verdict, one.segs, one.bytes, one.hdr_len) == ("pass_unicast", 1, 1054, 54)
