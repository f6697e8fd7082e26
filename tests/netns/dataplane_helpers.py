"""Helpers for the data-plane tests: namespaces, veths, partitions, commands.

Namespaces, links and addresses are made with vnetshare/linux/netns.py, as the
daemon makes them; commands run in a namespace with `ip netns exec`.
Everything made here is registered with a Lab and removed by Lab.close(),
which the tests call from a fixture finalizer, so a failing test leaves
nothing behind; a cleanup step that fails is raised after all the others
ran. Processes started here are ended by PID.
"""
from __future__ import annotations

import itertools
import os
import select
import signal
import struct
import subprocess
import threading

from vnetshare import CONSUMER, PRODUCER, Ring, create_fds
from vnetshare.linux import netns
from vnetshare.dataplane.pump import Pump
from vnetshare.dataplane.tap import open_tap

from waiting import wait_for  # noqa: F401 (the tests' one wait_for, re-exported)

_seq = itertools.count()

SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10


def sh(*argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    """Run a command, capture its output; raise with the output on failure."""
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


def nsexec(ns: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *argv, **kw)


def ifindex(name: str, ns: str | None = None) -> int:
    return netns.link(name, ns).index


def mac_of(i: int) -> str:
    return f"02:00:00:00:00:{i:02x}"


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


class Partition:
    """A partition as the agent sees it: netns, vnet_hdr TAP, rings, pump.

    The daemon's side of the rings is in .daemon_fds (a2h, h2a), to hand to
    the switch, or .host_a2h / .host_h2a Ring handles for a test that plays
    the daemon itself (attach_host()).
    """

    def __init__(self, lab: "Lab", name: str, mac: str, ip4: str | None, ip6: str | None,
                 ring_size: int = 1 << 22, offloads=("csum", "tso4", "tso6", "tso_ecn"),
                 mtu: int = 1500):
        self.lab = lab
        self.ns = lab.netns(name)
        self.mac = mac
        self.ring_size = ring_size
        self.tap = open_tap("eth0", self.ns, mac=mac, offloads=offloads)
        lab.fds.append(self.tap)
        netns.link_set("eth0", self.ns, mtu=mtu, up=True)
        if ip4:
            netns.add_address("eth0", ip4, self.ns)
        if ip6:
            netns.add_address("eth0", ip6, self.ns, nodad=True)
        self.a2h_fds = create_fds(ring_size)
        self.h2a_fds = create_fds(ring_size)
        lab.ringfds += [self.a2h_fds, self.h2a_fds]
        self.a2h = Ring(self.a2h_fds, PRODUCER, ring_size)
        self.h2a = Ring(self.h2a_fds, CONSUMER, ring_size)
        lab.rings += [self.a2h, self.h2a]
        self.pump: Pump | None = None
        self.host_a2h: Ring | None = None
        self.host_h2a: Ring | None = None

    def start_pump(self, burst: int = 0, coalesce_usecs: int | None = None,
                   byte_limit: bool | None = None) -> Pump:
        self.pump = Pump(self.tap, self.a2h, self.h2a, burst, coalesce_usecs=coalesce_usecs,
                         byte_limit=byte_limit)
        self.lab.pumps.append(self.pump)
        self.pump.start(name=f"pump-{self.ns}")
        return self.pump

    def attach_host(self) -> None:
        """Ring handles for a test that plays the daemon."""
        self.host_a2h = Ring(self.a2h_fds, CONSUMER, self.ring_size)
        self.host_h2a = Ring(self.h2a_fds, PRODUCER, self.ring_size)
        self.lab.rings += [self.host_a2h, self.host_h2a]

    def port_args(self) -> tuple:
        """(mac, a2h fds, h2a fds, ring size) for Switch.add_port()."""
        return (self.mac, self.a2h_fds, self.h2a_fds, self.ring_size)


class Lab:
    """Everything one test makes; close() removes it in reverse order."""

    def __init__(self):
        self.tag = f"{os.getpid() % 10000}{next(_seq)}"
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.fds: list[int] = []
        self.ringfds = []
        self.rings: list[Ring] = []
        self.pumps: list[Pump] = []
        self.procs: list[subprocess.Popen] = []
        self.closers = []

    def netns(self, name: str) -> str:
        full = f"dp{self.tag}{name}"
        netns.create(full)
        self.namespaces.append(full)
        netns.lo_up(full)
        return full

    def veth(self, here: str, there: str, there_ns: str) -> None:
        """A veth pair: @here in this namespace (down), @there in @there_ns (up)."""
        netns.veth_pair(here, there, peer_netns=there_ns)
        self.links.append(here)
        netns.link_set(there, there_ns, up=True)

    def partition(self, name: str, idx: int, **kw) -> Partition:
        ip4 = kw.pop("ip4", f"10.9.0.{idx}/24")
        ip6 = kw.pop("ip6", f"fd00:9::{idx}/64")
        return Partition(self, name, kw.pop("mac", mac_of(idx)), ip4, ip6, **kw)

    def popen(self, ns: str | None, *argv: str, **kw) -> subprocess.Popen:
        cmd = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
        self.procs.append(p)
        return p

    def close(self) -> None:
        """Remove everything, in reverse order; then raise the first step that failed.

        A process that outlives SIGKILL, a closer, link or namespace that
        cannot be removed is a leak the test must not hide. A pump whose loop
        had already ended (its error is the test's to check) is only freed.
        """
        errors: list[BaseException] = []

        def step(fn, *args) -> None:
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - every step runs, the first error is raised
                errors.append(e)

        def end_proc(p: subprocess.Popen) -> None:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.communicate(timeout=5)

        for p in self.procs:
            step(end_proc, p)
        for fn in reversed(self.closers):
            step(fn)
        for pump in self.pumps:
            if pump.running:
                step(pump.stop)
            else:
                try:
                    pump.stop()
                except OSError:
                    pass  # the loop's own error, raised to the test already
        for r in self.rings:
            r.close()
        for f in self.ringfds:
            f.close()
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass  # a test may have closed it itself
        for link in self.links:
            step(netns.quietly, netns.delete_link, link)
        for ns in reversed(self.namespaces):
            step(netns.quietly, netns.delete, ns)
        if errors:
            raise errors[0]


def ping(ns: str, addr: str, count: int = 3, size: int | None = None,
         interval: float = 0.2, wait: float = 2.0) -> tuple[int, int, str]:
    """(sent, received, output) of a ping from @ns."""
    argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait)]
    if size is not None:
        argv += ["-s", str(size)]
    p = nsexec(ns, *argv, addr, check=False, timeout=count * (interval + wait) + 10)
    import re

    m = re.search(r"(\d+) packets transmitted, (\d+) received", p.stdout)
    if not m:
        return 0, 0, p.stdout + p.stderr
    return int(m.group(1)), int(m.group(2)), p.stdout


