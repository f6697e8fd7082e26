"""listing.py - `vnetshare partition list`: columns, filters, an empty list.

    vnetshare partition list [-o wide] [--columns COL,...] [--label KEY=VALUE]...
                             [--vlan ID|none] [--json]

Rules:
1. The text has a header line, or says "no partitions" (with a filter:
   "no partitions match"); never nothing at all.
2. Filters are the daemon's list narrowed here (all of them must match);
   --json prints the same narrowed list.
3. A cell is text a person reads (clitools.text): "-" for none or untagged,
   never a Python repr. A column reads what `partition list --json` gives.
4. --names (hidden, for shell completion) prints the names, one a line,
   and nothing else.
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from ..core import config
from .clitools import arg, table, text


def _limit(direction: str) -> Callable[[dict], str]:
    """The rates of a limit as the user wrote them ("50mbit", "50mbit,10kpps"), "-" for none."""
    def cell(p: dict) -> str:
        r = config.rate_of(p, direction)
        return r.describe(bursts=False).replace(", ", ",") if r.limited else "-"
    return cell


def _vlan(p: dict) -> int:
    return p.get("vlan") or 0  # 0 or null: untagged


#: column name -> (header, cell)
COLUMNS: dict[str, tuple[str, Callable[[dict], str]]] = {
    "name": ("NAME", lambda p: p["name"]),
    "ifname": ("IFNAME", lambda p: text(p.get("ifname"))),
    "mac": ("MAC", lambda p: text(p.get("mac"))),
    "mtu": ("MTU", lambda p: text(p.get("mtu"))),
    "addresses": ("ADDRESSES", lambda p: ",".join(p.get("ips") or []) or "-"),
    "vlan": ("VLAN", lambda p: str(_vlan(p)) if _vlan(p) else "-"),
    "tx-limit": ("TX-LIMIT", _limit("tx")),
    "rx-limit": ("RX-LIMIT", _limit("rx")),
    "storm": ("STORM", lambda p: f"{p['storm_limit']}/s" if p.get("storm_limit") else "-"),
    "labels": ("LABELS", lambda p: ",".join(f"{k}={v}" for k, v in sorted((p.get("labels") or {}).items()))
               or "-"),
    "agent": ("AGENT", lambda p: text(p.get("agent"))),
}
DEFAULT = ("name", "ifname", "mac", "mtu", "addresses", "agent")
WIDE = ("name", "ifname", "mac", "mtu", "addresses", "vlan", "tx-limit", "rx-limit", "storm", "labels", "agent")


def columns(value: str) -> list[str]:
    """--columns COL,COL,...: names of COLUMNS."""
    names = [c.strip().lower() for c in value.split(",") if c.strip()]
    bad = [c for c in names if c not in COLUMNS]
    if bad or not names:
        raise config.ConfigError(f"column {(bad or [value])[0]!r}: not one of {', '.join(COLUMNS)}")
    return names


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=("wide",), help="wide: also VLAN, rate limits, storm limit, labels")
    p.add_argument("--columns", type=arg(columns), metavar="COL,...",
                   help=f"these columns, in this order: {', '.join(COLUMNS)}")
    p.add_argument("--label", action="append", default=[], type=arg(config.label), metavar="KEY=VALUE",
                   help="only partitions with this label (repeatable: all of them)")
    p.add_argument("--vlan", type=arg(config.vlan), metavar="ID|none",
                   help="only partitions of access VLAN ID (none: the untagged ones)")
    p.add_argument("--names", action="store_true", help=argparse.SUPPRESS)


def select(parts: list[dict], labels: list[tuple[str, str]], vlan: int | None) -> list[dict]:
    """Rule 2: the partitions with every label of @labels, in @vlan if given."""
    def keep(p: dict) -> bool:
        have = p.get("labels") or {}
        return all(have.get(k) == v for k, v in labels) and (vlan is None or _vlan(p) == vlan)
    return [p for p in parts if keep(p)]


def render(parts: list[dict], cols: list[str] | tuple[str, ...], filtered: bool = False) -> str:
    """The text of `partition list` (rules 1 and 3)."""
    if not parts:
        return "no partitions match" if filtered else "no partitions"
    return table([[COLUMNS[c][1](p) for c in cols] for p in parts], [COLUMNS[c][0] for c in cols])


def main(args: Any, parts: list[dict]) -> int:
    parts = select(parts, args.label, args.vlan)
    if args.names:
        for p in parts:
            print(p["name"])
        return 0
    if args.json:
        print(json.dumps(parts, indent=1))
        return 0
    cols = args.columns or (WIDE if args.output == "wide" else DEFAULT)
    print(render(parts, cols, filtered=bool(args.label) or args.vlan is not None))
    return 0
