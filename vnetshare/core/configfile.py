"""configfile.py - the daemon's config file: every `vnetshare daemon` flag as a key.

    # /etc/vnetshare/vnetshare.toml
    storm-limit = 500                   # every daemon of the host
    metrics = "127.0.0.1:9477"

    [uplinks.eth2]                      # only the daemon on eth2 (vnetshare@eth2.service)
    socket = "/run/vnetshare/eth2.sock"
    metrics = "127.0.0.1:9478"

Read with the standard library's tomllib. The keys are not listed here:
they are the long options of the `vnetshare daemon` parser (cli.py) and the
global --socket, spelled as the flag without its dashes, and each value is
checked by that option's own converter (the validators of config.py), so
an option added to the parser is a key of the file with nothing changed
here.

Rules:
1. Flags win over the file, the file over the defaults, which DaemonConfig
   alone holds: a daemon option's parser default is None (or False for a
   flag without a value), meaning "not given" (test_configfile.py checks
   this of every option). Within the file, the table [uplinks.IFACE] of
   the daemon's uplink wins over the top level.
2. The file is checked whole, every table, whichever uplink the daemon
   serves: a bad key or value anywhere is one ConfigError line naming the
   file, the key (and its table) and what is allowed; nothing starts.
3. Which file: --config PATH, else $VNETSHARE_CONFIG, else DEFAULT_PATH;
   "none" reads no file. A file named by --config or the environment must
   exist; the default one is read only if it does.
4. A value is given to the option's converter as the flag's text would be
   (a TOML number as its decimal digits); a flag without a value takes
   true (given) or false (not given), a repeatable one a list.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import tomllib
from dataclasses import dataclass, field

from .config import format_address, ifname
from .errors import ConfigError

DEFAULT_PATH = "/etc/vnetshare/vnetshare.toml"
ENV = "VNETSHARE_CONFIG"
NONE = "none"
UPLINKS = "uplinks"  # [uplinks.IFACE]: the daemon on IFACE only
NOT_KEYS = ("help", "config", "print_config")  # the parser's options that are no setting


def key_of(action: argparse.Action) -> str:
    """An option's key: its first long flag without the dashes (--storm-limit: storm-limit)."""
    return next(s for s in action.option_strings if s.startswith("--"))[2:]


def options(parser: argparse.ArgumentParser, *more: argparse.Action) -> dict[str, argparse.Action]:
    """The settings: @parser's long options (not --help, --config, nor the
    global options it carries without a default of its own: --json, and
    --socket, which @more gives) and @more, by key, in the parser's order."""
    acts = [a for a in parser._actions if a.dest not in NOT_KEYS and a.default is not argparse.SUPPRESS
            and any(s.startswith("--") for s in a.option_strings)]
    return {key_of(a): a for a in [*more, *acts]}


def which(arg: str | None, environ: dict | None = None) -> tuple[str | None, bool]:
    """Rule 3: (the file to read or None, whether it must exist)."""
    environ = os.environ if environ is None else environ
    given = arg or environ.get(ENV) or None
    path = given or DEFAULT_PATH
    return (None, False) if path == NONE else (path, given is not None)


def load(path: str | None, required: bool) -> dict:
    """The file's TOML as a dict; {} for none (or a missing default file)."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path}: does not exist") from None
        return {}
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: not TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8 text") from None


def _toml(value: object) -> str:
    """@value as the file wrote it, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _convert(action: argparse.Action, text: str) -> object:
    """@text through @action's converter and choices, as argparse would (rule 4)."""
    try:
        value = action.type(text) if action.type is not None else text
    except (argparse.ArgumentTypeError, ConfigError, ValueError, TypeError) as e:
        raise ConfigError(str(e) or f"{text!r}: invalid") from None
    if action.choices is not None and value not in action.choices:
        raise ConfigError(f"{text!r}: must be one of {', '.join(map(str, action.choices))}")
    return value


