"""errors.py - one exception root for vnetshare, compatible with builtins.

Rules:
1. Everything vnetshare raises on purpose derives from VnetshareError.
2. A kernel or C failure stays an OSError and keeps its errno.
3. A user mistake (bad value) is a ConfigError, a ValueError too, and its
   message names the bad value.
"""
import os


class VnetshareError(Exception):
    """Root of every error vnetshare raises on purpose."""


class ConfigError(ValueError, VnetshareError):
    """A value given by the user (CLI, control message, config) is wrong."""


class NativeError(OSError, VnetshareError):
    """A call into the C data plane failed; .errno says why."""


def check(rc: int, what: str = "") -> int:
    """Turn a C ``0 or -errno`` return into a value or a NativeError."""
    if rc < 0:
        err = -rc
        msg = os.strerror(err)
        raise NativeError(err, f"{what}: {msg}" if what else msg)
    return rc
