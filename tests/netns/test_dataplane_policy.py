"""Port policy in the switch (native/switch.c), as root: storm control, the
flood share, rate limits, VLANs, live changes.

The topology is test_dataplane_switch's Net: partitions a, b, c (10.9.0.1,
.2, .3; MACs 02:00:00:00:00:01 ...) on one switch whose uplink is a veth to
the "lan" namespace (10.9.0.100). Every absence a test checks is paired with
a frame that must be seen in the same capture, and every wait is for a
condition, never a fixed sleep.
"""
import os
import struct
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from dataplane_helpers import Capture, mac_bytes, mac_of, nsexec, ping, task_cpu_ticks, wait_for
from test_dataplane_switch import LAN4, LAN_MAC, Net
from vnetshare import CONSUMER, create_fds, Ring
from vnetshare.core.config import ConfigError
from vnetshare.dataplane.ring import SIZE_MIN
from vnetshare.dataplane.switch import PortPolicy, Rate

BCAST = "ff:ff:ff:ff:ff:ff"


def _udp(src_mac, dst_mac, payload, src_ip="10.9.0.1", dst_ip=LAN4, vid=None) -> bytes:
    eth = Ether(src=src_mac, dst=dst_mac)
    if vid is not None:
        eth = eth / Dot1Q(vlan=vid)
    return bytes(eth / IP(src=src_ip, dst=dst_ip) / UDP(sport=9, dport=9) / payload)


def _marker(what: str) -> bytes:
    return f"{what}-".encode() + os.urandom(4).hex().encode()


def _sender(lab, ns: str, ifname: str = "eth0") -> Capture:
    """A packet socket on @ifname in @ns (its .sock sends raw frames)."""
    tx = Capture(ns, ifname)
    lab.closers.append(tx.close)
    return tx


def _capture(lab, ns: str, ifname: str = "eth0", vlan: bool = False) -> Capture:
    cap = Capture(ns, ifname, vlan=vlan)
    lab.closers.append(cap.close)
    return cap


def _seen(cap: Capture, marker: bytes) -> list[bytes]:
    return [f for f in cap.incoming if marker in f]


# storm control ---------------------------------------------------------------

def test_storm_excess_dropped_and_counted_unicast_still_passes(lab):
    burst, pps = 20, 100
    net = Net(lab, policies={1: PortPolicy(storm_pps=pps, storm_burst=burst)})
    a, b = net.parts
    cap_b = _capture(lab, b.ns)
    tx = _sender(lab, a.ns)
    storm, good = _marker("STORM"), _marker("UNICAST")
    n = 500
    t0 = time.monotonic()
    for i in range(n):
        tx.sock.send(_udp(a.mac, BCAST, storm + b"%d" % i, dst_ip="10.9.0.255"))
    tx.sock.send(_udp(a.mac, b.mac, good, dst_ip="10.9.0.2"))
    assert wait_for(lambda: _seen(cap_b, good), timeout=5), "the unicast after the storm did not pass"
    elapsed = time.monotonic() - t0
    st = net.sw.port_stats(1)
    passed = len(_seen(cap_b, storm))
    # a's own kernel may spend a few tokens on ND/ARP too
    assert passed <= burst + pps * elapsed + 2, (passed, elapsed)
    assert passed >= 1
    assert st["drops"]["storm"] >= n - (burst + pps * elapsed + 2), st
    assert st["drops"]["storm"] + passed <= n + 10, st


# flood share -------------------------------------------------------------------

