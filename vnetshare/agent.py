"""agent.py - the partition agent: the patent's virtual hosted device driver.

One agent process serves one partition. The daemon starts it with one end of
a socketpair (--fd N) and sends, in one message, a JSON line describing the
partition and its descriptors (SCM_RIGHTS), in the order pack_fds() gives:
the partition's TAP, then the agent's end of each ring (A2H as producer,
H2A as consumer): the memfd, the pipe end it sleeps on, the pipe end that
wakes the daemon. It never gets the daemon's ends (native/ring.h,
"Descriptors").

Rules:
1. The agent drops every privilege (no capabilities, uid/gid nobody,
   no_new_privs) before it maps a ring: a compromised agent holds nothing
   but its own partition's descriptors.
1a. Everything it will ever run is imported (and the C extension loaded)
   before that: afterwards, a Python installation the unprivileged uid
   cannot read (a virtual environment under root's 0700 home) is out of
   reach, and a late import would fail.
2. It pumps frames in C (native/pump.c) with the GIL released; Python only
   waits for the end.
3. It ends when the daemon ends: SIGTERM, the socketpair closing, or the
   parent dying (PR_SET_PDEATHSIG, set again after the uid change, which
   clears it) all stop the pump and exit 0.
4. This Python agent is the fallback: the daemon runs the C agent
   (native/agent.c, vnetshare/_bin/vnetshare-agent, built with the
   package: same hand-off, no interpreter, a seccomp allow-list) and this
   one only if that binary is missing or not executable, and says so once
   in its log (command()).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import selectors
import signal
import socket
import sys

from .dataplane.pump import Pump
from .dataplane.ring import CONSUMER, PRODUCER, Ring, RingEnd, RingFds
from .linux import procs

log = logging.getLogger("vnetshare.agent")

# The C agent, built and installed with the package (setup.py).
C_AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "vnetshare-agent")
# Another C agent binary to run instead: tests point it at a missing path
# to get the Python fallback (and benchmarks to compare the two).
C_AGENT_ENV = "VNETSHARE_AGENT_BIN"
# Test hook, never set in production: VNETSHARE_AGENT_SELFTEST=NAME makes
# the first agent this daemon starts for partition NAME call socket()
# after its "ready" (native/agent.c): the seccomp filter must kill it.
SELFTEST_ENV = "VNETSHARE_AGENT_SELFTEST"
_said_fallback = False
_selftest_fired = False

NOBODY = 65534
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
MAX_FDS = 16
HELLO_MAX = 65536
HANDOFF_FDS = 7  # TAP + 3 per ring


def pack_fds(tap_fd: int, a2h: RingFds, h2a: RingFds) -> list[int]:
    """The descriptors the daemon sends an agent, in hand-off order."""
    return [tap_fd, *a2h.end(PRODUCER), *h2a.end(CONSUMER)]


def c_agent() -> str | None:
    """The C agent's path if it can run (an executable file), else None."""
    path = os.environ.get(C_AGENT_ENV) or C_AGENT
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def command(fd: int, name: str) -> list[str]:
    """The command line of a new agent: the C one, else this module (rule 4)."""
    global _said_fallback
    path = c_agent()
    if path is not None:
        return [path, "--fd", str(fd), "--name", name]
    if not _said_fallback:
        _said_fallback = True
        log.warning("the C agent %s is missing or not executable: partitions get the "
                    "Python agent (vnetshare.agent)", os.environ.get(C_AGENT_ENV) or C_AGENT)
    return procs.python_argv("vnetshare.agent", "--fd", str(fd), "--name", name)


def hello_message(name: str, ring_size: int, coalesce_usecs: int | None) -> dict:
    """The JSON half of the hand-off message (the descriptors: pack_fds())."""
    global _selftest_fired
    msg = {"name": name, "ring_size": ring_size, "coalesce_usecs": coalesce_usecs}
    if not _selftest_fired and os.environ.get(SELFTEST_ENV) == name:
        _selftest_fired = True  # once: the restarted agent must serve
        msg["seccomp_selftest"] = True
    return msg


def unpack_fds(fds: list[int]) -> tuple[int, RingEnd, RingEnd]:
    """The agent's side of pack_fds(): (TAP, A2H producer end, H2A consumer end)."""
    return fds[0], RingEnd(*fds[1:4]), RingEnd(*fds[4:7])


def _prctl(option: int, arg: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def drop_privileges(uid: int = NOBODY, gid: int = NOBODY) -> None:
    """Give up root for good: bounding set, groups, gid, uid, no_new_privs."""
    if os.geteuid() == 0:
        for cap in range(64):
            try:
                _prctl(PR_CAPBSET_DROP, cap)
            except OSError:
                break  # past the last capability the kernel knows
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # clears permitted and effective capabilities
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def receive_hello(sock: socket.socket) -> tuple[dict, list[int]]:
    """Read the daemon's one message: a JSON line and the descriptors."""
    msg, fds, _flags, _addr = socket.recv_fds(sock, HELLO_MAX, MAX_FDS)
    if not msg:
        raise ConnectionError("the daemon closed the socket before sending descriptors")
    hello = json.loads(msg)
    if len(fds) != HANDOFF_FDS:
        for fd in fds:
            os.close(fd)
        raise ValueError(f"expected {HANDOFF_FDS} descriptors from the daemon, got {len(fds)}")
    return hello, fds


def run(sock_fd: int) -> int:
    parent = os.getppid()  # not "1 means orphaned": in a container the daemon may be PID 1
    sock = socket.socket(fileno=sock_fd)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the daemon died before we set the death signal
        return 0
    hello, fds = receive_hello(sock)
    name = hello.get("name", "?")
    drop_privileges()
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the uid change cleared it
    if os.getppid() != parent:
        return 0

    tap, a2h_end, h2a_end = unpack_fds(fds)
    a2h = Ring(a2h_end, PRODUCER, hello["ring_size"])
    h2a = Ring(h2a_end, CONSUMER, hello["ring_size"])
    pump = Pump(tap, a2h, h2a, coalesce_usecs=hello.get("coalesce_usecs"))
    pump.start()

    stop_r, stop_w = os.pipe()

    def _stop(_sig, _frm):
        os.write(stop_w, b"x")

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sock.sendall(json.dumps({"ready": True, "pid": os.getpid()}).encode() + b"\n")
    # Wait for SIGTERM or the daemon's end of the socketpair closing.
    sel = selectors.DefaultSelector()
    sel.register(stop_r, selectors.EVENT_READ)
    sel.register(sock, selectors.EVENT_READ)
    while True:
        events = sel.select()
        done = False
        for key, _ in events:
            if key.fileobj is sock:
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    done = True
            else:
                done = True
        if done:
            break
    pump.stop()
    a2h.close()
    h2a.close()
    print(f"vnetshare-agent[{name}]: stopped", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vnetshare-agent", description="partition agent (started by the daemon)")
    p.add_argument("--fd", type=int, required=True, help="socketpair descriptor from the daemon")
    p.add_argument("--name", required=True, help="partition name (for ps and logs)")
    args = p.parse_args(argv)
    try:
        return run(args.fd)
    except (OSError, ValueError, ConnectionError) as e:
        print(f"vnetshare-agent[{args.name}]: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
