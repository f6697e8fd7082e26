"""state.py - the daemon's state: what exists, for a new daemon to adopt.

The state (default /var/lib/vnetshare/state.json: it outlives a reboot) is
a head file and one file per partition beside it, in a directory named
`partitions`:
    state.json              {"version": 2, "uplink": "eth1", "offloads": "mirror",
                             "boot_id": "0f6e..."}
    partitions/web.json     {"name": "web", "netns": "/run/netns/web", ...}
boot_id is the kernel's id of the boot the daemon that wrote the head ran
in (boot_id()): a different one says every namespace the records name is
gone with that boot. Before the state moved out of /run (issue 21) the
default was /run/vnetshare/state.json; migrate() moves such a state to its
new directory.
Version 1 kept every partition inside the head ({"version": 1, ...,
"partitions": {"web": {...}}}); load() still reads it, and the next full
save() writes it out in version 2's layout (partition files first, the head
last, so a crash between leaves a version 1 head that still says it all).

Rules:
1. Every file is replaced atomically: a temporary file in the same
   directory, written, fsync'd, renamed over the old one, then the directory
   fsync'd. A reader sees a record's old text or its new one, never half.
   Many files at once (an apply) are each written to their temporary
   file, then one syncfs() makes them all durable before any is renamed.
2. The files are mode 0600: they name the daemon's namespaces and processes.
3. load() of a missing head is the empty state; a head or a partition file
   that can't be read as one is a StateError naming that file's path and
   the problem: the daemon never guesses from a damaged file. Files in
   `partitions` that are not NAME.json (the temporary files of a save cut
   short) are not records.
4. Keys this version does not know are ignored, so a newer daemon's file can
   still be read; VERSION changes only when a change can't be read that way
   (version 2: a version 1 daemon would have read the head as no partitions).
5. A save costs what changed, not what exists (issue 12): save(changed=NAMES)
   writes those partitions' files only (the manager names the partition a
   create, set, delete or agent restart touched); a full save compares each
   record with the one its file was made from (Encoder) and writes those
   that differ. One file for everything made a create at 1,000 partitions
   cost 6 ms of encoding and writing (46 ms pretty-printed), 2.5x the create
   at 10.
6. migrate() moves a state, never copies it: the records are written in the
   new directory (head last) before the old files go, so a crash between
   leaves the old state and a complete new one, and the new one is read.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from typing import Any, Iterable

from .config import AGENT_UID_MAX, OFFLOAD_MODES, STATE_DIR, Rate, labels
from .errors import ConfigError
from .errors import VnetshareError

VERSION = 2
VERSIONS_READ = (1, 2)  # 1: partitions inside the head (rule 4)
PARTITIONS_DIR = "partitions"  # beside the head
DEFAULT_PATH = os.path.join(STATE_DIR, "state.json")
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


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
    mtu: int                    # its TAP's MTU now
    ips: list[str] = field(default_factory=list)
    gateway: str | None = None
    routes: list[str] = field(default_factory=list)  # config.route(): "DST [via GW]"
    agent_pid: int | None = None
    # its agent's uid and gid (the same number), from the daemon's
    # --agent-uids: kept while the partition exists, through agent and
    # daemon restarts (agent.UidPool); None in a record from before issue 20
    agent_uid: int | None = None
    ring_size: int = 4 * 1024 * 1024
    # the tenant's policy (issue 8): what it may send, its VLAN and rates
    allow_ips: list[str] = field(default_factory=list)   # prefixes, or ["any"]
    trusted_router: bool = False
    allow_llc: bool = False                              # 802.3 length (LLC) frames pass
    vlan: int = 0                                        # 0: untagged
    storm_limit: int | None = None                       # None: the daemon's default
    tx_limit: Rate = field(default_factory=Rate)
    rx_limit: Rate = field(default_factory=Rate)
    # adopted namespaces: the path given (--netns, CNI_NETNS); `netns` pins it
    netns_source: str | None = None
    labels: dict[str, str] = field(default_factory=dict)  # config.labels()
    # the MTU `partition create --mtu` asked for; None: the uplink's. The
    # TAP's (mtu) follows the uplink's down, and back up to this (hosting.py,
    # Daemon.follow_uplink()). A record from before it keeps its mtu.
    mtu_given: int | None = None


@dataclass
class State:
    """Everything the daemon records: its uplink, offload mode and partitions."""

    uplink: str | None = None
    offloads: str = "mirror"
    partitions: dict[str, PartitionState] = field(default_factory=dict)
    boot_id: str | None = None  # the boot its daemon ran in (boot_id()); None: not known


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
    "agent_uid": (int, type(None)),
    "ring_size": (int,),
    "allow_ips": (list,),
    "trusted_router": (bool,),
    "allow_llc": (bool,),
    "vlan": (int,),
    "storm_limit": (int, type(None)),
    "tx_limit": (dict,),
    "rx_limit": (dict,),
    "netns_source": (str, type(None)),
    "labels": (dict,),
    "mtu_given": (int, type(None)),
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
    values.setdefault("mtu_given", values["mtu"])  # an older record: its MTU is its own
    if values.get("agent_uid") is not None and not 1 <= values["agent_uid"] <= AGENT_UID_MAX:
        raise ValueError(f"{where}: 'agent_uid' {values['agent_uid']} is not 1 to {AGENT_UID_MAX}")
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


def _head(raw: Any) -> tuple[State, int]:
    """The head's State (version 1: with its partitions) and its version."""
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    version = raw.get("version")
    if isinstance(version, bool) or version not in VERSIONS_READ:
        raise ValueError(f"version {version!r}, this vnetshare reads versions "
                         + " and ".join(map(str, VERSIONS_READ)))
    uplink = raw.get("uplink")
    if not _is(uplink, (str, type(None))):
        raise ValueError("'uplink' must be a string or null")
    offloads = raw.get("offloads", "mirror")
    if offloads not in OFFLOAD_MODES:
        raise ValueError(f"'offloads' is {offloads!r}, not one of {', '.join(OFFLOAD_MODES)}")
    boot = raw.get("boot_id")
    if not _is(boot, (str, type(None))):
        raise ValueError("'boot_id' must be a string or null")
    parts = raw.get("partitions", {}) if version == 1 else {}
    if not isinstance(parts, dict):
        raise ValueError("'partitions' must be an object")
    return State(uplink=uplink, offloads=offloads, boot_id=boot,
                 partitions={k: _partition(k, v) for k, v in parts.items()}), version


