"""Measurement helpers: CPU and memory from /proc, link counters from /sys,
what other processes took meanwhile, ping round trips, and iperf3 servers and
clients that run in the background (next to a ping, or one per partition).

One-shot iperf3 runs and ping counting are vnetshare.linux.probe's, as in the
tests and `vnetshare lab demo`: everything judges traffic the same way.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import statistics
import subprocess
import threading
import time
from typing import TYPE_CHECKING

from vnetshare.linux.probe import netns_cmd, ping

from .common import BenchError, stop

if TYPE_CHECKING:
    from .paths import Made

CLK_TCK = os.sysconf("SC_CLK_TCK")


def pct(samples: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(samples)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


def median(vals: list) -> float | None:
    """Median of the values measured (None: a failed run), None if none."""
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


# --- /proc readings -------------------------------------------------------------

def proc_cpu(pids: list[int]) -> float:
    """utime + stime of @pids (all their threads), seconds; gone PIDs count 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except (OSError, ValueError, IndexError):
            pass
    return total / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, softirq) seconds summed over every core since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = v[:7]
    return (user + nice + system + irq + softirq) / CLK_TCK, softirq / CLK_TCK


def mem_kib(pid: int) -> dict:
    """smaps_rollup (Pss_Anon, Pss_File, Rss, ...) and status (RssAnon, ...) in KiB."""
    out: dict[str, int] = {}
    for path in (f"/proc/{pid}/smaps_rollup", f"/proc/{pid}/status"):
        try:
            with open(path) as f:
                for line in f:
                    m = re.match(r"(\w+):\s+(\d+) kB", line)
                    if m:
                        out[m.group(1)] = int(m.group(2))
        except OSError:
            pass
    return out


def ring_memfds(pid: int) -> tuple[int, int, int]:
    """(count, bytes allocated, bytes size) of the ring memfds @pid holds."""
    seen: dict[int, tuple[int, int]] = {}
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        p = os.path.join(fd_dir, fd)
        try:
            if not os.readlink(p).startswith("/memfd:vnetshare-ring"):
                continue
            st = os.stat(p)
        except OSError:
            continue
        seen[st.st_ino] = (st.st_blocks * 512, st.st_size)
    return len(seen), sum(a for a, _ in seen.values()), sum(s for _, s in seen.values())


def link_counter(ifname: str, what: str) -> int:
    with open(f"/sys/class/net/{ifname}/statistics/{what}") as f:
        return int(f.read())


