"""Choosing and recognising agents (agent.py, procs.py), and the C agent's
answers to a bad command line or a bad hand-off (native/agent.c).

No root and no network: the hand-offs here fail before the agent would
need a TAP or a ring, except the last, which fails at the first ring, past
everything checked before it.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from vnetshare import agent
from vnetshare.linux import procs


# -- which agent the daemon runs ----------------------------------------------------

@pytest.fixture
def fresh(monkeypatch):
    """agent.py's once-flags reset, its environment variables unset."""
    monkeypatch.setattr(agent, "_said_fallback", False)
    monkeypatch.setattr(agent, "_selftest_fired", False)
    monkeypatch.delenv(agent.C_AGENT_ENV, raising=False)
    monkeypatch.delenv(agent.SELFTEST_ENV, raising=False)
    return monkeypatch


def test_the_c_agent_is_built_next_to_the_package(fresh):
    assert os.path.isfile(agent.C_AGENT) and os.access(agent.C_AGENT, os.X_OK), \
        f"{agent.C_AGENT}: build it (scripts/setup.sh, or python3 setup.py build_ext --inplace)"
    assert agent.command(7, "pa") == [agent.C_AGENT, "--fd", "7", "--name", "pa"]


def test_another_binary_from_the_environment(fresh, tmp_path):
    other = tmp_path / "vnetshare-agent"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    fresh.setenv(agent.C_AGENT_ENV, str(other))
    assert agent.command(3, "pb")[0] == str(other)


@pytest.mark.parametrize("how", ["missing", "not-executable", "a-directory"])
def test_python_agent_when_the_c_one_cannot_run_said_once(fresh, tmp_path, caplog, how):
    path = tmp_path / "vnetshare-agent"
    if how == "not-executable":
        path.write_text("#!/bin/sh\n")
        path.chmod(0o644)
    elif how == "a-directory":
        path.mkdir()
    fresh.setenv(agent.C_AGENT_ENV, str(path))
    with caplog.at_level(logging.WARNING, logger="vnetshare.agent"):
        first = agent.command(5, "pa")
        again = agent.command(6, "pb")
    assert first == [sys.executable, "-P", "-m", "vnetshare.agent", "--fd", "5", "--name", "pa"]
    assert again[-1] == "pb"
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and str(path) in said[0] and "Python agent" in said[0], said


def test_the_self_test_hook_fires_once_for_the_named_partition_only(fresh):
    assert agent.hello_message("pa", 4096, None) == {"name": "pa", "ring_size": 4096, "coalesce_usecs": None}
    fresh.setenv(agent.SELFTEST_ENV, "victim")
    assert "seccomp_selftest" not in agent.hello_message("pa", 4096, 100)
    assert agent.hello_message("victim", 4096, 100)["seccomp_selftest"] is True
    assert "seccomp_selftest" not in agent.hello_message("victim", 4096, 100)  # the restarted one serves


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


def hand_off(msg: bytes | None, nfds: int = 7) -> subprocess.CompletedProcess:
    """Run the C agent and send it @msg with @nfds descriptors of /dev/null
    (None: close our end first)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    devnull = [os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC) for _ in range(nfds)]
    try:
        with ours:
            if msg is not None:
                socket.send_fds(ours, [msg], devnull)
            else:
                ours.close()
            with theirs:
                fd = theirs.fileno()
                p = subprocess.Popen([agent.C_AGENT, "--fd", str(fd), "--name", "pa"], pass_fds=[fd],
                                     stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            _, err = p.communicate(timeout=10)
            return subprocess.CompletedProcess(p.args, p.returncode, "", err)
    finally:
        for fd in devnull:
            os.close(fd)


GOOD = {"name": "pa", "ring_size": 4194304, "coalesce_usecs": 100}


@pytest.mark.parametrize("msg, nfds, needle", [
    (None, 0, "the daemon closed the socket before sending descriptors"),
    (json.dumps(GOOD).encode(), 3, "expected 7 descriptors from the daemon, got 3"),
    (json.dumps(GOOD).encode(), 8, "expected 7 descriptors from the daemon, got 8"),
    (json.dumps(GOOD).encode(), 0, "expected 7 descriptors from the daemon, got 0"),
    (b"x" * 70000, 7, "the daemon's message is longer than 65536 bytes"),
    (b"", 7, "bad message from the daemon: not a JSON object"),
    (b"[1]", 7, "bad message from the daemon: not a JSON object"),
    (b'{"ring_size": 4096', 7, "bad message from the daemon: ',' or '}' expected"),
    (b'{"ring_size": 4096} x', 7, "bad message from the daemon: text after the object"),
    (b'{"name": "pa"}', 7, "bad message from the daemon: no ring_size"),
    (b'{"ring_size": -1}', 7, "bad message from the daemon: a non-negative integer expected"),
    (b'{"ring_size": 4096.5}', 7, "bad message from the daemon: a non-negative integer expected"),
    (b'{"ring_size": 99999999999999999999999}', 7, "bad message from the daemon: a number too large"),
    (b'{"ring_size": 4096, "coalesce_usecs": "100"}', 7,
     "bad message from the daemon: a non-negative integer expected"),
    (b'{"ring_size": 4096, "seccomp_selftest": 1}', 7, "bad message from the daemon: bad literal"),
    (b'{"ring_size": 4096, "x": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}', 7,
     "bad message from the daemon: nested too deep"),
    (b'{"ring_size": 4096, "name": "p\x01"}', 7, "bad message from the daemon: a control character in a string"),
])
def test_bad_hand_off_one_line_exit_1(msg, nfds, needle):
    p = hand_off(msg, nfds)
    assert p.returncode == 1
    assert p.stderr == f"vnetshare-agent[pa]: {needle}\n"


@pytest.mark.parametrize("msg", [
    GOOD,
    dict(GOOD, coalesce_usecs=None, seccomp_selftest=False),
    {"ring_size": 4194304, "x": {"a": [1, -2.5e3, {"b": None, "c": "\"\\u00e9"}], "d": True}, "y": []},
])
def test_a_good_hello_gets_as_far_as_the_rings(msg):
    # /dev/null is no ring: the first error is the A2H ring's, so the hello
    # was read, unknown keys skipped, and privileges dropped without error
    p = hand_off(json.dumps(msg).encode())
    assert p.returncode == 1
    assert p.stderr == "vnetshare-agent[pa]: ring_attach(A2H, 4194304): Invalid argument\n"