def _scalar(action: argparse.Action, value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{_toml(value)}: must be a string or a number")
    return _convert(action, value if isinstance(value, str) else str(value))


def value_of(action: argparse.Action, value: object) -> object:
    """What the option's flag would have made of @value (rule 4)."""
    if action.nargs == 0:  # store_true, store_false, store_const, BooleanOptionalAction
        if not isinstance(value, bool):
            raise ConfigError(f"{_toml(value)}: must be true or false")
        if isinstance(action, argparse.BooleanOptionalAction):
            return value
        return action.const if value else action.default
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [_scalar(action, v) for v in items]
    if isinstance(value, list):
        raise ConfigError(f"{value!r}: one value, not a list")
    return _scalar(action, value)


@dataclass
class Settings:
    """The file's settings for one daemon: {dest: value} and where each came from."""

    path: str | None
    values: dict[str, object] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # dest -> "FILE" or "FILE [uplinks.X]"


def _table(data: dict, where: str, opts: dict[str, argparse.Action], top: bool) -> dict[str, object]:
    """One table's settings, {dest: value}, every key checked (rule 2)."""
    out: dict[str, object] = {}
    for key, raw in data.items():
        if top and key == UPLINKS:
            continue
        action = opts.get(key)
        if action is None:
            near = difflib.get_close_matches(key.replace("_", "-"), list(opts), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ConfigError(f"{where}{key}: no such setting{hint}; the settings are the options "
                              "of `vnetshare daemon` without their dashes (vnetshare daemon --help)")
        if not top and key == "uplink":
            raise ConfigError(f"{where}uplink: not allowed in an [{UPLINKS}.IFACE] table: its name is the uplink")
        if raw is False and action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction):
            continue  # a flag without a value, false: as if not given (rule 4)
        try:
            out[action.dest] = value_of(action, raw)
        except ConfigError as e:
            raise ConfigError(f"{where}{key}: {e}") from None
    return out


def settings(data: dict, path: str | None, opts: dict[str, argparse.Action],
             uplink: str | None) -> Settings:
    """The settings of the daemon on @uplink (the flag's; None: the file's
    top-level `uplink`) from @data, the file at @path (rules 1 and 2)."""
    got = Settings(path)
    if not data:
        return got
    top = _table(data, f"{path}: ", opts, top=True)
    tables = data.get(UPLINKS, {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ConfigError(f"{path}: {UPLINKS}: must be tables, [{UPLINKS}.IFACE], one for each uplink")
    per: dict[str, dict[str, object]] = {}
    for name, table in tables.items():
        try:
            ifname(name)
        except ConfigError as e:
            raise ConfigError(f"{path}: [{UPLINKS}.{name}]: {e}") from None
        per[name] = _table(table, f"{path}: [{UPLINKS}.{name}] ", opts, top=False)
    uplink = uplink or top.get("uplink")
    got.values.update(top)
    got.sources.update(dict.fromkeys(top, path))
    mine = per.get(uplink, {}) if uplink else {}
    got.values.update(mine)
    got.sources.update(dict.fromkeys(mine, f"{path} [{UPLINKS}.{uplink}]"))
    return got


def given(action: argparse.Action, value: object) -> bool:
    """The flag was on the command line (rule 1: its default means not)."""
    return value is not None and value != action.default


def merge(args: argparse.Namespace, opts: dict[str, argparse.Action],
          from_file: Settings) -> tuple[dict[str, object], dict[str, str]]:
    """Rule 1: ({dest: value}, {dest: source}) of every setting the flags
    (@args) or the file gave; what neither gave is left to DaemonConfig."""
    values, sources = dict(from_file.values), dict(from_file.sources)
    for key, action in opts.items():
        flag = getattr(args, action.dest, None)
        if given(action, flag):
            values[action.dest] = flag
            sources[action.dest] = f"--{key}"
    return values, sources


def _literal(value: object) -> str | None:
    """@value (a DaemonConfig field) as a TOML value in the flag's syntax:
    (FIRST, LAST) ids as "FIRST-LAST", (ADDR, PORT) as "ADDR:PORT"; None
    for a setting that is off."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return json.dumps(f"{value[0]}-{value[1]}")
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
        return json.dumps(format_address(value))
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) or '""' for v in value) + "]"
    return json.dumps(str(value))


def render(cfg: object, opts: dict[str, argparse.Action], sources: dict[str, str]) -> str:
    """`vnetshare daemon --print-config`: each setting of @cfg (a
    DaemonConfig) as a line of the file, and where it came from."""
    lines = []
    for key, action in opts.items():
        if not hasattr(cfg, action.dest):
            continue
        text, source = _literal(getattr(cfg, action.dest)), sources.get(action.dest, "default")
        lines.append(f"# {key}: off ({source})" if text is None else f"{key} = {text}  # {source}")
    return "\n".join(lines) + "\n"
