"""protocol.py - the control protocol, sans I/O: bytes in, messages out.

A message is one JSON object on one line (UTF-8, ends with b"\\n").
A request is {"op": OP, FIELD: VALUE, ...}; the answer is
{"ok": true, ...} or {"ok": false, "error": {"code": "EEXIST", "message": "..."}},
where the code is an errno name (or EOPNOTSUPP, EINVAL, EPROTO, EMSGSIZE).
Nothing here opens a socket or a file: the daemon and the CLI do the I/O and
call these functions, so the protocol is tested byte by byte without them.

Rules:
1. A line longer than the decoder's max_line (default MAX_LINE, 4 MiB,
   newline not counted) is refused as soon as the decoder has seen that
   many bytes without a newline: a peer can't make the daemon buffer more.
2. A line that is not UTF-8 JSON, or is JSON but not an object, is a
   ProtocolError; blank lines are skipped. After a ProtocolError the stream
   is out of step: the decoder keeps raising it, and the caller answers with
   error_from() and closes the connection.
3. validate_request() accepts exactly the fields of OPS[op]: a missing
   required field, an unknown field or a wrong type is EINVAL naming the
   field; an unknown op is EOPNOTSUPP. Values are checked and normalised by
   config.py, whose messages name the bad value. Checks that need the system (does the netns path exist, is
   the MTU within the uplink's) are left to the daemon.
"""
from __future__ import annotations

import errno as _errno
import json
from dataclasses import dataclass
from typing import Any, Callable

from . import config
from .errors import ConfigError

MAX_LINE = 4 * 1024 * 1024  # an apply of a few thousand partitions is one line


class ProtocolError(ConfigError):
    """A malformed or invalid control message; .code is the errno name to answer with."""

    def __init__(self, message: str, code: str = "EPROTO"):
        super().__init__(message)
        self.code = code


# --- messages ----------------------------------------------------------------

