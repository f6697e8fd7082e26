#!/usr/bin/env python3
"""bench.py - measure vnetshare side by side with its peers, in one run.

    python3 scripts/bench.py [ring|net|scale|all] [--json] [--quick] [--reps N]
                             [--only PATTERN]... [--check]

Without a subcommand it runs all three. net and scale need root and make
network namespaces, veths and processes: run them in the sandbox,
`./scripts/sandbox.sh python3 scripts/bench.py`.

ring: cross-process throughput through the shared-memory ring for 64 B,
1500 B and 64 KiB frames, and the same transfer through a Unix
SOCK_SEQPACKET socketpair for scale; then the round trip (ping-pong) with
the waiting side polling and with it sleeping on the eventfd. Each side is
its own process, pinned to its own core when there are two; every figure is
the median of --reps runs, and ratios come from the same run. The loops are
C (native/ring_bench.c).

net: the same workloads through every path, one after the other in each
repetition (so slow drifts of a shared machine hit every path alike):
  veth         two namespaces joined by a veth pair
  bridge       a Linux bridge (in its own namespace) with a veth to each of
               two namespaces
  macvlan      two macvlans in bridge mode on one lower veth, each moved into
               its own namespace: macvlan to macvlan
  macvlan-lan  the same macvlan to a LAN host: the lower veth's peer lives in
               a third namespace (the lab topology, with macvlan as the NIC
               sharer)
  vde          vde_switch with two TAPs, each in its namespace, each plugged
               in by a vde_plug2tap process
  vns          vnetshare partition to partition (the lab topology: a veth
               uplink to a LAN namespace, the daemon on it, two partitions)
  vns-lan      vnetshare partition to the LAN host through the uplink
Workloads: iperf3 TCP 1 and 4 streams (Gbit/s received), iperf3 UDP 64-byte
datagrams (packets per second received), ping -i 0.01 round trip p50/p99
idle and under a TCP stream, and CPU seconds per GB received during the
1-stream run: of the switch's own processes (daemon + agents; vde_switch +
vde_plug2tap; none for the kernel peers, whose work is softirq in whatever
task runs it) and of the whole machine (/proc/stat, every core: iperf3 ends,
kernel, switch, and any background load).

scale: vnetshare only, with 1, 8, 32, 64 partitions: aggregate TCP
throughput of one iperf3 stream per partition to its own server on the LAN
host (bytes leaving the uplink over a window), CPU of daemon + agents while
idle, time to create a partition (p50, p99 of the control request the CLI
waits for; and of the whole `vnetshare partition create` command), memory per
partition (agent PSS, daemon growth, ring memfd pages), and whether every
partition worked.

Python only sets up, starts the real tools (iperf3, ping, vde_switch, the
vnetshare daemon), reads /proc and /sys, and prints. Everything net and
scale make carries the prefix `vnb`: they refuse to start if such a
namespace or link exists, never touch another interface, and remove every
namespace, link and process they made (by name and PID) at the end, on
failure and on ^C/SIGTERM. Every child process is bounded in time.
"""
from __future__ import annotations

import argparse
import ctypes
import fnmatch
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from vnetshare import Ring, create_fds, procs
from vnetshare._native import ffi, lib
from vnetshare.errors import check

SIZES = {"64B": 64, "1500B": 1500, "64KiB": 65536}
COUNTS = {"64B": 4_000_000, "1500B": 2_000_000, "64KiB": 60_000}
RTT_COUNT = 200_000
TIMEOUT_MS = 60_000


CPUS = sorted(os.sched_getaffinity(0))


def _pin(cpu: int) -> None:
    """Put this process on its own core (children inherit, so use CPUS)."""
    if len(CPUS) > 1:
        os.sched_setaffinity(0, {CPUS[cpu % len(CPUS)]})


def _result(res) -> dict:
    return {
        "records": res.records,
        "bytes": res.bytes,
        "elapsed_ns": res.elapsed_ns,
        "bad": res.bad,
    }


def _in_child(fn) -> tuple[int, int]:
    """Run fn() in a forked child; return (pid, read end of its result pipe)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(rfd)
            os.write(wfd, json.dumps(fn()).encode())
        except BaseException as e:  # noqa: BLE001 - report, never return to caller
            os.write(wfd, json.dumps({"error": repr(e)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    return pid, rfd


def _join(pid: int, rfd: int) -> dict:
    chunks = []
    while chunk := os.read(rfd, 65536):
        chunks.append(chunk)
    os.close(rfd)
    os.waitpid(pid, 0)
    out = json.loads(b"".join(chunks) or b"{}")
    if "error" in out:
        raise RuntimeError(f"bench child failed: {out['error']}")
    return out


def ring_stream(frame_len: int, count: int) -> dict:
    """Producer in this process, consumer in a child; consumer's view counts."""
    fds = create_fds()
    sizes = ffi.new("uint32_t[1]", [frame_len])
    try:
        def consumer():
            _pin(1)
            with Ring(fds, "consumer") as r:
                res = ffi.new("struct bench_result *")
                check(lib.bench_consume(r.handle, count, sizes, 1, 0, TIMEOUT_MS, res))
                return _result(res)

        pid, rfd = _in_child(consumer)
        _pin(0)
        with Ring(fds, "producer") as r:
            res = ffi.new("struct bench_result *")
            check(lib.bench_produce(r.handle, count, sizes, 1, 32, 0, 0, 0, TIMEOUT_MS, res))
        out = _join(pid, rfd)
    finally:
        fds.close()
    if out["bad"] or out["records"] != count:
        raise RuntimeError(f"ring stream lost or damaged records: {out}")
    return out


def sock_stream(frame_len: int, count: int) -> dict:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

        def consumer():
            _pin(1)
            a.close()
            res = ffi.new("struct bench_result *")
            check(lib.bench_sock_recv(b.fileno(), count, frame_len, res))
            return _result(res)

        pid, rfd = _in_child(consumer)
        _pin(0)
        res = ffi.new("struct bench_result *")
        check(lib.bench_sock_send(a.fileno(), count, frame_len, res))
        out = _join(pid, rfd)
    finally:
        a.close()
        b.close()
    if out["bad"] or out["records"] != count:
        raise RuntimeError(f"socketpair stream lost or damaged messages: {out}")
    return out


