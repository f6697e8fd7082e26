"""Agents apart from each other (issue 20, item 6).

An agent is the tenant's closest process and may be compromised. Before
issue 20 every agent ran as uid 65534 in the daemon's network namespace:
as that uid, `kill -STOP` on another partition's agent silenced that
partition while the daemon still said "running". Now each agent has its
own uid and gid from --agent-uids, kept through agent and daemon restarts
and freed with the partition, lives in its partition's network namespace,
is not dumpable, and runs under the seccomp allow-list. Two layers keep
one agent from another, each shown here on its own:

- the uid: a process running as agent A's uid (forked by the test, then
  setresuid) gets EPERM/EACCES when it signals, traces or reads the
  memory of agent B; the same process may signal A and trace a dumpable
  process of its own uid (the positive control: the attempts are real);
  reading A's memory is refused too, A being not dumpable;
- the filter: an agent that tries kill, ptrace, process_vm_readv, open
  (of /proc/PID/mem) or socket is killed in the call (SIGSYS), and the
  daemon starts a new one, with the same uid, that serves
  (test_agent_c.py runs each call without the daemon).

And the agent holds no socket but its line to the daemon, and sees only its
partition's links. Each test was seen failing once on purpose: with every
agent given one uid (and made dumpable again), with the filter left off.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import signal
import subprocess

import pytest

from system import A, B, LAN_V4, UPLINK, wait_for
from test_agent_c import agent_pid, agent_uid, assert_c_agent_confined, restarts, status
from vnetshare.core import config
from vnetshare.linux import netns
from vnetshare.linux.probe import ping
from vnetshare.linux.procs import python_argv

FIRST_UID, LAST_UID = config.AGENT_UIDS_DEFAULT
PTRACE_SEIZE = 0x4206
PR_SET_DUMPABLE = 4


class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def _errno_of(fn) -> int:
    """0 if @fn() succeeded, else the errno it failed with."""
    try:
        fn()
        return 0
    except OSError as e:
        return e.errno


def _attempts(me: int, victim: int) -> dict[str, int]:
    """What a process of agent @me's uid may do to agent @victim, to @me,
    and to a dumpable process of its own uid (runs in the forked child)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def call(rc: int) -> None:
        if rc < 0:
            raise OSError(ctypes.get_errno(), "")

    buf = ctypes.create_string_buffer(b"own bytes", 16)

    def vm_readv(pid: int) -> None:
        out = ctypes.create_string_buffer(16)
        local, remote = IOVec(ctypes.addressof(out), 16), IOVec(ctypes.addressof(buf), 16)
        call(libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))

    def read_mem(pid: int) -> None:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as f:
            f.seek(ctypes.addressof(buf))
            f.read(16)

    call(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))  # so that our helper is dumpable
    r, w = os.pipe()
    helper = os.fork()
    if helper == 0:  # a process of the same uid that nothing protects
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    try:
        return {
            "kill_victim_STOP": _errno_of(lambda: os.kill(victim, signal.SIGSTOP)),
            "ptrace_victim": _errno_of(lambda: call(libc.ptrace(PTRACE_SEIZE, victim, None, None))),
            "mem_victim": _errno_of(lambda: read_mem(victim)),
            "vm_readv_victim": _errno_of(lambda: vm_readv(victim)),
            "kill_me": _errno_of(lambda: os.kill(me, 0)),
            "mem_me": _errno_of(lambda: read_mem(me)),
            "ptrace_helper": _errno_of(lambda: call(libc.ptrace(PTRACE_SEIZE, helper, None, None))),
            "mem_helper": _errno_of(lambda: read_mem(helper)),
            "vm_readv_helper": _errno_of(lambda: vm_readv(helper)),
        }
    finally:
        os.close(w)
        os.waitpid(helper, 0)


