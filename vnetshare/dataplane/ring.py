"""ring.py - Python side of the shared-memory frame ring (native/ring.c).

The slow path only: create and attach rings, pass their descriptors on,
send and receive a frame at a time, read counters. Every byte is copied in
or out; no Python object ever aliases ring memory, which the peer can change
and which is gone after close(). The hot loops are C (native/ring.c,
native/ring_bench.c, later native/pump.c and native/switch.c).
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from ..core import config
from . import counters
from ._native import ffi, lib
from ..core.errors import ConfigError, check

PRODUCER = "producer"
CONSUMER = "consumer"
_ROLES = {PRODUCER: lib.RING_PRODUCER, CONSUMER: lib.RING_CONSUMER}

SIZE_DEFAULT = lib.RING_SIZE_DEFAULT
SIZE_MIN = lib.RING_SIZE_MIN
SIZE_MAX = lib.RING_SIZE_MAX
CTRL_SIZE = lib.RING_CTRL_SIZE
VNET_HDR_LEN = lib.RING_VNET_HDR_LEN
FRAME_MIN = lib.RING_ETH_HLEN
FRAME_MAX = lib.RING_FRAME_MAX
LEN_MAX = lib.RING_LEN_MAX
ZERO_VNET = bytes(VNET_HDR_LEN)

#: Names of the consumer's drop reasons, in enum ring_drop order.
DROP_REASONS = tuple(
    ffi.string(lib.ring_drop_name(i)).decode() for i in range(lib.RING_DROP__MAX)
)
_RING_ARRAYS = {"drops": counters.array_labels(DROP_REASONS)}

assert (config.RING_SIZE_MIN, config.RING_SIZE_MAX, config.RING_SIZE_DEFAULT) == (SIZE_MIN, SIZE_MAX, SIZE_DEFAULT), \
    "config.py and ring_abi.h differ"


def check_size(size: int) -> int:
    """Validate a data area size (power of two within limits): config.ring_size()."""
    return config.ring_size(size)


@dataclass(frozen=True)
class RingEnd:
    """One side's descriptors of a ring (struct ring_end): all a peer gets.

    The memfd, the read end of the pipe this side sleeps on, and the write
    end of the pipe that wakes the other side. No file description in it is
    shared with the other side's end except the memfd (native/ring.h,
    "Descriptors"), so nothing a peer does to its end can block ours.
    """

    memfd: int
    wait_fd: int
    kick_fd: int

    def __iter__(self):
        return iter((self.memfd, self.wait_fd, self.kick_fd))

    def to_c(self):
        """A ``struct ring_end *`` for the C calls (ring_attach, sw_port_add)."""
        return ffi.new("struct ring_end *", {"memfd": self.memfd, "wait_fd": self.wait_fd,
                                             "kick_fd": self.kick_fd})


@dataclass(frozen=True)
class RingFds:
    """Every descriptor of a ring, as its creator holds them (struct ring_fds)."""

    memfd: int
    data_rd: int
    data_wr: int
    space_rd: int
    space_wr: int

    def end(self, role: str) -> RingEnd:
        """The descriptors the @role side uses, and the only ones to hand it."""
        if role == PRODUCER:
            return RingEnd(self.memfd, self.space_rd, self.data_wr)
        if role == CONSUMER:
            return RingEnd(self.memfd, self.data_rd, self.space_wr)
        raise ConfigError(f"ring role {role!r}: must be {PRODUCER!r} or {CONSUMER!r}")

    def close(self) -> None:
        for fd in (self.memfd, self.data_rd, self.data_wr, self.space_rd, self.space_wr):
            try:
                os.close(fd)
            except OSError:
                pass


def create_fds(size: int = SIZE_DEFAULT) -> RingFds:
    """Make a new sealed ring memfd and its two wakeup pipes."""
    check_size(size)
    out = ffi.new("struct ring_fds *")
    check(lib.ring_create(size, out), "ring_create")
    return RingFds(out.memfd, out.data_rd, out.data_wr, out.space_rd, out.space_wr)


class Ring:
    """One side (producer or consumer) of a ring.

    Use :meth:`create` to make a new ring, :meth:`attach` to map one whose
    descriptors came from elsewhere (a peer, SCM_RIGHTS, a fork): all of
    them (:class:`RingFds`, the side is picked by @role) or only this
    side's (:class:`RingEnd`).
    """

    def __init__(self, fds: RingFds | RingEnd, role: str, size: int = 0, own_fds: bool = False):
        if role not in _ROLES:
            raise ConfigError(f"ring role {role!r}: must be {PRODUCER!r} or {CONSUMER!r}")
        if size:
            check_size(size)
        end = fds.end(role) if isinstance(fds, RingFds) else fds
        out = ffi.new("struct ring **")
        check(lib.ring_attach(out, end.to_c(), _ROLES[role], size), "ring_attach")
        self._r = out[0]
        self.fds = fds
        self.role = role
        self._own_fds = own_fds
        self._rec = ffi.new("struct ring_rec *")
        self._payload = ffi.new("uint8_t **")

    @classmethod
    def create(cls, role: str, size: int = SIZE_DEFAULT) -> "Ring":
        """Make a new ring and attach to it as @role; close() closes its fds."""
        fds = create_fds(size)
        try:
            return cls(fds, role, size, own_fds=True)
        except BaseException:
            fds.close()
            raise

    @classmethod
    def attach(cls, fds: RingFds | RingEnd, role: str, size: int = 0) -> "Ring":
        """Map an existing ring; the caller keeps owning the descriptors."""
        return cls(fds, role, size)

    # lifecycle -----------------------------------------------------------
    def close(self) -> None:
        if self._r is not None:
            lib.ring_detach(self._r)
            self._r = None
            if self._own_fds:
                self.fds.close()

    def __enter__(self) -> "Ring":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def handle(self):
        """The cffi ``struct ring *`` for the C loops (ring_bench, pump)."""
        if self._r is None:
            raise ValueError("ring is closed")
        return self._r

    @property
    def size(self) -> int:
        return lib.ring_data_size(self.handle)

    # producer ------------------------------------------------------------
    def send(self, frame: bytes, vnet: bytes = ZERO_VNET, flush: bool = True) -> bool:
        """Copy one frame into the ring. Return False if the ring is full."""
        if len(vnet) != VNET_HDR_LEN:
            raise ConfigError(f"vnet header of {len(vnet)} bytes: must be {VNET_HDR_LEN}")
        if not FRAME_MIN <= len(frame) <= FRAME_MAX:
            raise ConfigError(
                f"frame of {len(frame)} bytes: must be {FRAME_MIN} to {FRAME_MAX}"
            )
        n = VNET_HDR_LEN + len(frame)
        rc = lib.ring_reserve(self.handle, n, self._payload)
        if rc == -errno.ENOBUFS:
            return False
        check(rc, "ring_reserve")
        ffi.memmove(self._payload[0], vnet, VNET_HDR_LEN)
        ffi.memmove(self._payload[0] + VNET_HDR_LEN, frame, len(frame))
        check(lib.ring_commit(self.handle, n), "ring_commit")
        if flush:
            self.flush()
        return True

    def flush(self) -> None:
        """Publish what was sent and wake the consumer if it sleeps."""
        check(lib.ring_flush(self.handle), "ring_flush")

    # consumer ------------------------------------------------------------
    def recv_record(self) -> tuple[bytes, bytes] | None:
        """Next valid record as (vnet header, frame) copies, or None if empty."""
        rc = lib.ring_peek(self.handle, self._rec)
        if rc == -errno.EAGAIN:
            return None
        check(rc, "ring_peek")
        rec = self._rec
        vnet = bytes(ffi.buffer(ffi.addressof(rec, "vnet"), VNET_HDR_LEN))
        frame = ffi.unpack(ffi.cast("char *", rec.frame), rec.frame_len)
        check(lib.ring_release(self.handle), "ring_release")
        return vnet, frame

    def recv(self) -> bytes | None:
        """Next valid frame (a copy), or None if the ring is empty."""
        rec = self.recv_record()
        return None if rec is None else rec[1]

    # waiting -------------------------------------------------------------
    def fileno(self) -> int:
        """The pipe end this side sleeps on (for selectors); see arm()."""
        return lib.ring_fileno(self.handle)

    def ready(self, need: int = 0) -> bool:
        return bool(lib.ring_ready(self.handle, need))

    def used(self) -> int:
        """Bytes of the data area the producer filled and the consumer has
        not released (a consumer counts what the producer published)."""
        return lib.ring_used(self.handle)

    def arm(self, need: int = 0) -> bool:
        """Declare that this side will sleep on fileno().

        Returns True if armed (nothing to do now: wait for fileno() to be
        readable, then call disarm()), False if there is work already.
        """
        return lib.ring_arm(self.handle, need) == 0

    def disarm(self) -> None:
        lib.ring_disarm(self.handle)

    def wait(self, timeout: float | None = None, need: int = 0) -> bool:
        """Block (without the GIL) until this side can go on; False on timeout."""
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        rc = lib.ring_wait(self.handle, need, ms)
        if rc == -errno.ETIMEDOUT:
            return False
        check(rc, "ring_wait")
        return True

    # counters ------------------------------------------------------------
    def stats(self) -> dict:
        """Counters of this side, with drops by reason under "drops"."""
        st = ffi.new("struct ring_stats *")
        lib.ring_get_stats(self.handle, st)
        out = counters.from_struct(st, _RING_ARRAYS)
        out["violations"] = lib.ring_violations(self.handle)  # all reasons: what the switch checks
        return out