def task_cpu_ticks(tid: int) -> int:
    """utime + stime of one thread of this process, in clock ticks."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Capture:
    """An AF_PACKET capture on an interface of a namespace, in a thread.

    The socket is opened by a thread inside @ns (netns.run_in), so it is
    bound there. .frames has every frame, .incoming those the interface
    received (not what the namespace itself sent). A receive error ends the
    capture and close() raises it: a capture that went blind must fail the
    test, not pass an absence check. A test that checks an absence also
    checks, in the same capture, a frame that had to be seen.

    With @vlan, the 802.1Q tag the kernel took out of a received frame
    (PACKET_AUXDATA, as tcpdump reads it) is put back in, so a tagged frame
    on the wire is seen tagged.
    """

    def __init__(self, ns: str, ifname: str, vlan: bool = False):
        import socket

        def opener():
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            try:
                s.bind((ifname, 0))
                if vlan:
                    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            except OSError:
                s.close()
                raise
            return s

        self.vlan = vlan

        self.frames: list[bytes] = []
        self.incoming: list[bytes] = []
        self.error: OSError | None = None
        self._stop = threading.Event()
        self.sock = netns.run_in(ns, opener)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self.sock], [], [], 0.05)
                if r:
                    frame, addr = self._recv()
                    self.frames.append(frame)
                    if addr[2] != 4:  # PACKET_OUTGOING
                        self.incoming.append(frame)
            except OSError as e:
                if not self._stop.is_set():
                    self.error = e
                return

    def _recv(self) -> tuple[bytes, tuple]:
        if not self.vlan:
            return self.sock.recvfrom(70000)
        frame, anc, _, addr = self.sock.recvmsg(70000, 1024)
        for level, kind, data in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= 20:
                status, _, _, _, _, tci, tpid = struct.unpack_from("=IIIHHHH", data)
                if status & TP_STATUS_VLAN_VALID:
                    tag = struct.pack("!HH", tpid or 0x8100, tci)
                    frame = frame[:12] + tag + frame[12:]
        return frame, addr

    def close(self) -> list[bytes]:
        self._stop.set()
        self._thread.join(2)
        assert not self._thread.is_alive(), "capture thread did not stop"
        self.sock.close()
        if self.error is not None:
            raise AssertionError(f"capture failed, it saw nothing after: {self.error!r}")
        return self.frames
