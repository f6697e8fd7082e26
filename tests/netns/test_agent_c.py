"""The C agent (native/agent.c, issue 12): what the daemon runs for each partition.

Through the daemon: partitions get the C agent, unprivileged (its own uid
and gid from --agent-uids, no capabilities, not dumpable, no_new_privs) in
its partition's network namespace under a seccomp filter on every thread,
and frames flow; a forbidden system call kills it (SIGSYS) and the daemon
starts a new one, with the same uid, that serves; its own memory is
measured; with the binary missing or not executable the daemon does not
start, and a create fails, each with one line (no unconfined fallback).
Without the daemon (DirectAgent plays its side of the hand-off): the exit
statuses the daemon does not report - SIGTERM and EOF end it with 0, each
forbidden call with SIGSYS, a deleted TAP with 1. test_agents_apart.py
shows what the uids and the filter keep agents from doing to each other.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from system import A, B, LAN_V4, System, wait_for
from vnetshare import agent
from vnetshare.core import config
from vnetshare.dataplane.ring import SIZE_DEFAULT, create_fds
from vnetshare.dataplane.tap import open_tap
from vnetshare.linux import netns, procs
from vnetshare.linux.probe import ping, tcp_transfer

FIRST_UID, LAST_UID = config.AGENT_UIDS_DEFAULT
# The agent's own memory (RssAnon + RssFile; the rings are RssShmem, the
# daemon's as much as the agent's): measured 0.8 MiB for the C agent
# (static-pie), 22 MiB for the Python one this project had until issue 20.
OWN_MEMORY_MAX = 2 << 20


def status(pid: int, task: int | None = None) -> dict[str, str]:
    path = f"/proc/{pid}/status" if task is None else f"/proc/{pid}/task/{task}/status"
    with open(path) as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def own_memory(pid: int) -> int:
    """Bytes of the agent's own: anonymous and file pages, not the shared rings."""
    st = status(pid)
    return (int(st["RssAnon"].split()[0]) + int(st["RssFile"].split()[0])) * 1024


def agent_pid(system, name: str) -> int:
    shown = system.cli_json("partition", "show", name)["agent"]
    m = re.fullmatch(r"running \(pid (\d+)\)", shown)
    assert m, shown
    return int(m.group(1))


def restarts(system, name: str) -> int:
    return system.stats(name)["agent_restarts"]


def agent_uid(system, name: str) -> int:
    return system.cli_json("partition", "show", name)["agent_uid"]


def same_file(a: str, b: str) -> bool:
    sa, sb = os.stat(a), os.stat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def assert_c_agent_confined(pid: int, name: str, uid: int, netns_path: str | None = None) -> None:
    """@pid is the C agent of @name: uid and gid @uid, nothing else, not
    dumpable, under the filter on both threads, in @netns_path if given."""
    assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(agent.C_AGENT)
    assert procs.is_agent(pid, name) and not procs.is_agent(pid, name + "x")
    st = status(pid)
    assert st["Uid"].split() == [str(uid)] * 4 and st["Gid"].split() == [str(uid)] * 4, st
    assert st["Groups"] == ""
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap], 16) == 0, (cap, st[cap])
    assert st["NoNewPrivs"] == "1"
    # not dumpable: the kernel gives its private /proc files to root, not to its uid
    assert os.stat(f"/proc/{pid}").st_uid == uid and os.stat(f"/proc/{pid}/environ").st_uid == 0
    tasks = os.listdir(f"/proc/{pid}/task")
    assert len(tasks) == 2  # main and pump: the filter must be on both
    for tid in tasks:
        assert status(pid, int(tid))["Seccomp"] == "2", tid
    if netns_path is not None:
        assert same_file(f"/proc/{pid}/ns/net", netns_path), f"not in {netns_path}"


# -- through the daemon ---------------------------------------------------------

def test_partitions_get_the_c_agent_confined_and_frames_flow(two):
    assert os.access(agent.C_AGENT, os.X_OK), f"{agent.C_AGENT} is not built: run scripts/setup.sh"
    pids = {name: agent_pid(two, name) for name in (A[0], B[0])}
    assert sorted(two.agent_pids()) == sorted(pids.values())
    uids = {name: agent_uid(two, name) for name in pids}
    assert len(set(uids.values())) == 2 and all(FIRST_UID <= u <= LAST_UID for u in uids.values()), uids
    for name, pid in pids.items():
        assert_c_agent_confined(pid, name, uids[name], f"/run/netns/{name}")
        assert not same_file(f"/proc/{pid}/ns/net", f"/proc/{two.daemon.pid}/ns/net")
    assert ping(A[0], B[1], count=2).ok and ping(A[0], B[2], count=2).ok
    assert ping(A[0], LAN_V4, count=2).ok
    r = tcp_transfer(B[0], A[0], B[1], 64 << 20)
    assert r.ok and r.received_bytes == 64 << 20, r
    assert "missing or not executable" not in two.log()


