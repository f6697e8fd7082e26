"""`vnetshare capture`: a partition's frames, live, read back by scapy and tcpdump."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import time

import pytest

from vnetshare.linux.probe import iperf3, ping
from vnetshare.linux.procs import python_argv

from system import A, B, LAN_V4, send_frames, wait_for

pytestmark = pytest.mark.root


class Capture:
    """A `vnetshare capture` process, started and waited for like a user's:
    ready once it said "capturing" on stderr; stop() sends Ctrl-C (SIGINT)."""

    def __init__(self, system, name: str, *args: str, stdout=subprocess.PIPE):
        self.proc = subprocess.Popen(python_argv("vnetshare", "--socket", system.sock, "capture", name, *args),
                                     stdout=stdout, stderr=subprocess.PIPE)
        self.err = b""
        deadline = time.monotonic() + 10
        while b"capturing" not in self.err:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.err += self.proc.stderr.read() if self.proc.poll() is not None else b""
                self.kill()
                raise AssertionError(f"capture did not start: {self.err.decode()}\n{system.log()}")
            if select.select([self.proc.stderr], [], [], 0.1)[0]:
                self.err += os.read(self.proc.stderr.fileno(), 4096)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait()

    def wait(self, timeout: float = 15) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        self.out_bytes = out or b""
        return self.proc.returncode, self.out_bytes.decode(errors="replace"), (self.err + err).decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def captures():
    """Every Capture a test starts, killed by PID if it still runs at the end."""
    started: list[Capture] = []
    yield started
    for c in started:
        c.kill()


def start(captures, system, name, *args, **kw) -> Capture:
    c = Capture(system, name, *args, **kw)
    captures.append(c)
    return c


def _read(path: str):
    import scapy.layers.inet  # noqa: F401 - registers Ethernet and IP for the reader
    import scapy.layers.inet6  # noqa: F401
    from scapy.utils import rdpcap

    return list(rdpcap(path))


def _echo(pkts, src: str, dst: str, kind: str):
    from scapy.layers.inet import ICMP, IP

    t = {"request": 8, "reply": 0}[kind]
    return [p for p in pkts if IP in p and ICMP in p and p[IP].src == src and p[IP].dst == dst
            and p[ICMP].type == t]


def _direction(pkt) -> str:
    flags = int(getattr(pkt, "direction", None) or 0)
    return {1: "in", 2: "out"}.get(flags & 3, "?")


def test_a_ping_is_captured_with_its_macs_and_read_back(two, captures, tmp_path):
    a_mac = two.cli_json("partition", "show", A[0])["mac"]
    b_mac = two.cli_json("partition", "show", B[0])["mac"]
    path = str(tmp_path / "a.pcapng")
    cap = start(captures, two, A[0], "-w", path)
    assert ping(A[0], B[1], count=3).ok
    code, _out, err = cap.stop()
    assert code == 0, err
    pkts = _read(path)
    req, rep = _echo(pkts, A[1], B[1], "request"), _echo(pkts, B[1], A[1], "reply")
    assert len(req) == 3 and len(rep) == 3, [p.summary() for p in pkts]
    assert {(p.src, p.dst, _direction(p)) for p in req} == {(a_mac, b_mac, "out")}
    assert {(p.src, p.dst, _direction(p)) for p in rep} == {(b_mac, a_mac, "in")}
    assert "frames captured" in err and "not captured" not in err
    # tcpdump, which no one here wrote, reads the same file
    td = subprocess.run(["tcpdump", "-nr", path, "icmp"], capture_output=True, text=True, timeout=30)
    assert td.returncode == 0, td.stderr
    assert td.stdout.count(f"{A[1]} > {B[1]}: ICMP echo request") == 3, td.stdout
    assert td.stdout.count(f"{B[1]} > {A[1]}: ICMP echo reply") == 3, td.stdout


def test_pcapng_on_stdout_feeds_tcpdump(two, captures):
    cap = start(captures, two, A[0], "-w", "-", "-c", "40")
    assert ping(A[0], LAN_V4, count=3).ok
    code, _out, err = cap.stop()
    assert code == 0, err
    td = subprocess.run(["tcpdump", "-nr", "-", "icmp"], input=cap.out_bytes, capture_output=True, timeout=30)
    assert td.returncode == 0, td.stderr
    assert td.stdout.decode().count("ICMP echo reply") == 3, td.stdout.decode()


def test_count_ends_the_capture_and_direction_filters(two, captures, tmp_path):
    path_in = str(tmp_path / "in.pcapng")
    only_in = start(captures, two, A[0], "--direction", "in", "-w", path_in)
    counted = start(captures, two, A[0], "--direction", "out", "-c", "2")
    assert ping(A[0], B[1], count=3).ok
    code, out, err = counted.wait()  # -c 2: it ends by itself
    assert code == 0 and "2 frames captured" in err, err
    assert len(out.splitlines()) == 2 and all(" out " in line for line in out.splitlines()), out
    code, _, err = only_in.stop()
    assert code == 0, err
    pkts = _read(path_in)
    assert len(_echo(pkts, B[1], A[1], "reply")) == 3, [p.summary() for p in pkts]  # positive control
    assert not _echo(pkts, A[1], B[1], "request"), "an outgoing frame in an --direction in capture"
    assert {_direction(p) for p in pkts} == {"in"}


def test_drops_carry_their_reason(two, captures, tmp_path):
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    path = str(tmp_path / "drops.pcapng")
    to_file = start(captures, two, A[0], "--drops", "-w", path)
    to_term = start(captures, two, A[0], "--drops", "-c", "1")
    assert ping(A[0], B[1], count=2).ok  # forwarded: in no drops capture
    spoof = "02:66:66:66:66:66"
    send_frames(A[0], [bytes(Ether(src=spoof, dst="ff:ff:ff:ff:ff:ff") / IP(src=A[1], dst=B[1]) / ICMP())])
    code, out, err = to_term.wait()
    assert code == 0, err
    assert "DROPPED: spoof" in out and spoof in out, out
    code, _, err = to_file.stop()
    assert code == 0, err
    pkts = _read(path)
    assert len(pkts) == 1, [p.summary() for p in pkts]
    assert pkts[0].src == spoof
    assert [c.decode() if isinstance(c, bytes) else c for c in pkts[0].comments] == ["vnetshare-drop: spoof"]


def test_a_capture_never_shows_another_partitions_unicast(two, captures, tmp_path):
    path = str(tmp_path / "a.pcapng")
    cap = start(captures, two, A[0], "-w", path)
    assert ping(B[0], LAN_V4, count=3).ok  # pb's unicast: not pa's business
    assert ping(A[0], LAN_V4, count=3).ok  # positive control
    code, _, err = cap.stop()
    assert code == 0, err
    pkts = _read(path)
    assert len(_echo(pkts, LAN_V4, A[1], "reply")) == 3
    b_mac = two.cli_json("partition", "show", B[0])["mac"]
    a_mac = two.cli_json("partition", "show", A[0])["mac"]
    unicast = [p for p in pkts if not int(p.dst[:2], 16) & 1]
    foreign = [p for p in unicast if a_mac not in (p.src, p.dst)]
    assert not foreign, [p.summary() for p in foreign]
    assert not [p for p in unicast if b_mac in (p.src, p.dst)]


def test_several_captures_at_once_and_the_limit(two, captures, tmp_path):
    paths = [str(tmp_path / f"{i}.pcapng") for i in range(3)]
    caps = [start(captures, two, A[0], "-w", paths[0]), start(captures, two, A[0], "-w", paths[1]),
            start(captures, two, B[0], "-w", paths[2])]
    assert two.stats(A[0])["captures"] == 2 and two.stats(B[0])["captures"] == 1
    # 4 on pa: two more that see nothing in this test (so they do not end early)
    more = [start(captures, two, A[0], "--drops"), start(captures, two, A[0], "--drops")]
    refused = two.cli("capture", A[0], check=False)
    assert refused.returncode == 7  # exits.REFUSED: the limit
    assert "too many captures" in refused.stderr and "at most 4" in refused.stderr, refused.stderr
    for c in more:
        c.kill()
    assert ping(A[0], B[1], count=2).ok
    for c in caps:
        assert c.stop()[0] == 0
    for p in paths[:2]:
        assert len(_echo(_read(p), A[1], B[1], "request")) == 2
    assert len(_echo(_read(paths[2]), A[1], B[1], "request")) == 2
    # every mirror is gone once its reader is (Ctrl-C, -c, or killed)
    assert wait_for(lambda: two.stats(A[0])["captures"] == 0 and two.stats(B[0])["captures"] == 0, timeout=10)


def test_a_slow_reader_loses_frames_counted_never_stalls_traffic(two, captures, tmp_path):
    # a reader that does not read: the pipe fills, then the capture ring
    r, w = os.pipe()
    try:
        slow = start(captures, two, A[0], "-w", "-", stdout=w)
        # UDP: a capture records what the partitions' kernels handed over, one
        # record per frame here, while the counters count a GSO record as the
        # segments it becomes (switch.h): with TCP the two would not compare
        res = iperf3(B[0], A[0], B[1], seconds=2, udp_len=1400)
        assert res.ok, res.error
        assert res.gbps > 0.2, f"traffic stalled under a capture: {res.gbps:.2f} Gbit/s"
        counters = two.stats(A[0])
        slow.proc.send_signal(signal.SIGINT)
        os.close(w)
        w = -1
        while os.read(r, 1 << 20):  # now read, so the capture can end
            pass
        code, _, err = slow.wait()
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert code == 0, err
    captured = int(err.split(" frames captured")[0].split()[-1])
    lost = int(err.split(" frames not captured")[0].split()[-1]) if "not captured" in err else 0
    assert lost > 0, err
    # every frame it moved during the capture was captured or counted as lost
    assert captured + lost >= counters["tx_frames"] + counters["rx_frames"] - 200, (err, counters)


def test_deleting_the_partition_ends_its_capture(two, captures):
    cap = start(captures, two, B[0])
    two.cli("partition", "delete", B[0])
    code, _, err = cap.wait()
    assert code == 0 and f"partition {B[0]} was deleted" in err, err


@pytest.mark.parametrize("argv, needle", [
    (["capture", "nosuch"], "no partition named 'nosuch'"),
    (["capture", A[0], "--snaplen", "5"], "snaplen '5'"),
    (["capture", A[0], "-c", "0"], "count '0'"),
    (["capture", A[0], "--direction", "sideways"], "direction 'sideways'"),
    (["capture", A[0], "-w", "/nonexistent/dir/x.pcapng"], "/nonexistent/dir/x.pcapng"),
])
def test_bad_capture_arguments_one_line(two, argv, needle):
    p = two.cli(*argv, check=False)
    assert p.returncode != 0
    assert needle in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert two.stats(A[0])["captures"] == 0


def test_stopping_the_daemon_ends_captures_cleanly(two, captures):
    cap = start(captures, two, A[0])
    assert two.stop_daemon() == 0
    code, _, err = cap.wait()
    assert code == 0 and "the daemon stopped" in err, err


def _udp_listener(ns: str, port: int):
    """A UDP socket bound to @port in partition @ns (close it)."""
    import socket

    from vnetshare.linux import netns

    def bind():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
        return s
    return netns.run_in(ns, bind)


def _udp_send(ns: str, dst: str, port: int, n: int) -> None:
    """@n UDP datagrams from partition @ns to @dst:@port."""
    import socket

    from vnetshare.linux import netns

    def send():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(n):
                s.sendto(b"vnetshare-udp-%d" % i, (dst, port))
    netns.run_in(ns, send)


def test_a_filter_captures_exactly_the_matching_frames_and_counts_the_rest(two, captures, tmp_path):
    from scapy.layers.inet import ICMP, UDP

    listener = _udp_listener(B[0], 9999)  # so the UDP draws no ICMP port unreachable
    try:
        all_path, icmp_path = str(tmp_path / "all.pcapng"), str(tmp_path / "icmp.pcapng")
        unfiltered = start(captures, two, A[0], "-w", all_path)
        filtered = start(captures, two, A[0], "-c", "3", "-w", icmp_path, "icmp")
        _udp_send(A[0], B[1], 9999, 5)
        assert ping(A[0], B[1], count=3).ok
        _udp_send(A[0], B[1], 9999, 5)
        code, _out, err = filtered.wait()  # -c 3: it ends by itself
        assert code == 0, err
        listener.settimeout(10)  # all ten went through the switch (and its tap) before we stop
        got = [listener.recv(100) for _ in range(10)]
        assert len(got) == 10
        code, _out, all_err = unfiltered.stop()
        assert code == 0, all_err
    finally:
        listener.close()
    everything, icmp = _read(all_path), _read(icmp_path)
    # positive control: the unfiltered capture of the same run has the UDP
    udp = [p for p in everything if UDP in p and p[UDP].dport == 9999]
    assert len(udp) == 10, [p.summary() for p in everything]
    pings = [bytes(p) for p in everything if ICMP in p]
    assert len(pings) == 6, [p.summary() for p in everything]
    assert [bytes(p) for p in icmp] == pings[:3], [p.summary() for p in icmp]
    assert "3 frames captured" in err, err
    n = int(err.split(" frames filtered out")[0].split()[-1])
    assert n >= 5, err  # the first five UDP datagrams at least
    assert "filtered out" not in all_err, all_err


def test_a_bad_filter_is_tcpdumps_one_line_and_exit_2(two):
    p = two.cli("capture", A[0], "icmp", "and", "frob", check=False)
    assert p.returncode == 2, p.stderr
    assert "capture filter 'icmp and frob'" in p.stderr and "syntax error" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
    assert two.stats(A[0])["captures"] == 0


def test_the_daemon_refuses_a_bad_program_naming_the_instruction(two):
    from vnetshare.frontends.client import DaemonError, Stream

    bad = [[0x28, 0, 0, 12], [0x15, 0, 9, 0x800], [6, 0, 0, 262144], [6, 0, 0, 0]]  # jumps past the end
    with pytest.raises(DaemonError) as e:
        Stream(two.sock, "capture", max_fds=3, name=A[0], filter=bad).close()
    assert e.value.code == "EINVAL", e.value
    assert "instruction 1 " in str(e.value) and "jump out of range" in str(e.value), str(e.value)
    assert two.stats(A[0])["captures"] == 0
    # positive control: the same program, its jump fixed, is taken
    good = Stream(two.sock, "capture", max_fds=3, name=A[0], filter=[*bad[:1], [0x15, 0, 1, 0x800], *bad[2:]])
    try:
        assert good.answer["capture"]["partition"] == A[0]
        wait_for(lambda: two.stats(A[0])["captures"] == 1, what="the capture running")
    finally:
        good.close()
