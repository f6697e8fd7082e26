"""client.py - the CLI's side of the control socket: one request, one answer.

Rules:
1. One connection per request; the request is one JSON line, so is the
   answer, both framed by protocol.py (encode(), Decoder).
2. Every failure to reach the daemon becomes a DaemonUnreachable that says
   where it looked and how to start one; nothing here prints.
"""
from __future__ import annotations

import errno
import os
import socket

from ..core import config, protocol
from ..core.errors import VnetshareError

DEFAULT_SOCKET = config.DEFAULT_SOCKET
TIMEOUT = 30.0  # partition create waits for netlink and an agent start
ANSWER_MAX = 64 << 20  # an answer (stats of every partition) may be far longer than a request


def socket_path(arg: str | None = None) -> str:
    """--socket, else $VNETSHARE_SOCKET, else the default."""
    return arg or os.environ.get("VNETSHARE_SOCKET") or DEFAULT_SOCKET


class DaemonUnreachable(VnetshareError):
    """No daemon answers on the control socket."""


class DaemonError(VnetshareError):
    """The daemon answered {"ok": false}; .code is its errno name."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def call(path: str, op: str, timeout: float = TIMEOUT, **fields) -> dict:
    """Send {"op": op, **fields} to the daemon at @path and return its answer.

    Raises DaemonUnreachable, DaemonError, or PermissionError (not root).
    """
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except FileNotFoundError:
            raise DaemonUnreachable(
                f"no daemon running: {path} does not exist "
                "(start one with: vnetshare daemon --uplink IFACE)"
            ) from None
        except ConnectionRefusedError:
            raise DaemonUnreachable(
                f"no daemon running: nothing listens on {path} "
                "(start one with: vnetshare daemon --uplink IFACE)"
            ) from None
        except PermissionError:
            raise PermissionError(errno.EACCES, f"permission denied on {path}: run as root (sudo)") from None
        s.sendall(protocol.encode(protocol.request(op, **fields)))
        decoder = protocol.Decoder(max_line=ANSWER_MAX)
        answers: list[dict] = []
        while not answers:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise DaemonUnreachable(f"the daemon at {path} did not answer within {timeout:g} s") from None
            if not chunk:
                raise DaemonUnreachable(f"the daemon at {path} closed the connection without an answer")
            try:
                answers = decoder.feed(chunk)
            except protocol.ProtocolError:
                raise DaemonUnreachable(f"the daemon at {path} sent a malformed answer") from None
    finally:
        s.close()
    answer = answers[0]
    if "ok" not in answer:
        raise DaemonUnreachable(f"the daemon at {path} sent a malformed answer")
    if not answer["ok"]:
        err = answer.get("error") or {}
        raise DaemonError(str(err.get("code", "EIO")), str(err.get("message", "unknown error")))
    return answer