def partitions_dir(path: str) -> str:
    """Where the partition files of the state at @path live."""
    return os.path.join(os.path.dirname(os.path.abspath(path)), PARTITIONS_DIR)


def _record_name(filename: str) -> str | None:
    """NAME for NAME.json; None for anything else (rule 3)."""
    if filename.startswith(".") or not filename.endswith(".json") or len(filename) <= 5:
        return None
    return filename[:-5]


def _read_json(path: str) -> Any:
    with open(path, "rb") as f:
        data = f.read()
    return json.loads(data.decode("utf-8"))


def load(path: str = DEFAULT_PATH) -> State:
    """Read the state at @path; a missing head is the empty State()."""
    try:
        raw = _read_json(path)
        state, version = _head(raw)
    except FileNotFoundError:
        return State()
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, ours
        raise StateError(f"state file {path}: {e}") from None
    if version == 1:
        return state
    pdir = partitions_dir(path)
    try:
        files = sorted(os.listdir(pdir))
    except FileNotFoundError:
        files = []
    for filename in files:
        name = _record_name(filename)
        if name is None:
            continue
        fpath = os.path.join(pdir, filename)
        try:
            state.partitions[name] = _partition(name, _read_json(fpath))
        except FileNotFoundError:  # deleted since the listing
            continue
        except (ValueError, RecursionError) as e:
            raise StateError(f"state file {fpath}: {e}") from None
    return state


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
    """@state as one JSON object: version 1's layout, which load() reads."""
    return {
        "version": 1,
        "uplink": state.uplink,
        "offloads": state.offloads,
        "partitions": {name: partition_dict(p) for name, p in state.partitions.items()},
    }


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Encoder:
    """What the files of one state hold, as this process last wrote them
    (rule 5): each partition's record and text, and the head's text."""

    def __init__(self) -> None:
        self.parts: dict[str, tuple[dict[str, Any], str]] = {}
        self.head: str | None = None
        self.complete = False  # a full save went through: every file is known

    def text(self, p: PartitionState) -> tuple[dict[str, Any], str] | None:
        """@p's record and text when its file holds something else; None when it is up to date."""
        d = partition_dict(p)
        kept = self.parts.get(p.name)
        if kept is not None and kept[0] == d:
            return None
        return d, _compact(d)


_encoders: dict[str, Encoder] = {}


