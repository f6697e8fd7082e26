"""Choosing and recognising agents (agent.py, procs.py), the agents' uids
(agent.UidPool), and the C agent's answers to a bad command line or a bad
hand-off (native/agent.c).

No network: the hand-offs here fail before the agent would need a TAP or a
ring, except the last, which fails at the first ring, past everything
checked before it (as root it joins its own namespace and drops to a uid
of the default range on the way).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from vnetshare import agent
from vnetshare.core import config
from vnetshare.linux import procs


# -- which agent the daemon runs ----------------------------------------------------

@pytest.fixture
def fresh(monkeypatch):
    """agent.py's once-set reset, its environment variables unset."""
    monkeypatch.setattr(agent, "_selftest_fired", set())
    monkeypatch.delenv(agent.C_AGENT_ENV, raising=False)
    monkeypatch.delenv(agent.SELFTEST_ENV, raising=False)
    return monkeypatch


def test_the_c_agent_is_built_next_to_the_package(fresh):
    assert os.path.isfile(agent.C_AGENT) and os.access(agent.C_AGENT, os.X_OK), \
        f"{agent.C_AGENT}: build it (scripts/test.sh, or python3 setup.py build_ext --inplace)"
    assert agent.command(7, "pa") == [agent.C_AGENT, "--fd", "7", "--name", "pa"]


def test_another_binary_from_the_environment(fresh, tmp_path):
    other = tmp_path / "vnetshare-agent"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    fresh.setenv(agent.C_AGENT_ENV, str(other))
    assert agent.command(3, "pb")[0] == str(other)


@pytest.mark.parametrize("how", ["missing", "not-executable", "a-directory"])
def test_no_agent_is_one_line_and_no_fallback(fresh, tmp_path, how):
    path = tmp_path / "vnetshare-agent"
    if how == "not-executable":
        path.write_text("#!/bin/sh\n")
        path.chmod(0o644)
    elif how == "a-directory":
        path.mkdir()
    fresh.setenv(agent.C_AGENT_ENV, str(path))
    assert agent.c_agent() is None
    for call in (lambda: agent.command(5, "pa"), agent.require_agent):
        with pytest.raises(agent.AgentError) as e:
            call()
        msg = str(e.value)
        assert str(path) in msg and "missing or not executable" in msg and "\n" not in msg, msg


def test_the_self_test_hook_fires_once_for_the_named_partition_only(fresh):
    assert agent.hello_message("pa", 4096, None, 5000) == {
        "name": "pa", "ring_size": 4096, "coalesce_usecs": None, "uid": 5000, "gid": 5000}
    assert agent.hello_message("pa", 4096, None, 5000, byte_limit=True)["a2h_limit"] == 1
    assert agent.hello_message("pa", 4096, None, 5000, byte_limit=False)["a2h_limit"] == 0
    fresh.setenv(agent.SELFTEST_ENV, "victim,other:ptrace")
    assert "seccomp_selftest" not in agent.hello_message("pa", 4096, 100, 5000)
    assert agent.hello_message("victim", 4096, 100, 5000)["seccomp_selftest"] == "socket"
    assert "seccomp_selftest" not in agent.hello_message("victim", 4096, 100, 5000)  # the restarted one serves
    assert agent.hello_message("other", 4096, 100, 5001)["seccomp_selftest"] == "ptrace"
    assert "seccomp_selftest" not in agent.hello_message("other", 4096, 100, 5001)


@pytest.mark.parametrize("argv, name", [
    ([b"/venv/lib/python3.11/site-packages/vnetshare/_bin/vnetshare-agent", b"--fd", b"5", b"--name", b"pa", b""], "pa"),
    ([b"vnetshare-agent", b"--fd", b"5", b"--name", b"p-1", b""], "p-1"),
    ([b"/usr/bin/python3", b"-P", b"-m", b"vnetshare.agent", b"--fd", b"5", b"--name", b"pa", b""], "pa"),
    ([b"/usr/bin/python3", b"-m", b"vnetshare.agent", b"--fd", b"5", b"--name", b"pa", b""], "pa"),
    ([b"/usr/bin/vim", b"vnetshare.agent", b"--name", b"pa", b""], None),
    ([b"/usr/bin/python3", b"-m", b"vnetshare", b"daemon", b"--name", b"pa", b""], None),
    ([b"/tmp/not-vnetshare-agent", b"--fd", b"5", b"--name", b"pa", b""], None),
    ([b"/x/vnetshare-agent", b"--fd", b"5"], None),
    ([b"/x/vnetshare-agent", b"--name"], None),
    ([], None),
])
def test_agents_are_recognised_by_their_command_line(argv, name):
    assert procs.agent_name(argv) == name


# -- the C agent's input errors ----------------------------------------------------

