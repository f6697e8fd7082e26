"""Nothing the agent does to its descriptors can block the daemon (issue 13).

The agent side of a ring is untrusted. It holds the ring's memfd and its
wakeup descriptors; a hostile agent can change their file status flags
(clear O_NONBLOCK), fill the wakeup channel the daemon writes, or reopen
its ends through /proc. Each test plays such an agent against one
daemon-side path (the switch consumes A2H and produces H2A) and requires
that the daemon's call returns within a bound. A call that hangs is
unstuck by the test, so the suite reports the failure instead of hanging.
"""
from __future__ import annotations

import fcntl
import os
import threading

import pytest

from vnetshare import CONSUMER, PRODUCER, Ring

from ringtools import OFF_CONS_WAITING, OFF_PROD_WAITING, RawRing, frame

SIZE = 256 * 1024
BOUND = 5.0  # seconds: a call that has not returned by then is blocked


def agent_end(ring: Ring, agent_role: str) -> tuple[int, int, int]:
    """(memfd, wait_fd, kick_fd) as the agent of @ring holds them."""
    end = ring.fds.end(agent_role)
    return end.memfd, end.wait_fd, end.kick_fd


def make_blocking(fds) -> None:
    """What a hostile agent does first: clear O_NONBLOCK on all it holds."""
    for fd in fds:
        fcntl.fcntl(fd, fcntl.F_SETFL, 0)


def fill(fd: int) -> None:
    """Fill the wakeup channel behind @fd until a writer would block.

    An eventfd is filled to its maximum count; a pipe end is reopened for
    writing through /proc (an agent can always do this) and filled.
    """
    kind = os.readlink(f"/proc/self/fd/{fd}")
    if "eventfd" in kind:
        os.write(fd, (0xFFFFFFFFFFFFFFFE).to_bytes(8, "little"))
        return
    w = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                os.write(w, b"x" * 4096)
            except BlockingIOError:
                try:
                    os.write(w, b"x")
                except BlockingIOError:
                    return
    finally:
        os.close(w)


def unblock(fd: int) -> None:
    """Whatever would let a call blocked on the channel behind @fd go on."""
    kind = os.readlink(f"/proc/self/fd/{fd}")
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
    if "eventfd" in kind:
        for op in (lambda: os.read(fd, 8), lambda: os.write(fd, (1).to_bytes(8, "little"))):
            try:
                op()
            except OSError:
                pass
        return
    for flags in (os.O_RDONLY, os.O_WRONLY):
        x = os.open(f"/proc/self/fd/{fd}", flags | os.O_NONBLOCK)
        try:
            if flags == os.O_RDONLY:
                while os.read(x, 65536):
                    pass
            else:
                os.write(x, b"x")
        except OSError:
            pass
        finally:
            os.close(x)


def returns_in_time(call, stuck_fds) -> bool:
    """Run @call in a thread (cffi drops the GIL); True if it returned."""
    done = threading.Event()
    err: list[BaseException] = []

    def body():
        try:
            call()
        except BaseException as e:  # noqa: BLE001 - reported below
            err.append(e)
        finally:
            done.set()

    t = threading.Thread(target=body, daemon=True)
    t.start()
    ok = done.wait(BOUND)
    while not done.is_set():  # blocked: free it so the suite goes on
        for fd in stuck_fds:
            unblock(fd)
        done.wait(0.1)
    t.join()
    if err:
        raise err[0]
    return ok


@pytest.fixture
def a2h():
    """The daemon's A2H consumer, the agent's producer end, raw shared memory."""
    daemon = Ring.create(CONSUMER, SIZE)
    yield daemon, agent_end(daemon, PRODUCER), RawRing(daemon.fds.memfd, SIZE)
    daemon.close()


@pytest.fixture
def h2a():
    """The daemon's H2A producer, the agent's consumer end, raw shared memory."""
    daemon = Ring.create(PRODUCER, SIZE)
    yield daemon, agent_end(daemon, CONSUMER), RawRing(daemon.fds.memfd, SIZE)
    daemon.close()


def test_a2h_disarm_after_agent_clears_nonblock(a2h):
    daemon, agent, _raw = a2h
    make_blocking(agent)
    assert daemon.arm()
    assert returns_in_time(daemon.disarm, agent[1:]), "ring_disarm() blocked the daemon"


def test_a2h_wait_keeps_its_timeout_after_agent_clears_nonblock(a2h):
    daemon, agent, _raw = a2h
    make_blocking(agent)
    result = []
    assert returns_in_time(lambda: result.append(daemon.wait(timeout=0.05)), agent[1:]), \
        "ring_wait() ignored its timeout"
    assert result == [False]


def test_a2h_release_kicks_without_blocking_when_agent_filled_channel(a2h):
    daemon, agent, raw = a2h
    end = raw.put_frame(0, frame(60, seed=1))
    raw.prod = end
    make_blocking(agent)
    fill(agent[1])  # the channel the daemon writes to wake the agent's producer
    raw.write(OFF_PROD_WAITING, (1).to_bytes(4, "little"))
    got = []
    assert returns_in_time(lambda: got.append(daemon.recv()), agent[1:]), \
        "ring_release() blocked on the space wakeup"
    assert got == [frame(60, seed=1)]


def test_h2a_flush_kicks_without_blocking_when_agent_filled_channel(h2a):
    daemon, agent, raw = h2a
    make_blocking(agent)
    fill(agent[1])  # the channel the daemon writes to wake the agent's consumer
    raw.write(OFF_CONS_WAITING, (1).to_bytes(4, "little"))
    sent = []
    assert returns_in_time(lambda: sent.append(daemon.send(frame(60, seed=2))), agent[1:]), \
        "ring_flush() blocked on the data wakeup"
    assert sent == [True]
    assert raw.prod > 0  # the record was published all the same


def test_h2a_disarm_after_agent_clears_nonblock(h2a):
    daemon, agent, raw = h2a
    while daemon.send(frame(1500), flush=False):  # fill it, so arm() sleeps
        pass
    daemon.flush()
    make_blocking(agent)
    assert daemon.arm()
    assert returns_in_time(daemon.disarm, agent[1:]), "ring_disarm() blocked the daemon"