def encode(msg: dict[str, Any]) -> bytes:
    """One message as one compact JSON line (ASCII, so no raw newline inside)."""
    return json.dumps(msg, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


def request(op: str, **fields: Any) -> dict[str, Any]:
    """{"op": op, **fields}."""
    return {"op": op, **fields}


def ok(**fields: Any) -> dict[str, Any]:
    """A success answer: {"ok": true, **fields}."""
    return {"ok": True, **fields}


def error(code: str, message: str) -> dict[str, Any]:
    """A failure answer: {"ok": false, "error": {"code": code, "message": message}}."""
    return {"ok": False, "error": {"code": code, "message": message}}


def error_from(exc: BaseException) -> dict[str, Any]:
    """The failure answer for @exc: a ProtocolError keeps its code, another
    ConfigError is EINVAL, an OSError answers with its errno's name (a
    manager's PartitionError is one), anything else is EIO."""
    if isinstance(exc, ProtocolError):
        return error(exc.code, str(exc))
    if isinstance(exc, ConfigError):
        return error("EINVAL", str(exc))
    if isinstance(exc, OSError) and exc.errno:
        return error(_errno.errorcode.get(exc.errno, "EIO"), exc.strerror or str(exc))
    return error("EIO", str(exc) or type(exc).__name__)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        value = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError are ValueErrors
        raise ProtocolError(f"malformed message: {e}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"a message must be a JSON object, not {type(value).__name__}")
    return value


class Decoder:
    """Splits a byte stream into messages: feed() it what recv() returned."""

    def __init__(self, max_line: int = MAX_LINE):
        self.max_line = max_line
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no newline
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished line (non-zero at EOF means a truncated message)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Take @data; return the messages whose lines it completed, in order."""
        if self._error is not None:
            raise self._error
        self._buf += data
        out: list[dict[str, Any]] = []
        start = 0
        try:
            while True:
                nl = self._buf.find(b"\n", max(start, self._scanned))
                end = nl if nl >= 0 else len(self._buf)
                if end - start > self.max_line:
                    raise ProtocolError(f"message longer than {self.max_line} bytes", "EMSGSIZE")
                if nl < 0:
                    break
                msg = _parse(bytes(self._buf[start:nl]))
                if msg is not None:
                    out.append(msg)
                start = nl + 1
        except ProtocolError as e:
            self._error = e
            self._buf.clear()
            raise
        del self._buf[:start]
        self._scanned = len(self._buf)
        return out


# --- requests ----------------------------------------------------------------

Check = Callable[[Any, dict[str, Any]], Any]


@dataclass(frozen=True)
class Field:
    """One request field: accepted JSON types, required or its default, value check."""

    types: tuple[type, ...]
    required: bool = False
    default: Any = None
    check: Check | None = None  # (value, fields checked so far) -> normalised value


_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", bool: "a boolean", dict: "an object",
               type(None): "null"}


def _addresses(value: list[Any], _args: dict[str, Any]) -> list[str]:
    if not all(isinstance(v, str) for v in value):
        raise ProtocolError("partition.create: field 'ips' must be a list of strings", "EINVAL")
    return config.cidrs(value)


def _gateway(value: str | None, args: dict[str, Any]) -> str | None:
    return None if value is None else config.gateway(value, args["ips"])


def _routes(value: list[Any], args: dict[str, Any]) -> list[str]:
    if not all(isinstance(v, str) for v in value):
        raise ProtocolError("field 'routes' must be a list of strings", "EINVAL")
    return [config.route(r, args["ips"]) for r in value]


def _filter_text(value: str) -> str:
    """A capture filter's expression, as the daemon logs it: one line, bounded."""
    if len(value) > 1024 or not value.isprintable():
        raise ProtocolError(f"capture: field 'filter_text' must be one printable line of at most 1024 "
                            f"characters, not {value[:40]!r}", "EINVAL")
    return value


def _optional(fn: Callable[[Any], Any]) -> Check:
    return lambda value, _args: None if value is None else fn(value)


_NAME = Field((str,), required=True, check=lambda v, _a: config.partition_name(v))


def _gateway_or_none(value: str) -> str:
    """partition.set's gateway: an address (checked against the addresses
    by the manager, which knows them), or "none"."""
    if value == "none":
        return value
    return config.gateway(value, ["0.0.0.0/0", "::/0"])


def _label_changes(value: dict[str, Any]) -> dict[str, str | None]:
    removed = {k: None for k, v in value.items() if v is None}
    kept = config.labels({k: v for k, v in value.items() if v is not None})
    for key in removed:
        config.labels({key: ""})  # the key's syntax
    return {**kept, **removed}


def _strings(what: str, check: Callable[[list[str]], Any]) -> Check:
    """A list of strings, then @check; None passes (partition.set: unchanged)."""
    def convert(value: Any, _args: dict[str, Any]) -> Any:
        if value is None:
            return None
        if not all(isinstance(v, str) for v in value):
            raise ProtocolError(f"field {what!r} must be a list of strings", "EINVAL")
        return check(value)
    return convert


def _rate(direction: str, create: bool) -> Check:
    """{rx,tx}_limit: RATE strings with the {rx,tx}_burst field before it.
    In set, a burst alone is the partition's rate with a new depth (the
    manager's, which knows the rate)."""
    def convert(value: Any, args: dict[str, Any]) -> Any:
        if value is None:
            if args.get(f"{direction}_burst") and create:
                raise ProtocolError(f"field '{direction}_burst' needs '{direction}_limit'", "EINVAL")
            return None
        if not all(isinstance(v, str) for v in value):
            raise ProtocolError(f"field '{direction}_limit' must be a list of strings", "EINVAL")
        return config.rate_limit(value, args.get(f"{direction}_burst") or [], f"--{direction}-limit",
                                 direction)
    return convert


def _policy_fields(create: bool) -> dict[str, Field]:
    """The tenant's policy (issue 8), the same for create and set; in set
    every field may be null: unchanged."""
    none = (type(None),)
    return {
        "allow_ips": Field((list,) + none, default=() if create else None,
                           check=_strings("allow_ips", config.allow_ips)),
        "trusted_router": Field((bool,) + none, default=False if create else None),
        "allow_llc": Field((bool,) + none, default=False if create else None),
        "vlan": Field((int, str) + none, check=_optional(config.vlan)),
        "storm_limit": Field((int, str) + none, check=_optional(config.storm_limit)),
        "tx_burst": Field((list,) + none, check=_strings("tx_burst", list)),
        "tx_limit": Field((list,) + none, check=_rate("tx", create)),
        "rx_burst": Field((list,) + none, check=_strings("rx_burst", list)),
        "rx_limit": Field((list,) + none, check=_rate("rx", create)),
    }

#: op -> {field: Field}; a field's check sees the fields listed before it.
OPS: dict[str, dict[str, Field]] = {
    "partition.create": {
        "name": _NAME,
        "ips": Field((list,), default=(), check=_addresses),
        "gateway": Field((str, type(None)), check=_gateway),
        "routes": Field((list,), default=(), check=_routes),
        "mac": Field((str, type(None)), check=_optional(config.mac)),
        "mtu": Field((int, type(None)), check=_optional(config.mtu)),
        "ifname": Field((str, type(None)), check=_optional(config.ifname)),
        "netns": Field((str, type(None)), check=_optional(lambda v: config.netns_path(v))),
        "labels": Field((dict, type(None)), check=_optional(config.labels)),
        **_policy_fields(create=True),
    },
    "partition.set": {
        "name": _NAME,
        "ips": Field((list, type(None)), check=_strings("ips", config.cidrs)),
        # "none": no default route; [] for routes: none
        "gateway": Field((str, type(None)), check=_optional(_gateway_or_none)),
        "routes": Field((list, type(None)), check=_strings("routes", lambda v: [config.route(r) for r in v])),
        "mtu": Field((int, type(None)), check=_optional(config.mtu)),
        "mac": Field((str, type(None)), check=_optional(config.mac)),
        # {key: value} sets or replaces, {key: null} removes
        "labels": Field((dict, type(None)), check=_optional(_label_changes)),
        **_policy_fields(create=False),
    },
    "fdb": {
        "partition": Field((str, type(None)), check=_optional(config.partition_name)),
        "vlan": Field((int, str, type(None)), check=_optional(config.vlan)),
    },
    "groups": {
        "vlan": Field((int, str, type(None)), check=_optional(config.vlan)),
    },
    "partition.delete": {"name": _NAME},
    # core/apply.py checks each entry as a partition.create request
    "apply": {
        "partitions": Field((list,), required=True),
        "prune": Field((bool,), default=False),
        "dry_run": Field((bool,), default=False),
    },
    "partition.list": {},
    "partition.show": {"name": _NAME},
    "adapter": {},
    "stats": {},
    "capture": {
        "name": _NAME,
        "direction": Field((str,), default="both", check=lambda v, _a: config.capture_direction(v)),
        "drops": Field((bool,), default=False),
        "snaplen": Field((int,), default=0, check=lambda v, _a: config.snaplen(v)),
        # classic BPF the client compiled (tcpdump -ddd), and its expression
        "filter": Field((list, type(None)), check=_optional(config.bpf_program)),
        "filter_text": Field((str, type(None)), check=_optional(_filter_text)),
    },
    "events": {"follow": Field((bool,), default=False)},
    "daemon.status": {},
}


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true is not an integer here
    return isinstance(value, types)


def validate_request(msg: Any) -> tuple[str, dict[str, Any]]:
    """Check a decoded request; return (op, fields) with every field of the
    op present (defaults filled in) and normalised. Raises ProtocolError."""
    if not isinstance(msg, dict):
        raise ProtocolError("a request must be a JSON object", "EINVAL")
    op = msg.get("op")
    if not isinstance(op, str):
        raise ProtocolError("field 'op': missing or not a string", "EINVAL")
    spec = OPS.get(op)
    if spec is None:
        raise ProtocolError(f"unknown op {op!r}", "EOPNOTSUPP")
    extra = sorted(str(k) for k in msg if k != "op" and k not in spec)
    if extra:
        raise ProtocolError(f"{op}: unknown field {extra[0]!r}", "EINVAL")
    args: dict[str, Any] = {}
    for name, field in spec.items():
        if name not in msg:
            if field.required:
                raise ProtocolError(f"{op}: missing field {name!r}", "EINVAL")
            value = list(field.default) if isinstance(field.default, tuple) else field.default
        else:
            value = msg[name]
            if not _type_ok(value, field.types):
                want = " or ".join(_TYPE_NAMES[t] for t in field.types)
                raise ProtocolError(f"{op}: field {name!r} must be {want}, not {json.dumps(value)[:60]}",
                                    "EINVAL")
        if field.check is not None:
            try:
                value = field.check(value, args)
            except ProtocolError:
                raise
            except ConfigError as e:  # its message names the value already
                raise ProtocolError(str(e), "EINVAL") from None
        args[name] = value
    return op, args
