"""The switch (native/switch.c) with real partitions, as root.

Topology, built per test and removed after it:

    netns "a" eth0 (TAP) --pump-- rings --+
                                          +-- switch --AF_PACKET-- up0 ==veth== lan0, netns "lan"
    netns "b" eth0 (TAP) --pump-- rings --+

Partitions are 10.9.0.1 and .2 (fd00:9::1, ::2), the LAN host 10.9.0.100
(fd00:9::100). The switch runs in a thread of this process, the pumps too.
"""
import os
import struct
import subprocess
import sys
import threading
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from dataplane_helpers import Capture, Lab, mac_bytes, mac_of, nsexec, ping, task_cpu_ticks, wait_for
from vnetshare import CONSUMER, PRODUCER, Ring, create_fds
from vnetshare.linux import netns
from vnetshare.core.config import ConfigError
from vnetshare.dataplane.ring import SIZE_MIN
from vnetshare.dataplane.switch import CAP_RX, Switch

LAN4, LAN6 = "10.9.0.100", "fd00:9::100"
LAN_MAC = mac_of(0x64)


class Net:
    """The topology above; @policies maps a partition's number (1, 2, ...) to
    the PortPolicy its port gets (default: none, no limits)."""

    def __init__(self, lab: Lab, nparts: int = 2, pump_kw: dict | None = None,
                 policies: dict | None = None, direct: bool = False, **sw_kw):
        self.lab = lab
        self.lan = lab.netns("lan")
        lab.veth(f"up{lab.tag}", "lan0", self.lan)
        self.uplink = f"up{lab.tag}"
        netns.link_set("lan0", self.lan, mac=LAN_MAC)
        netns.add_address("lan0", f"{LAN4}/24", self.lan)
        netns.add_address("lan0", f"{LAN6}/64", self.lan, nodad=True)
        netns.link_set(self.uplink, up=True)
        self.sw = Switch(self.uplink, **sw_kw)
        lab.closers.append(self.sw.close)
        self.sw.start()
        self.parts = []
        for i in range(1, nparts + 1):
            p = lab.partition(chr(ord("a") + i - 1), i)
            p.start_pump(**(pump_kw or {}))
            self.sw.add_port(i, p.mac, p.a2h_fds, p.h2a_fds, p.ring_size,
                             policy=(policies or {}).get(i))
            if direct:
                self.sw.set_tap(i, p.tap)
            self.parts.append(p)


@pytest.fixture
def net(lab):
    return Net(lab)


def test_ping_between_partitions_and_to_the_lan(net):
    a, b = net.parts
    for src, dst in ((a, "10.9.0.2"), (a, LAN4), (b, LAN4), (a, "fd00:9::2"), (b, LAN6)):
        sent, received, out = ping(src.ns, dst, count=3)
        assert (sent, received) == (3, 3), f"{src.ns} -> {dst}: {out}"
    sent, received, out = ping(net.lan, "10.9.0.1", count=2)
    assert (sent, received) == (2, 2), out
    sa = net.sw.port_stats(1)
    assert sa["tx_frames"] >= 6 and sa["rx_frames"] >= 6 and sa["tx_to_wire"] >= 3
    assert sa["drops"]["spoof"] == 0 and sa["violations"] == 0 and not sa["disconnected"]
    up = net.sw.uplink_stats()
    assert up["tx_frames"] >= 6 and up["rx_frames"] >= 6 and up["ports"] == 2
    assert up["drops"]["rx_truncated"] == 0


