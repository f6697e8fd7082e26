"""live.py - the CLI's live views: `events [--follow]` and `stats --watch` / `top`.

    vnetshare events [--json] [--follow] [--partition NAME] [--kind GLOB]...
    vnetshare stats --watch [SECONDS] [-n COUNT] [--json]
    vnetshare top [-d SECONDS] [-n COUNT] [--sort name|rx|tx|drops] [--json]

Rules:
1. Rates come from two `stats` answers and the time between them, in one
   pure function, rates(); nothing else computes a rate.
2. Each output line is flushed as it is written, so `| grep` sees it at once.
   In a terminal the watch view redraws in place (cursor home, each line
   cleared to its end, the rest of the screen cleared: ANSI, no curses);
   elsewhere it prints one block per interval, a timestamp line first.
3. Ctrl-C ends a live view with exit 0 and no traceback; so does a closed
   pipe (`| head`). The daemon going away while following is an error
   line and exit 1.
4. In a terminal (stdin and stdout ttys), `q` ends the watch view too, and
   a resize redraws it at once, cut to the new width; the terminal's
   settings are given back however the view ends (tests/netns/test_cli_tty.py
   drives it under tmux).
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Mapping, TextIO

from .. import events as ev
from ..core.errors import ConfigError, message
from . import clitools
from .client import DaemonUnreachable, Stream, call

INTERVAL_MIN = 0.1
INTERVAL_MAX = 3600.0
HOME, CLEAR_EOL, CLEAR_BELOW, CLEAR_SCREEN = "\x1b[H", "\x1b[K", "\x1b[J", "\x1b[H\x1b[2J"


def interval(text: str) -> float:
    """A refresh interval in seconds: a number from INTERVAL_MIN to INTERVAL_MAX."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not INTERVAL_MIN <= value <= INTERVAL_MAX:  # nan fails too
        raise ConfigError(f"interval {text!r}: must be a number of seconds from {INTERVAL_MIN:g} "
                          f"to {INTERVAL_MAX:g}")
    return value