def ring_rtt(count: int, poll: bool) -> float:
    """Median round trip in microseconds, 64-byte frames."""
    flags = lib.BENCH_POLL if poll else 0
    ab, ba = create_fds(), create_fds()
    try:
        def pong():
            _pin(1)
            with Ring(ab, "consumer") as rx, Ring(ba, "producer") as tx:
                res = ffi.new("struct bench_result *")
                check(lib.bench_pong(rx.handle, tx.handle, count, flags, TIMEOUT_MS, res))
                return _result(res)

        pid, rfd = _in_child(pong)
        _pin(0)
        rtt = ffi.new("uint64_t[]", count)
        with Ring(ab, "producer") as tx, Ring(ba, "consumer") as rx:
            res = ffi.new("struct bench_result *")
            check(lib.bench_ping(tx.handle, rx.handle, count, 64, flags, TIMEOUT_MS, rtt, res))
        _join(pid, rfd)
    finally:
        ab.close()
        ba.close()
    if res.bad:
        raise RuntimeError("ping-pong frames damaged")
    samples = sorted(rtt[i] for i in range(count // 10, count))  # drop warm-up
    return statistics.median(samples) / 1000.0


def bench_ring(reps: int, quick: bool) -> list[dict]:
    scale = 20 if quick else 1
    rows = []

    def med(fn) -> dict:
        runs = [fn() for _ in range(reps)]
        return sorted(runs, key=lambda r: r["elapsed_ns"])[len(runs) // 2]

    for name, flen in SIZES.items():
        count = COUNTS[name] // scale
        for kind, fn in (("ring", ring_stream), ("socketpair", sock_stream)):
            r = med(lambda: fn(flen, count))
            secs = r["elapsed_ns"] / 1e9
            rows.append({"name": f"{kind}_{name}_records_per_s", "value": round(r["records"] / secs), "unit": "records/s"})
            rows.append({"name": f"{kind}_{name}_GBps", "value": round(r["bytes"] / secs / 1e9, 3), "unit": "GB/s"})
    for poll in (True, False):
        vals = [ring_rtt(RTT_COUNT // scale, poll) for _ in range(reps)]
        rows.append({"name": f"ring_rtt_{'poll' if poll else 'sleep'}_us", "value": round(statistics.median(vals), 2), "unit": "us"})
    by = {r["name"]: r["value"] for r in rows}
    for name in SIZES:
        rows.append({
            "name": f"ratio_ring_vs_socketpair_{name}_records",
            "value": round(by[f"ring_{name}_records_per_s"] / by[f"socketpair_{name}_records_per_s"], 2),
            "unit": "x",
        })
    return rows


# =============================================================================
# net and scale: real tools through real paths
# =============================================================================

PREFIX = "vnb"             # every namespace, link and partition made here
LAN_V4 = "198.18.0.1"      # vnetshare lab LAN host (198.18.0.0/15: benchmarking)
VNS_UPLINK = "vnb-up"
VNS_LAN_NS = "vnb-lan"
MV_LOWER = "vnb-mvl"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)

WORKLOADS = ("tcp1", "tcp4", "udp64", "ping", "pingload")
PATHS = ("veth", "bridge", "macvlan", "macvlan-lan", "vde", "vns", "vns-lan")


class BenchError(RuntimeError):
    """A measurement or a setup step failed (the run goes on, the row is empty)."""


def _say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    # preexec_fn: the child (and what it execs) gets SIGKILL if this process
    # dies without cleaning up: no load outlives the benchmark.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _popen(argv: list[str], **kw) -> subprocess.Popen:
    """Popen from the main thread (PDEATHSIG follows the forking thread)."""
    assert threading.current_thread() is threading.main_thread()
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(argv, preexec_fn=_die_with_parent, **kw)


def _stop(p: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
    """End a child we started, by its PID (never by name)."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=grace)
        except ProcessLookupError:
            pass
    for f in (p.stdin, p.stdout, p.stderr):
        if f:
            try:
                f.close()
            except OSError:
                pass


def _ip(*argv: str) -> None:
    r = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=15)
    if r.returncode != 0:
        raise BenchError(f"ip {' '.join(argv)}: {r.stderr.strip()}")


def _pct(samples: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(samples)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


def _median(vals: list) -> float | None:
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


# --- what this run made, removed by name and PID ------------------------------

class Made:
    """Everything this run made: namespaces, root links, processes, the daemon."""

    def __init__(self) -> None:
        from vnetshare import netns
        self.nsmod = netns
        self.netns: list[str] = []
        self.links: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.daemon: subprocess.Popen | None = None
        self.sock = ""
        self.partitions: list[str] = []
        self.tmp = tempfile.mkdtemp(prefix="vnetshare-bench-")

    def ns(self, name: str) -> str:
        """A fresh namespace with lo up."""
        if self.nsmod.exists(name):
            raise BenchError(f"netns {name} already exists: not ours, not touched")
        self.nsmod.create(name)
        self.netns.append(name)
        self.nsmod.lo_up(name)
        return name

    def root_link(self, name: str) -> str:
        """Claim a link name in this namespace (made by the caller next)."""
        if any(l.ifname == name for l in self.nsmod.links()):
            raise BenchError(f"link {name} already exists: not ours, not touched")
        self.links.append(name)
        return name

    def proc(self, argv: list[str], **kw) -> subprocess.Popen:
        p = _popen(argv, **kw)
        self.procs.append(p)
        return p

    def agent_pids(self) -> list[int]:
        """The daemon's agent children (never anyone else's processes)."""
        if self.daemon is None:
            return []
        return procs.agents_of(self.daemon.pid)

    def close(self) -> None:
        """Remove everything, whatever state it is in; report, never raise."""
        def step(what: str, fn, *a) -> None:
            try:
                fn(*a)
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                _say(f"cleanup: {what}: {e}")

        for p in reversed(self.procs):
            step(f"process {p.pid}", _stop, p)
        self.procs.clear()
        if self.daemon is not None:
            agents = self.agent_pids()
            step(f"daemon {self.daemon.pid}", _stop, self.daemon, signal.SIGTERM, 20.0)
            for pid in agents:  # only those the daemon failed to stop
                step(f"agent {pid}", _kill_agent, pid, self.partitions)
            self.daemon = None
        # partitions outlive the daemon by design: their namespaces take the TAPs
        for name in reversed(self.partitions):
            step(f"netns {name}", self.nsmod.quietly, self.nsmod.delete, name)
        for name in reversed(self.netns):
            step(f"netns {name}", self.nsmod.quietly, self.nsmod.delete, name)
        for name in reversed(self.links):
            step(f"link {name}", self.nsmod.quietly, self.nsmod.delete_link, name)
        self.partitions.clear()
        self.netns.clear()
        self.links.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _kill_agent(pid: int, names: list[str]) -> None:
    if procs.is_agent(pid, names):
        os.kill(pid, signal.SIGKILL)


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
    from vnetshare.probe import netns_cmd
    argv = ["ping", "-n", "-i", str(interval), "-c", str(count), "-W", "1", addr]
    limit = count * (interval + 0.01) + 15
    try:
        out = subprocess.run(netns_cmd(ns, argv), capture_output=True, text=True, timeout=limit,
                             preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired:
        raise BenchError(f"ping {addr} from {ns}: no end after {limit:.0f} s") from None
    times = [float(t) * 1000 for t in re.findall(r"time=([\d.]+) ms", out.stdout)]
    m = re.search(r"(\d+) packets transmitted", out.stdout)
    if not times:
        raise BenchError(f"ping {addr} from {ns}: no reply ({(out.stdout + out.stderr).strip()[-200:]})")
    return times, int(m.group(1)) if m else count


def wait_reachable(ns: str, addr: str, timeout: float = 10.0) -> None:
    from vnetshare.probe import ping
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
        from vnetshare.probe import netns_cmd
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
        from vnetshare.probe import netns_cmd
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
            _stop(self.p)
            raise BenchError("iperf3 client did not end in time") from None
        try:
            with open(self.out) as f:
                data = json.load(f)
        except (OSError, ValueError):
            raise BenchError(f"iperf3 client: {open(self.out, errors='replace').read()[-200:]}") from None
        if "error" in data:
            raise BenchError(f"iperf3 client: {data['error']}")
        return data["end"]["sum_received"]["bytes"]


# --- the paths ------------------------------------------------------------------------

@dataclass
class Path:
    name: str
    client: str                  # netns of the sender / pinger
    server: str                  # netns of the receiver
    addr: str                    # receiver's address
    pids: Callable[[], list[int]] | None = None  # the switch's processes; None: kernel


def _addr_up(nsmod, ns: str, ifname: str, cidr: str) -> None:
    nsmod.add_address(ifname, cidr, ns)
    nsmod.link_set(ifname, ns, up=True)


def build_veth(made: Made) -> list[Path]:
    n = made.nsmod
    a, b = made.ns("vnb-veth-a"), made.ns("vnb-veth-b")
    n.veth_pair("eth0", "eth0", a, b)
    _addr_up(n, a, "eth0", "198.18.10.1/24")
    _addr_up(n, b, "eth0", "198.18.10.2/24")
    return [Path("veth", a, b, "198.18.10.2")]


def build_bridge(made: Made) -> list[Path]:
    n = made.nsmod
    h, a, b = made.ns("vnb-br"), made.ns("vnb-br-a"), made.ns("vnb-br-b")
    _ip("-n", h, "link", "add", "br0", "type", "bridge")
    for port, ns, ip in (("pa", a, "198.18.11.1/24"), ("pb", b, "198.18.11.2/24")):
        n.veth_pair(port, "eth0", h, ns)
        _ip("-n", h, "link", "set", port, "master", "br0")
        n.link_set(port, h, up=True)
        _addr_up(n, ns, "eth0", ip)
    n.link_set("br0", h, up=True)
    return [Path("bridge", a, b, "198.18.11.2")]


def build_macvlan(made: Made) -> list[Path]:
    n = made.nsmod
    lan, a, b = made.ns("vnb-mv-lan"), made.ns("vnb-mv-a"), made.ns("vnb-mv-b")
    n.veth_pair(made.root_link(MV_LOWER), "lan0", None, lan)
    n.link_set(MV_LOWER, None, up=True)
    _addr_up(n, lan, "lan0", "198.18.12.1/24")
    for x, ns, ip in (("a", a, "198.18.12.11/24"), ("b", b, "198.18.12.12/24")):
        dev = made.root_link(f"vnb-mv{x}")
        _ip("link", "add", dev, "link", MV_LOWER, "type", "macvlan", "mode", "bridge")
        _ip("link", "set", dev, "netns", ns)
        _addr_up(n, ns, dev, ip)
    return [Path("macvlan", a, b, "198.18.12.12"), Path("macvlan-lan", a, lan, "198.18.12.1")]


def build_vde(made: Made) -> list[Path]:
    from vnetshare.probe import netns_cmd
    n = made.nsmod
    missing = [t for t in ("vde_switch", "vde_plug2tap") if not shutil.which(t)]
    if missing:
        raise BenchError(f"{' and '.join(missing)} missing: install Debian's vde2 (scripts/setup.sh does)")
    a, b = made.ns("vnb-vde-a"), made.ns("vnb-vde-b")
    ctl = os.path.join(made.tmp, "vde.ctl")
    with open(os.path.join(made.tmp, "vde_switch.log"), "wb") as log:
        # its console reads stdin and it ends on EOF: keep a pipe open
        sw = made.proc(["vde_switch", "-s", ctl], stdin=subprocess.PIPE, stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(ctl, "ctl")):
        if sw.poll() is not None or time.monotonic() > deadline:
            raise BenchError("vde_switch did not start")
        time.sleep(0.02)
    plugs = []
    for ns, ip in ((a, "198.18.13.1/24"), (b, "198.18.13.2/24")):
        with open(os.path.join(made.tmp, f"vde_plug2tap-{ns}.log"), "wb") as log:
            plugs.append(made.proc(netns_cmd(ns, ["vde_plug2tap", "-s", ctl, "tap0"]), stdout=log, stderr=log))
        deadline = time.monotonic() + 10
        while not any(l.ifname == "tap0" for l in n.links(ns)):
            if plugs[-1].poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"vde_plug2tap did not make tap0 in {ns}")
            time.sleep(0.02)
        _addr_up(n, ns, "tap0", ip)
    pids = [sw.pid] + [p.pid for p in plugs]
    return [Path("vde", a, b, "198.18.13.2", pids=lambda: pids)]


DAEMON_ARGS: list[str] = []  # --daemon-arg


def start_vns(made: Made) -> None:
    """The lab topology: LAN namespace, veth uplink, the daemon on it."""
    from vnetshare.client import DaemonUnreachable, call
    n = made.nsmod
    lan = made.ns(VNS_LAN_NS)
    n.veth_pair(made.root_link(VNS_UPLINK), "lan0", None, lan)
    n.link_set(VNS_UPLINK, None, up=True)
    _addr_up(n, lan, "lan0", f"{LAN_V4}/24")
    made.sock = os.path.join(made.tmp, "control.sock")
    log_path = os.path.join(made.tmp, "daemon.log")
    with open(log_path, "wb") as log:
        made.daemon = _popen([sys.executable, "-m", "vnetshare", "--socket", made.sock, "daemon",
                              "--uplink", VNS_UPLINK, "--state-dir", made.tmp, *DAEMON_ARGS],
                             stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 20
    while True:
        if made.daemon.poll() is not None:
            raise BenchError(f"the daemon exited: {open(log_path, errors='replace').read()[-400:]}")
        try:
            call(made.sock, "daemon.status", timeout=2)
            return
        except DaemonUnreachable:
            if time.monotonic() > deadline:
                raise BenchError("the daemon did not answer within 20 s") from None
            time.sleep(0.05)


def vns_pids(made: Made) -> list[int]:
    return [made.daemon.pid] + made.agent_pids()


def create_partition(made: Made, name: str, ip: str) -> float:
    """Create partition @name (control request, as the CLI sends it); seconds taken."""
    from vnetshare.client import DaemonError, call
    made.partitions.append(name)
    t0 = time.perf_counter()
    try:
        call(made.sock, "partition.create", name=name, ips=[f"{ip}/24"], gateway=LAN_V4, timeout=30)
    except DaemonError as e:
        raise BenchError(f"partition create {name}: {e}") from None
    return time.perf_counter() - t0


def delete_partition(made: Made, name: str) -> None:
    from vnetshare.client import call
    call(made.sock, "partition.delete", name=name, timeout=30)
    made.partitions.remove(name)


def build_vns(made: Made) -> list[Path]:
    if made.daemon is None:
        start_vns(made)
    create_partition(made, "vnb-a", "198.18.0.11")
    create_partition(made, "vnb-b", "198.18.0.12")
    pids = lambda: vns_pids(made)  # noqa: E731 - agents may be restarted
    return [Path("vns", "vnb-a", "vnb-b", "198.18.0.12", pids=pids),
            Path("vns-lan", "vnb-a", VNS_LAN_NS, LAN_V4, pids=pids)]


BUILDERS = (("veth", build_veth, ("veth",)), ("bridge", build_bridge, ("bridge",)),
            ("macvlan", build_macvlan, ("macvlan", "macvlan-lan")), ("vde", build_vde, ("vde",)),
            ("vns", build_vns, ("vns", "vns-lan")))


# --- net ------------------------------------------------------------------------------

def selected(only: list[str], path: str, workload: str) -> bool:
    if not only:
        return True
    for pat in only:
        if "/" in pat:
            if fnmatch.fnmatch(f"{path}/{workload}", pat):
                return True
        elif fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(workload, pat):
            return True
    return False


def _key(path: str) -> str:
    return path.replace("-", "_")


@dataclass
class Plan:
    reps: int
    seconds: float           # each iperf3 run
    pings: int               # per ping run, 10 ms apart
    levels: tuple[int, ...]  # scale: partitions
    idle_seconds: float      # scale: idle CPU window
    idle_settle: float       # scale: quiet time before it
    cli_creates: int         # scale: timed `vnetshare partition create`
    only: list[str] = field(default_factory=list)


def bench_net(made: Made, plan: Plan, errors: list[str]) -> list[dict]:
    from vnetshare.probe import iperf3

    paths: list[Path] = []
    for fam, build, names in BUILDERS:
        if not any(selected(plan.only, p, w) for p in names for w in WORKLOADS):
            continue
        try:
            got = build(made)
        except (BenchError, OSError) as e:
            errors.append(f"{fam}: setup: {e}")
            _say(f"{fam}: setup failed, skipped: {e}")
            continue
        paths += got
    for p in list(paths):
        try:
            wait_reachable(p.client, p.addr)
        except BenchError as e:
            errors.append(f"{p.name}: {e}")
            paths.remove(p)
    _say("paths: " + ", ".join(p.name for p in paths))

    vals: dict[str, list] = {}

    def add(name: str, v) -> None:
        vals.setdefault(name, []).append(v)

    def attempt(path: Path, what: str, fn) -> None:
        try:
            fn()
        except (BenchError, OSError) as e:
            errors.append(f"{path.name} {what}: {e}")
            _say(f"{path.name} {what}: FAILED: {e}")

    def tcp1(p: Path) -> None:
        pids = p.pids() if p.pids else []
        c0, (m0, s0) = proc_cpu(pids), machine_cpu()
        r = iperf3(p.server, p.client, p.addr, seconds=plan.seconds, streams=1)
        c1, (m1, s1) = proc_cpu(pids), machine_cpu()
        if not r.ok:
            raise BenchError(f"iperf3: {r.error}")
        gb = r.received_bytes / 1e9
        k = _key(p.name)
        add(f"{k}_tcp1_Gbps", r.gbps)
        add(f"{k}_cpu_switch_s_per_GB", (c1 - c0) / gb if p.pids else None)
        add(f"{k}_cpu_machine_s_per_GB", (m1 - m0) / gb)
        add(f"{k}_cpu_softirq_s_per_GB", (s1 - s0) / gb)

    def tcp4(p: Path) -> None:
        r = iperf3(p.server, p.client, p.addr, seconds=plan.seconds, streams=4)
        if not r.ok:
            raise BenchError(f"iperf3: {r.error}")
        add(f"{_key(p.name)}_tcp4_Gbps", r.gbps)

    def udp64(p: Path) -> None:
        r = iperf3(p.server, p.client, p.addr, seconds=plan.seconds, udp_len=64)
        if not r.ok:
            raise BenchError(f"iperf3: {r.error}")
        add(f"{_key(p.name)}_udp64_pps", r.received_bytes / plan.seconds)  # packets - lost

    def ping_idle(p: Path) -> None:
        t, sent = ping_times(p.client, p.addr, plan.pings)
        k = _key(p.name)
        add(f"{k}_ping_idle_p50_us", statistics.median(t))
        add(f"{k}_ping_idle_p99_us", _pct(t, 99))
        add(f"{k}_ping_idle_lost", sent - len(t))

    def ping_load(p: Path) -> None:
        # one TCP stream in the same direction, the pings inside its run
        srv = IperfServer(made, p.server, p.addr, 5299)
        try:
            wait_servers([srv])
            dur = plan.pings * 0.01 + 3
            cli = IperfClient(made, p.client, p.addr, 5299, dur)
            time.sleep(1.0)
            t, sent = ping_times(p.client, p.addr, plan.pings)
            got = cli.result(time.monotonic() + dur + 20)
            if not got:
                raise BenchError("the load stream moved nothing")
        finally:
            _stop(srv.p)
            made.procs = [q for q in made.procs if q.poll() is None]
        k = _key(p.name)
        add(f"{k}_ping_load_p50_us", statistics.median(t))
        add(f"{k}_ping_load_p99_us", _pct(t, 99))
        add(f"{k}_ping_load_lost", sent - len(t))

    runs = (("tcp1", tcp1), ("tcp4", tcp4), ("udp64", udp64), ("ping", ping_idle), ("pingload", ping_load))
    for wl, fn in runs:
        todo = [p for p in paths if selected(plan.only, p.name, wl)]
        for rep in range(plan.reps):
            for p in todo:
                _say(f"{wl} {p.name} ({rep + 1}/{plan.reps})")
                attempt(p, wl, lambda: fn(p))

    units = {"Gbps": "Gbit/s", "pps": "pps", "us": "us", "GB": "s/GB", "lost": "packets"}
    rows = []
    for name, v in vals.items():
        med = _median(v)
        unit = units[name.rsplit("_", 1)[1]]
        if med is None:
            continue
        rnd = 3 if unit in ("Gbit/s", "s/GB") else 1 if unit == "us" else 0
        rows.append({"name": name, "value": round(med, rnd) if rnd else round(med), "unit": unit})
    by = {r["name"]: r["value"] for r in rows}
    for a, b, m, short in RATIOS:
        x, y = by.get(f"{a}_{m}"), by.get(f"{b}_{m}")
        if x is not None and y:
            rows.append({"name": f"ratio_{a}_vs_{b}_{short}", "value": round(x / y, 3), "unit": "x"})
    return rows


# (numerator path, denominator path, metric): ratios printed, some are targets
RATIOS = (
    ("vns", "veth", "tcp1_Gbps", "tcp1"), ("vns", "veth", "tcp4_Gbps", "tcp4"),
    ("vns", "bridge", "tcp1_Gbps", "tcp1"), ("vns", "macvlan", "tcp1_Gbps", "tcp1"),
    ("vns_lan", "macvlan_lan", "tcp1_Gbps", "tcp1"), ("vns_lan", "macvlan_lan", "tcp4_Gbps", "tcp4"),
    ("vns", "vde", "tcp1_Gbps", "tcp1"), ("vns", "vde", "tcp4_Gbps", "tcp4"),
    ("vns", "vde", "udp64_pps", "udp64"), ("vns", "veth", "udp64_pps", "udp64"),
    ("vns", "vde", "ping_idle_p50_us", "ping_idle_p50"), ("vns", "veth", "ping_idle_p50_us", "ping_idle_p50"),
    ("vns", "vde", "cpu_machine_s_per_GB", "cpu_machine"),
)


# --- scale ----------------------------------------------------------------------------

def bench_scale(made: Made, plan: Plan, errors: list[str]) -> list[dict]:
    from vnetshare.client import DaemonError, DaemonUnreachable, call
    from vnetshare.probe import ping

    if made.daemon is None:
        start_vns(made)
    for name in list(made.partitions):  # net's partitions: scale counts its own
        delete_partition(made, name)
    time.sleep(0.5)
    base = mem_kib(made.daemon.pid)
    rows: list[dict] = []
    creates: list[float] = []
    have: list[str] = []
    top = plan.levels[-1]
    bad: set[str] = set()

    def row(name: str, value, unit: str) -> None:
        rows.append({"name": name, "value": value, "unit": unit})

    for level in plan.levels:
        new = []
        for i in range(len(have), level):
            name = f"vnb-s{i}"
            try:
                creates.append(create_partition(made, name, f"198.18.0.{100 + i}"))
                have.append(name)
                new.append(name)
            except (BenchError, OSError, DaemonUnreachable) as e:
                errors.append(f"scale: {e}")
                bad.add(name)
        _say(f"scale: {len(have)} partitions")
        for name in new:
            r = ping(name, LAN_V4, count=1, timeout=2)
            if not r.received:
                r = ping(name, LAN_V4, count=2, timeout=2)
            if not r.received:
                errors.append(f"scale: {name}: LAN host unreachable")
                bad.add(name)
        # idle: nothing moves; daemon + agents should sleep (after the new
        # partitions' IPv6 start-up chatter: router solicitations, MLD)
        time.sleep(plan.idle_settle)
        pids = vns_pids(made)
        c0, t0 = proc_cpu(pids), time.monotonic()
        time.sleep(plan.idle_seconds)
        c1, t1 = proc_cpu(pids), time.monotonic()
        row(f"scale_{level}_idle_cpu_pct", round((c1 - c0) / (t1 - t0) * 100, 2), "% of a core")
        # aggregate: one TCP stream per partition to its own server on the LAN host
        servers = [IperfServer(made, VNS_LAN_NS, LAN_V4, 5300 + i) for i in range(len(have))]
        agg = []
        try:
            wait_servers(servers, timeout=30)
            for rep in range(plan.reps):
                _say(f"scale: {len(have)} streams ({rep + 1}/{plan.reps})")
                dur = plan.seconds + 3
                clients = [IperfClient(made, name, LAN_V4, 5300 + i, dur) for i, name in enumerate(have)]
                time.sleep(2.0)  # every client connected and ramped up
                b0, w0 = link_counter(VNS_UPLINK, "tx_bytes"), time.monotonic()
                time.sleep(plan.seconds)
                b1, w1 = link_counter(VNS_UPLINK, "tx_bytes"), time.monotonic()
                deadline = time.monotonic() + dur + 30
                for name, c in zip(have, clients):
                    try:
                        if not c.result(deadline):
                            raise BenchError("no bytes")
                    except BenchError as e:
                        errors.append(f"scale: {name} stream: {e}")
                        bad.add(name)
                made.procs = [q for q in made.procs if q.poll() is None]
                agg.append((b1 - b0) * 8 / (w1 - w0) / 1e9)
        except BenchError as e:
            errors.append(f"scale: {level}: {e}")
        finally:
            for s in servers:
                _stop(s.p)
            made.procs = [q for q in made.procs if q.poll() is None]
        if agg:
            row(f"scale_{level}_tcp_Gbps", round(statistics.median(agg), 3), "Gbit/s")
        row(f"scale_{level}_ok", level - len(bad), "partitions")

    # memory per partition, at the top level, after its traffic
    n = len(have)
    if n:
        agents = made.agent_pids()
        am = [mem_kib(p) for p in agents]
        dm = mem_kib(made.daemon.pid)
        agent_pss = statistics.mean(m.get("Pss_Anon", 0) + m.get("Pss_File", 0) for m in am) / 1024
        agent_rss = statistics.mean(m.get("RssAnon", 0) + m.get("RssFile", 0) for m in am) / 1024
        # anonymous memory only: the daemon's PSS of shared files shrinks as
        # more agents share the same interpreter and libraries
        growth = (dm.get("RssAnon", 0) - base.get("RssAnon", 0)) / 1024 / n
        count, alloc, size = ring_memfds(made.daemon.pid)
        rings = alloc / 2**20 / n
        row("mem_agent_pss_MiB", round(agent_pss, 2), "MiB")
        row("mem_agent_rss_MiB", round(agent_rss, 2), "MiB")
        row("mem_daemon_growth_MiB", round(growth, 2), "MiB")
        row("mem_rings_MiB", round(rings, 2), "MiB")
        row("mem_rings_size_MiB", round(size / 2**20 / n, 2), "MiB")
        row("mem_per_partition_MiB", round(agent_pss + growth + rings, 2), "MiB")
    if creates:
        row("create_p50_s", round(statistics.median(creates), 3), "s")
        row("create_p99_s", round(_pct(creates, 99), 3), "s")
    # the whole CLI command, as a user times it (interpreter start included)
    cli = []
    for _ in range(plan.cli_creates):
        made.partitions.append("vnb-cli")
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "vnetshare", "--socket", made.sock, "partition", "create",
                            "vnb-cli", "--ip", "198.18.0.250/24"], capture_output=True, text=True, timeout=60)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            errors.append(f"scale: vnetshare partition create: {r.stderr.strip()}")
            made.partitions.remove("vnb-cli")
            break
        cli.append(dt)
        try:
            delete_partition(made, "vnb-cli")
        except (DaemonError, DaemonUnreachable) as e:
            errors.append(f"scale: partition delete: {e}")
            break
    if cli:
        row("create_cli_p50_s", round(statistics.median(cli), 3), "s")
    return rows


# --- targets and tables ----------------------------------------------------------------

# name -> (op, threshold, what); ratios are from the same run
TARGETS = {
    "ratio_ring_vs_socketpair_1500B_records": (">=", 10.0, "x socketpair"),
    "ring_64KiB_GBps": (">=", 5.0, "GB/s"),
    "ratio_vns_vs_veth_tcp1": (">=", 0.5, "x veth"),
    "ratio_vns_lan_vs_macvlan_lan_tcp1": (">=", 0.5, "x macvlan"),
    "ratio_vns_vs_vde_tcp1": (">=", 10.0, "x vde_switch"),
    "ratio_vns_vs_vde_tcp4": (">=", 10.0, "x vde_switch"),
    "ratio_vns_vs_vde_ping_idle_p50": ("<", 1.0, "x vde_switch"),
    "ratio_vns_vs_vde_udp64": (">=", 2.0, "x vde_switch"),
    "scale_64_idle_cpu_pct": ("<", 1.0, "% of a core"),
    "create_p50_s": ("<", 0.5, "s"),
    "scale_64_ok": (">=", 64, "partitions"),
}
SECTION_TARGETS = {
    "ring": ("ratio_ring_vs_socketpair_1500B_records", "ring_64KiB_GBps"),
    "net": ("ratio_vns_vs_veth_tcp1", "ratio_vns_lan_vs_macvlan_lan_tcp1", "ratio_vns_vs_vde_tcp1",
            "ratio_vns_vs_vde_tcp4", "ratio_vns_vs_vde_ping_idle_p50", "ratio_vns_vs_vde_udp64"),
    "scale": ("scale_64_idle_cpu_pct", "create_p50_s", "scale_64_ok"),
}


def verdict(name: str, value) -> str:
    op, thr, _ = TARGETS[name]
    if value is None:
        return "not measured"
    ok = value >= thr if op == ">=" else value < thr
    return "met" if ok else "NOT MET"


def _fmt(v) -> str:
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100 or float(v).is_integer():
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if a >= 1 else f"{v:.3f}"


def machine_line() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 2**20
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return (f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus ({cpu}), {mem:.0f} GiB, "
            f"kernel {platform.release()}, python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}, load {load}")


NET_METRICS = (
    ("tcp1_Gbps", "TCP 1 stream", "Gbit/s"),
    ("tcp4_Gbps", "TCP 4 streams", "Gbit/s"),
    ("udp64_pps", "UDP 64 B received", "kpps"),
    ("ping_idle_p50_us", "ping idle p50", "us"),
    ("ping_idle_p99_us", "ping idle p99", "us"),
    ("ping_load_p50_us", "ping under TCP p50", "us"),
    ("ping_load_p99_us", "ping under TCP p99", "us"),
    ("ping_load_lost", "ping under TCP lost", "pkts"),
    ("cpu_switch_s_per_GB", "CPU switch procs", "s/GB"),
    ("cpu_machine_s_per_GB", "CPU whole machine", "s/GB"),
    ("cpu_softirq_s_per_GB", "  of which softirq", "s/GB"),
)


def print_net(rows: list[dict], plan: Plan) -> None:
    by = {r["name"]: r["value"] for r in rows}
    def has(p: str) -> bool:
        k = _key(p) + "_"
        return any(n.startswith(k) and not n.startswith(k + "lan_") for n in by)

    paths = [p for p in PATHS if has(p)]
    print(f"# net: median of {plan.reps} run(s); iperf3 {plan.seconds:g} s, {plan.pings} pings 10 ms apart")
    if DAEMON_ARGS:
        print(f"# vnetshare daemon {' '.join(DAEMON_ARGS)}")
    w = max(len(x[1]) for x in NET_METRICS)
    print(f"{'workload':<{w}}  {'unit':<6}" + "".join(f"{p:>12}" for p in paths))
    for key, label, unit in NET_METRICS:
        cells = []
        for p in paths:
            v = by.get(f"{_key(p)}_{key}")
            if v is not None and unit == "kpps":
                v = v / 1000
            cells.append(_fmt(v))
        if any(c != "-" for c in cells):
            print(f"{label:<{w}}  {unit:<6}" + "".join(f"{c:>12}" for c in cells))
    ratios = [r for r in rows if r["name"].startswith("ratio_")]
    if ratios:
        print("# ratios (same run)")
        for r in ratios:
            print(f"{r['name']:<40} {_fmt(r['value']):>10} x")


def print_scale(rows: list[dict], plan: Plan) -> None:
    by = {r["name"]: r["value"] for r in rows}
    print(f"# scale: vnetshare, every partition one TCP stream to the LAN host ({plan.seconds:g} s window, "
          f"median of {plan.reps}); idle over {plan.idle_seconds:g} s, {plan.idle_settle:g} s after the last create")
    print(f"{'partitions':>10}  {'aggregate Gbit/s':>16}  {'idle CPU % of a core':>20}  {'working':>8}")
    for n in plan.levels:
        print(f"{n:>10}  {_fmt(by.get(f'scale_{n}_tcp_Gbps')):>16}  "
              f"{_fmt(by.get(f'scale_{n}_idle_cpu_pct')):>20}  {_fmt(by.get(f'scale_{n}_ok')):>8}")
    if "create_p50_s" in by:
        print(f"create a partition: p50 {by['create_p50_s']:.3f} s, p99 {by['create_p99_s']:.3f} s "
              f"(control request); whole CLI command p50 {_fmt(by.get('create_cli_p50_s'))} s")
    if "mem_per_partition_MiB" in by:
        print(f"memory per partition: {by['mem_per_partition_MiB']:.1f} MiB = agent PSS "
              f"{by['mem_agent_pss_MiB']:.1f} + daemon growth {by['mem_daemon_growth_MiB']:.2f} + ring pages "
              f"{by['mem_rings_MiB']:.2f} (of {by['mem_rings_size_MiB']:.1f} MiB of rings); "
              f"agent RSS without rings {by['mem_agent_rss_MiB']:.1f} MiB")


def target_rows(rows: list[dict], sections: list[str]) -> list[dict]:
    by = {r["name"]: r["value"] for r in rows}
    out = []
    for s in sections:
        for name in SECTION_TARGETS.get(s, ()):
            op, thr, what = TARGETS[name]
            out.append({"name": f"target_{name}", "value": verdict(name, by.get(name)),
                        "unit": f"{op} {thr:g} {what}", "measured": by.get(name)})
    return out


def print_targets(targets: list[dict]) -> None:
    print("# targets (ratios from this run)")
    w = max(len(t["name"]) for t in targets) - len("target_")
    for t in targets:
        print(f"{t['name'][len('target_'):]:<{w}}  {_fmt(t['measured']):>10}   target {t['unit']:<22} {t['value']}")


def print_table(title: str, rows: list[dict]) -> None:
    print(f"# {title}")
    print(f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        target = TARGETS.get(r["name"])
        mark = ""
        if target:
            mark = f"   target {target[0]} {target[1]:g} {target[2]}: {verdict(r['name'], r['value'])}"
        print(f"{r['name']:<{width}}  {r['value']:>14,}  {r['unit']:<10}{mark}")


def plan_for(args) -> Plan:
    if args.quick:
        return Plan(reps=args.reps or 1, seconds=2, pings=100, levels=(1, 4), idle_seconds=2, idle_settle=1,
                    cli_creates=2, only=args.only)
    return Plan(reps=args.reps or 3, seconds=5, pings=500, levels=(1, 8, 32, 64), idle_seconds=10, idle_settle=5,
                cli_creates=5, only=args.only)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0],
                                epilog="paths: " + ", ".join(PATHS) + "; workloads: " + ", ".join(WORKLOADS))
    p.add_argument("what", nargs="?", default="all", choices=("ring", "net", "scale", "all"),
                   help="ring: the shared-memory ring against a socketpair; net: vnetshare against veth, "
                        "bridge, macvlan, vde_switch; scale: 1 to 64 partitions (default: all)")
    p.add_argument("--json", action="store_true", help="print rows {name, value, unit} as JSON")
    p.add_argument("--reps", type=int, default=None, help="runs per figure, median (default 3; 1 with --quick "
                                                           "for net and scale)")
    p.add_argument("--quick", action="store_true", help="a smoke test: ring 1/20 of the work; net 1 rep of "
                                                        "2 s; scale 1 and 4 partitions")
    p.add_argument("--only", action="append", default=[], metavar="PATTERN",
                   help="net: only PATH/WORKLOAD matching this glob (or a PATH or WORKLOAD alone), "
                        "e.g. 'vns*/tcp1', vde, ping; repeatable")
    p.add_argument("--check", action="store_true", help="exit 3 if a target is not met")
    p.add_argument("--daemon-arg", action="append", default=[], metavar="ARG",
                   help="pass ARG to `vnetshare daemon` (net and scale), e.g. --daemon-arg=--coalesce-usecs=0; "
                        "repeatable")
    return p


def _free_names(nsmod) -> None:
    """Refuse to start next to leftovers: nothing named vnb-* is ours to remove."""
    taken = [n for n in nsmod.names() if n.startswith(PREFIX + "-")]
    taken += [l.ifname for l in nsmod.links() if l.ifname.startswith(PREFIX + "-")]
    if taken:
        raise BenchError(f"{', '.join(taken)} already exist (an earlier run killed hard?): "
                         "remove them by hand, this benchmark only removes what it made")


def _interrupt(sig, _frame):
    raise KeyboardInterrupt(f"signal {sig}")


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    if args.reps is not None and args.reps < 1:
        get_parser().error(f"--reps {args.reps}: must be at least 1")
    sections = ["ring", "net", "scale"] if args.what == "all" else [args.what]
    needs_root = [s for s in sections if s != "ring"]
    if needs_root and os.geteuid() != 0:
        get_parser().error(f"{' and '.join(needs_root)} need root: "
                           "./scripts/sandbox.sh python3 scripts/bench.py " + " ".join(sys.argv[1:]))
    if needs_root and not os.environ.get("VNETSHARE_SANDBOX"):
        _say("note: not inside scripts/sandbox.sh; only vnb-* namespaces and links are made and removed")
    plan = plan_for(args)
    DAEMON_ARGS[:] = args.daemon_arg
    rows: dict[str, list[dict]] = {}
    errors: list[str] = []
    other: dict[str, tuple[float, float]] = {}  # section -> CPU-s, % of the machine
    foreign = Foreign()
    foreign.start()
    try:
        if "ring" in sections:
            _say("ring")
            everywhere = os.sched_getaffinity(0)
            try:
                with Section(foreign, "ring", other):
                    rows["ring"] = bench_ring(args.reps or 3, args.quick)
            finally:  # ring pins this process to one core: net and scale must not inherit it
                os.sched_setaffinity(0, everywhere)
        header = machine_line()
        if needs_root:
            signal.signal(signal.SIGTERM, _interrupt)
            signal.signal(signal.SIGHUP, _interrupt)
            m0, t0 = machine_cpu()[0], time.monotonic()
            time.sleep(1.0)
            busy = (machine_cpu()[0] - m0) / (time.monotonic() - t0) / os.cpu_count() * 100
            header += f", {busy:.0f} % busy before the run"
            made = Made()
            try:
                _free_names(made.nsmod)
                if "net" in sections:
                    with Section(foreign, "net", other):
                        rows["net"] = bench_net(made, plan, errors)
                if "scale" in sections:
                    with Section(foreign, "scale", other):
                        rows["scale"] = bench_scale(made, plan, errors)
            except BenchError as e:
                errors.append(str(e))
            finally:
                made.close()
    finally:
        foreign.stop()
    # a shared machine: say how much CPU others took while we measured
    for s, (cpu, share) in other.items():
        rows.setdefault("machine", []).append(
            {"name": f"machine_other_cpu_during_{s}_pct", "value": round(share, 2), "unit": "% of the machine"})
    top = foreign.top()
    other_line = ("# other processes on the machine meanwhile: "
                  + ", ".join(f"{s} {cpu:.1f} CPU-s ({share:.1f} %)" for s, (cpu, share) in other.items())
                  + (f"; most: {top}" if top else ""))
    sections_out = sections + (["machine"] if "machine" in rows else [])
    every = [r for s in sections_out for r in rows.get(s, [])]
    targets = target_rows(every, sections)
    if args.json:
        print(json.dumps(every + [{k: t[k] for k in ("name", "value", "unit")} for t in targets], indent=1))
    else:
        if "ring" in rows:
            print_table("vnetshare ring vs Unix SOCK_SEQPACKET socketpair (cross-process)", rows["ring"])
        if needs_root:
            print(header)
        print(other_line)
        if "net" in rows:
            print_net(rows["net"], plan)
        if "scale" in rows:
            print_scale(rows["scale"], plan)
        if needs_root:
            print_targets(targets)
    for e in errors:
        _say(f"error: {e}")
    if errors:
        return 1
    if args.check and any(t["value"] != "met" for t in targets):
        return 3
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:  # ^C, SIGTERM, SIGHUP: made.close() already ran
        _say(f"interrupted ({str(e) or 'SIGINT'}): everything this run made is removed")
        sys.exit(130)