class Foreign(threading.Thread):
    """CPU used meanwhile by processes outside this run (another build or test
    on a shared machine): every @period s, the utime+stime growth of every
    process that is neither a kernel thread nor a descendant of this one.
    A process that starts and ends between two scans is missed."""

    PF_KTHREAD = 0x00200000

    def __init__(self, period: float = 0.5):
        super().__init__(name="bench-foreign", daemon=True)
        self.period = period
        self.stop_ev = threading.Event()
        self.last: dict[tuple[int, int], int] = {}
        self.by_comm: dict[str, float] = {}
        self.lock = threading.Lock()
        with open("/proc/uptime") as f:
            self.t0_ticks = float(f.read().split()[0]) * CLK_TCK

    def scan(self) -> None:
        me = os.getpid()
        info = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    raw = f.read()
            except OSError:
                continue
            comm = raw[raw.index("(") + 1:raw.rindex(")")]
            v = raw.rsplit(")", 1)[1].split()
            info[int(d)] = (int(v[1]), int(v[6]), int(v[11]) + int(v[12]), int(v[19]), comm)
        ours: dict[int, bool] = {}

        def mine(pid: int) -> bool:
            chain = []
            while pid not in ours:
                if pid == me:
                    ours[pid] = True
                    break
                if pid <= 1 or pid not in info:
                    ours[pid] = False
                    break
                chain.append(pid)
                pid = info[pid][0]
            for c in chain:
                ours[c] = ours[pid]
            return ours[pid]

        for pid, (_ppid, flags, cpu, start, comm) in info.items():
            if flags & self.PF_KTHREAD or mine(pid):
                continue
            key = (pid, start)
            prev = self.last.get(key)
            if prev is None:  # new since the last scan: all of it if born during the run
                prev = 0 if start > self.t0_ticks else cpu
            if cpu > prev:
                with self.lock:
                    self.by_comm[comm] = self.by_comm.get(comm, 0.0) + (cpu - prev) / CLK_TCK
            self.last[key] = cpu

    def run(self) -> None:
        while not self.stop_ev.is_set():
            try:
                self.scan()
            except (OSError, ValueError, IndexError):
                pass
            self.stop_ev.wait(self.period)

    def total(self) -> float:
        with self.lock:
            return sum(self.by_comm.values())

    def top(self) -> str:
        with self.lock:
            top = sorted(self.by_comm.items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{c} {t:.1f} s" for c, t in top if t >= 0.1)

    def stop(self) -> None:
        self.stop_ev.set()
        self.join()


class Section:
    """Times a section and what other processes used meanwhile."""

    def __init__(self, foreign: Foreign, name: str, out: dict):
        self.foreign, self.name, self.out = foreign, name, out

    def __enter__(self) -> "Section":
        self.foreign.scan()
        self.c0, self.t0 = self.foreign.total(), time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.foreign.scan()
        cpu, secs = self.foreign.total() - self.c0, time.monotonic() - self.t0
        self.out[self.name] = (cpu, cpu / (secs * os.cpu_count()) * 100)


# --- tools ----------------------------------------------------------------------------

def ping_times(ns: str, addr: str, count: int, interval: float = 0.01) -> tuple[list[float], int]:
    """Per-packet round trips in microseconds, and how many were sent."""
    r = ping(ns, addr, count=count, interval=interval, timeout=1)
    times = [float(t) * 1000 for t in re.findall(r"time=([\d.]+) ms", r.output)]
    if not times:
        raise BenchError(f"ping {addr} from {ns}: no reply ({r.output.strip()[-200:]})")
    return times, r.sent or count


def wait_reachable(ns: str, addr: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        r = ping(ns, addr, count=1, timeout=1)
        if r.received:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{addr} unreachable from {ns} after {timeout:g} s")
        time.sleep(0.2)


class IperfServer:
    """A persistent iperf3 server (many tests), its output in a file."""

    def __init__(self, made: Made, ns: str, addr: str, port: int):
        self.log = os.path.join(made.tmp, f"iperf3-s-{ns}-{port}.log")
        with open(self.log, "wb") as f:
            self.p = made.proc(netns_cmd(ns, ["iperf3", "-s", "--forceflush", "-B", addr, "-p", str(port)]),
                               stdout=f, stderr=subprocess.STDOUT)

    def ready(self) -> bool:
        if self.p.poll() is not None:
            raise BenchError(f"iperf3 server exited: {open(self.log).read()[-200:]}")
        with open(self.log, errors="replace") as f:
            return "listening" in f.read()


def wait_servers(servers: list[IperfServer], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(s.ready() for s in servers):
        if time.monotonic() > deadline:
            raise BenchError(f"iperf3 servers not listening after {timeout:g} s")
        time.sleep(0.05)


class IperfClient:
    """An iperf3 client run in the background, JSON output in a file."""

    def __init__(self, made: Made, ns: str, addr: str, port: int, seconds: float, streams: int = 1):
        self.seconds = seconds
        self.out = os.path.join(made.tmp, f"iperf3-c-{ns}-{port}.json")
        with open(self.out, "wb") as f:
            self.p = made.proc(netns_cmd(ns, ["iperf3", "-c", addr, "-p", str(port), "-t", f"{seconds:g}",
                                              "-P", str(streams), "-J"]),
                               stdout=f, stderr=subprocess.STDOUT)

    def result(self, deadline: float) -> int:
        """Wait until it ends (by @deadline, monotonic); bytes received, or BenchError."""
        try:
            self.p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop(self.p)
            raise BenchError("iperf3 client did not end in time") from None
        try:
            with open(self.out) as f:
                data = json.load(f)
        except (OSError, ValueError):
            raise BenchError(f"iperf3 client: {open(self.out, errors='replace').read()[-200:]}") from None
        if "error" in data:
            raise BenchError(f"iperf3 client: {data['error']}")
        return data["end"]["sum_received"]["bytes"]


# --- a broadcast storm ------------------------------------------------------------------

# Runs in the flooding namespace: an AF_PACKET socket on its interface sends
# one 60-byte frame (Ethernet broadcast, IPv4 UDP from its own MAC and
# address to the subnet's broadcast address, port 9: a frame the identity
# guard lets pass, so only storm control stands in its way) as fast as one
# Python loop can, until its deadline or SIGTERM; then prints how many and
# over how long. Sends that fail (ENOBUFS: a full queue) are counted apart.
FLOOD = r"""
import signal, socket, struct, sys, time
ifname, src, dst, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
mac = s.getsockname()[4]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + 18, 0, 0, 64, 17, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
c = sum(struct.unpack("!10H", ip))
c = (c & 0xFFFF) + (c >> 16); c = (c & 0xFFFF) + (c >> 16)
ip = ip[:10] + struct.pack("!H", ~c & 0xFFFF) + ip[12:]
frame = b"\xff" * 6 + mac + b"\x08\x00" + ip + struct.pack("!HHHH", 9, 9, 8 + 18, 0) + bytes(18)
def _end(*_): raise SystemExit(0)
signal.signal(signal.SIGTERM, _end)
send, now = s.send, time.monotonic
n = failed = 0
t0 = now(); end = t0 + secs
try:
    while now() < end:
        try:
            for _ in range(256):
                send(frame)
                n += 1
        except OSError:
            failed += 1
finally:
    print(n, failed, now() - t0, flush=True)
"""


class Flooder:
    """A broadcast storm from a namespace, bounded: it ends by itself after
    @seconds (and is stopped, by PID, when the measurement ends)."""

    def __init__(self, made: Made, ns: str, ifname: str, src: str, bcast: str, seconds: float):
        import sys
        self.out = os.path.join(made.tmp, f"flood-{ns}.txt")
        with open(self.out, "wb") as f:
            self.p = made.proc(netns_cmd(ns, [sys.executable, "-c", FLOOD, ifname, src, bcast, f"{seconds:g}"]),
                               stdout=f, stderr=subprocess.STDOUT)
        self.bound = seconds

    def running(self) -> bool:
        return self.p.poll() is None

    def end(self) -> tuple[int, float]:
        """Stop it; (frames sent, seconds it ran)."""
        stop(self.p, grace=5.0)
        try:
            with open(self.out) as f:
                text = f.read()
            n, _failed, secs = text.split()[-3:]
            return int(n), float(secs)
        except (OSError, ValueError):
            raise BenchError(f"flooder: {open(self.out, errors='replace').read()[-200:]}") from None


class Capture:
    """`vnetshare capture PARTITION -w /dev/null`: a reader as fast as the
    capture client can be; end() stops it (Ctrl-C) and returns (frames
    captured, frames it could not keep), from what it reports, and
    .filtered the frames its @filter refused."""

    def __init__(self, made: Made, partition: str, *filter: str):
        from vnetshare.linux.procs import python_argv
        self.err = os.path.join(made.tmp, f"capture-{partition}.txt")
        with open(self.err, "wb") as f:
            self.p = made.proc(python_argv("vnetshare", "--socket", made.sock, "capture", partition,
                                           "-w", "/dev/null", *filter), stdout=subprocess.DEVNULL, stderr=f)
        deadline = time.monotonic() + 10
        while "capturing" not in self._text():
            if self.p.poll() is not None or time.monotonic() > deadline:
                stop(self.p)
                raise BenchError(f"capture did not start: {self._text()[-300:]}")
            time.sleep(0.05)

    def _text(self) -> str:
        with open(self.err, errors="replace") as f:
            return f.read()

    def end(self) -> tuple[int, int]:
        stop(self.p, signal.SIGINT, grace=10.0)
        text = self._text()
        m = re.search(r"(\d+) frames? captured", text)
        if not m:
            raise BenchError(f"capture: {text[-300:]}")
        lost = re.search(r"(\d+) frames? not captured", text)
        filtered = re.search(r"(\d+) frames? filtered out", text)
        self.filtered = int(filtered.group(1)) if filtered else 0
        return int(m.group(1)), int(lost.group(1)) if lost else 0