def save(path: str, state: State, changed: Iterable[str] | None = None) -> None:
    """Write @state at @path (rules 1, 2 and 5): the files of the partitions
    named in @changed (made, changed or gone), or with None every partition's
    that differs from its file and the removal of those not in @state; then
    the head if it changed. The directory of @path must exist."""
    enc = _encoders.setdefault(os.path.abspath(path), Encoder())
    if not enc.complete:
        changed = None  # files this process has not written may be stale (or version 1)
    pdir = partitions_dir(path)
    names = list(state.partitions) if changed is None else list(changed)
    wrote = False
    texts: list[tuple[str, str, tuple]] = []  # (name, path, Encoder.text())
    for name in names:
        p = state.partitions.get(name)
        fpath = os.path.join(pdir, name + ".json")
        if p is None:
            enc.parts.pop(name, None)
            try:
                os.unlink(fpath)
                wrote = True
            except FileNotFoundError:
                pass
            continue
        made = enc.text(p)
        if made is not None:
            texts.append((name, fpath, made))
    if texts:
        if not os.path.isdir(pdir):
            if not os.path.isdir(os.path.dirname(pdir)):
                raise FileNotFoundError(errno.ENOENT, "no such directory", os.path.dirname(pdir))
            os.makedirs(pdir, mode=0o700, exist_ok=True)
        write_atomic_many([(fpath, made[1].encode() + b"\n") for _n, fpath, made in texts])
        for name, _fpath, made in texts:
            enc.parts[name] = made
        wrote = True
    if changed is None:
        try:
            files = os.listdir(pdir)
        except FileNotFoundError:
            files = []
        for filename in files:
            name = _record_name(filename)
            if name is not None and name not in state.partitions:
                enc.parts.pop(name, None)
                os.unlink(os.path.join(pdir, filename))
                wrote = True
    if wrote:
        _sync_dir(pdir)
    top: dict[str, Any] = {"offloads": state.offloads, "uplink": state.uplink, "version": VERSION}
    if state.boot_id is not None:
        top["boot_id"] = state.boot_id
    head = _compact(top)
    if head != enc.head:
        write_atomic(path, head.encode() + b"\n")
        enc.head = head
    if changed is None:
        enc.complete = True


def remove(path: str) -> None:
    """Remove the state at @path: its partition files, their directory
    (other files there are left, and with them the directory) and the head."""
    pdir = partitions_dir(path)
    try:
        files = os.listdir(pdir)
    except FileNotFoundError:
        files = []
    for filename in files:
        if _record_name(filename) is not None or filename.startswith(".vnetshare-"):
            try:
                os.unlink(os.path.join(pdir, filename))
            except FileNotFoundError:
                pass
    try:
        os.rmdir(pdir)
    except OSError:  # gone, or holds files that are not ours
        pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    _encoders.pop(os.path.abspath(path), None)


def migrate(old: str, new: str) -> int | None:
    """Move the state at @old to @new (rule 6), when @new has none: the
    number of partitions moved, or None if there was nothing to move (no
    state at @old, or one at @new already: then @old is left as it is).
    The directory of @new must exist. A StateError names a damaged @old."""
    if not os.path.exists(old) or os.path.exists(new):
        return None
    st = load(old)
    save(new, st)
    remove(old)
    return len(st.partitions)


def boot_id() -> str | None:
    """The kernel's id of this boot (random, new at each boot); None where
    /proc does not say."""
    try:
        with open(BOOT_ID_PATH) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _sync_dir(directory: str) -> None:
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _syncfs(fd: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def write_atomic_many(files: list[tuple[str, bytes]], mode: int = 0o600) -> None:
    """Each (path, data) of @files as write_atomic(..., sync_dir=False)
    writes it, with one sync for all (rule 1): every temporary file
    written, one syncfs() of their filesystem, then each renamed over its
    path. The caller syncs their directory once after. One file is written
    by write_atomic() itself (an fsync costs less than a syncfs then)."""
    if len(files) == 1:
        write_atomic(*files[0], mode=mode, sync_dir=False)
        return
    tmps: list[tuple[str, str]] = []
    try:
        for path, data in files:
            fd, tmp = tempfile.mkstemp(prefix=".vnetshare-", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path)))
            tmps.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), mode)
        if tmps:
            fd = os.open(tmps[0][0], os.O_RDONLY | os.O_CLOEXEC)
            try:
                _syncfs(fd)
            finally:
                os.close(fd)
        while tmps:
            tmp, path = tmps[0]
            os.replace(tmp, path)
            tmps.pop(0)
    except BaseException:
        for tmp, _path in tmps:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        raise


def write_atomic(path: str, data: bytes, mode: int = 0o600, sync_dir: bool = True) -> None:
    """@data as the file @path, all or nothing: a temporary file in the same
    directory, synced, chmod @mode, renamed over @path, the directory synced
    (unless @sync_dir is False: the caller syncs it once after several).
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
    if sync_dir:
        _sync_dir(directory)
