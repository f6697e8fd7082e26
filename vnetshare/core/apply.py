"""apply.py - declared partitions against recorded ones, sans I/O: the plan.

`vnetshare apply FILE` declares partitions in a TOML or JSON file with the
fields of `partition.create`; the daemon makes what is missing, changes what
differs where `partition set` can, and with prune deletes what is not
declared. This module reads the file's text, checks every entry and works
out the plan; the daemon (hosting.py) carries it out through the manager's
own create(), set() and delete(), so whatever those learn, apply does too.

Rules:
1. Every entry is checked as a `partition.create` request
   (protocol.validate_request) before anything is planned; a bad entry is
   named by its index (from 0, in the file's order), its name if it has
   one, and the field, and the whole apply is refused: nothing is made,
   changed or deleted. A name given twice is such an error.
2. A field the entry leaves out is not compared: the partition keeps what
   it has (a random MAC stays, an MTU that follows the uplink still does).
3. A declared field that differs from the record is changed by `set` when
   the manager's SETTABLE lists it; otherwise the entry is an error (rule
   1), telling to delete the partition or leave the field out.
4. The plan runs deletes (prune) first, so their addresses and MACs are
   free, then changes, then creates, each in the file's order (deletes in
   name order); applying the same file twice does nothing the second time.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import protocol
from .errors import ConfigError

# a declared field -> the record's attribute it is compared with (rule 3)
RECORD_FIELD = {"mtu": "mtu_given", "netns": "netns_source"}
# fields that fold into another one when compared
FOLDED = {"tx_burst": "tx_limit", "rx_burst": "rx_limit"}


class ApplyError(ConfigError):
    """A file or an entry that cannot be applied; the message names it."""


def parse(text: str, fmt: str) -> list[dict[str, Any]]:
    """The entries of a file's @text; @fmt "toml" (an array of tables
    [[partition]]) or "json" (an object {"partitions": [...]} or a list)."""
    try:
        if fmt == "toml":
            data: Any = tomllib.loads(text)
            key = "partition"
        else:
            data = json.loads(text)
            key = "partitions"
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise ApplyError(f"not valid {fmt.upper()}: {e}") from None
    if isinstance(data, dict):
        extra = sorted(k for k in data if k != key)
        if extra:
            raise ApplyError(f"unknown key {extra[0]!r} at the top (write the partitions as "
                             + ("[[partition]] tables)" if fmt == "toml" else '{"partitions": [...]})'))
        data = data.get(key, [])
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ApplyError(f"{key!r} must be a list of partitions, each " + ("a table" if fmt == "toml" else "an object"))
    return data


def _where(i: int, entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"partition {i}" + (f" ({name!r})" if isinstance(name, str) else "")


def check(entries: Any) -> list[dict[str, Any]]:
    """Rule 1: each entry as a checked, normalised partition.create request
    (without "op"); ApplyError naming every bad entry (index, name, field)."""
    if not isinstance(entries, list):
        raise ApplyError("partitions: must be a list")
    out, problems, seen = [], [], {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"partition {i}: must be an object of partition.create's fields")
            continue
        if "op" in entry:
            problems.append(f"{_where(i, entry)}: unknown field 'op'")
            continue
        try:
            _op, args = protocol.validate_request({"op": "partition.create", **entry})
        except protocol.ProtocolError as e:
            problems.append(f"{_where(i, entry)}: {str(e).removeprefix('partition.create: ')}")
            continue
        if args["name"] in seen:
            problems.append(f"{_where(i, entry)}: name given twice (also partition {seen[args['name']]})")
            continue
        seen[args["name"]] = i
        out.append(args)
    if problems:
        raise ApplyError("; ".join(problems))
    return out


@dataclass
class Plan:
    """What apply does, in this order (rule 4)."""
    delete: list[str] = field(default_factory=list)
    change: list[dict[str, Any]] = field(default_factory=list)   # set() requests: name + changed fields
    create: list[dict[str, Any]] = field(default_factory=list)   # create() requests
    unchanged: list[str] = field(default_factory=list)


def plan(entries: list[dict[str, Any]], declared: list[Iterable[str]], records: dict[str, Any],
         settable: Iterable[str], prune: bool) -> Plan:
    """The plan for checked @entries (check()) against @records (name ->
    state.PartitionState); @declared holds each entry's fields as the file
    gave them (rule 2); @settable the fields set() changes. ApplyError names
    every entry with a difference set() cannot make (rule 3)."""
    settable = set(settable)
    out, problems = Plan(), []
    names = {e["name"] for e in entries}
    if prune:
        out.delete = sorted(n for n in records if n not in names)
    for i, (args, given) in enumerate(zip(entries, declared)):
        name = args["name"]
        rec = records.get(name)
        if rec is None:
            out.create.append(args)
            continue
        fields = sorted({FOLDED.get(f, f) for f in given} - {"name"})
        changes: dict[str, Any] = {}
        for f in fields:
            now = getattr(rec, RECORD_FIELD.get(f, f), None)
            if args[f] == now:
                continue
            if f not in settable:
                problems.append(f"partition {i} ({name!r}): field {f!r} is {_show(args[f])} here and "
                                f"{_show(now)} in the partition, and `partition set` cannot change it: "
                                "delete the partition first, or leave the field out")
                continue
            changes[f] = args[f]
        if changes:
            out.change.append({"name": name, **changes})
        else:
            out.unchanged.append(name)
    if problems:
        raise ApplyError("; ".join(problems))
    return out


def _show(value: Any) -> str:
    describe = getattr(value, "describe", None)
    return str(describe()) if callable(describe) else json.dumps(value)
