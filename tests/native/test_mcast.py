"""The multicast group table (native/mcast.c): IGMP/MLD snooping, called
through cffi with messages scapy builds.

Ports are opaque pointers to the table (the switch's struct sw_port);
here small integers cast to void *. Time is given, in ns.
"""
import random

import pytest
import warnings

with warnings.catch_warnings():  # scapy 2.5 moves them to scapy.layers.igmp*
    warnings.simplefilter("ignore", DeprecationWarning)
    from scapy.contrib.igmp import IGMP
    from scapy.contrib.igmpv3 import IGMPv3gr, IGMPv3mq, IGMPv3mr
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (IPv6, ICMPv6MLDone, ICMPv6MLQuery, ICMPv6MLQuery2, ICMPv6MLReport,
                                ICMPv6MLReport2, ICMPv6MLDMultAddrRec, IPv6ExtHdrHopByHop, RouterAlert)

from vnetshare.dataplane._native import ffi, lib

S = 1_000_000_000
A, B, R = (ffi.cast("void *", n) for n in (0x10, 0x20, 0x30))
IDS = {0x10: 1, 0x20: 2, 0x30: 3}
IP4, IP6 = 0x0800, 0x86DD


@pytest.fixture
def mc():
    m = lib.mcast_create()
    assert m != ffi.NULL
    yield m
    lib.mcast_destroy(m)


def snoop(m, pkt, port=None, vid=0, now=0, router=False):
    raw = bytes(pkt)
    et = IP4 if raw[0] >> 4 == 4 else IP6
    pid = IDS[int(ffi.cast("uintptr_t", port))] if port is not None else 0
    return lib.mcast_snoop(m, vid, port if port is not None else ffi.NULL, pid, int(router or port is None),
                           et, raw, len(raw), now)


def route(m, dst, vid=0, now=0):
    """(route, member port ids) for a UDP datagram to @dst."""
    pkt = IPv6(src="fd00::1", dst=dst) / UDP() if ":" in dst else IP(src="10.0.0.1", dst=dst) / UDP()
    raw = bytes(pkt)
    g = ffi.new("const struct mcast_group **")
    r = lib.mcast_route(m, vid, IP6 if ":" in dst else IP4, raw, len(raw), now, g)
    members = set()
    if r == lib.MCAST_MEMBERS:
        i = g[0].first
        while i:
            e = lib.mcast_member(m, i)
            if e.expires > now:
                members.add(e.port_id)
            i = e.next
    return r, members


def rows(m, now=0):
    out = ffi.new("struct mcast_row[64]")
    n = lib.mcast_dump(m, now, out, 64)
    return [(out[i].vlan, bytes(out[i].addr), out[i].port, out[i].expires_ms) for i in range(n)]


def queriers(m, now=0):
    out = ffi.new("struct mcast_querier_row[8]")
    n = lib.mcast_queriers(m, now, out, 8)
    return [(out[i].vlan, out[i].v6, out[i].port, out[i].expires_ms, out[i].gmi_ms) for i in range(n)]


def v2(kind, group, src="10.0.0.2"):
    return IP(src=src, dst=group, options=[b"\x94\x04\x00\x00"]) / IGMP(type=kind, gaddr=group)


def v3(*records, src="10.0.0.2"):
    recs = [IGMPv3gr(rtype=t, maddr=g, srcaddrs=list(srcs)) for t, g, srcs in records]
    return IP(src=src, dst="224.0.0.22") / IGMPv3mr(type=0x22, records=recs, numgrp=len(recs))


def mld(msg, src="fe80::2", dst="ff02::16"):
    return IPv6(src=src, dst=dst) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / msg


def test_a_v2_report_joins_and_the_leave_ends_it(mc):
    assert route(mc, "239.1.2.3") == (lib.MCAST_FLOOD, set())  # unknown, no querier
    assert snoop(mc, v2(0x16, "239.1.2.3"), A) == lib.MCAST_MSG_REPORT
    assert route(mc, "239.1.2.3") == (lib.MCAST_MEMBERS, {1})
    assert snoop(mc, v2(0x16, "239.1.2.3"), B, now=S) == lib.MCAST_MSG_REPORT
    assert route(mc, "239.1.2.3", now=S) == (lib.MCAST_MEMBERS, {1, 2})
    assert route(mc, "239.1.2.3", vid=5) == (lib.MCAST_FLOOD, set())  # another VLAN's group
    assert route(mc, "239.1.2.4") == (lib.MCAST_FLOOD, set())
    assert lib.mcast_groups(mc) == 1
    snoop(mc, v2(0x17, "239.1.2.3"), A, now=S)
    assert route(mc, "239.1.2.3", now=S) == (lib.MCAST_MEMBERS, {2})
    snoop(mc, v2(0x17, "239.1.2.3"), B, now=S)
    assert route(mc, "239.1.2.3", now=S) == (lib.MCAST_FLOOD, set())
    assert lib.mcast_groups(mc) == 0


