"""The whole system under test: a LAN namespace, a veth uplink, the daemon, the CLI.

A System is what a user has after `vnetshare daemon --uplink vsu0` on a
machine whose NIC is a veth to a LAN host: the tests drive it only through
the `vnetshare` command, like a user, and look at it with ip, ping, iperf3
and raw sockets. close() removes everything it or the daemon made, by name
and by PID, also when a test failed.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

from vnetshare.core import state as statefile
from vnetshare.dataplane.guard import Vnet
from vnetshare.linux import ethtool, netns, procs
from vnetshare.frontends.lab import LabError, make_lan_host, start_daemon
from vnetshare.linux.procs import python_argv

from waiting import wait_for  # noqa: F401 (the tests' one wait_for, re-exported)

LAN_NS = "vst-lan"
UPLINK = "vsu0"
LAN_IF = "lan0"
LAN_V4 = "198.18.0.1"
LAN_V6 = "fd00:5e::1"
A = ("pa", "198.18.0.11", "fd00:5e::11")   # the two partitions of the `two` fixture
B = ("pb", "198.18.0.12", "fd00:5e::12")
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_VNET_HDR = 15
ETH_P_EXPERIMENTAL = 0x88B5  # IEEE 802 local experimental: no stack answers it


class System:
    """@state_dir and @runtime_dir: the daemon's --state-dir and
    --runtime-dir (default: both @tmp_path, as a lab keeps them)."""

    def __init__(self, tmp_path, state_dir: str | None = None, runtime_dir: str | None = None):
        self.dir = str(tmp_path)
        self.sock = os.path.join(self.dir, "control.sock")
        self.state_dir = state_dir or self.dir
        self.runtime_dir = runtime_dir
        self.state_path = os.path.join(self.state_dir, "state.json")
        self.daemon: subprocess.Popen | None = None
        self.log_path = os.path.join(self.dir, "daemon.log")
        make_lan_host(UPLINK, LAN_NS, LAN_IF, f"{LAN_V4}/24", f"{LAN_V6}/64")

    # -- the daemon ------------------------------------------------------
    def start_daemon(self, *extra: str) -> None:
        try:
            if self.runtime_dir is not None:
                extra = ("--runtime-dir", self.runtime_dir, *extra)
            self.daemon = start_daemon(self.sock, UPLINK, self.state_dir, self.log_path, extra,
                                       timeout=20, new_session=False)
        except LabError as e:
            raise AssertionError(f"daemon not ready: {e}\n{self.log()}") from None

    def stop_daemon(self) -> int:
        self.daemon.send_signal(signal.SIGTERM)
        code = self.daemon.wait(timeout=20)
        self.daemon = None
        return code

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    # -- the CLI ---------------------------------------------------------
    def cli(self, *argv: str, check: bool = True, user: int | None = None) -> subprocess.CompletedProcess:
        kw = {}
        if user is not None:
            kw["user"] = user
        p = subprocess.run(python_argv("vnetshare", "--socket", self.sock, *argv),
                           capture_output=True, text=True, timeout=60, **kw)
        if check:
            assert p.returncode == 0, f"vnetshare {' '.join(argv)}: exit {p.returncode}: {p.stderr}\n{self.log()}"
        return p

    def cli_json(self, *argv: str):
        return json.loads(self.cli(*argv, "--json").stdout)

    def create(self, name: str, *args: str) -> dict:
        self.cli("partition", "create", name, *args)
        return self.cli_json("partition", "show", name)

    def stats(self, name: str) -> dict:
        return self.cli_json("partition", "show", name)["counters"]

    # -- what exists -----------------------------------------------------
    def state_names(self) -> list[str]:
        return sorted(statefile.load(self.state_path).partitions)

    def state_record(self, name: str) -> str:
        """The text of partition @name's state file (state.py)."""
        with open(os.path.join(statefile.partitions_dir(self.state_path), name + ".json")) as f:
            return f.read()

    def agent_pids(self) -> list[int]:
        """The daemon's agent children (never anyone else's processes)."""
        return procs.agents_of(self.daemon.pid) if self.daemon is not None else []

    def daemon_memfds(self) -> int:
        n = 0
        fd_dir = f"/proc/{self.daemon.pid}/fd"
        for fd in os.listdir(fd_dir):
            try:
                if os.readlink(os.path.join(fd_dir, fd)).startswith("/memfd:vnetshare-ring"):
                    n += 1
            except OSError:
                pass
        return n

    # -- teardown --------------------------------------------------------
    def close(self) -> None:
        names = self.state_names()
        agents = self.agent_pids()
        if self.daemon is not None and self.daemon.poll() is None:
            for name in names:
                self.cli("partition", "delete", name, check=False)
            procs.stop(self.daemon, grace=20)
        for pid in agents:  # only those the daemon failed to stop
            try:
                if os.path.exists(f"/proc/{pid}"):
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for name in netns.names():
            if name != LAN_NS:
                netns.quietly(netns.delete, name)
        netns.quietly(netns.delete, LAN_NS)
        netns.quietly(netns.delete_link, UPLINK)


def lan_mac() -> str:
    return netns.link(LAN_IF, LAN_NS).mac


