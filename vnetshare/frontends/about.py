"""about.py - `vnetshare --version`: what is installed, and whether it can run.

The package's version; the C data plane (the cffi extension): its ring ABI
version (native/ring_abi.h RING_VERSION, what an agent and the daemon must
agree on) and a build id (the start of its file's SHA-256, so two installs
are seen to differ); the agent binary (agent.py): its path and whether it is
there and executable (a daemon without it does not start).
"""
from __future__ import annotations

import hashlib
import platform
from typing import Any


def _build_id(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def info() -> dict[str, Any]:
    """What `vnetshare --version --json` prints."""
    from .. import __version__
    from .. import agent

    out: dict[str, Any] = {"version": __version__, "python": platform.python_version()}
    try:
        from ..dataplane import _native

        out["native"] = {"path": _native.__file__, "ring_abi": int(_native.lib.RING_VERSION),
                         "build": _build_id(_native.__file__)}
    except (ImportError, OSError) as e:  # a broken install still says its version
        out["native"] = {"path": None, "ring_abi": None, "build": None, "error": str(e)}
    path = agent.agent_path()
    out["agent"] = {"path": path, "available": agent.c_agent() is not None}
    return out


def text(i: dict[str, Any]) -> str:
    """info() for a person."""
    n, a = i["native"], i["agent"]
    native = (f"ring ABI {n['ring_abi']}, build {n['build']} ({n['path']})" if n["path"]
              else f"not loadable: {n.get('error')}")
    agent = f"{a['path']} ({'available' if a['available'] else 'MISSING or not executable: reinstall'})"
    return (f"vnetshare {i['version']}\n"
            f"  C data plane  {native}\n"
            f"  agent         {agent}\n"
            f"  python        {i['python']}")
