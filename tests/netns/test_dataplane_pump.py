"""The agent's pump (native/pump.c): TAP <-> rings, both ways, as root.

The test plays the daemon on the far side of the rings with vnetshare.Ring
(the slow path), so what is checked is only the pump and the TAP.
"""
import errno
import select
import threading
import time

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from dataplane_helpers import mac_of, nsexec, ping, task_cpu_ticks, wait_for

FAKE_IP = "10.9.0.2"
FAKE_MAC = mac_of(0x99)
VNET_GSO_TCPV4 = 1


class Responder:
    """Plays a host at FAKE_IP behind the rings: answers ARP and ICMP echo."""

    def __init__(self, part):
        self.part = part
        self.seen = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def answer(self, frame: bytes):
        pkt = Ether(frame)
        if ARP in pkt and pkt[ARP].op == 1 and pkt[ARP].pdst == FAKE_IP:
            return Ether(dst=pkt.src, src=FAKE_MAC) / ARP(
                op=2, hwsrc=FAKE_MAC, psrc=FAKE_IP, hwdst=pkt[ARP].hwsrc, pdst=pkt[ARP].psrc)
        if IP in pkt and ICMP in pkt and pkt[IP].dst == FAKE_IP and pkt[ICMP].type == 8:
            return Ether(dst=pkt.src, src=FAKE_MAC) / IP(src=FAKE_IP, dst=pkt[IP].src) / ICMP(
                type=0, id=pkt[ICMP].id, seq=pkt[ICMP].seq) / bytes(pkt[ICMP].payload)
        return None

    def loop(self):
        a2h, h2a = self.part.host_a2h, self.part.host_h2a
        while not self.stop.is_set():
            frame = a2h.recv()
            if frame is None:
                if a2h.arm():
                    select.select([a2h.fileno()], [], [], 0.05)
                    a2h.disarm()
                continue
            self.seen += 1
            reply = self.answer(frame)
            if reply is not None:
                h2a.send(bytes(reply))

    def close(self):
        self.stop.set()
        self.t.join(2)


def pump_with_responder(lab):
    """Partition "a" with its host side attached, its pump running and a
    Responder behind its rings (closed with the lab); (part, pump, resp)."""
    part = lab.partition("a", 1)
    part.attach_host()
    pump = part.start_pump()
    resp = Responder(part)
    lab.closers.append(resp.close)
    return part, pump, resp


def test_pump_both_directions_ping_through_rings(lab):
    part, pump, resp = pump_with_responder(lab)

    sent, received, out = ping(part.ns, FAKE_IP, count=3)
    assert (sent, received) == (3, 3), out
    st = pump.stats()
    # ARP request + 3 echo requests left through the TAP into A2H, the ARP
    # reply + 3 echo replies came back from H2A onto the TAP
    assert st["tx_frames"] >= 4 and st["rx_frames"] >= 4, st
    assert st["tx_bytes"] >= 4 * 42 and st["rx_bytes"] >= 4 * 42
    assert st["tap_write_errors"] == 0 and st["short_reads"] == 0
    assert resp.seen == st["tx_frames"]


class Shuttle:
    """Moves records between two partitions' rings, recording what it saw."""

    def __init__(self, a, b):
        self.pairs = [(a.host_a2h, b.host_h2a), (b.host_a2h, a.host_h2a)]
        self.max_frame = 0
        self.gso_types = set()
        self.records = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop.is_set():
            moved = False
            for src, dst in self.pairs:
                for _ in range(64):
                    rec = src.recv_record()
                    if rec is None:
                        break
                    vnet, frame = rec
                    self.records += 1
                    self.max_frame = max(self.max_frame, len(frame))
                    self.gso_types.add(vnet[1])
                    while not dst.send(frame, vnet) and not self.stop.is_set():
                        time.sleep(0.001)
                    moved = True
            if not moved:
                armed = [src for src, _ in self.pairs if src.arm()]
                if len(armed) == len(self.pairs):
                    select.select([s.fileno() for s in armed], [], [], 0.05)
                for s in armed:
                    s.disarm()

    def close(self):
        self.stop.set()
        self.t.join(2)