def test_agent_own_memory_is_small(two):
    # traffic first: a ring's pages exist once written (not populated at
    # mmap), and they are what an agent's VmRSS holds besides its own. Both
    # ways: each agent's A2H ring carries a stream (what it receives may
    # skip its H2A ring: the switch writes to an idle partition's TAP)
    assert tcp_transfer(B[0], A[0], B[1], 32 << 20).ok
    assert tcp_transfer(A[0], B[0], A[1], 32 << 20).ok
    for name in (A[0], B[0]):
        pid = agent_pid(two, name)
        st = status(pid)
        print(name, {k: st[k] for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem")})
        assert own_memory(pid) < OWN_MEMORY_MAX, st
        # positive control: the ring pages the transfer touched are mapped
        # here, shared with the daemon, and not counted as the agent's own
        assert int(st["RssShmem"].split()[0]) * 1024 >= SIZE_DEFAULT // 2, st


def test_a_forbidden_call_kills_it_and_the_daemon_restarts_it(tmp_path, monkeypatch, request):
    monkeypatch.setenv(agent.SELFTEST_ENV, "victim")  # test hook: the daemon passes it on once
    system = request.getfixturevalue("system")
    system.create("calm", "--ip", "198.18.0.20/24", "--gateway", LAN_V4)
    uid = system.create("victim", "--ip", "198.18.0.21/24", "--gateway", LAN_V4)["agent_uid"]
    assert wait_for(lambda: restarts(system, "victim") == 1, timeout=10), system.log()
    assert re.search(r"SIGSYS|status -31\b", system.log()), system.log()
    # the new agent did not self-test: it is confined, with the uid its
    # partition had, and serves
    pid = agent_pid(system, "victim")
    assert_c_agent_confined(pid, "victim", uid, "/run/netns/victim")
    assert ping("victim", LAN_V4, count=2).ok and ping("victim", "198.18.0.20", count=1).ok
    assert restarts(system, "victim") == 1 and agent_pid(system, "victim") == pid
    assert restarts(system, "calm") == 0  # only the agent told to self-test died


def _unrunnable(tmp_path, how: str) -> str:
    path = tmp_path / "vnetshare-agent"
    if how == "not-executable":
        shutil.copy(agent.C_AGENT, path)
        os.chmod(path, 0o644)
    return str(path)


@pytest.mark.parametrize("how", ["missing", "not-executable"])
def test_no_agent_no_daemon_one_line(tmp_path, monkeypatch, how):
    """No unconfined fallback: a daemon without its agent does not start."""
    path = _unrunnable(tmp_path, how)
    monkeypatch.setenv(agent.C_AGENT_ENV, path)
    s = System(tmp_path)
    try:
        with pytest.raises(AssertionError, match="daemon not ready"):
            s.start_daemon()
        lines = s.log().strip().splitlines()
        assert lines == [f"vnetshare: error: the agent {path} is missing or not executable: reinstall "
                         "vnetshare (its build makes it); partitions run no other agent"], s.log()
    finally:
        s.close()


def test_an_agent_gone_while_the_daemon_runs_fails_the_create_in_one_line(tmp_path, monkeypatch, request):
    path = tmp_path / "vnetshare-agent"
    shutil.copy(agent.C_AGENT, path)
    monkeypatch.setenv(agent.C_AGENT_ENV, str(path))
    system = request.getfixturevalue("system")
    system.create(A[0], "--ip", f"{A[1]}/24", "--gateway", LAN_V4)  # positive control: it runs
    os.chmod(path, 0o644)
    p = system.cli("partition", "create", B[0], "--ip", f"{B[1]}/24", check=False)
    assert p.returncode != 0
    assert p.stderr.strip().splitlines() == [
        f"vnetshare: error: partition {B[0]!r}: the agent {path} is missing or not executable: reinstall "
        "vnetshare (its build makes it); partitions run no other agent"], p.stderr
    assert system.state_names() == [A[0]] and sorted(netns.names()) == sorted(["vst-lan", A[0]])
    assert ping(A[0], LAN_V4, count=1).ok


# -- without the daemon: exit statuses ------------------------------------------

class DirectAgent:
    """Starts the C agent the way supervisor.Supervisor.spawn does: a socketpair,
    one message with the hello and the 7 descriptors, its "ready"."""

    def __init__(self, tmp_path, ifname: str, **hello):
        self.ifname = ifname
        self.proc = self.sock = self.err = None
        self.rings = []
        self.tap = open_tap(self.ifname)
        try:
            self.rings = [create_fds(SIZE_DEFAULT), create_fds(SIZE_DEFAULT)]
            self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
            self.err = open(tmp_path / f"{ifname}.err", "w+")
            self.proc = subprocess.Popen(agent.command(theirs.fileno(), "direct"), pass_fds=[theirs.fileno()],
                                         stdin=subprocess.DEVNULL, stderr=self.err)
            theirs.close()
            msg = {"name": "direct", "ring_size": SIZE_DEFAULT, "coalesce_usecs": None,
                   "uid": LAST_UID, "gid": LAST_UID, **hello}
            ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                socket.send_fds(self.sock, [json.dumps(msg).encode()], agent.pack_fds(self.tap, *self.rings, ns))
            finally:
                os.close(ns)
            self.sock.settimeout(10)
            self.ready = json.loads(self.sock.recv(4096))
        except BaseException:
            self.close()  # nothing left behind: the TAP goes with its descriptor
            raise

    def wait(self) -> int:
        return self.proc.wait(timeout=10)

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        for f in (self.sock, self.err):
            if f is not None:
                f.close()
        for r in self.rings:
            r.close()
        os.close(self.tap)


@pytest.fixture
def direct(tmp_path):
    made = []

    def start(**hello) -> DirectAgent:
        made.append(DirectAgent(tmp_path, f"vca{len(made)}", **hello))
        return made[-1]

    yield start
    for a in made:
        a.close()


@pytest.mark.parametrize("how", ["SIGTERM", "EOF"])
def test_sigterm_and_eof_end_it_with_status_0(direct, how):
    a = direct()
    assert a.ready == {"ready": True, "pid": a.proc.pid}
    assert os.path.realpath(f"/proc/{a.proc.pid}/exe") == os.path.realpath(agent.C_AGENT)
    assert_c_agent_confined(a.proc.pid, "direct", LAST_UID, "/proc/self/ns/net")
    if how == "SIGTERM":
        a.proc.send_signal(signal.SIGTERM)
    else:
        a.sock.close()
    assert a.wait() == 0
    assert a.stderr() == "vnetshare-agent[direct]: stopped\n"


@pytest.mark.parametrize("call", [True, *agent.SELFTEST_CALLS])
def test_the_self_test_call_is_killed_with_sigsys(direct, call):
    # each call an agent might use against another process (signal, trace,
    # read its memory) or the network (a socket): the filter kills it in
    # the call; without the filter the uid would refuse it, and the agent
    # would say so and exit 1
    a = direct(seccomp_selftest=call)
    assert a.ready["ready"] is True
    assert a.wait() == -signal.SIGSYS
    assert a.stderr() == ""  # it never got to say the call was allowed
    b = direct(seccomp_selftest=False)  # the same hand-off without the hook lives on
    b.proc.send_signal(signal.SIGTERM)
    assert b.wait() == 0 and b.stderr() == "vnetshare-agent[direct]: stopped\n"


def test_a_deleted_tap_ends_it_with_status_1(direct):
    a = direct()
    assert a.proc.poll() is None
    netns.delete_link(a.ifname)
    assert a.wait() == 1
    assert re.fullmatch(r"vnetshare-agent\[direct\]: pump: .+\n", a.stderr()), a.stderr()


def test_an_agent_whose_daemon_is_pid_1_does_not_think_it_orphaned(tmp_path):
    """In a container the daemon may be PID 1 (podman run ... vnetshare
    daemon; the test suite in its container): its agents must serve, not
    take a parent of 1 for a dead daemon."""
    script = tmp_path / "pid1.py"
    script.write_text(
        "import json, os, socket, subprocess, sys\n"
        "from vnetshare import agent\n"
        "assert os.getpid() == 1, os.getpid()\n"
        "ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
        "p = subprocess.Popen(agent.command(theirs.fileno(), 'pid1'), pass_fds=[theirs.fileno()],\n"
        "                     stderr=subprocess.PIPE, text=True)\n"
        "theirs.close()\n"
        "socket.send_fds(ours, [json.dumps({'name': 'pid1', 'ring_size': 4096}).encode()], [])\n"
        "_, err = p.communicate(timeout=10)\n"
        "print(json.dumps([p.returncode, err]))\n")
    out = subprocess.run(["unshare", "--pid", "--fork", sys.executable, str(script)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    code, err = json.loads(out.stdout)
    # it got as far as reading the hand-off (which has no descriptors), not a silent exit 0
    assert code == 1 and "expected 8 descriptors from the daemon, got 0" in err, (code, err)
