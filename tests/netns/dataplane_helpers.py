"""Helpers for the data-plane tests: namespaces, veths, partitions, commands.

Small local fixtures over `ip` (vnetshare/netns.py is written in parallel).
Everything made here is registered with a Lab and removed by Lab.close(),
which the tests call from a fixture finalizer, so a failing test leaves
nothing behind. Processes started here are ended by PID.
"""
from __future__ import annotations

import itertools
import os
import select
import signal
import subprocess
import threading
import time

from vnetshare import CONSUMER, PRODUCER, Ring, create_fds
from vnetshare.pump import Pump
from vnetshare.tap import open_tap

_seq = itertools.count()


def sh(*argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    """Run a command, capture its output; raise with the output on failure."""
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


def nsexec(ns: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *argv, **kw)


def ifindex(name: str, ns: str | None = None) -> int:
    path = f"/sys/class/net/{name}/ifindex"
    if ns is None:
        with open(path) as f:
            return int(f.read())
    return int(nsexec(ns, "cat", path).stdout)


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
        nsexec(self.ns, "ip", "link", "set", "eth0", "mtu", str(mtu), "up")
        if ip4:
            nsexec(self.ns, "ip", "addr", "add", ip4, "dev", "eth0")
        if ip6:
            nsexec(self.ns, "ip", "addr", "add", ip6, "dev", "eth0", "nodad")
        self.a2h_fds = create_fds(ring_size)
        self.h2a_fds = create_fds(ring_size)
        lab.ringfds += [self.a2h_fds, self.h2a_fds]
        self.a2h = Ring(self.a2h_fds, PRODUCER, ring_size)
        self.h2a = Ring(self.h2a_fds, CONSUMER, ring_size)
        lab.rings += [self.a2h, self.h2a]
        self.pump: Pump | None = None
        self.host_a2h: Ring | None = None
        self.host_h2a: Ring | None = None

    def start_pump(self, burst: int = 0, coalesce_usecs: int | None = None) -> Pump:
        self.pump = Pump(self.tap, self.a2h, self.h2a, burst, coalesce_usecs=coalesce_usecs)
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
        sh("ip", "netns", "add", full)
        self.namespaces.append(full)
        nsexec(full, "ip", "link", "set", "lo", "up")
        return full

    def veth(self, here: str, there: str, there_ns: str) -> None:
        """A veth pair: @here in this namespace (down), @there moved to @there_ns (up)."""
        sh("ip", "link", "add", here, "type", "veth", "peer", "name", there)
        self.links.append(here)
        sh("ip", "link", "set", there, "netns", there_ns)
        nsexec(there_ns, "ip", "link", "set", there, "up")

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
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                p.communicate(timeout=5)
            except Exception:
                pass
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception:
                pass
        for pump in self.pumps:
            try:
                pump.stop()
            except Exception:
                pass
        for r in self.rings:
            r.close()
        for f in self.ringfds:
            f.close()
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        for link in self.links:
            sh("ip", "link", "del", link, check=False)
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)


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

    Opened from a thread that entered @ns, so the socket is bound there.
    """

    def __init__(self, ns: str, ifname: str):
        import socket

        self.frames: list[bytes] = []
        self._stop = threading.Event()
        box = {}

        def opener():
            from ctypes import CDLL, get_errno

            libc = CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, 0x40000000) != 0:
                    box["err"] = OSError(get_errno(), "setns")
                    return
            finally:
                os.close(fd)
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            s.bind((ifname, 0))
            box["sock"] = s

        t = threading.Thread(target=opener)
        t.start()
        t.join()
        if "err" in box:
            raise box["err"]
        self.sock = box["sock"]
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if r:
                try:
                    self.frames.append(self.sock.recv(70000))
                except OSError:
                    return

    def close(self) -> list[bytes]:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        return self.frames


def wait_for(pred, timeout: float = 5.0, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
