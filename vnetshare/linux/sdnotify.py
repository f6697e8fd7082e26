"""sdnotify.py - tell the service manager how the daemon is doing (sd_notify).

systemd's notification protocol (sd_notify(3)), written out rather than
taken from a library: one datagram of newline-separated VAR=VALUE lines to
the AF_UNIX socket $NOTIFY_SOCKET names, a path ("/run/systemd/notify") or,
with a leading "@", an abstract address. The daemon sends READY=1 once its
data path is up (the unit is Type=notify: `systemctl start` returns then),
STOPPING=1 when it begins to stop, and STATUS= lines that `systemctl
status` shows.

Rules:
1. Without $NOTIFY_SOCKET (the daemon was not started by a service manager
   that waits for it) every call does nothing.
2. The address is read once, when the Notifier is made, and removed from
   the environment, so no child (an agent) inherits it (sd_notify's
   unset_environment).
3. A failure to notify is logged once and never raised: the daemon serves
   whether or not the manager heard it (a manager that did not would end
   it at its start timeout).
"""
from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("vnetshare.daemon")

ENV = "NOTIFY_SOCKET"


def address(value: str | None) -> bytes | None:
    """The socket address $NOTIFY_SOCKET names: a path, or an abstract
    address for "@NAME"; None for nothing or an address this does not
    speak (systemd 253's "vsock:CID:PORT")."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value.encode()
    return None


def message(**fields: object) -> bytes:
    """VAR=VALUE lines from @fields: ready=1 -> READY=1; a newline in a
    value (a STATUS= text) becomes a space, the protocol being one line
    per assignment."""
    return "\n".join(f"{k.upper()}={str(v).replace(chr(10), ' ')}" for k, v in fields.items()).encode()


class Notifier:
    """The daemon's line to its service manager (rules 1-3)."""

    def __init__(self, environ: dict | None = None):
        environ = os.environ if environ is None else environ
        raw = environ.pop(ENV, None)
        self.addr = address(raw)
        self._warned = False
        if raw and self.addr is None:
            log.warning("%s=%r: not a socket path or @abstract name; the service manager "
                        "is not told when the daemon is ready", ENV, raw)

    def send(self, **fields: object) -> bool:
        """One notification (message()); True if it was sent."""
        if self.addr is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(message(**fields), self.addr)
            return True
        except OSError as e:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify the service manager at %s: %s", self.addr.decode(errors="replace"),
                            e.strerror or e)
            return False

    def ready(self, status: str) -> bool:
        return self.send(ready=1, status=status)

    def stopping(self, status: str) -> bool:
        return self.send(stopping=1, status=status)

    def status(self, status: str) -> bool:
        return self.send(status=status)