def count(text: str) -> int:
    """A number of refreshes: 1 or more."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ConfigError(f"count {text!r}: not a number") from None
    if value < 1:
        raise ConfigError(f"count {text!r}: must be 1 or more")
    return value


# -- rates ---------------------------------------------------------------------

def _delta(cur: int, prev: int) -> int:
    """Counters only grow; a smaller one is a new port (recreated): its value."""
    return cur - prev if cur >= prev else cur


def _row(prev: Mapping[str, Any], cur: Mapping[str, Any], seconds: float) -> dict:
    def per_s(key: str) -> float:
        return _delta(int(cur.get(key, 0)), int(prev.get(key, 0))) / seconds

    pd = prev.get("drops", {})
    drops = {r: _delta(int(n), int(pd.get(r, 0))) for r, n in cur.get("drops", {}).items()}
    top = max(sorted(drops), key=lambda r: drops[r], default=None)
    if top is not None and not drops[top]:
        top = None
    row = {"rx_fps": per_s("rx_frames"), "rx_bps": per_s("rx_bytes") * 8,
           "tx_fps": per_s("tx_frames"), "tx_bps": per_s("tx_bytes") * 8,
           "drops_ps": sum(drops.values()) / seconds,
           "top_drop": top, "top_drop_ps": drops[top] / seconds if top else 0.0}
    if cur.get("ring_bytes"):  # the rings' fill now, a gauge (not a rate)
        row["ring_fill"] = max(int(cur.get("a2h_used", 0)), int(cur.get("h2a_used", 0))) / cur["ring_bytes"]
    return row


def rates(prev: Mapping[str, Any], cur: Mapping[str, Any], seconds: float) -> dict:
    """Per-second rates between two `stats` answers @seconds apart.

    {"seconds": s, "partitions": {name: row}, "uplink": row}; a row has
    rx_fps, rx_bps, tx_fps, tx_bps (frames and bits per second, the
    partition's view: rx is what it received; the uplink's: what came from
    the wire), drops_ps, top_drop (the reason that dropped most, or None)
    and top_drop_ps; ring_fill (0-1) when the counters have the rings'
    gauges. A partition missing in @prev is new (counters from zero); one
    missing in @cur is gone and left out.
    """
    if not seconds > 0:
        raise ValueError(f"seconds {seconds!r}: must be above 0")
    pp = prev.get("partitions", {})
    parts = {name: _row(pp.get(name) or {}, c, seconds)
             for name, c in sorted(cur.get("partitions", {}).items()) if c}
    return {"seconds": seconds, "partitions": parts,
            "uplink": _row(prev.get("uplink") or {}, cur.get("uplink") or {}, seconds)}


def human(value: float, unit: str = "") -> str:
    """@value with an SI prefix, three significant digits: 950, 12.3k, 4.56M."""
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale * 0.9995:
            v = value / scale
            return f"{v:.3g}{prefix}{unit}" if v < 1000 else f"{v:.0f}{prefix}{unit}"
    return f"{value:.3g}{unit}" if value >= 1 or value == 0 else f"{value:.2f}{unit}"


#: top --sort: the row key, largest first (name: A to Z)
SORT_KEYS = ("name", "rx", "tx", "drops")
_SORT_FIELD = {"rx": "rx_bps", "tx": "tx_bps", "drops": "drops_ps"}


def ordered(view: Mapping[str, Any], sort: str = "name") -> list[tuple[str, Mapping[str, Any]]]:
    """The partitions' rows of @view in the order of @sort (SORT_KEYS):
    by name, or the largest rate first (ties by name)."""
    rows = sorted(view["partitions"].items())
    if sort != "name":
        key = _SORT_FIELD[sort]
        rows.sort(key=lambda item: -item[1][key])
    return rows


def table(view: Mapping[str, Any], sort: str = "name") -> list[str]:
    """The rates as table lines (no header line with the time)."""
    ring = all("ring_fill" in r for r in view["partitions"].values()) and bool(view["partitions"])
    head = ["PARTITION", "RX FRAMES/S", "RX BITS/S", "TX FRAMES/S", "TX BITS/S", "DROPS/S", "TOP DROP"]
    if ring:
        head.append("RING")

    def line(name: str, r: Mapping[str, Any]) -> list[str]:
        top = f"{r['top_drop']} {human(r['top_drop_ps'])}/s" if r["top_drop"] else "-"
        out = [name, human(r["rx_fps"]), human(r["rx_bps"]), human(r["tx_fps"]), human(r["tx_bps"]),
               human(r["drops_ps"]), top]
        if ring:
            out.append(f"{r.get('ring_fill', 0) * 100:.0f}%")
        return out

    rows = [line(n, r) for n, r in ordered(view, sort)]
    rows.append(line("(uplink)", view["uplink"]) + ([""] if ring else []))
    return clitools.table(rows, head).splitlines()


# -- stats --watch / top ---------------------------------------------------------

def _write(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()


class _Keys:
    """A live view's terminal (rule 4): the keyboard in cbreak mode (no echo,
    no line buffering; Ctrl-C still interrupts), `q` quits, a resize
    redraws at once. close() gives the terminal back as it was."""

    def __init__(self, fd: int):
        import signal
        import termios
        import tty as tty_mod

        self.fd = fd
        self.saved = termios.tcgetattr(fd)
        tty_mod.setcbreak(fd)
        self.resized = False
        self._old_winch = signal.signal(signal.SIGWINCH, self._on_winch)

    def _on_winch(self, _sig, _frame) -> None:
        self.resized = True

    def wait(self, seconds: float, clock: Callable[[], float]) -> str | None:
        """Wait up to @seconds: "quit" (q typed), "resize", or None (time's up)."""
        import select

        end = clock() + seconds
        while True:
            if self.resized:
                self.resized = False
                return "resize"
            left = end - clock()
            if left <= 0:
                return None
            ready, _w, _x = select.select([self.fd], [], [], min(left, 0.1))
            if ready and any(c in b"qQ" for c in os.read(self.fd, 64)):
                return "quit"

    def close(self) -> None:
        import signal
        import termios

        termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
        signal.signal(signal.SIGWINCH, self._old_winch)


def _width(out: TextIO) -> int | None:
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return None


def _screen(out: TextIO, lines: list[str], clear: bool = False) -> None:
    """Rule 2's redraw in place (@clear: the whole screen first), each line
    cut to the terminal's width (so a narrow terminal never wraps it onto
    the next)."""
    cols = _width(out)
    if cols:
        lines = [line[:cols - 1] for line in lines]
    _write(out, (CLEAR_SCREEN if clear else HOME) + "".join(line + CLEAR_EOL + "\n" for line in lines) + CLEAR_BELOW)


def watch(path: str, every: float, refreshes: int | None = None, as_json: bool = False,
          out: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] | None = None, sort: str = "name") -> int:
    """`stats --watch` / `top`: a rates block every @every seconds, @refreshes
    times (None: until q or Ctrl-C). --json: one object a line,
    {"time": ..., "seconds": ..., "partitions": {...}, "uplink": {...}}."""
    out = out or sys.stdout
    tty = out.isatty() and not as_json
    keys = None
    if tty and sleep is None and sys.stdin.isatty():
        keys = _Keys(sys.stdin.fileno())
    sleep = sleep or time.sleep
    try:
        prev, t_prev = call(path, "stats"), clock()
        lines = [f"vnetshare top: every {every:g} s; first rates in {every:g} s"
                 + ("; q quits" if keys else "")]
        if tty:
            _screen(out, lines, clear=True)
        shown = 0
        while refreshes is None or shown < refreshes:
            if keys is None:
                sleep(max(0.0, t_prev + every - clock()))
            else:
                key = keys.wait(max(0.0, t_prev + every - clock()), clock)
                if key == "quit":
                    return 0
                if key == "resize":
                    _screen(out, lines, clear=True)
                    continue
            cur, t = call(path, "stats"), clock()
            view = rates(prev, cur, t - t_prev)
            prev, t_prev = cur, t
            now = time.time()
            if as_json:
                _write(out, json.dumps({"time": now, **view}, separators=(",", ":")) + "\n")
            else:
                head = (f"{ev.timestamp(now)}  {len(view['partitions'])} partition(s), "
                        f"rates over {view['seconds']:.2f} s" + ("; q quits" if keys else ""))
                lines = [head] + table(view, sort)
                if tty:
                    _screen(out, lines)
                else:
                    _write(out, "\n".join(lines) + "\n\n")
            shown += 1
    except KeyboardInterrupt:
        if tty:
            _write(out, "\n")
        return 0
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    finally:
        if keys is not None:
            keys.close()
    return 0


