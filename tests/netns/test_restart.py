"""A daemon replaced while partitions talk: SIGKILL and SIGTERM (issue 12).

test_system.py's test_daemon_restart_adopts_partitions shows a new daemon
adopts after a clean stop. Here the old one is also killed outright, and
traffic that started before the restart must go on after it: pings between
the partitions and to the LAN host, and TCP connections opened before the
kill (one to the other partition, one to the LAN host) that carry bytes
written while no daemon ran and after the new one started, all of them
intact and in order, without a reset. How fast is the bench's business
(scripts/bench.py restart), not this test's.
"""
from __future__ import annotations

import os
import signal
import socket

import pytest

from system import A, B, LAN_NS, LAN_V4, System, wait_for
from vnetshare.linux import netns, procs
from vnetshare.linux.probe import ping

PORT = 5390
CHUNK = 256 << 10


class Conn:
    """One TCP connection from partition pa to @addr (in @server_ns)."""

    def __init__(self, server_ns: str, addr: str):
        def listener() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, PORT))
            s.listen(1)
            return s

        lsock = netns.run_in(server_ns, listener)
        try:
            self.client = netns.run_in(A[0], socket.socket, socket.AF_INET, socket.SOCK_STREAM)
            self.client.settimeout(20)
            self.client.connect((addr, PORT))
            lsock.settimeout(20)
            self.server, _ = lsock.accept()
            self.server.settimeout(20)
        finally:
            lsock.close()
        self.sent = bytearray()
        self.received = bytearray()

    def write(self, n: int) -> None:
        data = os.urandom(n)
        self.client.sendall(data)
        self.sent += data

    def write_nowait(self, n: int) -> int:
        """Write up to @n bytes without waiting: what the socket's send
        buffer takes (autotuned, so it can be less than @n). Returns the
        count."""
        data = os.urandom(n)
        taken = 0
        while taken < n:
            try:
                taken += self.client.send(data[taken:], socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        self.sent += data[:taken]
        return taken

    def read_all(self) -> bytes:
        """Everything the far end has read, once it has as much as was
        written (ConnectionError if the connection was reset or closed)."""
        while len(self.received) < len(self.sent):
            chunk = self.server.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the connection was closed")
            self.received += chunk
        return bytes(self.received)

    def close(self) -> None:
        self.client.close()
        self.server.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_traffic_and_tcp_connections_survive_a_daemon_restart(two: System, sig):
    conns = {"p2p": Conn(B[0], B[1]), "lan": Conn(LAN_NS, LAN_V4)}
    try:
        for c in conns.values():  # positive control: both carry bytes before the restart
            c.write(CHUNK)
            assert c.read_all() == c.sent
        old = two.agent_pids()
        assert len(old) == 2

        two.daemon.send_signal(sig)
        assert two.daemon.wait(timeout=20) == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
        two.daemon = None
        # the agents end with their daemon, however it ended (PR_SET_PDEATHSIG for SIGKILL)
        assert wait_for(lambda: not any(procs.is_agent(p, [A[0], B[0]]) for p in old), timeout=10)
        for what, c in conns.items():
            # no daemon: these bytes wait in pa's socket, retransmitted later
            assert c.write_nowait(CHUNK) > 0, f"{what}: the socket took nothing"

        two.start_daemon()
        assert [p["name"] for p in two.cli_json("partition", "list")] == [A[0], B[0]]
        assert sorted(two.agent_pids()) != sorted(old) and len(two.agent_pids()) == 2
        assert wait_for(lambda: ping(A[0], B[1], count=1, timeout=1).ok, timeout=10), two.log()
        assert ping(A[0], LAN_V4, count=3, interval=0.05).ok, two.log()
        assert ping(B[0], A[1], count=3, interval=0.05).ok, two.log()

        for what, c in conns.items():
            c.write(CHUNK)  # and the new daemon carries new bytes on the old connection
            assert c.read_all() == c.sent, f"{what}: the bytes differ"
            c.server.sendall(b"back")  # the other way too
            assert c.client.recv(16) == b"back", what
    finally:
        for c in conns.values():
            c.close()


def _ended(pid: int) -> bool:
    """@pid is gone or a zombie: it ended, and only its parent has not reaped
    it (an orphan's parent is PID 1, which in the test container is pytest)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_restart_after_sigkill_replaces_an_agent_that_outlived_its_daemon(two: System):
    """A SIGKILLed daemon's agent that is still alive when the new daemon
    starts (here: stopped, so PR_SET_PDEATHSIG's SIGTERM waits) holds its
    TAP: the new daemon ends it, by PID, and serves the partition."""
    victim = two.agent_pids()[0]
    name = procs.agent_name(procs.cmdline(victim))
    os.kill(victim, signal.SIGSTOP)
    try:
        two.daemon.send_signal(signal.SIGKILL)
        two.daemon.wait(timeout=20)
        two.daemon = None
        assert procs.is_agent(victim, name)  # still there: the case under test
        two.start_daemon()
        assert wait_for(lambda: _ended(victim), timeout=10)
        shown = two.cli_json("partition", "show", name)
        assert shown["agent"].startswith("running") and str(victim) not in shown["agent"], shown["agent"]
        assert wait_for(lambda: ping(A[0], B[1], count=1, timeout=1).ok, timeout=10), two.log()
        assert "cannot adopt" not in two.log()
    finally:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_partition_whose_namespace_went_while_no_daemon_ran_is_recreated_alone(two: System):
    """pb's namespace is deleted while no daemon runs: the new daemon adopts
    pa as it is and makes pb again from its record (manager.py rule 5)."""
    before = {n: two.cli_json("partition", "show", n) for n in (A[0], B[0])}
    pa_ns = os.stat(f"/run/netns/{A[0]}").st_ino
    assert two.stop_daemon() == 0
    netns.delete(B[0])  # pb's namespace goes (and its TAP with it) while no daemon runs
    two.start_daemon()
    assert [p["name"] for p in two.cli_json("partition", "list")] == [A[0], B[0]]
    assert two.state_names() == [A[0], B[0]]
    assert os.stat(f"/run/netns/{A[0]}").st_ino == pa_ns  # adopted, not made again
    pb = two.cli_json("partition", "show", B[0])
    for key in ("mac", "mtu", "ips", "gateway", "agent_uid"):
        assert pb[key] == before[B[0]][key], key
    assert netns.link("eth0", B[0]).mac == before[B[0]]["mac"]
    assert [a for a in netns.addresses("eth0", B[0]) if not a.startswith("fe80:")] == before[B[0]]["ips"]
    log = two.log()
    assert f"partition {B[0]}: re-created (its namespace /run/netns/{B[0]} was gone)" in log, log
    # the data path of what survived first (issue 12), then what is made again
    assert log.index(f"partition {A[0]}: adopted") < log.index(f"partition {B[0]}: re-created")
    assert "cannot adopt" not in two.log()
    assert len(two.agent_pids()) == 2
    assert wait_for(lambda: ping(B[0], A[1], count=1, timeout=1).ok, timeout=10), two.log()
    assert ping(A[0], LAN_V4, count=2, interval=0.05).ok, two.log()
