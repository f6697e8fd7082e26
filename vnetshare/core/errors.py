"""errors.py - one exception root for vnetshare, compatible with builtins.

Rules:
1. Everything vnetshare raises on purpose derives from VnetshareError.
2. A kernel or C failure stays an OSError and keeps its errno.
3. A user mistake (bad value) is a ConfigError, a ValueError too, and its
   message names the bad value.
4. What a person reads never has Python's "[Errno N]" prefix: message()
   spells any exception; vnetshare's own OSErrors (KernelError) print so.
"""
import os


class VnetshareError(Exception):
    """Root of every error vnetshare raises on purpose."""


class ConfigError(ValueError, VnetshareError):
    """A value given by the user (CLI, control message, config) is wrong."""


def message(exc: BaseException) -> str:
    """@exc as one line for a person: an OSError is its strerror (and its
    file name), without Python's "[Errno N]" prefix; anything else str()."""
    if isinstance(exc, OSError):
        if not exc.strerror:
            return OSError.__str__(exc)
        text = exc.strerror
        if exc.filename is not None and str(exc.filename) not in text:
            text += f": {exc.filename}"
        return text
    return str(exc)


class KernelError(OSError, VnetshareError):
    """An OSError of vnetshare's own whose str() is its message (rule 4)."""

    def __str__(self) -> str:
        return message(self)


class NativeError(KernelError):
    """A call into the C data plane failed; .errno says why."""


def check(rc: int, what: str = "") -> int:
    """Turn a C ``0 or -errno`` return into a value or a NativeError."""
    if rc < 0:
        err = -rc
        msg = os.strerror(err)
        raise NativeError(err, f"{what}: {msg}" if what else msg)
    return rc
