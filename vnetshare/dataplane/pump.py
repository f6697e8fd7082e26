"""pump.py - the agent's frame pump (native/pump.c) run from Python.

The loop is C: pump_run() moves frames between the partition's TAP and its
two rings and sleeps in poll() when idle. cffi releases the GIL for the
call, so a Python thread runs it while the rest of the process goes on.

Rules:
1. The pump borrows the TAP descriptor and the two Ring objects: keep them
   open until stop() has returned.
2. stop() is safe from any thread and idempotent; it joins the loop.
3. A loop that ended on its own (the TAP was deleted) keeps its error in
   .error, and stop() raises it.
"""
from __future__ import annotations

from . import counters
from ._native import ffi, lib
from ._loop import NativeLoop
from ..core.errors import check
from .ring import CONSUMER, PRODUCER, Ring

class Pump(NativeLoop):
    """TAP <-> rings pump of one partition: A2H is ours to produce, H2A to consume."""

    _what = "pump"

    def __init__(self, tap_fd: int, a2h: Ring, h2a: Ring, burst: int = 0,
                 coalesce_usecs: int | None = None, byte_limit: bool | None = None):
        super().__init__()
        if a2h.role != PRODUCER or h2a.role != CONSUMER:
            raise ValueError("Pump needs the A2H ring as producer and the H2A ring as consumer")
        out = ffi.new("struct pump **")
        check(lib.pump_create(out, tap_fd, a2h.handle, h2a.handle, burst), "pump_create")
        self._p = out[0]
        if coalesce_usecs is not None:
            rc = lib.pump_set_coalesce(self._p, coalesce_usecs)
            if rc < 0:
                lib.pump_destroy(self._p)
                self._p = None
                check(rc, f"pump_set_coalesce({coalesce_usecs})")
        if byte_limit is not None:
            # the dynamic byte limit on A2H (native/dql.h); None: the default
            lib.pump_set_a2h_limit(self._p, int(byte_limit))
        self._rings = (a2h, h2a)  # keep them mapped while the loop runs
        self.tap_fd = tap_fd
        self._final: dict | None = None

    def _run_native(self) -> int:
        return lib.pump_run(self._p)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop, wait for it, free the pump. Raises the loop's error."""
        with self._lock:
            if self._p is None:
                return
            check(lib.pump_stop(self._p), "pump_stop")
            self._join(timeout)
            self._final = self.stats()
            lib.pump_destroy(self._p)
            self._p = None
        if self.error is not None:
            raise self.error

    close = stop

    def stats(self) -> dict:
        """Counters (partition view: tx = read from its TAP, rx = written to it).

        After stop(), the last counters.
        """
        if self._p is None:
            if self._final is not None:
                return dict(self._final)
            raise ValueError("pump was never started")
        st = ffi.new("struct pump_stats *")
        lib.pump_get_stats(self._p, st)
        return counters.from_struct(st)

    def __enter__(self) -> "Pump":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
