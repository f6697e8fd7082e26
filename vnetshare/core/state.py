"""state.py - the daemon's state file: what exists, for a new daemon to adopt.

The file (default /run/vnetshare/state.json) is one JSON object:
{"version": 1, "uplink": "eth1", "offloads": "mirror",
 "partitions": {"web": {"name": "web", "netns": "/run/netns/web", ...}}}.

Rules:
1. save() replaces the file atomically: a temporary file in the same
   directory, written, fsync'd, renamed over the old one, then the directory
   fsync'd. A reader sees the old state or the new one, never half of one.
2. The file is mode 0600: it names the daemon's namespaces and processes.
3. load() of a missing file is the empty state; a file that can't be read
   as a state is a StateError naming the path and the problem: the daemon
   never guesses from a damaged file.
4. Keys this version does not know are ignored, so a newer daemon's file can
   still be read; VERSION changes only when a change can't be read that way.
5. A save costs what changed, not what exists: the file is compact JSON, and
   each partition's text is kept (Encoder) and made again only when its
   record differs from the one it was made from. With 1,000 partitions a
   pretty-printed whole-state dump was 46 ms a create (issue 12).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from typing import Any

from .config import OFFLOAD_MODES, RUN_DIR, Rate, labels
from .errors import ConfigError
from .errors import VnetshareError

VERSION = 1
DEFAULT_PATH = os.path.join(RUN_DIR, "state.json")


class StateError(VnetshareError):
    """The state file exists but is not a state this version can read."""


@dataclass
class PartitionState:
    """One partition as the daemon made (or adopted) it."""

    name: str
    netns: str                  # path of the netns: /run/netns/NAME, or STATE_DIR/netns/NAME pinning an adopted one
    netns_created: bool         # True: vnetshare made the netns and deletes it; False: adopted
    ifname: str                 # the TAP inside the netns
    mac: str
    mtu: int
    ips: list[str] = field(default_factory=list)
    gateway: str | None = None
    routes: list[str] = field(default_factory=list)  # config.route(): "DST [via GW]"
    agent_pid: int | None = None
    ring_size: int = 4 * 1024 * 1024
    # the tenant's policy (issue 8): what it may send, its VLAN and rates
    allow_ips: list[str] = field(default_factory=list)   # prefixes, or ["any"]
    trusted_router: bool = False
    vlan: int = 0                                        # 0: untagged
    storm_limit: int | None = None                       # None: the daemon's default
    tx_limit: Rate = field(default_factory=Rate)
    rx_limit: Rate = field(default_factory=Rate)
    # adopted namespaces: the path given (--netns, CNI_NETNS); `netns` pins it
    netns_source: str | None = None
    labels: dict[str, str] = field(default_factory=dict)  # config.labels()


@dataclass
class State:
    """Everything the daemon records: its uplink, offload mode and partitions."""

    uplink: str | None = None
    offloads: str = "mirror"
    partitions: dict[str, PartitionState] = field(default_factory=dict)


# field -> accepted JSON types, for the partition records
_PART_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "netns": (str,),
    "netns_created": (bool,),
    "ifname": (str,),
    "mac": (str,),
    "mtu": (int,),
    "ips": (list,),
    "gateway": (str, type(None)),
    "routes": (list,),
    "agent_pid": (int, type(None)),
    "ring_size": (int,),
    "allow_ips": (list,),
    "trusted_router": (bool,),
    "vlan": (int,),
    "storm_limit": (int, type(None)),
    "tx_limit": (dict,),
    "rx_limit": (dict,),
    "netns_source": (str, type(None)),
    "labels": (dict,),
}
_RATE_FIELDS = ("bits_per_sec", "bits_burst", "pkts_per_sec", "pkts_burst")
_PART_REQUIRED = ("name", "netns", "netns_created", "ifname", "mac", "mtu")


def _is(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def _partition(key: str, raw: Any) -> PartitionState:
    where = f"partition {key!r}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: not an object")
    for name in _PART_REQUIRED:
        if name not in raw:
            raise ValueError(f"{where}: missing {name!r}")
    values = {}
    for name, types in _PART_TYPES.items():
        if name in raw:
            if not _is(raw[name], types):
                raise ValueError(f"{where}: {name!r} has the wrong type ({type(raw[name]).__name__})")
            values[name] = raw[name]
    if values["name"] != key:
        raise ValueError(f"{where}: recorded under another name ({values['name']!r})")
    for name in ("ips", "allow_ips", "routes"):
        if not all(isinstance(ip, str) for ip in values.get(name, [])):
            raise ValueError(f"{where}: {name!r} must be a list of strings")
    if "labels" in values:
        try:
            values["labels"] = labels(values["labels"])
        except ConfigError as e:
            raise ValueError(f"{where}: {e}") from None
    for name in ("tx_limit", "rx_limit"):
        if name in values:
            rate = values[name]
            if set(rate) - set(_RATE_FIELDS) or not all(_is(v, (int,)) and v >= 0 for v in rate.values()):
                raise ValueError(f"{where}: {name!r} must be an object of {', '.join(_RATE_FIELDS)} "
                                 "(whole numbers)")
            values[name] = Rate(**rate)
    return PartitionState(**values)


def _state(raw: Any) -> State:
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    version = raw.get("version")
    if version != VERSION:
        raise ValueError(f"version {version!r}, this vnetshare reads version {VERSION}")
    uplink = raw.get("uplink")
    if not _is(uplink, (str, type(None))):
        raise ValueError("'uplink' must be a string or null")
    offloads = raw.get("offloads", "mirror")
    if offloads not in OFFLOAD_MODES:
        raise ValueError(f"'offloads' is {offloads!r}, not one of {', '.join(OFFLOAD_MODES)}")
    parts = raw.get("partitions", {})
    if not isinstance(parts, dict):
        raise ValueError("'partitions' must be an object")
    return State(uplink=uplink, offloads=offloads,
                 partitions={k: _partition(k, v) for k, v in parts.items()})


def load(path: str = DEFAULT_PATH) -> State:
    """Read the state at @path; a missing file is the empty State()."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return State()
    try:
        return _state(json.loads(data.decode("utf-8")))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, ours
        raise StateError(f"state file {path}: {e}") from None


