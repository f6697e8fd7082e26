"""probe.py - run ping and iperf3 between namespaces, and read their results.

Used by `vnetshare lab demo`, the tests and the benchmark, so all three judge
traffic the same way: ping counts replies, iperf3 reports what it sent and
what arrived. Every child process is bounded in time and ended by PID.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass

from . import procs


def netns_cmd(netns: str | None, argv: list[str]) -> list[str]:
    """argv run inside the named namespace (None: here)."""
    return (["ip", "netns", "exec", netns] if netns else []) + argv


@dataclass
class PingResult:
    sent: int
    received: int
    rtt_avg_ms: float | None
    output: str

    @property
    def ok(self) -> bool:
        return self.sent > 0 and self.received == self.sent


def ping(netns: str | None, addr: str, count: int = 3, size: int | None = None,
         dont_fragment: bool = False, interval: float = 0.2, timeout: float = 2.0) -> PingResult:
    """ping @addr from @netns, @count probes; never raises for lost replies."""
    argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(timeout)]
    if size is not None:
        argv += ["-s", str(size)]
    if dont_fragment:
        argv += ["-M", "do"]
    argv.append(addr)
    limit = count * (interval + timeout) + 5
    try:
        out = subprocess.run(netns_cmd(netns, argv), capture_output=True, text=True, timeout=limit)
        text = out.stdout + out.stderr
    except subprocess.TimeoutExpired as e:
        text = f"ping timed out after {limit:.0f} s: {e.stdout or ''}"
    m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    sent, received = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    r = re.search(r"= [\d.]+/([\d.]+)/", text)
    return PingResult(sent, received, float(r.group(1)) if r else None, text)


@dataclass
class IperfResult:
    """One iperf3 run. TCP fills the byte counts; UDP fills the packet counts
    (iperf3 reports datagrams sent and lost there, bytes only as a rate)."""

    ok: bool
    sent_bytes: int = 0
    received_bytes: int = 0
    gbps: float = 0.0
    error: str = ""
    sent_packets: int = 0
    received_packets: int = 0


def iperf3(server_ns: str | None, client_ns: str | None, addr: str, seconds: float = 3,
           streams: int = 1, udp_len: int | None = None, port: int = 5201,
           nbytes: int | None = None, extra: list[str] | None = None) -> IperfResult:
    """TCP (or UDP with @udp_len) from @client_ns to an iperf3 server in @server_ns.

    Runs @seconds, or until @nbytes are sent: only then are a TCP run's
    sent and received byte counts comparable (a timed run stops counting on
    the receiver while the last bytes are still in flight).
    """
    server = subprocess.Popen(
        netns_cmd(server_ns, ["iperf3", "-s", "-1", "--forceflush", "-B", addr, "-p", str(port)]),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        # the server says it listens before it accepts
        deadline = time.monotonic() + 10
        line = ""
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if "listening" in line or not line:
                break
        if "listening" not in line:
            return IperfResult(False, 0, 0, 0.0, f"iperf3 server did not start: {line.strip()}")
        argv = ["iperf3", "-c", addr, "-p", str(port), "-P", str(streams), "-J"]
        argv += ["-n", str(nbytes)] if nbytes else ["-t", str(seconds)]
        if udp_len is not None:
            argv += ["-u", "-l", str(udp_len), "-b", "0"]
        argv += extra or []
        try:
            out = subprocess.run(netns_cmd(client_ns, argv), capture_output=True, text=True,
                                 timeout=(60 if nbytes else seconds) + 20)
        except subprocess.TimeoutExpired:
            return IperfResult(False, 0, 0, 0.0, "iperf3 client timed out")
        try:
            data = json.loads(out.stdout)
        except ValueError:
            return IperfResult(False, error=(out.stdout + out.stderr).strip()[:300])
        if "error" in data:
            return IperfResult(False, error=data["error"])
        end = data["end"]
        if udp_len is not None:
            s = end["sum"]
            sent = s.get("packets", 0)
            got = sent - s.get("lost_packets", 0)
            return IperfResult(got > 0, gbps=s["bits_per_second"] / 1e9, sent_packets=sent,
                               received_packets=got, error="" if got > 0 else "no datagram arrived")
        sent = end["sum_sent"]["bytes"]
        recv = end["sum_received"]["bytes"]
        return IperfResult(sent > 0 and recv > 0, sent, recv, end["sum_received"]["bits_per_second"] / 1e9)
    finally:
        procs.stop(server)


@dataclass
class TransferResult:
    sent_bytes: int
    received_bytes: int
    sent_sha256: str
    received_sha256: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.sent_bytes == self.received_bytes and self.sent_sha256 == self.received_sha256


def tcp_transfer(server_ns: str | None, client_ns: str | None, addr: str, nbytes: int,
                 port: int = 5301, timeout: float = 60.0) -> TransferResult:
    """Send @nbytes of varying data over one TCP connection; hash both ends.

    iperf3 can't tell this: its receiver stops counting when the end of the
    test is signalled, sometimes before it read the last bytes in flight, so
    its sent and received counts differ now and then even on a bare veth.
    """
    import hashlib
    import os
    import socket
    import threading

    from . import netns

    family = socket.AF_INET6 if ":" in addr else socket.AF_INET

    def listener():
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(1)
        return s

    def connector():
        return socket.socket(family, socket.SOCK_STREAM)

    lsock = netns.run_in(server_ns, listener) if server_ns else listener()
    lsock.settimeout(timeout)
    got = {"n": 0, "h": hashlib.sha256(), "err": None}

    def receive():
        try:
            conn, _ = lsock.accept()
            conn.settimeout(timeout)
            with conn:
                while chunk := conn.recv(1 << 20):
                    got["n"] += len(chunk)
                    got["h"].update(chunk)
        except OSError as e:
            got["err"] = e

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    block = os.urandom(1 << 20)
    h = hashlib.sha256()
    sent = 0
    start = time.monotonic()
    c = netns.run_in(client_ns, connector) if client_ns else connector()
    try:
        c.settimeout(timeout)
        c.connect((addr, port))
        i = 0
        while sent < nbytes:
            chunk = (i.to_bytes(8, "little") + block)[: min(len(block), nbytes - sent)]
            c.sendall(chunk)
            h.update(chunk)
            sent += len(chunk)
            i += 1
        c.shutdown(socket.SHUT_WR)
    finally:
        c.close()
        t.join(timeout)
        lsock.close()
    if got["err"]:
        raise got["err"]
    return TransferResult(sent, got["n"], h.hexdigest(), got["h"].hexdigest(), time.monotonic() - start)
