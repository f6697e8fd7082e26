"""exits.py - what a failed `vnetshare` command says, and with which exit code.

The daemon answers a refused request with an error code, an errno name
(protocol.error(): {"code": "ENOENT", "message": ...}); the CLI turns every
failure, the daemon's or its own, into one of these exit codes and either
one line on stderr or, with --json, {"error": {"code": ..., "message": ...}}
on stdout.

Rules:
1. One table, EXITS, says which code exits how; docs/cli.md shows it
   (tests/unit/test_cli_exits.py holds them together).
2. A message never carries Python's "[Errno N]" prefix: an OSError is its
   strerror (and its file name), as ip(8) would say it.
3. The exit codes are distinct per kind of failure and stable: scripts test
   them (`vnetshare partition show x; [ $? = 5 ] && ...`).
4. `vnetshare status` keeps its own codes (systemctl is-active's), whose
   3 (not running) and 4 (unknown: not root) agree with these.
5. `vnetshare daemon` exits 0 when stopped, 2 on a usage error and 1 on any
   failure to start or run: its unit restarts it on 1, never on 2
   (RestartPreventExitStatus=2), so its codes stay those three.
"""
from __future__ import annotations

import errno as _errno
import json
import sys
from typing import TextIO

from ..core import errors
from ..core.errors import ConfigError, VnetshareError

OK = 0
FAILURE = 1       # anything else: the daemon failed, timed out, a file could not be written
USAGE = 2         # a bad option or value (argparse's code), or a value the daemon refused as invalid
NOT_RUNNING = 3   # no daemon at the control socket (as `vnetshare status`)
DENIED = 4        # not root, or the control socket is not ours to open
NOT_FOUND = 5     # no such partition (or other named thing)
EXISTS = 6        # it exists already (partition create without --may-exist)
REFUSED = 7       # the daemon's policy refused it: an address or MAC in use, a limit reached

#: (exit code, its short name, what it means, the error codes that exit with it), in order
EXITS = (
    (OK, "success", "success", ()),
    (FAILURE, "failure", "any other failure (the daemon failed, did not answer, a file could not be written)",
     ("EIO", "ETIMEDOUT", "EAGAIN", "EPERM", "EOPNOTSUPP", "any other")),
    (USAGE, "usage", "usage error: a bad option or value, named in the message", ("EINVAL",)),
    (NOT_RUNNING, "not running", "no daemon runs at the control socket", ("ECONNREFUSED",)),
    (DENIED, "denied", "permission denied: not root, or the control socket is not yours (the daemon's own "
             "failures, EPERM included, are 1)", ("EACCES",)),
    (NOT_FOUND, "not found", "not found: no partition (or namespace, file) of that name", ("ENOENT",)),
    (EXISTS, "exists", "already exists: a partition of that name", ("EEXIST",)),
    (REFUSED, "refused", "refused by the daemon's policy: an address or MAC in use, a limit reached",
     ("EADDRINUSE", "ENOSPC", "EBUSY")),
)
_BY_CODE = {code: ex for ex, _short, _what, codes in EXITS for code in codes if ex not in (FAILURE, DENIED)}


class Failure(VnetshareError):
    """A failure the CLI itself reports: an error @code (errno name) and a message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def exit_code(code: str) -> int:
    """The exit code for an error @code (rule 1)."""
    return _BY_CODE.get(code, FAILURE)


def describe(exc: BaseException) -> tuple[str, str]:
    """(error code, message) of @exc, without "[Errno N]" (rule 2)."""
    from .client import DaemonError, DaemonNotRunning, DaemonUnreachable

    if isinstance(exc, (DaemonError, Failure)):
        return exc.code, str(exc)
    if isinstance(exc, DaemonNotRunning):
        return "ECONNREFUSED", str(exc)
    if isinstance(exc, DaemonUnreachable):
        return ("ETIMEDOUT" if "did not answer" in str(exc) else "EIO"), str(exc)
    if isinstance(exc, ConfigError):
        return getattr(exc, "code", "EINVAL"), str(exc)
    if isinstance(exc, OSError):
        return _errno.errorcode.get(exc.errno or 0, "EIO"), errors.message(exc)
    return "EIO", str(exc) or type(exc).__name__


def report(code: str, message: str, as_json: bool, out: TextIO | None = None,
           err: TextIO | None = None, status: int | None = None) -> int:
    """Say that the command failed with @code and @message: one line on
    stderr, or with @as_json the error object on stdout. Returns the exit
    code: @status, or exit_code(@code)."""
    if as_json:
        print(json.dumps({"error": {"code": code, "message": message}}), file=out or sys.stdout)
    else:
        print(f"vnetshare: error: {message}", file=err or sys.stderr)
    return exit_code(code) if status is None else status


def report_exception(exc: BaseException, as_json: bool) -> int:
    """report() for @exc (describe())."""
    code, message = describe(exc)
    if isinstance(exc, PermissionError):  # this command's own, not the daemon's (DaemonError)
        return report("EACCES", message, as_json, status=DENIED)
    return report(code, message, as_json)