def test_flood_copies_leave_room_for_a_neighbours_unicast(lab):
    """Port 9's agent is asleep (nobody reads its H2A ring): a's broadcasts
    stop at half its ring, and b's unicast to it still finds room."""
    net = Net(lab)
    a, b = net.parts
    size = SIZE_MIN
    a2h, h2a = create_fds(size), create_fds(size)
    lab.ringfds += [a2h, h2a]
    net.sw.add_port(9, mac_of(9), a2h, h2a, size)
    tx_a = _sender(lab, a.ns)
    flood = _udp(a.mac, BCAST, b"F" * 1000, dst_ip="10.9.0.255")
    for _ in range(2 * size // 1024):     # twice what the ring holds
        tx_a.sock.send(flood)
    assert wait_for(lambda: net.sw.port_stats(9)["drops"]["flood_share"] > 0), net.sw.port_stats(9)
    # the flood is over when b has seen all of it that the switch took
    before = net.sw.port_stats(9)
    assert before["drops"]["h2a_full"] == 0, before
    tx_b = _sender(lab, b.ns)
    uni = _marker("NEIGHBOUR")
    k = 40
    for i in range(k):
        tx_b.sock.send(_udp(b.mac, mac_of(9), uni + b"%d" % i + b"u" * 1000,
                            src_ip="10.9.0.2", dst_ip="10.9.0.9"))
    assert wait_for(lambda: net.sw.port_stats(2)["tx_frames"] >= k), net.sw.port_stats(2)
    after = net.sw.port_stats(9)
    assert after["drops"]["h2a_full"] == 0, after
    # every unicast is in port 9's ring (read it as its agent would)
    r = Ring(h2a, CONSUMER, size)
    lab.rings.append(r)
    got = []
    while (f := r.recv()) is not None:
        got.append(f)
    assert sum(uni in f for f in got) == k, f"{sum(uni in f for f in got)} of {k} unicasts in the ring"
    assert sum(f[:6] == b"\xff" * 6 for f in got) > 0        # positive control: floods are there too


# rate limits -------------------------------------------------------------------

def _tcp_seconds(lab, client_ns, server_ns, server_ip, mbytes):
    from test_dataplane_pump import CLIENT, SERVER

    srv = lab.popen(server_ns, "python3", "-c", SERVER)
    assert srv.stdout.readline().strip() == "listening"
    t0 = time.monotonic()
    cli = nsexec(client_ns, "python3", "-c", CLIENT, server_ip, str(mbytes), timeout=120)
    out, _ = srv.communicate(timeout=60)
    elapsed = time.monotonic() - t0
    assert out.split() == cli.stdout.split(), "bytes received differ from bytes sent"
    return elapsed


def test_tx_rate_limit_holds_frames_wait_nothing_dropped(lab):
    rate = 40_000_000                                          # 40 Mbit/s
    net = Net(lab, policies={1: PortPolicy(tx=Rate(rate, 2 * 65536 * 8))})
    a, _ = net.parts
    mbytes = 8
    tid = net.sw.native_tid
    cpu0 = task_cpu_ticks(tid)
    secs = _tcp_seconds(lab, a.ns, net.lan, LAN4, mbytes)
    cpu = task_cpu_ticks(tid) - cpu0
    goodput = mbytes * 8 * (1 << 20) / secs
    st = net.sw.port_stats(1)
    # frame bytes (what is limited) are a bit more than TCP payload
    assert 0.6 * rate <= goodput <= 1.1 * rate, f"{goodput / 1e6:.1f} Mbit/s against {rate / 1e6} ({st})"
    assert st["tx_throttled"] > 0, st
    assert sum(st["drops"].values()) == 0, st["drops"]
    # a throttled port does not make the switch spin: far less than one CPU
    assert cpu < 0.5 * secs * os.sysconf("SC_CLK_TCK"), f"{cpu} ticks in {secs:.1f} s"


def test_rx_over_budget_dropped_and_counted(lab):
    burst, pps = 10, 50
    net = Net(lab, policies={2: PortPolicy(rx=Rate(pkts_per_sec=pps, pkts_burst=burst))})
    a, b = net.parts
    cap_b = _capture(lab, b.ns)
    tx = _sender(lab, net.lan, "lan0")
    m = _marker("RX")
    n = 300
    t0 = time.monotonic()
    for i in range(n):
        tx.sock.send(_udp(LAN_MAC, b.mac, m + b"%d" % i, src_ip=LAN4, dst_ip="10.9.0.2"))
    assert wait_for(lambda: (lambda st: st["rx_frames"] + st["drops"]["rx_rate"] >= n)(net.sw.port_stats(2)))
    elapsed = time.monotonic() - t0
    st = net.sw.port_stats(2)
    assert st["drops"]["rx_rate"] >= n - (burst + pps * elapsed + 5), st
    assert wait_for(lambda: _seen(cap_b, m))                   # positive control: some passed
    assert len(_seen(cap_b, m)) <= burst + pps * elapsed + 5
    # a's receive is not limited: the same from the LAN all arrives
    m2 = _marker("RX-A")
    for i in range(100):
        tx.sock.send(_udp(LAN_MAC, a.mac, m2 + b"%d" % i, src_ip=LAN4, dst_ip="10.9.0.1"))
    assert wait_for(lambda: net.sw.port_stats(1)["rx_frames"] >= 100)
    assert net.sw.port_stats(1)["drops"]["rx_rate"] == 0


def test_set_policy_lifts_a_limit_live(lab):
    pol = PortPolicy(tx=Rate(pkts_per_sec=20, pkts_burst=5))
    net = Net(lab, policies={1: pol})
    a, _ = net.parts
    cap = _capture(lab, net.lan, "lan0")
    tx = _sender(lab, a.ns)
    m = _marker("LIFT")
    n = 200
    for i in range(n):
        tx.sock.send(_udp(a.mac, LAN_MAC, m + b"%d" % i))
    # throttled: a trickle arrives, the rest waits in a's ring
    assert wait_for(lambda: len(_seen(cap, m)) >= 10, timeout=5)
    assert len(_seen(cap, m)) < n // 2
    assert net.sw.port_stats(1)["tx_throttled"] > 0
    net.sw.set_policy(1, a.mac, PortPolicy())
    assert wait_for(lambda: len(_seen(cap, m)) == n, timeout=3), len(_seen(cap, m))
    st = net.sw.port_stats(1)
    assert sum(st["drops"].values()) == 0, st["drops"]
    # the order held: the ring is a queue
    seq = [int(f[f.index(m) + len(m):].split(b"\0")[0]) for f in _seen(cap, m)]
    assert seq == list(range(n))
    # and a limit set live takes hold at once (buckets start full: 3 pass)
    net.sw.set_policy(1, a.mac, PortPolicy(tx=Rate(pkts_per_sec=1, pkts_burst=3)))
    m2 = _marker("RELIMIT")
    for i in range(20):
        tx.sock.send(_udp(a.mac, LAN_MAC, m2 + b"%d" % i))
    assert wait_for(lambda: len(_seen(cap, m2)) >= 3)
    assert len(_seen(cap, m2)) <= 6


def test_set_policy_refuses_bad_values(lab):
    net = Net(lab)
    a, _ = net.parts
    with pytest.raises(OSError) as e:
        net.sw.set_policy(7, mac_of(7), PortPolicy())
    assert e.value.errno == 2                                   # ENOENT
    with pytest.raises(OSError) as e:
        net.sw.set_policy(1, net.parts[1].mac, PortPolicy())    # b's MAC
    assert e.value.errno == 17                                  # EEXIST
    with pytest.raises(ConfigError, match="vlan 4095"):
        PortPolicy(vlan=4095)
    with pytest.raises(ConfigError, match="bits_per_sec 1000: needs a bits_burst"):
        Rate(bits_per_sec=1000)
    assert ping(a.ns, LAN4, count=1)[1] == 1                    # nothing changed


# VLANs ---------------------------------------------------------------------

def _vlan_net(lab):
    """a and b on VLAN 10, c untagged."""
    return Net(lab, nparts=3, policies={1: PortPolicy(vlan=10), 2: PortPolicy(vlan=10)})


def _vid(frame: bytes):
    """The 802.1Q VLAN id of a frame, or None if it is untagged."""
    if struct.unpack_from("!H", frame, 12)[0] != 0x8100:
        return None
    return struct.unpack_from("!H", frame, 14)[0] & 0xfff


def test_access_port_frames_leave_tagged(lab):
    net = _vlan_net(lab)
    a, b, c = net.parts
    cap = _capture(lab, net.lan, "lan0", vlan=True)
    ma, mc, mb = _marker("FROM-A"), _marker("FROM-C"), _marker("BCAST-A")
    _sender(lab, a.ns).sock.send(_udp(a.mac, LAN_MAC, ma))
    _sender(lab, a.ns).sock.send(_udp(a.mac, BCAST, mb, dst_ip="10.9.0.255"))
    _sender(lab, c.ns).sock.send(_udp(c.mac, LAN_MAC, mc, src_ip="10.9.0.3"))
    for m in (ma, mb, mc):
        assert wait_for(lambda: _seen(cap, m)), m
    for m in (ma, mb):
        f = _seen(cap, m)[0]
        assert _vid(f) == 10, f[:18].hex()
        assert struct.unpack_from("!H", f, 16)[0] == 0x0800          # IPv4 inside the tag
        assert bytes(Ether(f)[UDP].payload) == m                     # and intact
    assert _vid(_seen(cap, mc)[0]) is None
    # partitions of one VLAN reach each other, across VLANs never
    assert ping(a.ns, "10.9.0.2", count=2, interval=0.1)[1] == 2
    assert ping(a.ns, "10.9.0.3", count=1, wait=0.5)[1] == 0


def test_tagged_wire_frames_reach_their_vlan_only(lab):
    net = _vlan_net(lab)
    a, b, c = net.parts
    caps = {p.ns: _capture(lab, p.ns) for p in (a, b, c)}
    ca, cb, cc = (caps[p.ns] for p in (a, b, c))
    lan = _sender(lab, net.lan, "lan0")
    m10b, m10a, m10c, m0, m20 = (_marker(w) for w in ("V10-BCAST", "V10-TO-A", "V10-TO-C",
                                                      "UNTAGGED", "V20"))
    lan.sock.send(_udp(LAN_MAC, BCAST, m10b, LAN4, "10.9.0.255", vid=10))
    lan.sock.send(_udp(LAN_MAC, a.mac, m10a, LAN4, "10.9.0.1", vid=10))
    lan.sock.send(_udp(LAN_MAC, c.mac, m10c, LAN4, "10.9.0.3", vid=10))   # c is not on 10
    lan.sock.send(_udp(LAN_MAC, BCAST, m20, LAN4, "10.9.0.255", vid=20))  # no port on 20
    lan.sock.send(_udp(LAN_MAC, BCAST, m0, LAN4, "10.9.0.255"))
    # positive controls: the frames each capture must see
    for cap, m in ((ca, m10b), (ca, m10a), (cb, m10b), (cc, m0)):
        assert wait_for(lambda: _seen(cap, m), timeout=3), m
    # members get them untagged
    assert _vid(_seen(ca, m10b)[0]) is None and _vid(_seen(ca, m10a)[0]) is None
    assert _seen(ca, m10a)[0][:6] == mac_bytes(a.mac)
    assert wait_for(lambda: net.sw.uplink_stats()["drops"]["rx_vlan"] >= 1)
    assert wait_for(lambda: net.sw.uplink_stats()["drops"]["rx_other_vlan"] >= 1)
    for cap in (ca, cb, cc):
        cap.close()
    assert not _seen(cc, m10b) and not _seen(cc, m10a) and not _seen(cc, m10c)
    assert not _seen(ca, m0) and not _seen(cb, m0)
    assert not _seen(cb, m10a)
    assert not any(_seen(cap, m20) for cap in (ca, cb, cc))


def test_other_vlan_unicast_not_delivered_and_vlan_change_moves_the_port(lab):
    net = _vlan_net(lab)
    a, b, c = net.parts
    cc = _capture(lab, c.ns)
    bad, good = _marker("A-TO-C"), _marker("LAN-TO-C")
    _sender(lab, a.ns).sock.send(_udp(a.mac, c.mac, bad, dst_ip="10.9.0.3"))
    assert wait_for(lambda: net.sw.port_stats(1)["drops"]["other_vlan"] == 1), net.sw.port_stats(1)
    _sender(lab, net.lan, "lan0").sock.send(_udp(LAN_MAC, c.mac, good, LAN4, "10.9.0.3"))
    assert wait_for(lambda: _seen(cc, good)), "positive control: c saw nothing"
    cc.close()
    assert not _seen(cc, bad)
    # c joins VLAN 10 live: now a reaches it, the LAN's untagged frames do not
    net.sw.set_policy(3, c.mac, PortPolicy(vlan=10))
    assert ping(a.ns, "10.9.0.3", count=2, interval=0.1)[1] == 2
    cc2 = _capture(lab, c.ns)
    lan = _sender(lab, net.lan, "lan0")
    untagged, tagged = _marker("UNTAGGED"), _marker("TAGGED")
    lan.sock.send(_udp(LAN_MAC, c.mac, untagged, LAN4, "10.9.0.3"))
    lan.sock.send(_udp(LAN_MAC, c.mac, tagged, LAN4, "10.9.0.3", vid=10))
    assert wait_for(lambda: _seen(cc2, tagged))
    cc2.close()
    assert not _seen(cc2, untagged)