def run_agent(*args: str, pass_fds=()) -> subprocess.CompletedProcess:
    return subprocess.run([agent.C_AGENT, *args], pass_fds=pass_fds, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize("args, needle", [
    ((), "--fd and --name are required"),
    (("--fd", "3"), "--fd and --name are required"),
    (("--name", "pa"), "--fd and --name are required"),
    (("--fd", "three", "--name", "pa"), "--fd: not a descriptor number"),
    (("--fd", "-1", "--name", "pa"), "--fd: not a descriptor number"),
    (("--fd", "3", "--name"), "an option needs a value"),
    (("--fd", "3", "--name", "pa", "--verbose"), "unknown argument"),
])
def test_bad_command_line(args, needle):
    p = run_agent(*args)
    assert p.returncode == 2
    assert p.stderr.splitlines()[-1] == f"vnetshare-agent: error: {needle}", p.stderr


# As root, the hand-off tests make the agent become this uid (a test's, from
# the end of the default range: the pool hands those out last); otherwise
# the agent must stay who it is.
TEST_UID = config.AGENT_UIDS_DEFAULT[1] if os.geteuid() == 0 else os.getuid()
TEST_GID = config.AGENT_UIDS_DEFAULT[1] if os.geteuid() == 0 else os.getgid()


def hand_off(msg: bytes | None, nfds: int = 8, netns: bool = False) -> tuple[subprocess.CompletedProcess, bytes]:
    """Run the C agent and send it @msg with @nfds descriptors of /dev/null
    (with @netns the last is our own network namespace; None: close our end
    first). Returns the run and what the agent answered on the socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    fds = [os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC) for _ in range(nfds)]
    if netns and nfds:
        os.close(fds[-1])
        fds[-1] = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    answer = b""
    try:
        with ours:
            if msg is not None:
                socket.send_fds(ours, [msg], fds)
            else:
                ours.close()
            with theirs:
                fd = theirs.fileno()
                p = subprocess.Popen([agent.C_AGENT, "--fd", str(fd), "--name", "pa"], pass_fds=[fd],
                                     stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            _, err = p.communicate(timeout=10)
            if msg is not None:
                ours.setblocking(False)
                try:
                    answer = ours.recv(4096)
                except BlockingIOError:
                    pass
            return subprocess.CompletedProcess(p.args, p.returncode, "", err), answer
    finally:
        for fd in fds:
            os.close(fd)


GOOD = {"name": "pa", "ring_size": 4194304, "coalesce_usecs": 100, "uid": TEST_UID, "gid": TEST_GID}


def good(**kw) -> bytes:
    return json.dumps(dict(GOOD, **kw)).encode()


@pytest.mark.parametrize("msg, nfds, needle", [
    (None, 0, "the daemon closed the socket before sending descriptors"),
    (good(), 3, "expected 8 descriptors from the daemon, got 3"),
    (good(), 9, "expected 8 descriptors from the daemon, got 9"),
    (good(), 0, "expected 8 descriptors from the daemon, got 0"),
    (b"x" * 70000, 8, "the daemon's message is longer than 65536 bytes"),
    (b"", 8, "bad message from the daemon: not a JSON object"),
    (b"[1]", 8, "bad message from the daemon: not a JSON object"),
    (b'{"ring_size": 4096', 8, "bad message from the daemon: ',' or '}' expected"),
    (b'{"ring_size": 4096, "uid": 5, "gid": 5} x', 8, "bad message from the daemon: text after the object"),
    (b'{"name": "pa", "uid": 5, "gid": 5}', 8, "bad message from the daemon: no ring_size"),
    (b'{"ring_size": 4096, "gid": 5}', 8, "bad message from the daemon: no uid"),
    (b'{"ring_size": 4096, "uid": 5}', 8, "bad message from the daemon: no gid"),
    (good(uid=0), 8, "bad message from the daemon: uid not 1 to 2147483647 (never root)"),
    (good(gid=0), 8, "bad message from the daemon: gid not 1 to 2147483647 (never root)"),
    (good(uid=2**31), 8, "bad message from the daemon: uid not 1 to 2147483647 (never root)"),
    (good(uid=-1), 8, "bad message from the daemon: a non-negative integer expected"),
    (b'{"ring_size": -1}', 8, "bad message from the daemon: a non-negative integer expected"),
    (b'{"ring_size": 4096.5}', 8, "bad message from the daemon: a non-negative integer expected"),
    (b'{"ring_size": 99999999999999999999999}', 8, "bad message from the daemon: a number too large"),
    (b'{"ring_size": 4096, "coalesce_usecs": "100"}', 8,
     "bad message from the daemon: a non-negative integer expected"),
    (good(a2h_limit=2), 8, "bad message from the daemon: a2h_limit not 0 or 1"),
    (good(a2h_limit="on"), 8, "bad message from the daemon: a non-negative integer expected"),
    (good(seccomp_selftest=1), 8, "bad message from the daemon: a string expected"),
    (good(seccomp_selftest="fork"), 8, "bad message from the daemon: seccomp_selftest: no such call"),
    (b'{"ring_size": 4096, "x": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}', 8,
     "bad message from the daemon: nested too deep"),
    (b'{"ring_size": 4096, "name": "p\x01"}', 8, "bad message from the daemon: a control character in a string"),
    (good(), 8, "join the partition's network namespace: Invalid argument"),  # /dev/null is no namespace
])
def test_bad_hand_off_one_line_exit_1(msg, nfds, needle):
    p, answer = hand_off(msg, nfds)
    assert p.returncode == 1
    assert p.stderr == f"vnetshare-agent[pa]: {needle}\n"
    if msg is not None:  # and the daemon, who waits for its answer, is told the same
        assert json.loads(answer) == {"ready": False, "error": needle}, answer


@pytest.mark.parametrize("msg", [
    GOOD,
    dict(GOOD, coalesce_usecs=None, seccomp_selftest=False),
    dict(GOOD, seccomp_selftest="process_vm_readv"),
    dict(GOOD, a2h_limit=1), dict(GOOD, a2h_limit=0), dict(GOOD, a2h_limit=None),
    {"ring_size": 4194304, "x": {"a": [1, -2.5e3, {"b": None, "c": "\"\\u00e9"}], "d": True}, "y": [],
     "uid": TEST_UID, "gid": TEST_GID},
])
def test_a_good_hello_gets_as_far_as_the_rings(msg):
    # /dev/null is no ring: the first error is the A2H ring's, so the hello
    # was read, unknown keys skipped, the namespace joined and privileges
    # dropped without error
    p, answer = hand_off(json.dumps(msg).encode(), netns=True)
    assert p.returncode == 1
    assert p.stderr == "vnetshare-agent[pa]: ring_attach(A2H, 4194304): Invalid argument\n"
    assert json.loads(answer)["error"] == "ring_attach(A2H, 4194304): Invalid argument"


# -- the agents' uids -----------------------------------------------------------

def nobody_has(_uid: int) -> bool:
    return False


def test_uids_are_handed_out_in_turn_each_once(tmp_path):
    pool = agent.UidPool(5000, 5003, str(tmp_path), taken=nobody_has)
    assert [pool.allocate() for _ in range(3)] == [5000, 5001, 5002]
    pool.release(5001)
    # a freed uid comes back last, as pids do: after 5003, wrapping
    assert pool.allocate() == 5003 and pool.allocate() == 5001
    with pytest.raises(agent.AgentError) as e:
        pool.allocate()
    msg = str(e.value)
    assert "no free agent uid: all 4 of --agent-uids 5000-5003 are in use" in msg and "\n" not in msg
    assert "larger range" in msg
    pool.release(5002)
    assert pool.allocate() == 5002
    pool.close()


def test_a_uid_the_user_database_names_is_skipped(tmp_path):
    pool = agent.UidPool(5000, 5002, str(tmp_path), taken=lambda uid: uid == 5000)
    assert pool.allocate() == 5001
    assert agent.in_user_db(0) and not agent.in_user_db(config.AGENT_UIDS_DEFAULT[0])


def test_two_daemons_never_share_a_uid_and_files_say_who_holds_it(tmp_path):
    a = agent.UidPool(5000, 5003, str(tmp_path), taken=nobody_has)
    b = agent.UidPool(5000, 5003, str(tmp_path), taken=nobody_has)
    got_a = [a.allocate(), a.allocate()]
    got_b = [b.allocate(), b.allocate()]
    assert got_a == [5000, 5001] and got_b == [5002, 5003]
    assert (tmp_path / "5000").read_text() == f"{os.getpid()}\n"
    with pytest.raises(agent.AgentError):
        b.allocate()
    assert not b.claim(5000)  # a's, while a holds it
    a.close()  # a daemon ends: its uids are free to take (the files stay)
    assert sorted(os.listdir(tmp_path)) == ["5000", "5001", "5002", "5003"]
    assert b.claim(5000) and b.allocate() == 5001
    b.release(5000)
    assert "5000" not in os.listdir(tmp_path)  # a partition deleted: its file goes
    b.close()


def test_claim_keeps_a_records_uid_if_it_can(tmp_path):
    pool = agent.UidPool(5000, 5009, str(tmp_path), taken=nobody_has)
    assert pool.claim(5007) and 5007 in pool
    assert not pool.claim(5007)  # two records with one uid: the second gets another
    assert not pool.claim(4999) and not pool.claim(5010)  # outside the range
    assert pool.allocate() == 5008  # the turn goes on after the records' uids
    assert pool.allocate() == 5009 and pool.allocate() == 5000
    pool.close()


def test_the_range_must_be_mapped_in_the_user_namespace(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "uid_map").write_text("         0          0      65536\n     65536     200000      10000\n")
    (proc / "gid_map").write_text("         0          0 4294967295\n")
    agent.check_ids_mapped(60000, 75535, str(proc))
    agent.check_ids_mapped(1, 65536, str(proc))
    with pytest.raises(agent.AgentError) as e:
        agent.check_ids_mapped(70000, 75536, str(proc))
    assert str(e.value) == (f"--agent-uids 70000-75536: not all mapped in this user namespace "
                            f"({proc}/uid_map); give a range inside it")
