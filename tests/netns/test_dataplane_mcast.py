"""IGMP snooping in the switch (native/mcast.c) with real partitions, as root.

The topology of test_dataplane_switch.py with three partitions a, b, c
(10.9.0.1-3), none a trusted router: c's kernel joins 239.1.2.3 for a
socket (IP_ADD_MEMBERSHIP, so it sends the IGMP report itself), a sends
to the group. What must not arrive is checked in a capture that also
saw what had to: a's frame to 224.0.0.1 (link-local: always flooded).
"""
import subprocess

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from dataplane_helpers import Capture, mac_of, nsexec, wait_for
from test_dataplane_switch import Net
from vnetshare.dataplane.guard import GuardPolicy
from vnetshare.dataplane.switch import PortPolicy

GROUP, OTHER, ALL_HOSTS = "239.1.2.3", "239.9.9.9", "224.0.0.1"

# a member in its namespace: joins, says so, prints each datagram's payload
MEMBER = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 5000))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[2])))
print("joined", flush=True)
for line in sys.stdin:   # "leave": drop the membership (the kernel sends the leave)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP,
                 struct.pack("4s4s", socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[2])))
    print("left", flush=True)
"""

# send one datagram to each group named, from the partition's address
SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for g in sys.argv[3:]:
    s.sendto(sys.argv[2].encode(), (g, 5000))
"""

# an IGMPv2 general query from the LAN host (scapy, in the LAN's namespace)
QUERY = """
from scapy.all import Ether, IP, sendp
from scapy.contrib.igmp import IGMP
sendp(Ether(src="02:00:00:00:00:64", dst="01:00:5e:00:00:01")
      / IP(src="10.9.0.100", dst="224.0.0.1", ttl=1, options=[b"\\x94\\x04\\x00\\x00"])
      / IGMP(type=0x11, mrcode=10, gaddr="0.0.0.0"), iface="lan0", verbose=False)
"""


@pytest.fixture
def net(lab):
    pol = {i: PortPolicy(guard=GuardPolicy(mac=mac_of(i), l3_any=True)) for i in (1, 2, 3)}
    return Net(lab, nparts=3, policies=pol)


def _udp_to(frames, group, tag):
    """Frames of @frames that carry UDP to @group with payload @tag."""
    out = []
    for f in frames:
        p = Ether(f)
        if IP in p and UDP in p and p[IP].dst == group and bytes(p[UDP].payload) == tag.encode():
            out.append(p)
    return out


def _send(a, tag, *groups):
    nsexec(a.ns, "python3", "-c", SEND, "10.9.0.1", tag, *groups)


def _member(lab, part, group=GROUP):
    m = lab.popen(part.ns, "python3", "-c", MEMBER, group, "10.9.0.3", stdin=subprocess.PIPE)
    assert m.stdout.readline().strip() == "joined"
    return m


def _members(net, group=GROUP):
    return {r["port"] for r in net.sw.groups()["members"] if r["group"] == group}


def test_a_group_reaches_its_member_not_the_other_partitions(net, lab):
    a, b, c = net.parts
    m = _member(lab, c)
    assert wait_for(lambda: _members(net) == {3}), net.sw.groups()
    assert net.sw.uplink_stats()["mcast_reports"] >= 1
    cap_b, cap_c, cap_lan = Capture(b.ns, "eth0"), Capture(c.ns, "eth0"), Capture(net.lan, "lan0")
    try:
        _send(a, "g1", GROUP, ALL_HOSTS, OTHER)
        assert wait_for(lambda: _udp_to(cap_b.incoming, ALL_HOSTS, "g1") and _udp_to(cap_c.incoming, GROUP, "g1")
                        and _udp_to(cap_lan.incoming, GROUP, "g1"))
        # an unknown group floods while no querier was heard (the safe default)
        assert wait_for(lambda: _udp_to(cap_b.incoming, OTHER, "g1"))
    finally:
        frames_b = cap_b.close()
        cap_c.close()
        cap_lan.close()
    assert _udp_to(frames_b, ALL_HOSTS, "g1"), "the positive control (224.0.0.1) never reached b"
    assert not _udp_to(frames_b, GROUP, "g1"), "b, not a member, got the group's datagram"
    up = net.sw.uplink_stats()
    assert up["mcast_scoped"] >= 1 and up["mcast_groups"] == 1, up
    # c's kernel speaks IGMPv3 (no v2 querier heard): its leave is TO_IN{}
    m.stdin.write("leave\n")
    m.stdin.flush()
    assert m.stdout.readline().strip() == "left"
    assert wait_for(lambda: not _members(net)), net.sw.groups()


def test_a_querier_makes_unknown_groups_router_only_and_a_leave_ends_a_membership(net, lab):
    """An IGMPv2 query: the partitions' kernels answer in v2 from then on
    (a v2 leave)."""
    a, b, c = net.parts
    nsexec(net.lan, "python3", "-c", QUERY)
    assert wait_for(lambda: [q for q in net.sw.groups()["queriers"] if q["family"] == "ipv4"]), net.sw.groups()
    q = net.sw.groups()["queriers"][0]
    assert q["address"] == "10.9.0.100" and q["port"] is None and q["interval"] == 251.0, q
    assert net.sw.uplink_stats()["mcast_queries"] >= 1
    m = _member(lab, c)
    assert wait_for(lambda: _members(net) == {3}), net.sw.groups()
    cap_b, cap_c = Capture(b.ns, "eth0"), Capture(c.ns, "eth0")
    try:
        _send(a, "q1", OTHER, GROUP, ALL_HOSTS)
        assert wait_for(lambda: _udp_to(cap_b.incoming, ALL_HOSTS, "q1") and _udp_to(cap_c.incoming, GROUP, "q1"))
        m.stdin.write("leave\n")
        m.stdin.flush()
        assert m.stdout.readline().strip() == "left"
        assert wait_for(lambda: not _members(net)), net.sw.groups()
        _send(a, "q2", GROUP, ALL_HOSTS)
        assert wait_for(lambda: _udp_to(cap_c.incoming, ALL_HOSTS, "q2") and _udp_to(cap_b.incoming, ALL_HOSTS, "q2"))
    finally:
        frames_b, frames_c = cap_b.close(), cap_c.close()
    assert not _udp_to(frames_b, OTHER, "q1"), "an unknown group flooded with a querier on the LAN"
    assert not _udp_to(frames_c, GROUP, "q2"), "c got the group after it left"


def test_snooping_off_floods_every_group(lab):
    from test_dataplane_switch import Net as N

    pol = {i: PortPolicy(guard=GuardPolicy(mac=mac_of(i), l3_any=True)) for i in (1, 2, 3)}
    net = N(lab, nparts=3, policies=pol, mcast_snooping=False)
    a, b, c = net.parts
    _member(lab, c)
    assert net.sw.groups() is None
    cap_b = Capture(b.ns, "eth0")
    try:
        _send(a, "o1", GROUP)
        assert wait_for(lambda: _udp_to(cap_b.incoming, GROUP, "o1"))
    finally:
        cap_b.close()