def test_full_mtu_and_gso(net):
    a, b = net.parts
    # 1472 + 28 = 1500: a full-size frame each way, DF set
    p = nsexec(a.ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1472", LAN4, check=False)
    assert " 0% packet loss" in p.stdout, p.stdout
    p = nsexec(a.ns, "ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1473", LAN4, check=False)
    assert p.returncode != 0
    # that one never left a's own stack; with a's MTU raised it reaches the
    # switch, which must drop it and count it
    netns.link_set("eth0", a.ns, mtu=1600)
    p = nsexec(a.ns, "ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1473", LAN4, check=False)
    assert "1 packets transmitted, 0 received" in p.stdout, p.stdout + p.stderr
    assert wait_for(lambda: net.sw.port_stats(1)["drops"]["mtu"] == 1), net.sw.port_stats(1)


def _tcp_transfer(lab, client_ns, server_ns, server_ip, mbytes=16):
    from test_dataplane_pump import CLIENT, SERVER

    srv = lab.popen(server_ns, "python3", "-c", SERVER)
    assert srv.stdout.readline().strip() == "listening"
    cli = nsexec(client_ns, "python3", "-c", CLIENT, server_ip, str(mbytes), timeout=60)
    out, _ = srv.communicate(timeout=30)
    assert out.split() == cli.stdout.split(), "bytes received differ from bytes sent"


def test_tcp_integrity_both_paths(net, lab):
    a, b = net.parts
    _tcp_transfer(lab, a.ns, b.ns, "10.9.0.2")
    _tcp_transfer(lab, a.ns, net.lan, LAN4)
    _tcp_transfer(lab, net.lan, b.ns, "10.9.0.2")
    # TSO frames went through as GSO: far fewer records than MSS segments;
    # the switch counts the segments they become, none over the MTU
    sa, ra = net.sw.port_stats(1), a.pump.stats()
    assert sa["tx_bytes"] > 32 << 20 and ra["tx_frames"] < (32 << 20) // 1448 // 4, (sa, ra)
    assert sa["tx_frames"] >= sa["tx_bytes"] // 1514, sa


def _frame(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, payload: bytes) -> bytes:
    return bytes(Ether(src=src_mac, dst=dst_mac) / IP(src=src_ip, dst=dst_ip) / UDP(sport=9, dport=9) / payload)


def test_spoofed_source_mac_is_dropped_and_counted(net, lab):
    a, b = net.parts
    cap_lan = Capture(net.lan, "lan0")
    lab.closers.append(cap_lan.close)
    cap_b = Capture(b.ns, "eth0")
    lab.closers.append(cap_b.close)
    marker = b"SPOOF-MARKER-" + os.urandom(4).hex().encode()
    ok_marker = b"GOOD-MARKER-" + os.urandom(4).hex().encode()
    tx = Capture(a.ns, "eth0")  # a packet socket inside partition a
    lab.closers.append(tx.close)
    # from inside partition a: spoofed to the LAN, broadcast, and to b; then
    # the same with a's own MAC, which each capture must see (positive
    # control). One ring, one order: once the good frames are seen, the
    # spoofed ones before them were judged.
    dsts = (LAN_MAC, "ff:ff:ff:ff:ff:ff", b.mac)
    for dst in dsts:
        tx.sock.send(_frame(mac_of(0x77), dst, "10.9.0.1", LAN4, marker))
    for dst in dsts:
        tx.sock.send(_frame(a.mac, dst, "10.9.0.1", LAN4, ok_marker + dst.encode()))
    for cap, dst in ((cap_lan, LAN_MAC), (cap_lan, "ff:ff:ff:ff:ff:ff"),
                     (cap_b, b.mac), (cap_b, "ff:ff:ff:ff:ff:ff")):
        good = ok_marker + dst.encode()
        assert wait_for(lambda: any(good in f for f in cap.incoming), timeout=3), f"no good frame to {dst}"
    assert wait_for(lambda: net.sw.port_stats(1)["drops"]["spoof"] == 3), net.sw.port_stats(1)
    cap_lan.close()
    cap_b.close()
    assert not any(marker in f for f in cap_lan.frames)
    assert not any(marker in f for f in cap_b.frames)


def test_isolation_no_foreign_unicast(lab):
    net = Net(lab, nparts=3)
    a, b, c = net.parts
    cap_c = Capture(c.ns, "eth0")  # promiscuous not needed: the TAP gets what the switch gives
    lab.closers.append(cap_c.close)
    nsexec(c.ns, "ip", "link", "set", "eth0", "promisc", "on")
    tx = Capture(a.ns, "eth0")
    lab.closers.append(tx.close)
    start, end = (b"ISO-%s-" % w + os.urandom(4).hex().encode() for w in (b"START", b"END"))
    tx.sock.send(_frame(a.mac, "ff:ff:ff:ff:ff:ff", "10.9.0.1", "10.9.0.255", start))
    assert ping(a.ns, "10.9.0.2", count=5, interval=0.1)[1] == 5
    assert ping(a.ns, LAN4, count=3, interval=0.1)[1] == 3
    assert ping(a.ns, "10.9.0.3", count=2, interval=0.1)[1] == 2  # unicast for c: must be seen
    tx.sock.send(_frame(a.mac, "ff:ff:ff:ff:ff:ff", "10.9.0.1", "10.9.0.255", end))
    # positive control, same capture: the broadcasts that open and close the
    # window, and a's unicast echo requests to c
    assert wait_for(lambda: any(end in f for f in cap_c.incoming), timeout=3), "capture saw no END broadcast"
    cap_c.close()
    frames = cap_c.incoming
    assert any(start in f for f in frames), "capture saw no START broadcast"
    to_c = [f for f in frames if f[:6] == mac_bytes(c.mac) and f[6:12] == mac_bytes(a.mac)]
    assert len(to_c) >= 2, f"c saw {len(to_c)} unicast frames from a, expected its 2 echo requests"
    macs_c = {mac_bytes(c.mac), b"\xff" * 6}
    for f in frames:
        dst = f[:6]
        assert dst in macs_c or dst[0] & 1, f"partition c saw a frame for {dst.hex(':')}"
    assert not any(f[:6] in (mac_bytes(a.mac), mac_bytes(b.mac), mac_bytes(LAN_MAC)) for f in frames)


def test_broadcast_reaches_everyone(lab):
    net = Net(lab, nparts=3)
    a, b, c = net.parts
    caps = [Capture(p.ns, "eth0") for p in (b, c)] + [Capture(net.lan, "lan0")]
    for cap in caps:
        lab.closers.append(cap.close)
    marker = b"BCAST-" + os.urandom(4).hex().encode()
    tx = Capture(a.ns, "eth0")
    lab.closers.append(tx.close)
    tx.sock.send(_frame(a.mac, "ff:ff:ff:ff:ff:ff", "10.9.0.1", "10.9.0.255", marker))
    for cap in caps:
        assert wait_for(lambda: any(marker in f for f in cap.frames), timeout=3)
    # and from the wire to every partition
    marker2 = b"WIRE-BCAST-" + os.urandom(4).hex().encode()
    capa = Capture(a.ns, "eth0")
    lab.closers.append(capa.close)
    code = (f"import socket; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('lan0',0));"
            f"s.send(bytes.fromhex('{_frame(LAN_MAC, 'ff:ff:ff:ff:ff:ff', LAN4, '10.9.0.255', marker2).hex()}'))")
    nsexec(net.lan, "python3", "-c", code)
    for cap in (capa, caps[0], caps[1]):
        assert wait_for(lambda: any(marker2 in f for f in cap.frames), timeout=3)


def _write_raw_record(ring_fds, size, rec_hdr: bytes, payload: bytes, advance: int):
    """Write bytes at the producer's position of a ring and publish prod += advance."""
    import mmap

    m = mmap.mmap(ring_fds.memfd, 4096 + size)
    try:
        prod = struct.unpack_from("<Q", m, 128)[0]
        off = 4096 + (prod & (size - 1))
        m[off:off + len(rec_hdr) + len(payload)] = rec_hdr + payload
        struct.pack_into("<Q", m, 128, prod + advance)
    finally:
        m.close()
    os.write(ring_fds.data_wr, b"x")  # wake the switch, as an agent does


def test_hostile_ring_content_does_not_stop_the_switch(lab):
    """A 'partition' with no agent writes garbage into its A2H ring."""
    limit = 5
    net = Net(lab, nparts=2, violation_limit=limit)
    a, b = net.parts
    size = SIZE_MIN
    evil_a2h, evil_h2a = create_fds(size), create_fds(size)
    lab.ringfds += [evil_a2h, evil_h2a]
    net.sw.add_port(9, mac_of(9), evil_a2h, evil_h2a, size)
    frame = _frame(mac_of(9), LAN_MAC, "10.9.0.9", LAN4, b"x" * 32)
    # len past the max, unknown flag, bad vnet_len, a misaligned prod, a gso with size 0
    bad = [
        (struct.pack("<IHHQ", 0xFFFFFF, 0, 12, 0), b"", 64),
        (struct.pack("<IHHQ", 12 + len(frame), 0x80, 12, 0), bytes(12) + frame, 128),
        (struct.pack("<IHHQ", 12 + len(frame), 0, 7, 0), bytes(12) + frame, 128),
        (struct.pack("<IHHQ", 12 + len(frame), 0, 12, 0), bytes([0, 1, 0, 0, 0, 0]) + bytes(6) + frame, 128),
        (b"", b"", 3),
    ]

    def counted(before):
        """The switch read the record written last: a violation more (or the port cut)."""
        st = net.sw.port_stats(9)
        return st["violations"] > before or st["disconnected"]

    def write(i, hdr, payload, adv):
        before = net.sw.port_stats(9)["violations"]
        _write_raw_record(evil_a2h, size, hdr, payload, adv)
        # one record at a time: a violation makes the switch skip what follows it
        wait_for(lambda: counted(before), what=f"bad record {i} counted as a violation")

    assert len(bad) == limit
    for i, rec in enumerate(bad[:-1]):
        write(i, *rec)
    st = net.sw.port_stats(9)
    assert st["violations"] == limit - 1 and not st["disconnected"], st
    assert st["tx_frames"] == 0
    # the switch goes on serving the others
    assert ping(a.ns, "10.9.0.2", count=2, interval=0.1)[1] == 2
    assert ping(b.ns, LAN4, count=2, interval=0.1)[1] == 2
    # at the limit the port is disconnected (rule 7), the others unharmed
    write(limit - 1, *bad[-1])
    assert wait_for(lambda: net.sw.port_stats(9)["disconnected"])
    assert ping(a.ns, LAN4, count=2, interval=0.1)[1] == 2
    assert not net.sw.port_stats(1)["disconnected"]
    assert net.sw.running


def test_agent_descriptor_flags_cannot_stop_the_switch(lab):
    """Port 9's 'agent' clears O_NONBLOCK on all it holds and fills the pipes
    the switch writes; the switch keeps sleeping, waking and forwarding."""
    import fcntl

    net = Net(lab, nparts=2)
    a, b = net.parts
    size = SIZE_MIN
    ev_a2h, ev_h2a = create_fds(size), create_fds(size)
    lab.ringfds += [ev_a2h, ev_h2a]
    net.sw.add_port(9, mac_of(9), ev_a2h, ev_h2a, size)
    agent = [*ev_a2h.end(PRODUCER), *ev_h2a.end(CONSUMER)]
    for fd in agent:
        fcntl.fcntl(fd, fcntl.F_SETFL, 0)
    # the pipes the switch kicks: A2H space (agent waits) and H2A data
    for wait_fd in (ev_a2h.space_rd, ev_h2a.data_rd):
        w = os.open(f"/proc/self/fd/{wait_fd}", os.O_WRONLY | os.O_NONBLOCK)
        try:
            while True:
                os.write(w, b"x" * 4096)
        except BlockingIOError:
            pass
        finally:
            os.close(w)
    # make the switch sleep, wake, drain and kick port 9 many times over
    frame = _frame(mac_of(9), "ff:ff:ff:ff:ff:ff", "10.9.0.9", "10.9.0.255", b"z" * 32)
    for _ in range(20):
        _write_raw_record(ev_a2h, size, struct.pack("<IHHQ", 12 + len(frame), 0, 12, 0),
                          bytes(12) + frame, 128)
        time.sleep(0.01)
    assert ping(a.ns, "10.9.0.2", count=3, interval=0.1)[1] == 3
    assert ping(b.ns, LAN4, count=3, interval=0.1)[1] == 3
    assert wait_for(lambda: net.sw.port_stats(9)["tx_frames"] == 20)
    assert net.sw.running


def test_fairness_a_flooding_port_does_not_starve_another(lab):
    """Port 9 keeps its A2H ring full; partition a still gets its pings through."""
    net = Net(lab, nparts=2)
    a, b = net.parts
    size = 1 << 22
    fl_a2h, fl_h2a = create_fds(size), create_fds(size)
    lab.ringfds += [fl_a2h, fl_h2a]
    net.sw.add_port(9, mac_of(9), fl_a2h, fl_h2a, size)
    prod = Ring(fl_a2h, PRODUCER, size)
    lab.rings.append(prod)
    frame = _frame(mac_of(9), "02:00:00:00:00:55", "10.9.0.9", "10.9.0.55", b"f" * 1000)
    stop = threading.Event()
    sent = [0]

    def flood():
        while not stop.is_set():
            n = 0
            while n < 256 and prod.send(frame, flush=False):
                n += 1
            prod.flush()
            sent[0] += n
            if n == 0:
                time.sleep(0.0002)

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    lab.closers.append(lambda: (stop.set(), t.join(2)))
    try:
        # the flood is under way before the pings, not hoped to be
        assert wait_for(lambda: net.sw.port_stats(9)["tx_frames"] > 1000, timeout=5), net.sw.port_stats(9)
        s, r, out = ping(a.ns, "10.9.0.2", count=10, interval=0.05, wait=1)
        assert (s, r) == (10, 10), out
    finally:
        stop.set()
        t.join(2)
    st = net.sw.port_stats(9)
    assert st["tx_frames"] > 1000, st


UDP_SINK = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE: the sink is slow Python
s.bind(("0.0.0.0", 9999))
s.settimeout(10)
print("listening", flush=True)
seqs = []
try:
    while len(seqs) < int(sys.argv[1]):
        seqs.append(struct.unpack("!I", s.recv(64)[:4])[0])
except socket.timeout:
    pass
print(" ".join(map(str, seqs)))
"""

UDP_BURSTS = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n, burst = int(sys.argv[2]), 20
for i in range(n):
    s.sendto(struct.pack("!I", i) + bytes(18), (sys.argv[1], 9999))
    if i % burst == burst - 1:
        time.sleep(0.0005)  # bursts of 20 back to back: dense, and the TAP queue never overflows
"""


def _udp_bursts_arrive_in_order(lab, a, b, n: int) -> None:
    """@n datagrams from partition @a to @b (10.9.0.2) in bursts: all arrive, in order."""
    s, r, out = ping(a.ns, "10.9.0.2", count=1)
    assert (s, r) == (1, 1), out
    sink = lab.popen(b.ns, "python3", "-c", UDP_SINK, str(n))
    assert sink.stdout.readline().strip() == "listening"
    nsexec(a.ns, "python3", "-c", UDP_BURSTS, "10.9.0.2", str(n), timeout=60)
    out, _ = sink.communicate(timeout=30)
    assert [int(x) for x in out.split()] == list(range(n)), "datagrams lost or reordered"


@pytest.mark.parametrize("usecs", [None, 0], ids=["coalescing", "off"])
def test_dense_small_frames_are_coalesced_and_all_arrive_in_order(lab, usecs):
    net = Net(lab, coalesce_usecs=usecs, pump_kw={"coalesce_usecs": usecs})
    a, b = net.parts
    _udp_bursts_arrive_in_order(lab, a, b, 4000)
    naps = (net.sw.uplink_stats()["naps"], a.pump.stats()["naps"], b.pump.stats()["naps"])
    if usecs == 0:
        assert naps == (0, 0, 0)
    else:  # switch, sending pump, receiving pump: each took batches
        assert all(x > 0 for x in naps), naps


def test_direct_delivery_keeps_order_with_the_ring(lab):
    """With the partitions' TAPs, the switch writes a frame itself while the
    port's H2A ring is empty; a 1 % share of its time runs out within a
    burst, and the rest goes through the ring and the agent. Both paths
    carry frames, and not one datagram overtakes another."""
    net = Net(lab, direct=True, direct_pct=1)
    a, b = net.parts
    n = 4000
    _udp_bursts_arrive_in_order(lab, a, b, n)
    st, pumped = net.sw.port_stats(2), b.pump.stats()["rx_frames"]
    # every frame for b went one way or the other: the switch's own writes
    # (rx_direct) and the agent's (its pump's rx_frames)
    assert st["rx_direct"] > 0 and pumped > 0, (st["rx_direct"], pumped)
    assert st["rx_direct"] + pumped == st["rx_frames"] >= n, (st, pumped)


def test_direct_delivery_both_paths_and_off_without_a_tap(lab):
    net = Net(lab, direct=True)
    a, b = net.parts
    for src, dst in ((a, "10.9.0.2"), (a, LAN4), (b, LAN6)):
        sent, received, out = ping(src.ns, dst, count=3, interval=0.05)
        assert (sent, received) == (3, 3), f"{src.ns} -> {dst}: {out}"
    for i, p in ((1, a), (2, b)):
        st = net.sw.port_stats(i)
        assert st["rx_direct"] > 0, st  # from a partition and from the wire
        # no GSO yet: one frame a record, through the TAP or the agent
        assert st["rx_direct"] + p.pump.stats()["rx_frames"] == st["rx_frames"], st
    _tcp_transfer(lab, a.ns, b.ns, "10.9.0.2")
    _tcp_transfer(lab, net.lan, a.ns, "10.9.0.1")
    for i, p in ((1, a), (2, b)):
        st = net.sw.port_stats(i)
        # a GSO record counts as its segments (the agent counts records)
        assert st["rx_direct"] + p.pump.stats()["rx_frames"] <= st["rx_frames"], st
    net.sw.set_tap(2, -1)  # the switch lets go of b's TAP: its agent writes everything
    before = net.sw.port_stats(2)["rx_direct"]
    sent, received, out = ping(a.ns, "10.9.0.2", count=3, interval=0.05)
    assert (sent, received) == (3, 3), out
    assert net.sw.port_stats(2)["rx_direct"] == before
    with pytest.raises(OSError, match="set the TAP of port 7"):
        net.sw.set_tap(7, b.tap)


POLL_USECS = 5000  # a window (polls last 3) long enough that a busy test machine's answer comes within it


def _quiet(net):
    """No IPv6 chatter: the only frames are the test's."""
    for ns in [p.ns for p in net.parts] + [net.lan]:
        nsexec(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")


def _polls(net):
    a, b = net.parts
    up, sa, sb = net.sw.uplink_stats(), a.pump.stats(), b.pump.stats()
    return {"sw": (up["polls"], up["poll_hits"]), "a": (sa["polls"], sa["poll_hits"]),
            "b": (sb["polls"], sb["poll_hits"])}


def _idle_ticks(net, seconds=1.0):
    """CPU ticks the switch thread and both pump threads used in @seconds."""
    tids = [net.sw.native_tid] + [p.pump.native_tid for p in net.parts]
    before = [task_cpu_ticks(t) for t in tids]
    time.sleep(seconds)
    return [task_cpu_ticks(t) - b for t, b in zip(tids, before)]


def test_a_lone_frame_out_polls_for_its_answer_then_sleeps(lab):
    """A ping's request: the sending pump and the switch poll for the reply
    (and find it), the answering pump does not poll; then all sleep."""
    net = Net(lab, coalesce_usecs=POLL_USECS, pump_kw={"coalesce_usecs": POLL_USECS})
    a, b = net.parts
    _quiet(net)
    assert ping(a.ns, "10.9.0.2", count=1)[1] == 1  # ARP done
    before = _polls(net)
    sent, received, out = ping(a.ns, "10.9.0.2", count=5, interval=0.1)
    assert (sent, received) == (5, 5), out
    after = _polls(net)
    d = {k: (after[k][0] - before[k][0], after[k][1] - before[k][1]) for k in after}
    # requests polled for their replies, and found them (not all: a loop may
    # still be backing off from the ARP exchange, and a busy machine may
    # answer late and so make a loop skip the next chance)
    assert 2 <= d["a"][1] <= d["a"][0] <= 5, d
    assert 2 <= d["sw"][1] <= d["sw"][0], d
    assert d["b"] == (0, 0), d  # what came in and its answer: not a round trip of b's
    # the polls ended by themselves: the loops sleep (a stray frame, an ARP
    # probe, may still start one poll of 10 ms)
    ticks = _idle_ticks(net)
    assert all(t <= 2 for t in ticks), f"a loop kept polling: {ticks} ticks in 1 s"
    idle = _polls(net)
    assert all(idle[k][0] - after[k][0] <= 1 for k in idle), (after, idle)


def test_a_poll_without_answer_ends_and_backs_off(lab):
    """Frames no one answers: each poll runs out, the later ones are skipped
    (1, 3, ... chances), and the loops go back to sleep."""
    net = Net(lab, coalesce_usecs=POLL_USECS, pump_kw={"coalesce_usecs": POLL_USECS})
    a, _ = net.parts
    _quiet(net)
    tx = Capture(a.ns, "eth0")
    lab.closers.append(tx.close)
    before = _polls(net)
    # to a LAN address nobody has: the switch sends it to the wire, no answer
    frame = _frame(a.mac, LAN_MAC, "10.9.0.1", "10.9.0.200", b"x" * 32)
    for _ in range(8):
        tx.sock.send(frame)
        time.sleep(0.05)
    assert wait_for(lambda: net.sw.uplink_stats()["tx_frames"] >= 8)
    after = _polls(net)
    polls_a, hits_a = after["a"][0] - before["a"][0], after["a"][1] - before["a"][1]
    # polls 1 and 2, skips 1, polls 4, skips 3, polls 8: 4 of 8
    assert hits_a == 0 and 1 <= polls_a <= 5, after
    ticks = _idle_ticks(net)
    assert all(t <= 2 for t in ticks), f"a loop kept polling: {ticks} ticks in 1 s"


def test_no_polls_with_coalescing_off(lab):
    net = Net(lab, coalesce_usecs=0, pump_kw={"coalesce_usecs": 0})
    a, _ = net.parts
    sent, received, out = ping(a.ns, "10.9.0.2", count=3, interval=0.1)
    assert (sent, received) == (3, 3), out  # frames moved
    assert _polls(net) == {"sw": (0, 0), "a": (0, 0), "b": (0, 0)}


def test_coalescing_window_is_checked():
    from vnetshare.core.config import COALESCE_USECS_MAX

    with pytest.raises(OSError) as e:
        Switch("lo", coalesce_usecs=COALESCE_USECS_MAX + 1)
    assert e.value.errno == 22 and "sw_set_coalesce" in str(e.value)


def test_idle_switch_uses_no_cpu(net):
    for p in net.parts:
        nsexec(p.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    nsexec(net.lan, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    time.sleep(0.5)
    tid = net.sw.native_tid
    before = task_cpu_ticks(tid)
    time.sleep(1.0)
    used = task_cpu_ticks(tid) - before
    assert used <= 1, f"idle switch used {used} ticks in 1 s"


def test_port_table_changes_while_running(net, lab):
    a, b = net.parts
    assert ping(a.ns, "10.9.0.2", count=1)[1] == 1
    final = net.sw.del_port(2)
    assert final["rx_frames"] >= 1
    with pytest.raises(OSError):
        net.sw.port_stats(2)
    assert ping(a.ns, "10.9.0.2", count=1, wait=0.5)[1] == 0
    assert ping(a.ns, LAN4, count=1)[1] == 1  # a's own path works meanwhile: only b is gone
    net.sw.add_port(2, b.mac, b.a2h_fds, b.h2a_fds, b.ring_size)
    assert ping(a.ns, "10.9.0.2", count=2)[1] == 2
    with pytest.raises(OSError) as e:
        net.sw.add_port(3, b.mac, b.a2h_fds, b.h2a_fds, b.ring_size)
    assert e.value.errno == 17  # EEXIST: the MAC is taken
    with pytest.raises(ConfigError, match="MAC '01:00:5e:00:00:01': is a multicast address"):
        net.sw.add_port(4, "01:00:5e:00:00:01", b.a2h_fds, b.h2a_fds, b.ring_size)


def _ring_maps() -> int:
    with open("/proc/self/maps") as f:
        return sum("vnetshare-ring" in line for line in f)


def test_a_port_or_capture_whose_ring_is_refused_leaves_nothing_behind(net, lab):
    """sw_ring_take(): a port whose first or second ring is refused (the
    wrong size), or a capture whose ring is, fails with EINVAL and leaves
    no descriptor open and no ring mapped; the same id and rings then work.
    The positive control: the port that is added holds four more
    descriptors and two more mappings, as counted here."""
    ok, ok2, big = create_fds(SIZE_MIN), create_fds(SIZE_MIN), create_fds(2 * SIZE_MIN)
    lab.ringfds += [ok, ok2, big]
    fds, maps = set(os.listdir("/proc/self/fd")), _ring_maps()
    for a2h, h2a in ((ok, big), (big, ok)):
        with pytest.raises(OSError) as e:
            net.sw.add_port(3, mac_of(3), a2h, h2a, SIZE_MIN)
        assert e.value.errno == 22 and "add port 3" in str(e.value)
    with pytest.raises(OSError) as e:
        net.sw.add_capture(1, CAP_RX, 64, big, SIZE_MIN)
    assert e.value.errno == 22 and "capture of port 1" in str(e.value)
    assert set(os.listdir("/proc/self/fd")) == fds, "a descriptor was left open"
    assert _ring_maps() == maps, "a ring was left mapped"
    net.sw.add_port(3, mac_of(3), ok, ok2, SIZE_MIN)
    assert len(set(os.listdir("/proc/self/fd")) - fds) == 4 and _ring_maps() == maps + 2
    cap = net.sw.add_capture(3, CAP_RX, 64, big)
    assert _ring_maps() == maps + 3
    net.sw.del_capture(cap)
    net.sw.del_port(3)
    assert set(os.listdir("/proc/self/fd")) == fds and _ring_maps() == maps


def test_full_h2a_ring_drops_and_counts_never_blocks(net, lab):
    """A port whose agent never reads: its H2A fills, frames for it are dropped."""
    a, b = net.parts
    size = SIZE_MIN
    dead_a2h, dead_h2a = create_fds(size), create_fds(size)
    lab.ringfds += [dead_a2h, dead_h2a]
    net.sw.add_port(9, mac_of(9), dead_a2h, dead_h2a, size)
    tx = Capture(a.ns, "eth0")
    lab.closers.append(tx.close)
    frame = _frame(a.mac, mac_of(9), "10.9.0.1", "10.9.0.9", b"z" * 1000)
    for _ in range(400):  # 400 x ~1.1 KiB records > 256 KiB of ring
        tx.sock.send(frame)
    # every frame is accounted for once the pump and the switch took them all
    # (+ any broadcast), and those past the ring's room were dropped
    assert wait_for(lambda: (lambda st: st["rx_frames"] + st["drops"]["h2a_full"] >= 400)(net.sw.port_stats(9)))
    st = net.sw.port_stats(9)
    assert st["drops"]["h2a_full"] > 0 and st["rx_frames"] < 400, st
    assert ping(a.ns, "10.9.0.2", count=2, interval=0.1)[1] == 2  # the others go on


def test_uplink_down_then_up_no_spin_traffic_resumes(net):
    a, _ = net.parts
    assert ping(a.ns, LAN4, count=1)[1] == 1
    netns.link_set(net.uplink, up=False)
    # the switch saw the uplink go (ENETDOWN) before the spin is measured
    assert wait_for(lambda: net.sw.uplink_stats()["socket_errors"] >= 1), net.sw.uplink_stats()
    tid = net.sw.native_tid
    before = task_cpu_ticks(tid)
    time.sleep(1.0)
    assert task_cpu_ticks(tid) - before <= 2, "the switch spins while the uplink is down"
    netns.link_set(net.uplink, up=True)
    assert wait_for(lambda: ping(a.ns, LAN4, count=1, wait=0.5)[1] == 1, timeout=10)
    assert net.sw.running


def test_hundreds_of_ports_found_by_mac_and_the_port_limit(lab):
    """The MAC table (open addressing, deletion by moving entries back):
    after adds and deletes in a scattered order, every port still gets its
    own unicast and nobody else's; past max_ports, ENOSPC."""
    net = Net(lab, nparts=1, max_ports=400)
    (a,) = net.parts
    size = SIZE_MIN
    ports = {}
    for i in range(2, 401):
        fds = create_fds(size), create_fds(size)
        lab.ringfds += list(fds)
        net.sw.add_port(i, mac_of(i % 256) if i < 256 else f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}",
                        *fds, size)
        ports[i] = fds
    with pytest.raises(OSError) as e:  # 399 ports + a's = 400: full
        net.sw.add_port(401, "02:00:00:00:09:99", *ports[2], size)
    assert e.value.errno == 28  # ENOSPC
    assert len(net.sw.all_port_stats()) == 400
    for i in list(ports)[::3]:  # holes all over the table
        net.sw.del_port(i)
        del ports[i]
    live = sorted(ports)
    assert len(net.sw.all_port_stats(len(live))) == len(live) + 1
    tx = Capture(a.ns, "eth0")
    lab.closers.append(tx.close)
    sample = live[::7]
    for i in sample:
        mac = mac_of(i % 256) if i < 256 else f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}"
        tx.sock.send(_frame(a.mac, mac, "10.9.0.1", "10.9.0.9", b"p%d" % i))
    assert wait_for(lambda: net.sw.port_stats(1)["tx_frames"] >= len(sample)), net.sw.port_stats(1)
    got = {}  # port -> the markers its H2A ring holds (floods from a's stack aside)
    for i in live:
        with Ring.attach(ports[i][1], CONSUMER, size) as r:
            got[i] = [f[42:] for f in iter(r.recv, None)  # Ethernet + IPv4 + UDP, then the marker
                      if f[12:14] == b"\x08\x00" and f[30:34] == bytes([10, 9, 0, 9])]
    assert {i: got[i] for i in sample} == {i: [b"p%d" % i] for i in sample}
    assert not {i: m for i, m in got.items() if i not in sample and m}, "unicast reached another port"


def test_floods_go_only_where_they_matter(lab):
    """ND to a solicited-node group and ARP requests reach the address's
    owner (and the wire), router solicitations and MLD reports the wire
    only: no copy for every partition of what only one, or none, needs.
    A broadcast still reaches everyone: the positive control."""
    from scapy.layers.inet6 import ICMPv6MLReport2, ICMPv6ND_NS, ICMPv6ND_RS, IPv6, IPv6ExtHdrHopByHop, RouterAlert
    from scapy.layers.l2 import ARP

    from vnetshare.dataplane.guard import GuardPolicy, link_local
    from vnetshare.dataplane.switch import PortPolicy

    pol = {i: PortPolicy(guard=GuardPolicy.for_partition(mac_of(i), [f"10.9.0.{i}/24", f"fd00:9::{i}/64"]))
           for i in (1, 2, 3)}
    net = Net(lab, nparts=3, policies=pol)
    a, b, c = net.parts
    caps = {n: Capture(ns, ifname) for n, ns, ifname in (("b", b.ns, "eth0"), ("c", c.ns, "eth0"),
                                                         ("lan", net.lan, "lan0"))}
    for cap in caps.values():
        lab.closers.append(cap.close)
    tx = Capture(a.ns, "eth0")
    lab.closers.append(tx.close)
    ll_a = str(link_local(a.mac))

    def sn(addr):  # solicited-node MAC and group of an IPv6 address
        import ipaddress
        low = ipaddress.IPv6Address(addr).packed[13:]
        return "33:33:ff:" + ":".join(f"{x:02x}" for x in low), f"ff02::1:ff{low[0]:02x}:{low[1]:02x}{low[2]:02x}"

    frames = {
        "ns_b": Ether(src=a.mac, dst=sn("fd00:9::2")[0]) / IPv6(src="fd00:9::1", dst=sn("fd00:9::2")[1])
        / ICMPv6ND_NS(tgt="fd00:9::2"),
        "ns_nobody": Ether(src=a.mac, dst=sn("fd00:9::77")[0]) / IPv6(src="fd00:9::1", dst=sn("fd00:9::77")[1])
        / ICMPv6ND_NS(tgt="fd00:9::77"),
        "arp_b": Ether(src=a.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=a.mac, psrc="10.9.0.1", pdst="10.9.0.2"),
        "arp_lan": Ether(src=a.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=a.mac, psrc="10.9.0.1", pdst=LAN4),
        "rs": Ether(src=a.mac, dst="33:33:00:00:00:02") / IPv6(src=ll_a, dst="ff02::2") / ICMPv6ND_RS(),
        "mld": Ether(src=a.mac, dst="33:33:00:00:00:16") / IPv6(src=ll_a, dst="ff02::16", hlim=1)
        / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLReport2(),
        "bcast": Ether(src=a.mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="10.9.0.1", dst="10.9.0.255") / UDP(dport=9),
    }
    scoped0 = net.sw.uplink_stats()["flood_scoped"]
    raw = {k: bytes(f) for k, f in frames.items()}
    for f in raw.values():
        tx.sock.send(f)
    want = {"b": {"ns_b", "arp_b", "bcast"}, "c": {"bcast"}, "lan": set(raw)}

    def seen(cap):
        return {k for k, f in raw.items() if any(g[:len(f)] == f for g in cap.incoming)}
    assert wait_for(lambda: all(seen(caps[n]) >= w for n, w in want.items()), timeout=5), \
        {n: sorted(seen(cap)) for n, cap in caps.items()}
    assert {n: seen(cap) for n, cap in caps.items()} == want
    # 10 copies fewer than floods to all would have made
    assert net.sw.uplink_stats()["flood_scoped"] - scoped0 >= 10


def test_the_switch_learns_the_wires_stations_and_refuses_their_mac_to_a_port(lab):
    """native/fdb.c in the switch: the LAN host's MAC is learned from its
    frames, listed with its VLAN and age; the partitions' own MACs are not
    (the switch never receives its own sends)."""
    net = Net(lab)
    a, b = net.parts
    _sent, received, out = ping(net.lan, "10.9.0.1", count=1)
    assert received == 1, out
    assert wait_for(lambda: net.sw.fdb_find(LAN_MAC))
    station = net.sw.fdb_find(LAN_MAC)
    assert station["mac"] == LAN_MAC and station["vlan"] == 0 and 0 <= station["age"] < 5, station
    listed = {s["mac"]: s for s in net.sw.fdb()}
    assert LAN_MAC in listed and a.mac not in listed and b.mac not in listed, listed
    assert net.sw.fdb_find(a.mac) is None
    up = net.sw.uplink_stats()
    assert up["fdb_entries"] == len(listed) and up["fdb_learned"] >= 1 and up["fdb_evicted"] == 0
    # the whole forwarding table, one command: the ports' MACs static, the
    # LAN host learned on the wire (port None), its age growing
    table = {(r["mac"], r["port"]): r for r in net.sw.fdb_table()}
    assert table[(a.mac, 1)] == {"mac": a.mac, "vlan": 0, "port": 1, "static": True, "age": None}
    assert table[(b.mac, 2)]["static"] and table[(b.mac, 2)]["age"] is None
    lan = table[(LAN_MAC, None)]
    assert not lan["static"] and lan["vlan"] == 0 and lan["age"] >= 0, table
    assert len(table) == 2 + len(listed)
    assert wait_for(lambda: next(r for r in net.sw.fdb_table() if r["mac"] == LAN_MAC)["age"]
                    > lan["age"] + 0.2)


def test_the_uplink_swapped_while_running_the_nic_gone_and_recreated(net, lab):
    """The NIC deleted: detach_uplink(), frames for the wire dropped and
    counted, never blocking; a new NIC of the same name (a new ifindex):
    attach_uplink() through the command queue, and the LAN is reached again
    by both partitions (their MACs' memberships moved to the new socket);
    the uplink's counters only grow across the swap."""
    a, b = net.parts
    assert ping(a.ns, LAN4, count=1)[1] == 1 and ping(b.ns, LAN4, count=1)[1] == 1
    before = net.sw.uplink_stats()
    assert before["attached"] == 1 and before["rebinds"] == 0 and before["tx_frames"] >= 2
    old = net.sw.ifindex
    netns.delete_link(net.uplink)  # and lan0 with it: the LAN host's MAC stays LAN_MAC below
    net.sw.detach_uplink()
    assert net.sw.ifindex is None and net.sw.uplink_stats()["attached"] == 0
    assert ping(a.ns, LAN4, count=3, interval=0.05, wait=0.3)[1] == 0
    assert ping(a.ns, "10.9.0.2", count=1)[1] == 1  # the partitions still reach each other
    st = net.sw.port_stats(1)
    assert st["drops"]["no_uplink"] >= 3 and net.sw.uplink_stats()["drops"]["tx_no_uplink"] >= 3, st
    lab.veth(net.uplink, "lan0", net.lan)
    netns.link_set("lan0", net.lan, mac=LAN_MAC)
    netns.add_address("lan0", f"{LAN4}/24", net.lan)
    netns.link_set(net.uplink, up=True)
    new = netns.link(net.uplink).index
    assert new != old
    net.sw.attach_uplink(net.uplink)
    assert net.sw.ifindex == new
    assert wait_for(lambda: ping(a.ns, LAN4, count=1, wait=0.5)[1] == 1, timeout=10)
    assert ping(b.ns, LAN4, count=2)[1] == 2  # b's unicast membership is on the new socket too
    after = net.sw.uplink_stats()
    assert after["attached"] == 1 and after["rebinds"] == 1
    assert after["tx_frames"] > before["tx_frames"] and after["tx_calls"] >= before["tx_calls"]
    with pytest.raises(OSError) as e:
        net.sw.attach_uplink(10 ** 6)  # no such device: the switch keeps the one it has
    assert e.value.errno == 19
    assert net.sw.ifindex == new and ping(a.ns, LAN4, count=1)[1] == 1
    net.sw.set_mtu(1400)
    assert net.sw.mtu == 1400
    assert ping(a.ns, LAN4, count=1, size=1400 - 28)[1] == 1
    assert ping(a.ns, LAN4, count=1, size=1401 - 28, wait=0.5)[1] == 0
    assert net.sw.port_stats(1)["drops"]["mtu"] >= 1
    with pytest.raises(ConfigError, match="mtu 67"):
        net.sw.set_mtu(67)
    assert net.sw.running


# A seccomp filter that answers epoll_pwait2 (441 on x86_64) with ENOSYS, as
# a kernel before 5.11 or valgrind before 3.20 does, then runs the rest of
# its command line; the filter stays on through exec (no_new_privs).
_NO_PWAIT2 = r"""
import ctypes, errno, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
prog = b"".join(struct.pack("HBBI", *insn) for insn in (
    (0x20, 0, 0, 0),                    # ld [nr]
    (0x15, 0, 1, 441),                  # jeq epoll_pwait2
    (0x06, 0, 0, 0x50000 | errno.ENOSYS),  # ret ERRNO(ENOSYS)
    (0x06, 0, 0, 0x7FFF0000),           # ret ALLOW
))
buf = ctypes.create_string_buffer(prog)
fprog = struct.pack("HxxxxxxQ", 4, ctypes.addressof(buf))
assert libc.prctl(38, 1, 0, 0, 0) == 0             # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) == 0, ctypes.get_errno()
assert libc.syscall(441, -1, 0, 0, 0, 0) == -1 and ctypes.get_errno() == errno.ENOSYS
print("epoll_pwait2 refused", flush=True)
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_the_switch_runs_where_epoll_pwait2_is_missing():
    # Debian 11's kernel (5.10) has no epoll_pwait2, nor has valgrind 3.19
    # (scripts/callgrind_switch.py runs the switch under it): the switch
    # waits with epoll_wait instead. The child forwards 100 frames from one
    # port to another (callgrind_switch's own workload, without valgrind).
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "callgrind_switch.py")
    p = subprocess.run([sys.executable, "-c", _NO_PWAIT2, sys.executable, script,
                        "--frames", "100", "--child", "unicast"],
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.startswith("epoll_pwait2 refused"), p.stdout + p.stderr
    assert p.returncode == 0, p.stderr[-2000:]
