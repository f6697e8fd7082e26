"""What every part of the benchmark shares: its error, its log line, the
children it starts (tied to its life, ended by PID) and the run's plan."""
from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from vnetshare.linux import procs

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


class BenchError(RuntimeError):
    """A measurement or a setup step failed (the run goes on, the row is empty)."""


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die_with_parent() -> None:
    # preexec_fn: the child (and what it execs) gets SIGKILL if this process
    # dies without cleaning up: no load outlives the benchmark.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def popen(argv: list[str], **kw) -> subprocess.Popen:
    """Popen from the main thread (PDEATHSIG follows the forking thread)."""
    assert threading.current_thread() is threading.main_thread()
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(argv, preexec_fn=die_with_parent, **kw)


def stop(p: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
    """End a child we started, by its PID (never by name)."""
    procs.stop(p, sig, grace)


@dataclass
class Plan:
    reps: int
    seconds: float           # each iperf3 run
    pings: int               # per ping run, 10 ms apart
    levels: tuple[int, ...]  # scale: partitions
    idle_seconds: float      # scale: idle CPU window
    idle_settle: float       # scale: quiet time before it
    cli_creates: int         # scale: timed `vnetshare partition create`
    many: int = 0            # scale: then this many idle partitions (issue 12: 1,000)
    only: list[str] = field(default_factory=list)
