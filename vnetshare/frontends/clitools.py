"""clitools.py - what every `vnetshare` command's module shares: the parser
class, argument converters, the global options, the text table.

cli.py builds the command line from these, and so do the modules that add
their own commands (capture.py, live.py, service.py, cni.py): none of them
imports cli.py (the frontends import no one in a circle).

Rules:
1. A usage error is one line, "vnetshare ...: error: ...", exit 2; with
   --json anywhere on the line, the error object on stdout instead
   (exits.report()).
2. The global options (GLOBAL_OPTIONS: --socket, --json) are accepted before
   the command and after it, at every level: add_global_options() puts them
   on every sub-parser with no default of its own, so the value given
   anywhere wins and the top parser's default applies otherwise.
3. Text output is for people: no Python repr (a dict, a list, True/None)
   ever reaches it; text() spells values.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Iterable

from ..core.errors import ConfigError
from . import exits

SOCKET_HELP = ("the daemon's control socket (default: $VNETSHARE_SOCKET, else /run/vnetshare/control.sock; "
               "for `daemon`, also `socket` in its config file)")
JSON_HELP = ("print JSON instead of text: the command's objects, one document (the live views: one object "
             "a line); and a failure as {\"error\": {\"code\": ..., \"message\": ...}} on stdout")


def wants_json(argv: Iterable[str]) -> bool:
    """--json given anywhere before a `--` (rule 1: usage errors see it too)."""
    for tok in argv:
        if tok == "--":
            return False
        if tok == "--json":
            return True
    return False


class Parser(argparse.ArgumentParser):
    """Usage errors as one line (rule 1); sub-parsers inherit the class."""

    json_errors = False  # set by main() from the command line (wants_json)

    def error(self, message: str):
        if Parser.json_errors:
            exits.report("EINVAL", f"{self.prog}: {message}", as_json=True)
            self.exit(exits.USAGE)
        self.exit(exits.USAGE, f"{self.prog}: error: {message}\n")


class IntermixedParser(Parser):
    """A command whose last positional may come after its options, as
    tcpdump takes its filter (`capture NAME -c 3 tcp port 80`): its
    parse_known_args() is argparse's intermixed parse (the command has no
    sub-commands, which that parse cannot take)."""

    _mixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._mixing:  # the intermixed parse calls back here (Python < 3.13)
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False


def add_intermixed_parser(sub, name: str, **kw) -> IntermixedParser:
    """sub.add_parser(@name, **@kw), of class IntermixedParser (argparse
    takes one class for all of a parser's sub-commands)."""
    cls, sub._parser_class = sub._parser_class, IntermixedParser
    try:
        return sub.add_parser(name, **kw)
    finally:
        sub._parser_class = cls


def arg(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a config validator: ConfigError -> usage error."""

    def convert(value: str):
        try:
            return fn(value)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = fn.__name__
    return convert


def integer(what: str, check: Callable[[int], int], base: int = 10) -> Callable[[str], int]:
    """A converter: a number in @base (0: with 0x/0o prefixes), then @check."""
    def convert(value: str) -> int:
        try:
            n = int(value, base)
        except ValueError:
            raise ConfigError(f"{what} {value!r}: not a number") from None
        return check(n)

    convert.__name__ = check.__name__
    return convert


def table(rows: list[list[str]], head: list[str]) -> str:
    """@rows under @head, columns padded to their widest cell."""
    cols = [head] + rows
    widths = [max(len(str(r[i])) for r in cols) for i in range(len(head))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in cols]
    return "\n".join(lines)


def text(value: Any) -> str:
    """@value as a person reads it (rule 3): yes/no, "-" for none, lists
    joined with commas, mappings as k=v."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={text(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(text(v) for v in value) or "-"
    return str(value)


def _subparsers(p: argparse.ArgumentParser):
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.values()


def add_global_options(top: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Rule 2: --socket and --json on @top (defaults None and False) and on
    every sub-parser below it (no default: SUPPRESS). A sub-parser's own
    --json (a command's) is made one of them. Returns @top's actions."""
    actions = {
        "socket": top.add_argument("--socket", metavar="PATH", help=SOCKET_HELP),
        "json": top.add_argument("--json", action="store_true", help=JSON_HELP),
    }
    todo = list(_subparsers(top))
    while todo:
        p = todo.pop()
        todo.extend(_subparsers(p))
        have = {s: a for a in p._actions for s in a.option_strings}
        if "--socket" not in have:
            p.add_argument("--socket", metavar="PATH", default=argparse.SUPPRESS, help=SOCKET_HELP)
        else:
            have["--socket"].default = argparse.SUPPRESS
        if "--json" not in have:
            p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP)
        else:
            have["--json"].default = argparse.SUPPRESS
            if not have["--json"].help:
                have["--json"].help = JSON_HELP
    return actions


def quiet_stdout() -> None:
    """After EPIPE on stdout: nothing more goes there (not even at exit's flush)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
