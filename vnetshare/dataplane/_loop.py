"""_loop.py - a C loop (sw_run, pump_run) on a daemon thread, the GIL released.

Rules:
1. The loop runs until its own stop call; a failure is kept in .error and
   raised by the owner's stop(), never lost in the thread.
2. A loop starts once.
"""
from __future__ import annotations

import threading

from ..core.errors import NativeError, check


class NativeLoop:
    """Base of Switch and Pump: subclasses give _what and _run_native()."""

    _what = "loop"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.error: NativeError | None = None

    def _run_native(self) -> int:
        raise NotImplementedError

    def run(self) -> None:
        """Run the loop in this thread until it is stopped; raise if it fails."""
        rc = self._run_native()
        if rc < 0:
            try:
                check(rc, f"{self._what}_run")
            except NativeError as e:
                self.error = e
                raise

    def _thread_main(self) -> None:
        try:
            self.run()
        except NativeError:
            pass  # kept in self.error (rule 1)

    def start(self, name: str | None = None) -> None:
        """Run the loop in a daemon thread."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"{self._what} already started")
            self._thread = threading.Thread(target=self._thread_main,
                                            name=name or f"vnetshare-{self._what}", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def native_tid(self) -> int | None:
        """Kernel thread id of the loop (for /proc/self/task/TID/stat)."""
        return self._thread.native_id if self._thread is not None else None

    def _join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"{self._what} thread did not stop")