SERVER = r"""
import hashlib, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
h = hashlib.sha256(); n = 0
while True:
    d = c.recv(1 << 20)
    if not d:
        break
    h.update(d); n += len(d)
print(n, h.hexdigest(), flush=True)
"""

CLIENT = r"""
import hashlib, socket, sys
data = bytes((i * 7 + i // 251) & 0xff for i in range(1 << 20)) * int(sys.argv[2])
c = socket.create_connection((sys.argv[1], 5001), timeout=20)
c.sendall(data); c.close()
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
"""


def test_pump_gso_frames_pass_as_one_record(lab):
    a = lab.partition("a", 1)
    b = lab.partition("b", 2)
    for p in (a, b):
        p.attach_host()
        p.start_pump()
    sh_ = Shuttle(a, b)
    lab.closers.append(sh_.close)

    srv = lab.popen(b.ns, "python3", "-c", SERVER)
    assert srv.stdout.readline().strip() == "listening"
    cli = nsexec(a.ns, "python3", "-c", CLIENT, "10.9.0.2", "8", timeout=60)
    sent_len, sent_sum = cli.stdout.split()
    out, _ = srv.communicate(timeout=30)
    assert out.split() == [sent_len, sent_sum], "bytes received differ from bytes sent"

    # With TSO on the TAP, TCP hands the TAP 64 KiB GSO frames: each crossed
    # the rings as one record, vnet header and all.
    assert VNET_GSO_TCPV4 in sh_.gso_types, sh_.gso_types
    assert sh_.max_frame > 9000, sh_.max_frame
    st = a.pump.stats()
    assert st["tx_bytes"] > 8 << 20 and st["tx_frames"] < (8 << 20) // 1448


def test_pump_idle_uses_no_cpu(lab):
    part = lab.partition("a", 1)
    part.attach_host()
    pump = part.start_pump()
    assert wait_for(lambda: pump.native_tid is not None and pump.stats()["sleeps"] >= 1)
    # let the TAP's own start-up chatter (IPv6 ND, MLD) pass
    nsexec(part.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    time.sleep(0.3)
    tid = pump.native_tid
    before = task_cpu_ticks(tid)
    wakes = pump.stats()["wakeups"]
    time.sleep(1.0)
    used = task_cpu_ticks(tid) - before
    assert used <= 1, f"idle pump used {used} ticks in 1 s"
    assert pump.stats()["wakeups"] - wakes <= 5


def test_pump_stops_on_request_and_when_the_tap_goes(lab):
    part = lab.partition("a", 1)
    pump = part.start_pump()
    assert wait_for(lambda: pump.stats()["sleeps"] >= 1)
    t0 = time.monotonic()
    pump.stop()
    assert time.monotonic() - t0 < 1.0 and not pump.running
    pump.stop()  # idempotent

    part2 = lab.partition("b", 2)
    pump2 = part2.start_pump()
    assert wait_for(lambda: pump2.stats()["sleeps"] >= 1)
    nsexec(part2.ns, "ip", "link", "del", "eth0")
    assert wait_for(lambda: not pump2.running, timeout=3)
    with pytest.raises(OSError) as e:
        pump2.stop()
    assert e.value.errno == errno.EBADFD


def test_pump_coalescing_window_is_checked(lab):
    part = lab.partition("a", 1)
    from vnetshare.core.config import COALESCE_USECS_MAX
    from vnetshare.dataplane.pump import Pump

    with pytest.raises(OSError) as e:
        Pump(part.tap, part.a2h, part.h2a, coalesce_usecs=COALESCE_USECS_MAX + 1)
    assert e.value.errno == errno.EINVAL and "pump_set_coalesce" in str(e.value)


def test_pump_rejects_rings_in_the_wrong_roles(lab):
    part = lab.partition("a", 1)
    from vnetshare.dataplane.pump import Pump

    with pytest.raises(ValueError):
        Pump(part.tap, part.h2a, part.a2h)


def test_pump_survives_the_partition_setting_its_device_down(lab):
    part, pump, _ = pump_with_responder(lab)
    nsexec(part.ns, "ip", "link", "set", "eth0", "down")
    arp = bytes(Ether(src=FAKE_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, psrc=FAKE_IP, pdst="10.9.0.1"))
    part.host_h2a.send(arp)  # a write to a down TAP fails with EIO
    assert wait_for(lambda: pump.stats()["tap_write_errors"] >= 1)
    assert pump.running
    nsexec(part.ns, "ip", "link", "set", "eth0", "up")
    sent, received, out = ping(part.ns, FAKE_IP, count=2)
    assert received == 2, out


BLAST = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[1])):
    s.sendto(b"x" * 1400, ("10.9.0.2", 9))