def test_link_local_and_non_ip_always_flood(mc):
    snoop(mc, IP(src="10.0.0.9") / IGMP(type=0x11, gaddr="0.0.0.0"))  # a querier
    for g in ("224.0.0.1", "224.0.0.251", "ff02::1", "ff02::fb", "ff01::1"):
        snoop(mc, v2(0x16, "224.0.0.251"), A)
        assert route(mc, g)[0] == lib.MCAST_FLOOD, g
    assert lib.mcast_groups(mc) == 0  # a join of a link-local group is not recorded
    assert route(mc, "239.9.9.9")[0] == lib.MCAST_ROUTERS  # the control: scoped
    arp = bytes(28)
    g = ffi.new("const struct mcast_group **")
    assert lib.mcast_route(mc, 0, 0x0806, arp, len(arp), 0, g) == lib.MCAST_FLOOD


def test_a_querier_makes_unknown_groups_router_only_until_it_is_gone(mc):
    assert snoop(mc, IP(src="10.0.0.9") / IGMP(type=0x11, mrcode=100, gaddr="0.0.0.0")) == lib.MCAST_MSG_QUERY
    assert route(mc, "239.1.1.1") == (lib.MCAST_ROUTERS, set())
    assert route(mc, "ff0e::1") == (lib.MCAST_FLOOD, set())  # no MLD querier
    assert queriers(mc) == [(0, 0, lib.MCAST_PORT_WIRE, 260_000, 260_000)]  # 2 * 125 s + 10 s
    assert route(mc, "239.1.1.1", now=261 * S) == (lib.MCAST_FLOOD, set())


def test_v3_query_sets_the_membership_interval(mc):
    q = IP(src="10.0.0.9") / IGMPv3mq(mrcode=50, gaddr="0.0.0.0", qrv=3, qqic=60)
    snoop(mc, q)
    assert queriers(mc)[0][4] == 3 * 60_000 + 5_000
    snoop(mc, v2(0x16, "239.1.2.3"), A)
    assert rows(mc) == [(0, bytes([239, 1, 2, 3]) + bytes(12), 1, 185_000)]
    assert route(mc, "239.1.2.3", now=184 * S)[1] == {1}
    assert route(mc, "239.1.2.3", now=186 * S) == (lib.MCAST_FLOOD, set())  # expired, querier gone too
    # an exponential QQIC (0x8a: (0x1a) << 3 = 208 s)
    snoop(mc, IP(src="10.0.0.9") / IGMPv3mq(mrcode=0, qrv=2, qqic=0x8A))
    assert queriers(mc)[0][4] == 2 * 208_000


def test_v3_records(mc):
    snoop(mc, v3((4, "239.0.0.1", []), (2, "239.0.0.2", []), (5, "239.0.0.3", ["10.1.1.1"]),
                 (1, "239.0.0.4", ["10.1.1.1"]), (6, "239.0.0.5", ["10.1.1.1"]), (1, "239.0.0.6", [])), A)
    assert {r[1][:4] for r in rows(mc)} == {bytes([239, 0, 0, n]) for n in (1, 2, 3, 4)}
    snoop(mc, v3((3, "239.0.0.1", []), (6, "239.0.0.2", ["10.1.1.1"])), A)  # TO_IN{}: leave; BLOCK: nothing
    assert {r[1][:4] for r in rows(mc)} == {bytes([239, 0, 0, n]) for n in (2, 3, 4)}


