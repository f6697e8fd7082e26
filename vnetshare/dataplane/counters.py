"""counters.py - a C stats struct as the dict every front end shows.

The data plane's counters are C structs (struct sw_port_stats,
struct sw_uplink_stats, struct pump_stats, struct ring_stats). Their
fields are read from the cffi type, never listed again here, and shaped
once, by two rules:

1. a field named ``drop_X`` or ``<dir>_drop_X`` is a drop reason: it goes
   into ``"drops"`` as ``X`` or ``<dir>_X``; every other scalar field keeps
   its name;
2. an array field is one entry per enum value, named by @labels: a label
   ``drop_X`` becomes the drop reason ``X``, any other label the drop
   reason ``<prefix><label>``; a label ``pass_X`` (a guard verdict that
   forwards) is left out.

So a new counter is one line in the C struct (and the cffi declaration):
the wrappers, the daemon's replies, ``vnetshare stats`` and the metrics
follow. The result always has ``"drops"``, so a front end can sum it.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from ._native import ffi

DROP = "drop_"


def drop_name(field: str) -> str | None:
    """The drop reason a scalar field counts, or None (rule 1)."""
    if field.startswith(DROP):
        return field[len(DROP):]
    head, sep, tail = field.partition("_" + DROP)
    return f"{head}_{tail}" if sep else None


def array_labels(names: Iterable[str], prefix: str = "") -> tuple[str | None, ...]:
    """Drop reasons for an array field from its enum's names (rule 2)."""
    out: list[str | None] = []
    for n in names:
        if n.startswith(DROP):
            out.append(n[len(DROP):])
        elif n.startswith("pass_"):
            out.append(None)
        else:
            out.append(prefix + n)
    return tuple(out)


def from_struct(st, arrays: Mapping[str, tuple[str | None, ...]] | None = None) -> dict:
    """Shape a ``struct X *`` (cffi) by the rules above.

    @arrays: for each array field, its labels (array_labels()); an array
    field not named here is an error, so a new array can't be dropped
    silently.
    """
    arrays = arrays or {}
    out: dict = {}
    drops: dict[str, int] = {}
    for name, field in ffi.typeof(st).item.fields:
        value = getattr(st, name)
        if field.type.kind == "array":
            labels = arrays[name]
            for label, n in zip(labels, value):
                if label is not None:
                    drops[label] = int(n)
            continue
        reason = drop_name(name)
        if reason is None:
            out[name] = int(value)
        else:
            drops[reason] = int(value)
    out["drops"] = drops
    return out