print("sent", flush=True)
"""


def blast_into_a2h(lab, byte_limit: bool):
    """Partition "a" whose pump (byte limit @byte_limit) reads 3,000 UDP
    frames of 1,442 bytes off its TAP with nobody taking them from A2H;
    (part, pump) once the sender is done and the pump has slept since."""
    part = lab.partition("a", 1)
    part.attach_host()
    nsexec(part.ns, "ip", "neigh", "replace", "10.9.0.2", "lladdr", FAKE_MAC, "dev", "eth0")
    pump = part.start_pump(byte_limit=byte_limit)
    assert wait_for(lambda: pump.stats()["sleeps"] >= 1)
    assert nsexec(part.ns, "python3", "-c", BLAST, "3000", timeout=30).stdout.strip() == "sent"
    assert wait_for(lambda: pump.stats()["sleeps"] >= 2)
    return part, pump


def test_pump_byte_limit_stops_reading_the_tap_until_the_switch_takes(lab):
    from vnetshare.dataplane._native import lib

    part, pump = blast_into_a2h(lab, byte_limit=True)
    record = 1472  # 16-byte record header, 12-byte vnet header, 1,442-byte frame, 64-byte aligned
    held = part.host_a2h.used()
    st = pump.stats()
    # it stopped at the limit (nothing took a byte, so it never moved):
    # A2H holds the limit and at most one frame more; the TAP kept the rest
    assert st["a2h_limited"] >= 1 and st["a2h_limit"] == lib.DQL_START_DEFAULT, st
    assert lib.DQL_START_DEFAULT <= held < lib.DQL_START_DEFAULT + record, held
    # taking the frames wakes it: it reads the TAP's queue behind them (how
    # much depends on when it woke: the limit adapts, test_dql.py)
    for _ in range(held // record):
        assert part.host_a2h.recv() is not None
    assert wait_for(lambda: pump.stats()["tx_frames"] > st["tx_frames"] + 10)
    assert part.host_a2h.used() > 0


def test_pump_without_byte_limit_fills_a2h(lab):
    part, pump = blast_into_a2h(lab, byte_limit=False)
    from vnetshare.dataplane._native import lib

    assert part.host_a2h.used() > 2 * lib.DQL_START_DEFAULT
    assert pump.stats()["a2h_limited"] == 0


def test_pump_byte_limit_ping_under_a_tcp_stream_gets_replies(lab):
    a = lab.partition("a", 1)
    b = lab.partition("b", 2)
    for p in (a, b):
        p.attach_host()
        p.start_pump(byte_limit=True)
    sh_ = Shuttle(a, b)
    lab.closers.append(sh_.close)

    srv = lab.popen(b.ns, "python3", "-c", SERVER)
    assert srv.stdout.readline().strip() == "listening"
    cli = lab.popen(a.ns, "python3", "-c", CLIENT, "10.9.0.2", "64")
    assert wait_for(lambda: a.pump.stats()["tx_bytes"] > 4 << 20, timeout=30)
    sent, received, out = ping(a.ns, "10.9.0.2", count=5, interval=0.05)
    assert (sent, received) == (5, 5), out
    assert cli.wait(timeout=120) == 0
    sent_len, sent_sum = cli.stdout.read().split()
    got, _ = srv.communicate(timeout=30)
    assert got.split() == [sent_len, sent_sum], "bytes received differ from bytes sent"
    assert a.pump.stats()["a2h_limited"] >= 1  # the stream met the limit
