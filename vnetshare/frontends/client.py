"""client.py - the CLI's side of the control socket: one request, one answer.

Rules:
1. One connection per request; the request is one JSON line, so is the
   answer, both framed by protocol.py (encode(), Decoder). A streaming op
   (Stream: capture, events --follow) keeps its connection: the answer,
   with any descriptors passed along it, then messages until either side
   closes.
2. Every failure to reach the daemon becomes a DaemonUnreachable that says
   where it looked and how to start one; nothing here prints.
3. A command finds its daemon at daemon_socket(): --socket, else
   $VNETSHARE_SOCKET, else the default socket; but with neither given, if
   nothing is at the default and the lab's socket (`vnetshare lab up`) is
   there, the lab's. A daemon listens where socket_path() says, never
   where the fallback would lead.
"""
from __future__ import annotations

import errno
import os
import socket

from ..core import config, protocol
from ..core.errors import VnetshareError

DEFAULT_SOCKET = config.DEFAULT_SOCKET
LAB_SOCKET = config.LAB_SOCKET
TIMEOUT = 30.0  # partition create waits for netlink and an agent start
ANSWER_MAX = 64 << 20  # an answer (stats of every partition) may be far longer than a request


def socket_path(arg: str | None = None) -> str:
    """--socket, else $VNETSHARE_SOCKET, else the default: where a daemon listens."""
    return arg or os.environ.get("VNETSHARE_SOCKET") or DEFAULT_SOCKET


def daemon_socket(arg: str | None = None) -> str:
    """Where a command finds its daemon (rule 3): socket_path(@arg), or the
    lab's socket when neither --socket nor $VNETSHARE_SOCKET is given, no
    socket is at the default and the lab's is: `vnetshare partition list`
    after `vnetshare lab up` reaches the lab's daemon, and a deployment's
    daemon, when it runs, is always the one found."""
    path = socket_path(arg)
    if arg or os.environ.get("VNETSHARE_SOCKET") or os.path.exists(path) or not os.path.exists(LAB_SOCKET):
        return path
    return LAB_SOCKET


class DaemonUnreachable(VnetshareError):
    """No daemon answers on the control socket."""


class DaemonNotRunning(DaemonUnreachable):
    """None listens there at all: no socket, or a stale one (`vnetshare
    status`: not running; other DaemonUnreachables: unknown)."""


class DaemonError(VnetshareError):
    """The daemon answered {"ok": false}; .code is its errno name."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _connect(path: str, timeout: float) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except FileNotFoundError:
        s.close()
        raise DaemonNotRunning(
            f"no daemon running: {path} does not exist "
            "(start one with: vnetshare daemon --uplink IFACE)"
        ) from None
    except ConnectionRefusedError:
        s.close()
        raise DaemonNotRunning(
            f"no daemon running: nothing listens on {path} "
            "(start one with: vnetshare daemon --uplink IFACE)"
        ) from None
    except PermissionError:
        s.close()
        raise PermissionError(errno.EACCES, f"permission denied on {path}: run as root (sudo)") from None
    return s


def _answer(s: socket.socket, path: str, timeout: float, max_fds: int = 0):
    """The first answer on @s, the descriptors that came with it, and the
    decoder holding whatever followed it."""
    decoder = protocol.Decoder(max_line=ANSWER_MAX)
    answers: list[dict] = []
    fds: list[int] = []
    while not answers:
        try:
            if max_fds:
                chunk, more, _flags, _addr = socket.recv_fds(s, 65536, max_fds)
                fds += more
            else:
                chunk = s.recv(65536)
        except socket.timeout:
            raise DaemonUnreachable(f"the daemon at {path} did not answer within {timeout:g} s") from None
        if not chunk:
            raise DaemonUnreachable(f"the daemon at {path} closed the connection without an answer")
        try:
            answers = decoder.feed(chunk)
        except protocol.ProtocolError:
            raise DaemonUnreachable(f"the daemon at {path} sent a malformed answer") from None
    answer = answers[0]
    if "ok" not in answer:
        raise DaemonUnreachable(f"the daemon at {path} sent a malformed answer")
    if not answer["ok"]:
        for fd in fds:
            os.close(fd)
        err = answer.get("error") or {}
        raise DaemonError(str(err.get("code", "EIO")), str(err.get("message", "unknown error")))
    return answer, fds, decoder, answers[1:]


def call(path: str, op: str, timeout: float = TIMEOUT, **fields) -> dict:
    """Send {"op": op, **fields} to the daemon at @path and return its answer.

    Raises DaemonUnreachable, DaemonError, or PermissionError (not root).
    """
    s = _connect(path, timeout)
    try:
        s.sendall(protocol.encode(protocol.request(op, **fields)))
        answer, _fds, _dec, _rest = _answer(s, path, timeout)
    finally:
        s.close()
    return answer


class Stream:
    """A streaming op's connection (capture, events --follow): the first
    answer, the descriptors passed with it, then the socket and the decoder
    for what follows. Closing it (or the process ending) ends the stream at
    the daemon."""

    def __init__(self, path: str, op: str, timeout: float = TIMEOUT, max_fds: int = 0, **fields):
        self.sock = _connect(path, timeout)
        try:
            self.sock.sendall(protocol.encode(protocol.request(op, **fields)))
            self.answer, self.fds, self.decoder, self.pending = _answer(self.sock, path, timeout, max_fds)
        except BaseException:
            self.sock.close()
            raise
        self.sock.settimeout(None)

    def messages(self):
        """The messages that follow the answer, until the daemon closes."""
        yield from self.pending
        self.pending = []
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return
            yield from self.decoder.feed(chunk)

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []
        self.sock.close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
