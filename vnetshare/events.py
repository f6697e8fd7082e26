"""events.py - the daemon's lifecycle events: a bounded history, followers, a watcher.

What happened to the daemon's partitions, one event at a time, for
`vnetshare events [--follow]` and the daemon's log. An event is one JSON
object:

    {"time": 1764432062.123, "event": "agent.died", "partition": "pa",
     "message": "agent 1234 ended (killed by SIGKILL)", "pid": 1234,
     "signal": "SIGKILL", "exit_status": null}

time is Unix time (float), event the kind, partition a name or null,
message one human line; the other keys are the kind's details (JSON values).
The kinds, SUBJECT.WHAT, and their details:

    daemon.started       uplink, partitions (count)
    daemon.stopping      signal
    partition.created    ifname, mac, mtu, ips, netns, adopted (bool)
    partition.adopted    a partition of an earlier daemon served again: netns
    partition.recreated  its namespace was gone at start (a reboot) and is made
                         again from its record: cause, ifname, mac, mtu, ips, netns
    partition.recreate_failed  that failed; the record is kept, unserved:
                         cause, reason
    partition.forgotten  it could not be adopted (its adopted namespace is
                         gone, ...); its record is dropped: reason, netns,
                         adopted (bool)
    partition.changed    fields (names), values ({key: new value}, the keys
                         and shapes of `partition show --json`),
                         changes ([{field, old, new}] in words)
    partition.deleted    -
    agent.started        pid (the agent a create or an adoption started)
    agent.died           pid, exit_status (int or null), signal (name or null)
    agent.restarted      pid (the new agent), restarts (since this daemon serves it)
    agent.failed         reason (restart limit reached, or the restart failed)
    port.disconnected    violations, reasons ({ring drop reason: count}): its
                         agent broke the ring rules; the switch stopped serving it
    drops.started        reason, count (drops of that reason in the last
                         interval), interval (seconds)
    drops.stopped        reason, count (drops in the whole episode), seconds
    partition.mac_conflict  a station on the wire sends from the partition's
                         MAC: mac, frames (seen so far), mode ("yield": that
                         station gets the MAC's unicast meanwhile, "keep")
    partition.mac_conflict_ended  no such frame for the switch's FDB ageing
                         time: mac, frames (in the whole episode), seconds
    uplink.down          ifname, operstate; role "backup" for the backup
                         uplink (failover), which is watched too
    uplink.up            ifname, operstate; role "backup" as uplink.down
    uplink.gone          ifname, ifindex: the device the daemon served is
                         gone (deleted, or renamed away); frames for the
                         wire are dropped (no_uplink) until one is back
    uplink.rebound       ifname, old_ifindex, new_ifindex, mac, mtu,
                         seconds (since it went): a device of that name
                         is back and served, through a new socket
    uplink.unusable      ifname, ifindex, reason: a device of that name is
                         there but cannot be served (not Ethernet, its
                         socket refused)
    uplink.mtu           ifname, old, new, partitions ({name: MTU now},
                         those whose TAP changed), failed ({name: why})
    uplink.offloads      ifname, features ({name: [was on, is on]}),
                         offloads ({"before", "after": TUN_F_* names the
                         partitions get}), partitions (names whose TAP
                         changed live), recreate ({name: why}: those that
                         could not follow live: delete and create them)
                         (with --backup-uplink, the uplink.gone, rebound
                         and unusable of the backup say role "backup")
    uplink.failover      from, to (ifnames; to null: neither serves, both
                         down), reason, role (of to), moves (the switch's
                         count): the switch moved off a failed uplink
    uplink.failback      the same fields: back to the primary (its hold
                         time passed, failback always, or the backup failed)
    uplink.announced     ifname, partitions, frames, refused, ms: every
                         partition announced on the new path after a move
    host_port.up         the daemon's host port made or adopted: name, mac,
                         adopted (bool) (hostport.py)
    host_port.down       it was removed at stop: name
    host_port.taken      it has the uplink's addresses and routes: name,
                         uplink, moved (the addresses moved now), addresses
                         and routes (all it holds)
    host_port.returned   the uplink has them back: name, uplink, addresses
    events.lost          count: only in a follower's stream, never in the
                         history or the log (rule 3)

The manager emits partition.* and agent.* where it does the thing, the
daemon the uplink's changes it followed (uplink.gone, .rebound, .unusable,
.mtu, .offloads: hosting.py, Daemon.follow_uplink()); the
Watcher emits what only counters and the kernel show (port.*, drops.*,
partition.mac_conflict*, uplink.*) by comparing a Daemon.snapshot() with
the one before, when something may have happened: the switch notified a
policy drop, the start of a MAC conflict or a disconnection, the kernel a
change of the uplink, or, while a drops episode or a MAC conflict runs,
once every WATCH_INTERVAL until it ends. An idle daemon's watcher does
nothing at all.

Rules:
1. emit() is called in the daemon loop's thread only (the manager, the
   watcher and the control ops all run there); it never blocks and never
   raises because of a follower.
2. The history holds the last HISTORY_MAX events; `events` answers with it.
3. A follower (events --follow) has a queue of at most FOLLOW_QUEUE_MAX
   events. When it is full, newer events are not queued but counted; the
   follower gets one "events.lost" event with the count, in order, right
   after the events it did get. A slow reader loses events, the daemon
   never waits for it.
4. Every event is logged once, as one line, "partition NAME: MESSAGE" (or
   MESSAGE for events of no partition), at its kind's level (LEVELS).
5. The watcher's judgement is compare(), a pure function of two snapshots
   and the watcher's state; the Watcher only looks (snapshot, link state)
   and emits. A "drops.started" is a watched reason (watched_reasons():
   the guard's verdicts, storm control, another VLAN: what the partition
   sent that its policy refuses) that moved after being still; it stops
   after DROPS_QUIET intervals without a new one. Congestion drops (full
   rings, rate limits, the uplink's refusals) are left to the counters.
6. A MAC conflict (native/switch.h: a partition's MAC seen as a source on
   the wire) is an episode of the partition's own: partition.mac_conflict
   when its mac_conflict gauge is 1 or its mac_conflicts counter moved,
   partition.mac_conflict_ended at the first look that finds the gauge 0
   again (the switch ends it after its FDB ageing time without such a
   frame): one event each, however many frames.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .core import protocol
from .linux.linkstate import LinkState

log = logging.getLogger("vnetshare.events")

HISTORY_MAX = 1000       # events `vnetshare events` shows (rule 2)
FOLLOW_QUEUE_MAX = 1000  # events a follower may be behind (rule 3)
WATCH_INTERVAL = 1.0     # seconds between two looks while an episode runs (rules 5, 6)
DROPS_QUIET = 3          # intervals without a new drop that end an episode

KINDS = (
    "daemon.started", "daemon.stopping",
    "partition.created", "partition.adopted", "partition.changed", "partition.deleted",
    "partition.recreated", "partition.recreate_failed", "partition.forgotten",
    "agent.started", "agent.died", "agent.restarted", "agent.failed",
    "port.disconnected", "drops.started", "drops.stopped",
    "partition.mac_conflict", "partition.mac_conflict_ended",
    "uplink.down", "uplink.up", "uplink.gone", "uplink.rebound", "uplink.unusable",
    "uplink.mtu", "uplink.offloads", "uplink.failover", "uplink.failback", "uplink.announced", "events.lost",
    "host_port.up", "host_port.down", "host_port.taken", "host_port.returned",
)
LEVELS = {"agent.died": logging.WARNING, "agent.failed": logging.ERROR,
          "port.disconnected": logging.ERROR, "drops.started": logging.WARNING,
          "partition.mac_conflict": logging.WARNING, "uplink.down": logging.WARNING,
          "partition.recreate_failed": logging.ERROR, "partition.forgotten": logging.WARNING,
          "uplink.gone": logging.WARNING, "uplink.unusable": logging.ERROR,
          "uplink.failover": logging.WARNING}


def make(kind: str, partition: str | None, message: str, now: float | None = None, **details: Any) -> dict:
    """One event (the module docstring's shape); @kind must be in KINDS."""
    if kind not in KINDS:
        raise ValueError(f"event kind {kind!r}: not one of KINDS")
    return {"time": time.time() if now is None else now, "event": kind, "partition": partition,
            "message": message, **details}


def log_line(ev: Mapping[str, Any]) -> str:
    """The daemon log's line for @ev (rule 4)."""
    if ev.get("partition"):
        return f"partition {ev['partition']}: {ev['message']}"
    return str(ev["message"])


def timestamp(t: float) -> str:
    """@t (Unix time) as UTC ISO 8601 with milliseconds: 2026-11-29T16:01:02.123Z."""
    whole = int(t)
    ms = int(round((t - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}Z"


def text_line(ev: Mapping[str, Any]) -> str:
    """@ev as `vnetshare events` prints it: time, kind, partition (- for
    none), message, separated by two spaces."""
    return f"{timestamp(ev['time'])}  {ev['event']:<17}  {ev.get('partition') or '-':<8}  {ev['message']}"


# -- the log and its followers -------------------------------------------------

class Follower:
    """One `events --follow` client's queue (rule 3). Its run() is a
    hosting.StreamAnswer run(); close() (the StreamAnswer's close) unsubscribes it."""

    def __init__(self, owner: "EventLog", limit: int = FOLLOW_QUEUE_MAX):
        self._owner = owner
        self.limit = limit
        self.queue: deque[dict] = deque()
        self.lost = 0          # events not queued since the last take()
        self.lost_total = 0
        self.ended = False     # the daemon stops: send what is queued, then end
        self._ready = asyncio.Event()

    def put(self, ev: dict) -> None:
        if len(self.queue) >= self.limit:
            self.lost += 1
            self.lost_total += 1
        else:
            self.queue.append(ev)
        self._ready.set()

    def take(self) -> list[dict]:
        """What is queued, then an events.lost event if any were lost."""
        out = list(self.queue)
        self.queue.clear()
        if self.lost:
            n, self.lost = self.lost, 0
            out.append(make("events.lost", None, f"{n} events lost: this client read too slowly",
                            count=n))
        self._ready.clear()
        return out

    def end(self) -> None:
        self.ended = True
        self._ready.set()

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Send each event as {"event": {...}}, one line, until the client
        hangs up or the daemon stops. Waits only on this connection's
        writer: the daemon's other work goes on (rule 3)."""
        hangup = asyncio.ensure_future(_until_eof(reader))
        try:
            while True:
                for ev in self.take():
                    writer.write(protocol.encode({"event": ev}))
                await writer.drain()
                if self.ended or hangup.done():
                    return
                ready = asyncio.ensure_future(self._ready.wait())
                await asyncio.wait({ready, hangup}, return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()
        finally:
            hangup.cancel()

    def close(self) -> None:
        self._owner._followers.discard(self)


async def _until_eof(reader: asyncio.StreamReader) -> None:
    """Returns when the client hangs up (what it sends is ignored)."""
    try:
        while await reader.read(4096):
            pass
    except (ConnectionError, OSError):
        pass


class EventLog:
    """The daemon's events: emit(), history(), follow() (rules 1-4)."""

    def __init__(self, history_max: int = HISTORY_MAX, follow_max: int = FOLLOW_QUEUE_MAX,
                 logger: logging.Logger = log):
        self._history: deque[dict] = deque(maxlen=history_max)
        self._followers: set[Follower] = set()
        self.follow_max = follow_max
        self._log = logger

    def emit(self, kind: str, partition: str | None, message: str, **details: Any) -> dict:
        return self.add(make(kind, partition, message, **details))

    def add(self, ev: dict) -> dict:
        """Record a made event: history, log, followers. A detail that is no
        JSON value is kept as its str(): a follower's line never fails."""
        ev = json.loads(json.dumps(ev, default=str))
        self._history.append(ev)
        self._log.log(LEVELS.get(ev["event"], logging.INFO), "%s", log_line(ev))
        for f in list(self._followers):
            f.put(ev)
        return ev

    def history(self) -> list[dict]:
        return list(self._history)

    def follow(self) -> Follower:
        """A new follower; it gets every event emitted from now on."""
        f = Follower(self, self.follow_max)
        self._followers.add(f)
        return f

    @property
    def followers(self) -> int:
        return len(self._followers)

    async def end_followers(self, timeout: float = 1.0) -> None:
        """Daemon stop: each follower sends what it has and ends; wait
        until they did (their StreamAnswer closed), at most @timeout seconds."""
        for f in list(self._followers):
            f.end()
        deadline = time.monotonic() + timeout
        while self._followers and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


# -- the watcher ---------------------------------------------------------------

def watched_reasons() -> frozenset[str]:
    """Drop reasons that start a drops.started event (rule 5): every guard
    verdict that drops (from the C enum, not listed here), storm control,
    and unicast to another VLAN."""
    from .dataplane.guard import DROP_REASONS

    return frozenset(DROP_REASONS) | {"storm", "other_vlan"}


@dataclass
class Episode:
    """A watched drop reason moving for one partition."""

    count: int       # drops since it started
    since: float     # when it started (the snapshot's time)
    quiet: int = 0   # intervals since the last new drop


@dataclass
class Conflict:
    """A partition's MAC conflict running (rule 6)."""

    base: int        # its mac_conflicts counter before the episode
    since: float     # when it started (the snapshot's time)


@dataclass
class WatchState:
    """What compare() remembers between two looks."""

    drops: dict[tuple[str, str], Episode] = field(default_factory=dict)
    conflicts: dict[str, Conflict] = field(default_factory=dict)
    uplink_up: bool | None = None   # None: not looked at yet (taken as up)
    backup_up: bool | None = None   # the backup uplink's, the same way


Pending = tuple[str, "str | None", str, dict]   # (kind, partition, message, details)


def _delta(cur: int, prev: int) -> int:
    """Counters only grow; a smaller one is a new port (same name, recreated)."""
    return cur - prev if cur >= prev else cur


def compare(prev: Mapping[str, Any], cur: Mapping[str, Any], state: WatchState, now: float,
            reasons: Iterable[str], interval: float = WATCH_INTERVAL,
            quiet: int = DROPS_QUIET, link: Mapping[str, Any] | None = None,
            backup: Mapping[str, Any] | None = None) -> list[Pending]:
    """The events between two snapshots (Daemon.snapshot()), updating @state.

    A partition not in @prev is new: its counters started at zero (a
    port's counters are the daemon's own), so a first snapshot of {} sees
    everything. @link: the uplink's {"up": bool, "operstate": str,
    "ifname": str}, or None when it could not be looked at; @backup: the
    backup uplink's, the same (None: none, or not looked at).
    """
    out: list[Pending] = []
    reasons = frozenset(reasons)
    prev_parts = prev.get("partitions", {})
    cur_parts = cur.get("partitions", {})
    for name in sorted(cur_parts):
        c = cur_parts[name]
        if not c:
            continue  # unserved: no counters
        p = prev_parts.get(name) or {}
        if c.get("disconnected") and not p.get("disconnected"):
            ring = {r: n for r, n in c.get("drops", {}).items() if r.startswith("ring_") and n}
            worst = ", ".join(f"{r[5:]} {n}" for r, n in sorted(ring.items(), key=lambda x: -x[1])[:3])
            out.append(("port.disconnected", name,
                        f"disconnected after {c.get('violations', 0)} ring violations"
                        + (f" ({worst})" if worst else "") + ": its agent broke the ring rules",
                        {"violations": c.get("violations", 0), "reasons": ring}))
        pd, cd = p.get("drops", {}), c.get("drops", {})
        for reason in sorted(r for r in cd if r in reasons):
            n = _delta(cd[reason], pd.get(reason, 0))
            key = (name, reason)
            ep = state.drops.get(key)
            if n:
                if ep is None:
                    state.drops[key] = Episode(n, now)
                    out.append(("drops.started", name,
                                f"drops started: {reason} ({n} in the last {interval:g} s)",
                                {"reason": reason, "count": n, "interval": interval}))
                else:
                    ep.count += n
                    ep.quiet = 0
            elif ep is not None:
                ep.quiet += 1
                if ep.quiet >= quiet:
                    del state.drops[key]
                    seconds = round(now - ep.since, 3)
                    out.append(("drops.stopped", name,
                                f"drops stopped: {reason} ({ep.count} in {seconds:.0f} s)",
                                {"reason": reason, "count": ep.count, "seconds": seconds}))
        out += _mac_conflict(name, p, c, cur, state, now)
    for key in [k for k in state.drops if k[0] not in cur_parts]:
        del state.drops[key]  # deleted: partition.deleted says so
    for name in [n for n in state.conflicts if n not in cur_parts]:
        del state.conflicts[name]
    for lk, attr, role in ((link, "uplink_up", None), (backup, "backup_up", "backup")):
        if lk is None:
            continue
        was = getattr(state, attr)
        if lk["up"] != (True if was is None else was):
            kind = "uplink.up" if lk["up"] else "uplink.down"
            out.append((kind, None, f"{role + ' ' if role else ''}uplink {lk['ifname']} "
                                    f"{'up' if lk['up'] else 'down'} (operstate {lk['operstate']})",
                        {"ifname": lk["ifname"], "operstate": lk["operstate"], **({"role": role} if role else {})}))
        setattr(state, attr, lk["up"])
    return out


def _mac_conflict(name: str, p: Mapping[str, Any], c: Mapping[str, Any], cur: Mapping[str, Any],
                  state: WatchState, now: float) -> list[Pending]:
    """Rule 6 for one partition: its counters now (@c) and before (@p)."""
    out: list[Pending] = []
    mac = cur.get("policy", {}).get(name, {}).get("mac", "?")
    frames, before = c.get("mac_conflicts", 0), p.get("mac_conflicts", 0)
    ep = state.conflicts.get(name)
    if ep is None and (c.get("mac_conflict") or _delta(frames, before)):
        ep = state.conflicts[name] = Conflict(before if frames >= before else 0, now)
        mode = cur.get("daemon", {}).get("mac_conflict", "yield")
        n = frames - ep.base
        then = ("that station gets the unicast for it until it is quiet for the ageing time (--mac-conflict yield)"
                if mode == "yield" else "the partition keeps getting it (--mac-conflict keep)")
        out.append(("partition.mac_conflict", name,
                    f"MAC {mac}: a station on the wire uses it too ({n} frame{'s' * (n != 1)} from it); {then}",
                    {"mac": mac, "frames": n, "mode": mode}))
    if ep is not None and not c.get("mac_conflict"):
        del state.conflicts[name]
        n = _delta(frames, ep.base)
        seconds = round(now - ep.since, 3)
        out.append(("partition.mac_conflict_ended", name,
                    f"MAC {mac}: no station on the wire used it for the ageing time "
                    f"({n} frame{'s' * (n != 1)} from one in {seconds:.0f} s)",
                    {"mac": mac, "frames": n, "seconds": seconds}))
    return out


class Watcher:
    """One look: one snapshot, one link look, compare(), emit (rule 5).

    It looks when woken, never on a clock while all is quiet: by the
    switch's notification eventfd (@notify_fd: a port's first policy drop,
    MAC conflict or disconnection since the last look, which calls @rearm
    first), by a kernel notification about the uplink, and every @interval
    while a drops episode or a MAC conflict runs (to see it stop). A note
    while such looks are due anyway changes nothing, so a port that drops
    without pause costs one look an interval. Runs on the daemon's loop; a failing look is logged
    once (until it works again) and retried every @interval. @on_link is
    called first, at once, on each kernel notification about the uplink
    (the daemon follows the NIC: hosting.py); @backup, the backup uplink's
    LinkState (failover), is watched the same way. @reasons are the watched drop
    reasons (default: watched_reasons(), the C guard's); @clock gives the
    time a look is stamped with (time.time)."""

    def __init__(self, events: EventLog, snapshot: Callable[[], dict],
                 link: LinkState | None = None, interval: float = WATCH_INTERVAL,
                 notify_fd: int | None = None, rearm: Callable[[], None] | None = None,
                 on_link: Callable[[], None] | None = None, reasons: Iterable[str] | None = None,
                 clock: Callable[[], float] = time.time, backup: LinkState | None = None):
        self.events = events
        self.snapshot = snapshot
        self.link = link
        self.backup = backup
        self.interval = interval
        self.notify_fd = notify_fd
        self.rearm = rearm
        self.on_link = on_link
        self.state = WatchState()
        self.prev: dict = {"partitions": {}}
        self.prev_time: float | None = None
        self.reasons = watched_reasons() if reasons is None else frozenset(reasons)
        self.clock = clock
        self.looks = 0
        self._handle: asyncio.TimerHandle | None = None
        self._failing: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self.notify_fd is not None:
            loop.add_reader(self.notify_fd, self._on_note)
        for lk in (self.link, self.backup):
            if lk is not None:
                loop.add_reader(lk.monitor_fd(), self._on_link, lk)
        self._schedule(0)  # the first look: where the counters and the link start

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._loop is not None:
            if self.notify_fd is not None:
                self._loop.remove_reader(self.notify_fd)
            for lk in (self.link, self.backup):
                if lk is not None:
                    self._loop.remove_reader(lk.monitor_fd())
            self._loop = None
        for lk in (self.link, self.backup):
            if lk is not None:
                lk.close()
        self.link = self.backup = None

    def _schedule(self, delay: float) -> None:
        if self._handle is None and self._loop is not None:
            self._handle = self._loop.call_later(delay, self._tick)

    def _on_note(self) -> None:
        try:
            os.read(self.notify_fd, 8)
        except BlockingIOError:
            pass
        self._schedule(0)

    def _on_link(self, lk: LinkState) -> None:
        if lk in (self.link, self.backup) and lk.changed():
            if self.on_link is not None:
                try:
                    self.on_link()
                except Exception:  # noqa: BLE001 - the watcher must not stop the daemon
                    log.exception("following the uplink failed")
            self._schedule(0)

    def tick(self) -> list[dict]:
        """One look; the events it emitted. When the counters or the link
        can't be read, the other is still judged, then the error raised."""
        error: Exception | None = None
        now = self.clock()
        self.looks += 1
        try:
            if self.rearm is not None:
                self.rearm()  # first: a drop after it notifies anew
            cur = self.snapshot()
        except Exception as e:  # noqa: BLE001 - raised below, after the link's turn
            cur, error = self.prev, e
        looks: list[dict | None] = []
        for lk in (self.link, self.backup):
            looks.append(None)
            if lk is not None:
                try:
                    looks[-1] = lk.look()
                except OSError as e:
                    error = error or e
        link, backup = looks
        # the drops since the last look happened within the last interval:
        # the first of them woke this look, or looks come every interval
        since = self.interval if self.prev_time is None else min(max(now - self.prev_time, 0.001),
                                                                 self.interval)
        pending = compare(self.prev, cur, self.state, now, self.reasons,
                          interval=round(since, 3), link=link, backup=backup)
        self.prev = cur
        self.prev_time = now
        emitted = [self.events.emit(kind, part, msg, **details) for kind, part, msg, details in pending]
        if error is not None:
            raise error
        return emitted

    def _tick(self) -> None:
        self._handle = None
        try:
            self.tick()
            self._failing = None
        except Exception as e:  # noqa: BLE001 - the watcher must not stop the daemon
            if str(e) != self._failing:
                log.warning("event watcher: %s (retrying every %g s)", e, self.interval)
            self._failing = str(e)
        if self._failing is not None or self.state.drops or self.state.conflicts:
            self._schedule(self.interval)  # to see the episode end, or to retry

