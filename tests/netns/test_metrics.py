"""`vnetshare daemon --metrics`: the counters as Prometheus scrapes them,
checked by the real clients (promtool, a Prometheus server), on loopback
inside the sandbox."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vnetshare.linux.probe import ping
from vnetshare.linux.procs import python_argv

from system import A, B, LAN_V4, UPLINK, System, lan_mac, send_frames, wait_for

pytestmark = pytest.mark.root

PING = 5  # echo requests per ping in these tests


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, in the sandbox's own network namespace."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def daemon_args(metrics_port):
    """The `system` and `two` fixtures' daemon serves /metrics (conftest.py)."""
    return ("--metrics", f"127.0.0.1:{metrics_port}")


def scrape_text(port: int, host: str = "127.0.0.1") -> str:
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        return r.read().decode()


def scrape(port: int, host: str = "127.0.0.1") -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value, read by Prometheus' Python parser."""
    out = {}
    for fam in text_string_to_metric_families(scrape_text(port, host)):
        for s in fam.samples:
            out[s.name, frozenset(s.labels.items())] = s.value
    return out


def value(got: dict, name: str, **labels) -> float:
    return got[name, frozenset(labels.items())]


def drops(got: dict, partition: str) -> dict[str, float]:
    return {dict(k)["reason"]: v for (n, k), v in got.items()
            if n == "vnetshare_partition_drops_total" and dict(k)["partition"] == partition}


FRAMES = [f"vnetshare_partition_{d}_frames_total" for d in ("transmit", "receive")]


def test_a_ping_moves_both_partitions_frame_counters(two, metrics_port):
    before = scrape(metrics_port)
    assert value(before, "vnetshare_up") == 1 and value(before, "vnetshare_partitions") == 2
    r = ping(A[0], B[1], count=PING)
    assert r.ok and r.received == PING, r.output

    def moved():
        got = scrape(metrics_port)
        return got if all(value(got, m, partition=p) >= value(before, m, partition=p) + PING
                          for m in FRAMES for p in (A[0], B[0])) else None

    got = wait_for(moved, timeout=5)
    assert got, {(m, p): (value(before, m, partition=p), value(scrape(metrics_port), m, partition=p))
                 for m in FRAMES for p in (A[0], B[0])}
    # 98-byte echo frames (56 bytes of data): the byte counters moved with them
    for m in ("transmit", "receive"):
        name = f"vnetshare_partition_{m}_bytes_total"
        assert value(got, name, partition=A[0]) >= value(before, name, partition=A[0]) + PING * 98
    # the rest of what a user would look at is there, from the same scrape
    assert value(got, "vnetshare_uplink_receive_frames_total", uplink=UPLINK) >= 0
    for ring in ("a2h", "h2a"):
        assert value(got, "vnetshare_partition_ring_size_bytes", partition=A[0], ring=ring) == 4 << 20
        assert value(got, "vnetshare_partition_ring_used_bytes", partition=A[0], ring=ring) >= 0
    assert value(got, "vnetshare_partition_info", partition=A[0], vlan="none") == 1
    assert value(got, "vnetshare_partition_storm_limit_frames_per_second", partition=A[0]) == 1000


def test_a_spoofed_frame_raises_its_reason_and_no_other(two, metrics_port):
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    before = scrape(metrics_port)
    assert set(drops(before, A[0])) >= {"spoof", "ip_spoof", "storm", "h2a_full"}, "every reason, zeros too"
    spoofed = [bytes(Ether(src="02:66:66:66:66:66", dst=lan_mac()) / IP(src=A[1], dst=LAN_V4) / ICMP())
               for _ in range(3)]
    send_frames(A[0], spoofed)
    got = wait_for(lambda: (lambda g: g if drops(g, A[0])["spoof"] >= drops(before, A[0])["spoof"] + 3 else None)(
        scrape(metrics_port)), timeout=5)
    assert got, drops(scrape(metrics_port), A[0])
    changed = {r: (drops(before, A[0])[r], n) for r, n in drops(got, A[0]).items() if n != drops(before, A[0])[r]}
    assert changed == {"spoof": (drops(before, A[0])["spoof"], drops(before, A[0])["spoof"] + 3)}
    assert drops(got, B[0]) == drops(before, B[0])