class DhcpServer:
    """dnsmasq on the LAN host (DHCP and DHCPv6, no DNS), as a LAN's
    server would be: leases from RANGE4 and RANGE6, its lease file and log
    in @dir. Started and stopped by PID; close() also when a test failed."""

    RANGE4 = ("198.18.0.128", "198.18.0.191")      # in --allow-ip 198.18.0.128/26
    RANGE6 = ("fd00:5e::100", "fd00:5e::1ff")      # in --allow-ip fd00:5e::100/120

    def __init__(self, dir: str):
        self.leasefile = os.path.join(dir, "dnsmasq.leases")
        self.logfile = os.path.join(dir, "dnsmasq.log")
        argv = ["ip", "netns", "exec", LAN_NS, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
                "--port=0", f"--interface={LAN_IF}", "--bind-interfaces", "--user=root", "--group=root",
                f"--dhcp-range={self.RANGE4[0]},{self.RANGE4[1]},255.255.255.0,10m",
                f"--dhcp-range={self.RANGE6[0]},{self.RANGE6[1]},64,10m",
                f"--dhcp-leasefile={self.leasefile}", "--dhcp-authoritative", "--log-dhcp",
                f"--log-facility={self.logfile}", f"--pid-file={os.path.join(dir, 'dnsmasq.pid')}"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: "DHCPv6, IP range" in self.log() or self.proc.poll() is not None,
                     what=lambda: f"dnsmasq to start; its log: {self.log()}")
        except AssertionError:
            self.close()
            raise
        if self.proc.poll() is not None:
            raise AssertionError(f"dnsmasq ended: {self.proc.stderr.read()} {self.log()}")

    def log(self) -> str:
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def leases(self) -> str:
        """The lease file: one line per lease (the address among its fields)."""
        try:
            with open(self.leasefile) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- frames: captures and a partition's raw socket ------------------------------

class Sniffer:
    """Every frame that reaches @ifname in @ns, promiscuous, in a thread.

    .frames holds what the interface received, not what its own namespace
    sent. A receive error ends the capture and close() raises it: a blind
    capture must fail the test, not pass an absence check.
    """

    def __init__(self, ns: str, ifname: str):
        def opener():
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((ifname, 0))
            mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), 1, 0, b"")  # PACKET_MR_PROMISC
            s.setsockopt(263, 1, mreq)  # SOL_PACKET, PACKET_ADD_MEMBERSHIP
            return s

        self.sock = netns.run_in(ns, opener)
        self.sock.settimeout(0.1)
        self.frames: list[bytes] = []
        self.error: OSError | None = None
        self._stop = False
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while not self._stop:
            try:
                frame, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                continue  # only the poll for _stop
            except OSError as e:
                self.error = e
                return
            if addr[2] != PACKET_OUTGOING:
                self.frames.append(frame)

    def close(self) -> list[bytes]:
        self._stop = True
        self._t.join()
        self.sock.close()
        if self.error is not None:
            raise AssertionError(f"the capture failed, it saw nothing after: {self.error!r}")
        return self.frames


def send_frames(ns: str, frames: list, ifname: str = "eth0") -> None:
    """Send raw Ethernet frames on @ifname (eth0 of partition @ns), as its
    root could; the bytes go as they are (tagged ones too).

    A (Vnet, frame) pair goes with that virtio_net header: the socket then
    has PACKET_VNET_HDR (the frame's checksum and GSO requests reach the
    partition's TAP and so the switch), and plain frames get an empty one.
    """
    vnet = any(isinstance(f, tuple) for f in frames)

    def sender():
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        if vnet:
            s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        s.bind((ifname, 0))
        return s

    s = netns.run_in(ns, sender)
    try:
        for frame in frames:
            if vnet:
                hdr, frame = frame if isinstance(frame, tuple) else (Vnet(), frame)
                frame = hdr.pack() + frame
            s.send(frame)
    finally:
        s.close()


def set_features(ifname: str, ns: str | None = None, **on: bool) -> dict[str, bool]:
    """`ethtool -K IFNAME FEATURE on|off` in @ns, FEATURE a kernel feature
    name with "_" for "-" (tx_checksum_ip_generic=False: the kernel then
    completes checksums in software, and segments GSO frames: no TSO without
    checksumming); return the features then active."""
    from pyroute2 import Ethtool

    def apply() -> dict[str, bool]:
        e = Ethtool()
        try:
            feats = e.get_features(ifname)
            for name, value in on.items():
                feats.features[name.replace("_", "-")].enable = value
            e.set_features(ifname, feats)
        finally:
            e.close()
        return ethtool.query(ifname).features

    active = netns.run_in(ns, apply)
    wrong = {n: active.get(n.replace("_", "-")) for n, v in on.items() if active.get(n.replace("_", "-")) != v}
    assert not wrong, f"{ifname}: features not set: {wrong}"
    return active


def marker_broadcast(src: bytes, marker: bytes) -> bytes:
    return b"\xff" * 6 + src + struct.pack("!H", ETH_P_EXPERIMENTAL) + marker + bytes(max(0, 46 - len(marker)))


def cli_as_nobody(sock: str, *args: str) -> tuple[int, str]:
    """The CLI run by a forked child that gave up root (uid/gid 65534, no
    groups; no exec: the interpreter under /root may not be executable by
    nobody): its exit code and stderr."""
    from vnetshare.frontends import cli

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            sys.stderr = os.fdopen(w, "w")
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            code = cli.main(["--socket", sock, *args])
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        err = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err