# -- events ----------------------------------------------------------------------

_quiet_stdout = clitools.quiet_stdout


def event_filter(partition: str | None = None, kinds: list[str] | None = None) -> Callable[[Mapping], bool]:
    """`events --partition NAME --kind GLOB`: an event of partition @partition
    whose kind matches one of the shell patterns @kinds (either left out:
    any)."""
    from fnmatch import fnmatchcase

    def keep(e: Mapping[str, Any]) -> bool:
        return ((partition is None or e.get("partition") == partition)
                and (not kinds or any(fnmatchcase(str(e.get("event", "")), k) for k in kinds)))
    return keep


def show_events(path: str, follow: bool = False, as_json: bool = False, out: TextIO | None = None,
                err: TextIO | None = None, keep: Callable[[Mapping], bool] | None = None) -> int:
    """`vnetshare events`: the history, and with @follow each new event
    until Ctrl-C (exit 0) or the daemon goes (an error line, exit 1); only
    the events @keep accepts (event_filter())."""
    out, err = out or sys.stdout, err or sys.stderr

    def put(e: Mapping[str, Any]) -> None:
        if keep is None or keep(e):
            _write(out, (json.dumps(e, separators=(",", ":")) if as_json else ev.text_line(e)) + "\n")

    try:
        if not follow:
            for e in call(path, "events")["events"]:
                put(e)
            return 0
        last = None
        with Stream(path, "events", follow=True) as st:
            for e in st.answer["events"]:
                put(e)
            for msg in st.messages():
                e = msg.get("event")
                if isinstance(e, dict):
                    put(e)
                    last = e.get("event")
        why = "it stopped" if last == "daemon.stopping" else "the connection closed"
        print(f"vnetshare: error: the daemon at {path} ended the event stream ({why})", file=err)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except ConnectionError as e:
        raise DaemonUnreachable(f"the daemon at {path} dropped the event stream: {message(e)}") from None


# -- the commands ----------------------------------------------------------------

def add_watch_options(p, arg) -> None:
    """`stats`'s --watch and --count; @arg: clitools.arg (ConfigError -> usage error)."""
    p.add_argument("--watch", nargs="?", const=1.0, default=None, type=arg(interval), metavar="SECONDS",
                   help="a live table of per-partition rates, refreshed every SECONDS (default 1)")
    p.add_argument("-n", "--count", type=arg(count), default=None, metavar="N",
                   help="with --watch: stop after N refreshes")


def add_parsers(sub, arg) -> None:
    """The `events` and `top` commands."""
    e = sub.add_parser("events", help="the daemon's lifecycle events (partitions, agents, drops, uplink)")
    e.add_argument("--json", action="store_true", help="one JSON object per line")
    e.add_argument("-f", "--follow", action="store_true", help="keep printing new events until Ctrl-C")
    e.add_argument("--partition", metavar="NAME", help="only the events of partition NAME")
    e.add_argument("--kind", action="append", default=None, metavar="GLOB",
                   help="only events whose kind matches GLOB, a shell pattern (partition.*, agent.exited; "
                        "repeatable: any of them)")
    t = sub.add_parser("top", help="a live table of per-partition rates (as stats --watch)")
    t.add_argument("-d", "--delay", type=arg(interval), default=1.0, metavar="SECONDS",
                   help="refresh every SECONDS (default 1)")
    t.add_argument("-n", "--count", type=arg(count), default=None, metavar="N", help="stop after N refreshes")
    t.add_argument("--json", action="store_true", help="one JSON object of rates per refresh")
    t.add_argument("--sort", choices=SORT_KEYS, default="name",
                   help="order of the rows: by name (default), or the most received, sent or dropped "
                        "(bits per second; drops per second) first")


def events_main(args) -> int:
    from .client import daemon_socket

    return show_events(daemon_socket(args.socket), follow=args.follow, as_json=args.json,
                       keep=event_filter(args.partition, args.kind))


def top_main(args) -> int:
    from .client import daemon_socket

    return watch(daemon_socket(args.socket), args.delay, args.count, as_json=args.json, sort=args.sort)