def test_promtool_accepts_a_live_scrape_without_a_word(two, metrics_port):
    assert ping(A[0], B[1], count=1).ok
    text = scrape_text(metrics_port)
    assert "vnetshare_partition_drops_total{" in text and "process_cpu_seconds_total" in text
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr


def _query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def _query_value(port: int, expr: str) -> float | None:
    try:
        result = _query(port, expr)
    except OSError:
        return None  # not listening yet
    return float(result[0]["value"][1]) if result else None


def test_a_real_prometheus_scrapes_it_and_sees_the_counter_move(two, metrics_port, tmp_path):
    web = free_port()
    conf = tmp_path / "prometheus.yml"
    conf.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: vnetshare\n"
                    f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n")
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen(["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{web}"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    expr = f'vnetshare_partition_transmit_frames_total{{partition="{A[0]}"}}'

    def tail() -> str:
        return (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:]

    try:
        first = wait_for(lambda: _query_value(web, expr), timeout=20, step=0.2)
        assert first is not None, f"Prometheus never stored {expr}:\n{tail()}"
        up = _query(web, 'up{job="vnetshare"}')
        assert up and up[0]["value"][1] == "1", up
        assert _query_value(web, "vnetshare_up") == 1
        assert ping(A[0], B[1], count=PING).ok
        later = wait_for(lambda: (lambda v: v if v is not None and v >= first + PING else None)(
            _query_value(web, expr)), timeout=15, step=0.2)
        assert later, f"{expr} stayed at {_query_value(web, expr)} (was {first}):\n{tail()}"
    finally:
        prom.send_signal(signal.SIGTERM)
        try:
            prom.wait(timeout=15)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()


def test_sigterm_stops_the_metrics_server_too(two, metrics_port):
    assert value(scrape(metrics_port), "vnetshare_up") == 1  # positive control: it listens
    assert two.stop_daemon() == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", metrics_port), timeout=2).close()
    assert "metrics: http://127.0.0.1:" in two.log()


def test_ipv6_loopback(tmp_path):
    port = free_port("::1")
    s = System(tmp_path)
    try:
        s.start_daemon("--metrics", f"[::1]:{port}")
        got = scrape(port, "::1")
        assert value(got, "vnetshare_up") == 1 and value(got, "vnetshare_partitions") == 0
        with pytest.raises(OSError):  # loopback ::1 only, not every address
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        s.close()


# -- a bounded server ----------------------------------------------------------------

def _tasks(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _heard(conn: socket.socket, got: bytearray) -> bool:
    """Read what @conn (non-blocking) has; True once the daemon closed it."""
    while True:
        try:
            chunk = conn.recv(4096)
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True
        if not chunk:
            return True
        got += chunk


def test_half_sent_requests_hold_no_thread_and_are_closed_after_the_timeout(tmp_path):
    """Issue 20, item 8: 300 connections that never finish their request
    cost the daemon no thread and at most MAX_CONNECTIONS descriptors (the
    oldest make way for new ones, with a 503); a scrape still answers
    meanwhile; the stalled ones are closed (408) once REQUEST_TIMEOUT_S has
    passed since their request began, not before."""
    from vnetshare.metrics_server import MAX_CONNECTIONS, REQUEST_TIMEOUT_S

    port = free_port()
    s = System(tmp_path)
    slow: list[tuple[socket.socket, float, bytearray]] = []  # (connection, when it was opened, what it heard)

    def closed() -> list[tuple[socket.socket, float, bytearray]]:
        return [x for x in slow if _heard(x[0], x[2])]

    try:
        s.start_daemon("--metrics", f"127.0.0.1:{port}")
        pid = s.daemon.pid
        assert value(scrape(port), "vnetshare_up") == 1  # positive control, and the server is warm
        threads, fds = _tasks(pid), _fds(pid)
        # in batches the listen backlog takes at once (beyond it, the kernel
        # holds a connect back for its retransmission timer)
        for _ in range(6):
            for _ in range(50):
                c = socket.create_connection(("127.0.0.1", port), timeout=5)
                c.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no empty line: never complete
                c.setblocking(False)  # for _heard()
                slow.append((c, time.monotonic(), bytearray()))
            want = max(0, len(slow) - MAX_CONNECTIONS)
            assert wait_for(lambda: len(closed()) >= want, timeout=2), (len(closed()), want, len(slow))
            assert len(closed()) == want
            assert _tasks(pid) <= threads, f"{_tasks(pid) - threads} more threads, {len(slow)} connections"
            assert _fds(pid) <= fds + MAX_CONNECTIONS, f"{_fds(pid) - fds} more descriptors"
        assert all(h.startswith(b"HTTP/1.0 503 ") for _, _, h in closed()), {bytes(h[:40]) for _, _, h in closed()}
        held = [x for x in slow if x not in closed()]
        assert len(held) == MAX_CONNECTIONS
        # a real scrape answers while they are held (taking the oldest one's place)
        t0 = time.monotonic()
        assert value(scrape(port), "vnetshare_up") == 1 and time.monotonic() - t0 < 2
        assert _tasks(pid) <= threads
        # the held ones are closed when their time is up, not before, with a 408
        held = [x for x in held if not _heard(x[0], x[2])]
        assert held and time.monotonic() - max(t for _, t, _ in held) < REQUEST_TIMEOUT_S - 0.5
        while held:
            now = time.monotonic()
            done = [x for x in held if _heard(x[0], x[2])]
            for _, opened, heard in done:
                assert now - opened >= REQUEST_TIMEOUT_S - 0.2, f"closed after {now - opened:.1f} s"
                assert heard.startswith(b"HTTP/1.0 408 "), bytes(heard[:40])
            held = [x for x in held if x not in done]
            assert now - t0 < REQUEST_TIMEOUT_S + 5, f"{len(held)} still open"
            time.sleep(0.05)
        assert wait_for(lambda: _fds(pid) <= fds, timeout=5), f"{_fds(pid) - fds} descriptors left"
        assert value(scrape(port), "vnetshare_up") == 1
    finally:
        for c, _, _ in slow:
            c.close()
        s.close()

def test_the_librarys_content_negotiation_answers(tmp_path):
    """The bounded server hands the request to prometheus_client's handler:
    OpenMetrics and gzip when asked, the text format otherwise."""
    import gzip

    port = free_port()
    s = System(tmp_path)
    try:
        s.start_daemon("--metrics", f"127.0.0.1:{port}")
        url = f"http://127.0.0.1:{port}/metrics"
        req = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text; version=1.0.0",
                                                   "Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
            assert r.headers["Content-Encoding"] == "gzip"
            text = gzip.decompress(r.read()).decode()
        assert "vnetshare_up 1.0" in text and text.endswith("# EOF\n")
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert "Content-Encoding" not in r.headers
            assert "vnetshare_partitions 0.0\n" in r.read().decode()
    finally:
        s.close()


# -- bad input: one line, no daemon -----------------------------------------------

def _daemon(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(python_argv("vnetshare", "--socket", str(tmp_path / "c.sock"), "daemon",
                                      "--uplink", UPLINK, "--state-dir", str(tmp_path), *extra),
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("value_, needle", [
    ("99999", "metrics address '99999': port '99999' is not a number from 1 to 65535"),
    ("localhost:10477", "metrics address 'localhost:10477': 'localhost' is not an IP address"),
    ("::1:10477", "metrics address '::1:10477': write an IPv6 address in brackets"),
])
def test_bad_metrics_value_is_one_line_and_no_daemon(tmp_path, value_, needle):
    p = _daemon(tmp_path, "--metrics", value_)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in p.stderr, p.stderr
    assert not os.path.exists(tmp_path / "c.sock")


def test_port_in_use_is_one_line_and_no_daemon(tmp_path):
    s = System(tmp_path)  # the uplink exists: only the port can be wrong
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        t0 = time.monotonic()
        p = _daemon(tmp_path, "--metrics", f"127.0.0.1:{port}")
        assert p.returncode == 1
        assert p.stderr.strip().splitlines() == [
            f"vnetshare: error: metrics address 127.0.0.1:{port}: Address already in use"], p.stderr
        assert not os.path.exists(tmp_path / "c.sock")
        assert time.monotonic() - t0 < 20
        # positive control: the same command with a free port makes a daemon
        s.start_daemon("--metrics", f"127.0.0.1:{free_port()}")
        assert s.daemon.poll() is None
    finally:
        taken.close()
        s.close()
