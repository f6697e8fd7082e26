"""procs.py - find processes by what /proc says of them.

The daemon, the lab, the tests and the benchmark all end only processes
they can name: a PID whose command line says it is a vnetshare agent (or
daemon) for the right partition (or uplink), or a child of a daemon they
started. Never a pattern over every process of the machine.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Iterator


def python_argv(module: str, *args: str) -> list[str]:
    """The command line that runs @module of this installation in a new process.

    This interpreter, with -P (Python 3.11's safe path): `python -m` would
    otherwise put the working directory first on sys.path, and a source
    tree there (a clone without its built extension) would shadow the
    installed package. Used for the daemon, the agents and the CLI alike.
    """
    return [sys.executable, "-P", "-m", module, *args]


def cmdline(pid: int) -> list[bytes] | None:
    """/proc/PID/cmdline split at NULs; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return None


def agent_name(argv: list[bytes]) -> str | None:
    """The partition an agent's command line serves, or None if @argv is no
    agent's: the C agent (`.../vnetshare-agent --fd N --name NAME`) or the
    Python one (`python -P -m vnetshare.agent --fd N --name NAME`)."""
    c_agent = bool(argv) and os.path.basename(argv[0]) == b"vnetshare-agent"
    py_agent = b"vnetshare.agent" in argv[1:4] and b"-m" in argv[1:3]
    if not (c_agent or py_agent) or b"--name" not in argv:
        return None
    i = argv.index(b"--name")
    return argv[i + 1].decode(errors="replace") if i + 1 < len(argv) else None


def is_agent(pid: int, names: list[str] | str) -> bool:
    """PID runs an agent (agent_name()) for one of @names."""
    argv = cmdline(pid)
    if isinstance(names, str):
        names = [names]
    return argv is not None and agent_name(argv) in names


def processes() -> Iterator[tuple[int, int, list[bytes]]]:
    """(pid, ppid, argv) of every process still there when read."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        argv = cmdline(int(entry))
        if argv is not None:
            yield int(entry), ppid, argv


def agents_of(daemon_pid: int) -> list[int]:
    """The agent children of @daemon_pid (never anyone else's processes)."""
    return [pid for pid, ppid, argv in processes() if ppid == daemon_pid and agent_name(argv) is not None]


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 5.0, *,
         wait_first: float = 0.0) -> int:
    """End a child we started, by its PID (never by name); return its status.

    Waits @wait_first seconds for it to end by itself (an agent whose
    control socket was closed), then sends @sig and waits @grace seconds,
    then SIGKILL. Its pipes are closed.
    """
    try:
        proc.wait(timeout=wait_first) if wait_first else None
    except subprocess.TimeoutExpired:
        pass
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
        except ProcessLookupError:
            pass
    status = proc.wait()
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f:
            try:
                f.close()
            except OSError:
                pass
    return status


def exit_description(code: int) -> tuple[str, int | None, str | None]:
    """A Popen returncode as (words, exit_status, signal name): -9 is
    ("killed by SIGKILL", None, "SIGKILL"), 1 is ("exit status 1", 1, None)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}", None, name
    return f"exit status {code}", code, None