def test_mld_v1_v2_reports_done_and_query(mc):
    assert snoop(mc, mld(ICMPv6MLReport(mladdr="ff0e::10"), dst="ff0e::10"), A) == lib.MCAST_MSG_REPORT
    rec = [ICMPv6MLDMultAddrRec(rtype=4, dst="ff05::20"), ICMPv6MLDMultAddrRec(rtype=4, dst="ff02::fb")]
    assert snoop(mc, mld(ICMPv6MLReport2(records=rec, records_number=2)), B) == lib.MCAST_MSG_REPORT
    assert route(mc, "ff0e::10")[1] == {1} and route(mc, "ff05::20")[1] == {2}
    assert lib.mcast_groups(mc) == 2  # ff02::fb is link-local
    snoop(mc, mld(ICMPv6MLDone(mladdr="ff0e::10"), dst="ff02::2"), A)
    assert route(mc, "ff0e::10") == (lib.MCAST_FLOOD, set())
    assert snoop(mc, mld(ICMPv6MLQuery2(mrd=10000, S=0, QRV=2, QQIC=125), dst="ff02::1")) == lib.MCAST_MSG_QUERY
    assert route(mc, "ff0e::10") == (lib.MCAST_ROUTERS, set())
    assert queriers(mc) == [(0, 1, lib.MCAST_PORT_WIRE, 260_000, 260_000)]
    assert snoop(mc, mld(ICMPv6MLQuery(mrd=10000), dst="ff02::1"), vid=7) == lib.MCAST_MSG_QUERY
    assert route(mc, "ff0e::10", vid=7)[0] == lib.MCAST_ROUTERS
    # an MLD message with no hop-by-hop header is still MLD; no ICMPv6 at all is not
    assert snoop(mc, IPv6(src="fe80::3", dst="ff0e::30") / ICMPv6MLReport(mladdr="ff0e::30"), A) \
        == lib.MCAST_MSG_REPORT
    assert snoop(mc, IPv6(src="fe80::3", dst="ff0e::30") / UDP(), A) == lib.MCAST_MSG_NONE


def test_a_query_from_a_partition_counts_only_from_a_router(mc):
    q = IP(src="10.0.0.5") / IGMP(type=0x11, mrcode=100, gaddr="0.0.0.0")
    assert snoop(mc, q, A) == lib.MCAST_MSG_QUERY
    assert queriers(mc) == []
    snoop(mc, q, R, router=True)
    assert queriers(mc) == [(0, 0, 3, 260_000, 260_000)]
    lib.mcast_port_gone(mc, R)
    assert queriers(mc) == []


def test_a_port_gone_leaves_every_group(mc):
    for n in range(1, 6):
        snoop(mc, v2(0x16, f"239.2.0.{n}"), A)
        snoop(mc, v2(0x16, f"239.2.0.{n}"), B)
    lib.mcast_port_gone(mc, A)
    assert {r[2] for r in rows(mc)} == {2} and len(rows(mc)) == 5
    lib.mcast_port_gone(mc, B)
    assert rows(mc) == [] and lib.mcast_groups(mc) == 0


def test_a_full_table_never_scopes_a_group_it_could_not_record(mc):
    snoop(mc, IP(src="10.0.0.9") / IGMP(type=0x11, gaddr="0.0.0.0"))
    n = lib.MCAST_GROUPS_MAX
    for i in range(n):
        snoop(mc, v2(0x16, f"239.3.{i >> 8}.{i & 255}"), A)
    assert lib.mcast_groups(mc) == n and lib.mcast_full(mc) == 0
    assert route(mc, "239.4.0.0")[0] == lib.MCAST_ROUTERS
    snoop(mc, v2(0x16, "239.4.0.0"), B)  # no room
    assert lib.mcast_full(mc) == 1
    assert route(mc, "239.4.0.0")[0] == lib.MCAST_FLOOD  # B must still get it
    assert route(mc, "239.3.0.1")[1] == {1}


def test_truncated_and_random_messages_change_nothing_and_never_read_past(mc):
    good = bytes(v3((4, "239.0.0.1", []), (4, "239.0.0.2", ["10.0.0.1", "10.0.0.2"])))
    for cut in range(len(good)):
        # a copy of exactly @cut bytes: ASan/valgrind would see a read past it
        buf = ffi.new("uint8_t[]", good[:cut]) if cut else ffi.NULL
        lib.mcast_snoop(mc, 0, A, 1, 0, IP4, buf, cut, 0)
    rnd = random.Random(25)
    for _ in range(3000):
        raw = bytearray(rnd.randbytes(rnd.randrange(1, 120)))
        raw[0] = rnd.choice((0x45, 0x46, 0x60))
        if raw[0] != 0x60 and len(raw) > 9:
            raw[9] = 2
        elif len(raw) > 6:
            raw[6] = rnd.choice((0, 58, 60))
        lib.mcast_snoop(mc, rnd.randrange(4096), A, 1, 1, IP6 if raw[0] == 0x60 else IP4, bytes(raw), len(raw), 0)
    lib.mcast_age(mc, 10**15)
    assert lib.mcast_groups(mc) == 0