_PARTITION_FIELDS = tuple(f.name for f in fields(PartitionState))
_RATE_FIELDS = tuple(f.name for f in fields(Rate))


def partition_dict(p: PartitionState) -> dict[str, Any]:
    """asdict(@p), without asdict's deep copies (its fields are JSON values
    and Rates; lists and dicts are copied one level, which is all they have)."""
    out: dict[str, Any] = {}
    for name in _PARTITION_FIELDS:
        v = getattr(p, name)
        if isinstance(v, Rate):
            v = {k: getattr(v, k) for k in _RATE_FIELDS}
        elif isinstance(v, list):
            v = list(v)
        elif isinstance(v, dict):
            v = dict(v)
        out[name] = v
    return out


def to_dict(state: State) -> dict[str, Any]:
    """The JSON form of @state, as save() writes it."""
    return {
        "version": VERSION,
        "uplink": state.uplink,
        "offloads": state.offloads,
        "partitions": {name: partition_dict(p) for name, p in state.partitions.items()},
    }


class Encoder:
    """to_dict() as JSON text, each partition's made again only when its
    record changed (rule 5). One per state file."""

    def __init__(self) -> None:
        self._parts: dict[str, tuple[dict[str, Any], str]] = {}

    def encode(self, state: State) -> str:
        text = {}
        for name, p in state.partitions.items():
            d = partition_dict(p)
            kept = self._parts.get(name)
            if kept is None or kept[0] != d:
                kept = (d, json.dumps(d, sort_keys=True, separators=(",", ":")))
                self._parts[name] = kept
            text[name] = kept[1]
        for name in [n for n in self._parts if n not in state.partitions]:
            del self._parts[name]
        head = json.dumps({"offloads": state.offloads, "uplink": state.uplink, "version": VERSION},
                          sort_keys=True, separators=(",", ":"))
        body = ",".join(f"{json.dumps(name)}:{text[name]}" for name in sorted(text))
        return head[:-1] + ',"partitions":{' + body + "}}"


_encoders: dict[str, Encoder] = {}


def save(path: str, state: State) -> None:
    """Write @state to @path atomically (rule 1), mode 0600. The directory must exist."""
    enc = _encoders.setdefault(os.path.abspath(path), Encoder())
    write_atomic(path, enc.encode(state).encode() + b"\n")


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """@data as the file @path, all or nothing: a temporary file in the same
    directory, synced, chmod @mode, renamed over @path, the directory synced.
    A reader sees the old file or the new one, never a part."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".vnetshare-", suffix=".tmp", dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