def as_uid(uid: int, fn, *args) -> dict:
    """fn(*args) in a child forked from the test that became @uid (and gid
    @uid, no groups, no capabilities), its result back as JSON."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.write(w, json.dumps(fn(*args)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 0 and out, "the child failed"
    return json.loads(out)


def state(pid: int) -> str:
    return status(pid)["State"].split()[0]


def test_a_process_of_one_agents_uid_cannot_stop_trace_or_read_another(two):
    a, b = agent_pid(two, A[0]), agent_pid(two, B[0])
    ua, ub = agent_uid(two, A[0]), agent_uid(two, B[0])
    assert ua != ub
    try:
        got = as_uid(ua, _attempts, a, b)
    finally:
        os.kill(b, signal.SIGCONT)  # (if the test fails: B must not stay stopped)
    eperm, eacces = errno.EPERM, errno.EACCES
    assert got["kill_victim_STOP"] == eperm, got
    assert got["ptrace_victim"] == eperm, got
    assert got["mem_victim"] in (eperm, eacces), got
    assert got["vm_readv_victim"] == eperm, got
    # not dumpable: even its own uid cannot read the agent's memory
    assert got["mem_me"] in (eperm, eacces), got
    # the positive control: the child has A's uid and its calls work where allowed
    assert got["kill_me"] == 0, got
    assert got["ptrace_helper"] == 0 and got["mem_helper"] == 0 and got["vm_readv_helper"] == 0, got
    # B was never stopped: it serves and the daemon is right to say "running"
    assert state(b) in ("S", "R"), state(b)
    assert ping(B[0], LAN_V4, count=2).ok and ping(A[0], B[1], count=2).ok
    assert restarts(two, B[0]) == 0


def test_an_agent_holds_no_socket_but_the_daemons_and_sees_only_its_partition(two):
    for name in (A[0], B[0]):
        pid = agent_pid(two, name)
        fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        sockets = [f for f in fds if f.startswith("socket:")]
        assert len(sockets) == 1, fds  # the socketpair to the daemon, nothing else
        assert "/dev/net/tun" in fds  # (what it does hold: its TAP)
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{name}").st_ino
        seen = sorted(link.ifname for link in netns.links(f"/proc/{pid}/ns/net"))
        assert seen == ["eth0", "lo"] and UPLINK not in seen, seen
    assert ping(A[0], B[1], count=2).ok


def test_forbidden_calls_kill_the_agent_and_the_new_one_keeps_its_uid(tmp_path, monkeypatch, request):
    calls = {"vkill": "kill", "vtrace": "ptrace", "vread": "process_vm_readv", "vmem": "open"}
    monkeypatch.setenv("VNETSHARE_AGENT_SELFTEST", ",".join(f"{n}:{c}" for n, c in calls.items()))
    system = request.getfixturevalue("system")
    uids = {}
    for i, name in enumerate(calls):
        uids[name] = system.create(name, "--ip", f"198.18.0.{30 + i}/24", "--gateway", LAN_V4)["agent_uid"]
    for name in calls:
        assert wait_for(lambda: restarts(system, name) == 1, timeout=10), system.log()
    assert len(re.findall(r"SIGSYS|status -31\b", system.log())) == len(calls), system.log()
    assert "was allowed" not in system.log()
    for name in calls:
        pid = agent_pid(system, name)
        assert_c_agent_confined(pid, name, uids[name], f"/run/netns/{name}")
        assert ping(name, LAN_V4, count=1).ok, name
    assert len(set(uids.values())) == len(calls)


def test_uids_are_kept_through_restarts_and_freed_with_the_partition(two):
    uids = {name: agent_uid(two, name) for name in (A[0], B[0])}
    for name, uid in uids.items():
        assert json.loads(two.state_record(name))["agent_uid"] == uid
    lock_dir = config.AGENT_UID_DIR

    # an agent killed: its successor has the same uid
    old = agent_pid(two, A[0])
    os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: restarts(two, A[0]) == 1, timeout=10), two.log()
    assert_c_agent_confined(agent_pid(two, A[0]), A[0], uids[A[0]])

    # a daemon restarted, cleanly or not: its adopted partitions' agents keep theirs
    for how in (signal.SIGTERM, signal.SIGKILL):
        two.daemon.send_signal(how)
        two.daemon.wait(timeout=20)
        two.daemon = None
        two.start_daemon()
        for name, uid in uids.items():
            assert agent_uid(two, name) == uid
            assert_c_agent_confined(agent_pid(two, name), name, uid, f"/run/netns/{name}")
        assert wait_for(lambda: ping(A[0], B[1], count=1, timeout=1).ok, timeout=10), two.log()
    assert "its agent gets uid" not in two.log()

    # a partition deleted: its uid is free (its lock file gone), a new one gets another
    two.cli("partition", "delete", B[0])
    assert str(uids[B[0]]) not in os.listdir(lock_dir) and str(uids[A[0]]) in os.listdir(lock_dir)
    uc = two.create("pc", "--ip", "198.18.0.13/24")["agent_uid"]
    assert FIRST_UID <= uc <= LAST_UID and uc not in uids.values()
    assert_c_agent_confined(agent_pid(two, "pc"), "pc", uc, "/run/netns/pc")


def test_a_new_range_moves_the_agents_into_it(two):
    uids = {name: agent_uid(two, name) for name in (A[0], B[0])}
    assert two.stop_daemon() == 0
    two.start_daemon("--agent-uids", "70000-70009")
    for name, old in uids.items():
        new = agent_uid(two, name)
        assert 70000 <= new <= 70009
        assert f"partition {name}: its agent gets uid {new}: {old} is outside --agent-uids 70000-70009" \
            in two.log(), two.log()
        assert json.loads(two.state_record(name))["agent_uid"] == new
        assert_c_agent_confined(agent_pid(two, name), name, new)
    assert wait_for(lambda: ping(A[0], B[1], count=1, timeout=1).ok, timeout=10), two.log()


def test_a_range_used_up_fails_the_create_in_one_line_and_leaves_nothing(system):
    assert system.stop_daemon() == 0
    system.start_daemon("--agent-uids", "70100-70101")
    system.create("u1", "--ip", "198.18.0.41/24")
    system.create("u2", "--ip", "198.18.0.42/24")
    p = system.cli("partition", "create", "u3", "--ip", "198.18.0.43/24", check=False)
    assert p.returncode != 0
    assert p.stderr.strip().splitlines() == [
        "vnetshare: error: partition 'u3': no free agent uid: all 2 of --agent-uids 70100-70101 are in "
        "use (2 by this daemon's partitions, the others by other daemons or the user database); start "
        "the daemon with a larger range"], p.stderr
    assert system.state_names() == ["u1", "u2"] and "u3" not in netns.names()
    system.cli("partition", "delete", "u1")
    assert system.create("u3", "--ip", "198.18.0.43/24")["agent_uid"] == 70100
    assert ping("u3", LAN_V4, count=1).ok


@pytest.mark.parametrize("value, needle", [
    ("0-100", "FIRST must be at least 1"),
    ("65000-66000", "holds 65534 (nobody)"),
    ("5-4", "not above LAST"),
    ("2147483000-2147483648", "above 2147483647"),
    ("many", "not FIRST-LAST"),
])
def test_a_bad_range_is_one_line(tmp_path, value, needle):
    p = subprocess.run(python_argv("vnetshare", "--socket", str(tmp_path / "c.sock"), "daemon", "--uplink",
                                   UPLINK, "--state-dir", str(tmp_path), "--agent-uids", value),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and f"agent uid range {value!r}" in lines[0] and needle in lines[0], p.stderr


def test_a_range_the_user_namespace_does_not_map_is_one_line(tmp_path):
    # a daemon in a user namespace that maps only root (as in a rootless
    # container) cannot give its agents the default range: it says so and
    # does not start
    p = subprocess.run(["unshare", "--user", "--map-root-user", *python_argv(
        "vnetshare", "--socket", str(tmp_path / "c.sock"), "daemon", "--uplink", UPLINK,
        "--state-dir", str(tmp_path / "state"))], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        f"vnetshare: error: --agent-uids {FIRST_UID}-{LAST_UID}: not all mapped in this user namespace "
        "(/proc/self/uid_map); give a range inside it"], p.stderr
