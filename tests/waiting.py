"""waiting.py - the tests' one way to wait for a condition.

Every test tree imports it (`from waiting import wait_for`: tests/ is on
sys.path through tests/conftest.py; system.py, dataplane_helpers.py and
ringtools.py re-export it). Tests wait for what they assert; they never
sleep and hope.

Rules:
1. wait_for(pred) calls @pred until it returns something true, and
   returns that value (a counter snapshot, an event, a lease).
2. After @timeout seconds (TIMEOUT unless given) it fails the test: an
   AssertionError naming what it waited for (@what: a string, or a
   callable asked only then, for context such as a log; else the
   predicate's source) and the predicate's last value.
"""
from __future__ import annotations

import inspect
import time
from typing import Any, Callable

TIMEOUT = 10.0  # seconds: a loaded CI machine, not a slow test
STEP = 0.01     # seconds between two calls


class TimedOut(AssertionError):
    """wait_for() gave up (rule 2)."""


def describe(pred: Callable[[], Any]) -> str:
    """@pred as a reader finds it: its source line (a lambda), or its name."""
    try:
        lines, _ = inspect.getsourcelines(pred)
    except (OSError, TypeError):
        return getattr(pred, "__qualname__", repr(pred))
    src = " ".join(line.strip() for line in lines)
    src = src[src.find("lambda"):] if "lambda" in src else src  # the predicate, not the line around it
    return src if len(src) <= 300 else src[:297] + "..."


def wait_for(pred: Callable[[], Any], timeout: float = TIMEOUT, step: float = STEP,
             what: str | Callable[[], str] | None = None) -> Any:
    """The first true value of pred(), polled every @step seconds; an
    AssertionError naming @what after @timeout seconds (rules 1, 2)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            desc = what() if callable(what) else what or describe(pred)
            raise TimedOut(f"timed out after {timeout:g} s waiting for {desc} (last value: {value!r})")
        time.sleep(step)
