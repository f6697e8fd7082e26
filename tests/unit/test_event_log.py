"""The event log (vnetshare.events) and the live views' rates (frontends/live.py), without a daemon."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import socket

import pytest

from vnetshare import events as ev
from vnetshare.core.errors import ConfigError
from vnetshare.frontends import live
from vnetshare.linux import procs

# The guard's reasons come from C (events.watched_reasons(), checked in
# tests/native/test_contract.py); these are a few of them and ours.
REASONS = frozenset({"spoof", "ip_spoof", "arp_spoof", "mtu", "ra", "storm", "other_vlan"})


# -- the log, its history and its followers ---------------------------------------------

def test_history_keeps_the_last_n_in_order():
    log = ev.EventLog(history_max=5)
    for i in range(12):
        log.emit("partition.created", f"p{i}", "created")
    assert [e["partition"] for e in log.history()] == [f"p{i}" for i in range(7, 12)]


def test_an_event_has_time_kind_partition_message_and_details():
    log = ev.EventLog()
    e = log.emit("agent.died", "pa", "agent 7 ended (killed by SIGKILL)", pid=7, signal="SIGKILL")
    assert set(e) == {"time", "event", "partition", "message", "pid", "signal"}
    assert e["event"] == "agent.died" and e["partition"] == "pa" and isinstance(e["time"], float)
    assert log.history() == [e]


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="'agent.exploded'"):
        ev.EventLog().emit("agent.exploded", "pa", "boom")


def test_a_detail_that_is_no_json_value_becomes_its_text():
    e = ev.EventLog().emit("partition.changed", "pa", "set", values={"x": object()})
    json.dumps(e)
    assert e["values"]["x"].startswith("<object object")


def test_every_event_goes_to_the_log_once_at_its_level(caplog):
    log = ev.EventLog()
    with caplog.at_level(logging.INFO, logger="vnetshare.events"):
        log.emit("agent.died", "pa", "agent 7 ended (exit status 1)")
        log.emit("daemon.started", None, "ready: control socket /x, 0 partition(s)")
    got = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert got == [(logging.WARNING, "partition pa: agent 7 ended (exit status 1)"),
                   (logging.INFO, "ready: control socket /x, 0 partition(s)")]


def test_a_full_follower_loses_newer_events_counted_and_is_told_in_order():
    log = ev.EventLog(follow_max=3)
    f = log.follow()
    for i in range(5):
        log.emit("partition.created", f"p{i}", "created")
    got = f.take()
    assert [e["partition"] for e in got[:3]] == ["p0", "p1", "p2"]
    assert got[3]["event"] == "events.lost" and got[3]["count"] == 2 and "2 events lost" in got[3]["message"]
    assert f.lost_total == 2
    # after the notice, it goes on with what comes next, and no notice
    log.emit("partition.deleted", "p9", "deleted")
    assert [e["partition"] for e in f.take()] == ["p9"]
    # the notice is the follower's own: not in the history
    assert all(e["event"] != "events.lost" for e in log.history()) and len(log.history()) == 6
    f.close()
    assert log.followers == 0


def test_exit_description():
    assert procs.exit_description(-9) == ("killed by SIGKILL", None, "SIGKILL")
    assert procs.exit_description(3) == ("exit status 3", 3, None)
    assert procs.exit_description(0) == ("exit status 0", 0, None)


def test_text_line_and_timestamp():
    e = ev.make("agent.died", "pa", "agent 1234 ended (killed by SIGKILL)", now=1795968062.1234)
    assert ev.timestamp(1795968062.1234) == "2026-11-29T16:01:02.123Z"
    assert ev.timestamp(59.9996) == "1970-01-01T00:01:00.000Z"
    line = ev.text_line(e)
    assert line.startswith("2026-11-29T16:01:02.123Z  agent.died ")
    assert line.split()[1:4] == ["agent.died", "pa", "agent"]
    assert ev.text_line(ev.make("uplink.up", None, "uplink u0 up", now=0)).split()[2] == "-"


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_a_slow_follower_never_blocks_the_daemon_and_gets_the_rest_after_a_lost_notice():
    """A client that does not read: emit() stays instant, the follower's
    queue stays bounded, and once the client reads it gets the queued
    events, one events.lost with the count, then the newer ones."""
    async def main():
        log = ev.EventLog(follow_max=50)
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        f = log.follow()
        task = asyncio.ensure_future(f.run(reader, writer))
        big = "x" * 2000
        loop = asyncio.get_running_loop()
        for i in range(3000):  # ~6 MB: far beyond the socket and transport buffers
            t = loop.time()
            log.emit("partition.changed", f"p{i}", "set", pad=big, n=i)
            assert loop.time() - t < 0.05
            if i % 100 == 0:
                await asyncio.sleep(0)  # let the follower write what it can
        assert f.lost_total > 0 and len(f.queue) <= 50
        # now the client reads: the queued events, the notice; then what comes next
        buf, got = b"", []

        async def read_until(pred):
            nonlocal buf
            deadline = loop.time() + 10
            while not any(pred(m["event"]) for m in got):
                assert loop.time() < deadline, got[-1:]
                try:
                    chunk = theirs.recv(1 << 20)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                    continue
                buf += chunk
                *lines, buf = buf.split(b"\n")
                got.extend(json.loads(line) for line in lines)

        await read_until(lambda e: e["event"] == "events.lost")
        log.emit("partition.deleted", "last", "deleted")
        await read_until(lambda e: e["partition"] == "last")
        kinds = [m["event"]["event"] for m in got]
        notices = [m["event"] for m in got if m["event"]["event"] == "events.lost"]
        assert sum(n["count"] for n in notices) == f.lost_total
        ns = [m["event"]["n"] for m in got if "n" in m["event"]]
        assert ns == sorted(ns) and ns[0] == 0, "events out of order"
        assert len(ns) + f.lost_total == 3000
        # the notice comes exactly where the gap is
        i = kinds.index("events.lost")
        assert got[i + 1]["event"].get("n", 3000) > got[i - 1]["event"]["n"] + 1
        theirs.close()  # the client hangs up: the follower's run ends
        await asyncio.wait_for(task, 5)
        f.close()
        writer.close()
    _run(main())


def test_end_followers_lets_each_send_what_it_has_then_end():
    async def main():
        log = ev.EventLog()
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        f = log.follow()

        async def stream():  # as hosting._stream: run, then close
            try:
                await f.run(reader, writer)
            finally:
                f.close()
                writer.close()
        task = asyncio.ensure_future(stream())
        log.emit("daemon.stopping", None, "SIGTERM: stopping", signal="SIGTERM")
        await log.end_followers(timeout=5)
        assert log.followers == 0 and task.done()
        theirs.settimeout(5)
        data = b""
        while chunk := theirs.recv(65536):
            data += chunk
        assert [json.loads(line)["event"]["event"] for line in data.splitlines()] == ["daemon.stopping"]
    _run(main())


# -- the watcher's judgement --------------------------------------------------------------

def _counters(**kw) -> dict:
    drops = {r: 0 for r in sorted(REASONS | {"rx_rate", "h2a_full", "ring_bad_flags", "ring_pos_backwards"})}
    drops.update(kw.pop("drops", {}))
    base = {"tx_frames": 0, "tx_bytes": 0, "rx_frames": 0, "rx_bytes": 0, "violations": 0,
            "disconnected": False, "drops": drops}
    base.update(kw)
    return base


def _snap(**parts) -> dict:
    return {"partitions": parts}


def _cmp(prev, cur, state, now=100.0, link=None, backup=None):
    return ev.compare(prev, cur, state, now, REASONS, interval=1.0, quiet=3, link=link, backup=backup)


def test_drops_start_when_a_still_reason_moves_and_stop_after_quiet_intervals():
    st = ev.WatchState()
    a0 = _snap(pa=_counters(), pb=_counters())
    # positive control: traffic and congestion drops move, no event
    a1 = _snap(pa=_counters(tx_frames=50, rx_frames=40, drops={"rx_rate": 9, "h2a_full": 3}), pb=_counters())
    assert _cmp(a0, a1, st) == []
    a2 = _snap(pa=_counters(tx_frames=60, drops={"rx_rate": 9, "spoof": 15}), pb=_counters())
    got = _cmp(a1, a2, st, now=101.0)
    assert got == [("drops.started", "pa", "drops started: spoof (15 in the last 1 s)",
                    {"reason": "spoof", "count": 15, "interval": 1.0})]
    # still dropping: no new event; a second reason is its own episode
    a3 = _snap(pa=_counters(drops={"spoof": 20, "storm": 4}), pb=_counters())
    got = _cmp(a2, a3, st, now=102.0)
    assert [(k, p, d["reason"], d["count"]) for k, p, _m, d in got] == [("drops.started", "pa", "storm", 4)]
    # two quiet intervals: nothing; the third ends the spoof episode (20 in all)
    a4 = _snap(pa=_counters(drops={"spoof": 20, "storm": 5}), pb=_counters())
    assert _cmp(a3, a4, st, now=103.0) == []
    assert _cmp(a4, a4, st, now=104.0) == []
    got = _cmp(a4, a4, st, now=105.0)
    assert got == [("drops.stopped", "pa", "drops stopped: spoof (20 in 4 s)",
                    {"reason": "spoof", "count": 20, "seconds": 4.0})]
    got = _cmp(a4, a4, st, now=106.0)
    assert [(k, d["reason"], d["count"]) for k, _p, _m, d in got] == [("drops.stopped", "storm", 5)]
    assert st.drops == {}
    # and it can start again
    a5 = _snap(pa=_counters(drops={"spoof": 21, "storm": 5}), pb=_counters())
    assert [k for k, *_ in _cmp(a4, a5, st)] == ["drops.started"]


def test_disconnected_flip_is_one_event_with_the_ring_reasons():
    st = ev.WatchState()
    b0 = _snap(pa=_counters(), pb=_counters())
    b1 = _snap(pa=_counters(), pb=_counters(violations=64, disconnected=True,
                                            drops={"ring_bad_flags": 60, "ring_pos_backwards": 4}))
    got = _cmp(b0, b1, st)
    assert len(got) == 1
    kind, part, msg, details = got[0]
    assert (kind, part) == ("port.disconnected", "pb")
    assert details == {"violations": 64, "reasons": {"ring_bad_flags": 60, "ring_pos_backwards": 4}}
    assert "64 ring violations" in msg and "bad_flags 60" in msg
    assert _cmp(b1, b1, st) == []  # still disconnected: no second event


def test_a_new_partition_counts_from_zero_and_a_recreated_one_from_its_new_value():
    st = ev.WatchState()
    got = _cmp({"partitions": {}}, _snap(pn=_counters(drops={"arp_spoof": 2})), st)
    assert [(k, p, d["count"]) for k, p, _m, d in got] == [("drops.started", "pn", 2)]
    # deleted: its episode is forgotten, silently
    assert _cmp(_snap(pn=_counters(drops={"arp_spoof": 2})), _snap(), st) == [] and st.drops == {}
    # recreated under the same name between two looks: smaller counters
    st = ev.WatchState()
    old, new = _snap(pn=_counters(drops={"mtu": 100})), _snap(pn=_counters(drops={"mtu": 3}))
    got = _cmp(old, new, st)
    assert [(k, d["count"]) for k, _p, _m, d in got] == [("drops.started", 3)]


def _mac(name: str, mac: str, **parts) -> dict:
    """A snapshot whose partition @name has @mac, of a daemon in the mode @parts may name."""
    mode = parts.pop("mode", "yield")
    return {"partitions": parts, "policy": {name: {"mac": mac}}, "daemon": {"mac_conflict": mode}}


def test_a_mac_conflict_is_one_event_when_it_starts_and_one_when_it_ends():
    st = ev.WatchState()
    m = "02:00:00:00:00:0a"
    c0 = _mac("pa", m, pa=_counters(mac_conflicts=0, mac_conflict=0), pb=_counters())
    # positive control: traffic moves, no conflict, no event
    assert _cmp(c0, _mac("pa", m, pa=_counters(rx_frames=9, mac_conflict=0), pb=_counters()), st) == []
    c1 = _mac("pa", m, pa=_counters(mac_conflicts=3, mac_conflict=1), pb=_counters())
    got = _cmp(c0, c1, st, now=101.0)
    assert got == [("partition.mac_conflict", "pa",
                    f"MAC {m}: a station on the wire uses it too (3 frames from it); that station gets the "
                    "unicast for it until it is quiet for the ageing time (--mac-conflict yield)",
                    {"mac": m, "frames": 3, "mode": "yield"})]
    # more frames, the same episode: nothing
    c2 = _mac("pa", m, pa=_counters(mac_conflicts=40, mac_conflict=1), pb=_counters())
    assert _cmp(c1, c2, st, now=102.0) == [] and _cmp(c2, c2, st, now=103.0) == []
    # the switch ended it (its ageing time without such a frame)
    c3 = _mac("pa", m, pa=_counters(mac_conflicts=40, mac_conflict=0), pb=_counters())
    got = _cmp(c2, c3, st, now=106.0)
    assert got == [("partition.mac_conflict_ended", "pa",
                    f"MAC {m}: no station on the wire used it for the ageing time (40 frames from one in 5 s)",
                    {"mac": m, "frames": 40, "seconds": 5.0})]
    assert st.conflicts == {} and _cmp(c3, c3, st) == []
    # a conflict that began and ended between two looks still says both; keep mode says so
    c4 = _mac("pa", m, pa=_counters(mac_conflicts=41, mac_conflict=0), pb=_counters(), mode="keep")
    got = _cmp(c3, c4, st, now=107.0)
    assert [(k, d["frames"]) for k, _p, _m, d in got] == [("partition.mac_conflict", 1),
                                                        ("partition.mac_conflict_ended", 1)]
    assert "--mac-conflict keep" in got[0][2]
    # a partition deleted during one: forgotten, silently
    _cmp(c4, c1, st)
    assert st.conflicts and _cmp(c1, _snap(pb=_counters()), st) == [] and st.conflicts == {}


def test_unserved_partition_without_counters_is_skipped():
    assert _cmp(_snap(pa=_counters()), _snap(pa={}), ev.WatchState()) == []


def test_uplink_down_and_up_on_transitions_only():
    st = ev.WatchState()
    up = {"ifname": "u0", "up": True, "operstate": "UP"}
    down = {"ifname": "u0", "up": False, "operstate": "LOWERLAYERDOWN"}
    s = _snap()
    assert _cmp(s, s, st, link=up) == []                       # up at start: nothing
    assert _cmp(s, s, st, link=None) == []                     # not looked at: nothing
    got = _cmp(s, s, st, link=down)
    assert got == [("uplink.down", None, "uplink u0 down (operstate LOWERLAYERDOWN)",
                    {"ifname": "u0", "operstate": "LOWERLAYERDOWN"})]
    assert _cmp(s, s, st, link=down) == []
    assert [k for k, *_ in _cmp(s, s, st, link=up)] == ["uplink.up"]
    # down already when the daemon starts: said at the first look
    assert [k for k, *_ in _cmp(s, s, ev.WatchState(), link=down)] == ["uplink.down"]


def test_the_backup_uplink_down_and_up_named_with_its_role_apart_from_the_primary():
    st = ev.WatchState()
    up = {"ifname": "u0", "up": True, "operstate": "UP"}
    absent = {"ifname": "u1", "up": False, "operstate": "absent"}
    s = _snap()
    # a backup missing at start: said at the first look, the primary (up) says nothing
    assert _cmp(s, s, st, link=up, backup=absent) == [
        ("uplink.down", None, "backup uplink u1 down (operstate absent)",
         {"ifname": "u1", "operstate": "absent", "role": "backup"})]
    assert _cmp(s, s, st, link=up, backup=absent) == []
    got = _cmp(s, s, st, link={**up, "up": False, "operstate": "DOWN"}, backup={**absent, "up": True,
                                                                                 "operstate": "UP"})
    assert [(k, d.get("role")) for k, _p, _m, d in got] == [("uplink.down", None), ("uplink.up", "backup")]


def test_watcher_tick_emits_what_compare_finds_and_survives_a_failing_look():
    log = ev.EventLog()
    snaps = iter([_snap(pa=_counters(drops={"spoof": 1})), RuntimeError("switch gone"), _snap(pa=_counters())])

    def snapshot():
        s = next(snaps)
        if isinstance(s, Exception):
            raise s
        return s

    class Link:
        closed = False

        def look(self):
            return {"ifname": "u0", "up": True, "operstate": "UP"}

        def close(self):
            self.closed = True

    link = Link()
    w = ev.Watcher(log, snapshot, link, reasons=REASONS)
    assert [e["event"] for e in w.tick()] == ["drops.started"]
    w._handle = None
    link.look = lambda: {"ifname": "u0", "up": False, "operstate": "DOWN"}
    w._tick()  # the failure is logged, not raised; the link is still judged
    assert w._failing == "switch gone"
    assert [e["event"] for e in log.history()] == ["drops.started", "uplink.down"]
    assert w.tick() == [] and len(log.history()) == 2
    w.stop()
    assert link.closed


class VirtualLoop:
    """What the Watcher uses of an asyncio loop, on a virtual clock (its
    time() is the Watcher's clock): timers run when advance() passes them,
    a reader when ready() says its descriptor is."""

    class Timer:
        def __init__(self, when, fn, args):
            self.when, self.fn, self.args, self.cancelled = when, fn, args, False

        def cancel(self):
            self.cancelled = True

    def __init__(self, now=1000.0):
        self.now = now
        self.timers: list = []
        self.readers: dict = {}

    def time(self):
        return self.now

    def call_later(self, delay, fn, *args):
        timer = self.Timer(self.now + delay, fn, args)
        self.timers.append(timer)
        return timer

    def add_reader(self, fd, fn, *args):
        self.readers[fd] = (fn, args)

    def remove_reader(self, fd):
        return self.readers.pop(fd, None) is not None

    def pending(self):
        return [t for t in self.timers if not t.cancelled]

    def advance(self, seconds):
        end = self.now + seconds
        while due := [t for t in self.pending() if t.when <= end]:
            timer = min(due, key=lambda t: t.when)
            self.timers.remove(timer)
            self.now = timer.when
            timer.fn(*timer.args)
        self.now = end

    def ready(self, fd):
        fn, args = self.readers[fd]
        fn(*args)


def test_the_watcher_looks_only_when_woken_or_while_drops_go_on():
    """Idle, it never looks; a note wakes one look (after rearming the
    notes); while an episode runs it looks every interval, and stops
    looking once the episode has ended (DROPS_QUIET quiet intervals)."""
    import os

    log = ev.EventLog()
    efd = os.eventfd(0, os.EFD_NONBLOCK)
    drops = {"n": 0}
    rearms = []
    loop = VirtualLoop()

    def snapshot():
        return {"partitions": {"pa": {"drops": {"spoof": drops["n"]}, "disconnected": False}}}

    try:
        w = ev.Watcher(log, snapshot, None, interval=1.0, notify_fd=efd, rearm=lambda: rearms.append(1),
                       reasons=REASONS, clock=loop.time)
        w.start(loop)
        loop.advance(60)  # a minute idle
        assert w.looks == 1 and not log.history() and not loop.pending()  # the first look only
        drops["n"] = 5
        os.eventfd_write(efd, 1)  # the switch: a policy drop
        loop.ready(efd)
        loop.advance(0)
        assert w.looks == 2 and [e["event"] for e in log.history()] == ["drops.started"]
        assert log.history()[0]["count"] == 5 and log.history()[0]["interval"] == 1.0
        loop.advance(ev.DROPS_QUIET * 1.0)  # a look each interval; the last quiet one ends it
        assert w.looks == 2 + ev.DROPS_QUIET
        assert [e["event"] for e in log.history()] == ["drops.started", "drops.stopped"]
        assert log.history()[1]["seconds"] == ev.DROPS_QUIET * 1.0  # on the watcher's clock
        assert not loop.pending()
        loop.advance(3600)  # then the looks stop
        assert w.looks == 2 + ev.DROPS_QUIET and len(rearms) == w.looks
        w.stop()
        assert not loop.readers
    finally:
        os.close(efd)


# -- the live view's rates -------------------------------------------------------------------

def _stats(**parts) -> dict:
    up = parts.pop("uplink", {})
    return {"partitions": parts, "uplink": up}


def test_rates_between_two_answers():
    prev = _stats(pa=_counters(tx_frames=100, tx_bytes=10_000, rx_frames=50, rx_bytes=6_000,
                               drops={"spoof": 1, "rx_rate": 0}),
                  uplink={"rx_frames": 10, "rx_bytes": 1000, "tx_frames": 0, "tx_bytes": 0, "drops": {}})
    cur = _stats(pa=_counters(tx_frames=300, tx_bytes=210_000, rx_frames=150, rx_bytes=56_000,
                              drops={"spoof": 5, "rx_rate": 10}),
                 pn=_counters(tx_frames=4, tx_bytes=400),
                 uplink={"rx_frames": 30, "rx_bytes": 3000, "tx_frames": 2, "tx_bytes": 200, "drops": {}})
    r = live.rates(prev, cur, 2.0)
    pa = r["partitions"]["pa"]
    assert (pa["tx_fps"], pa["tx_bps"], pa["rx_fps"], pa["rx_bps"]) == (100, 800_000, 50, 200_000)
    assert pa["drops_ps"] == 7 and pa["top_drop"] == "rx_rate" and pa["top_drop_ps"] == 5
    assert r["partitions"]["pn"]["tx_fps"] == 2 and r["partitions"]["pn"]["top_drop"] is None
    assert r["uplink"]["rx_fps"] == 10 and r["uplink"]["tx_bps"] == 800
    assert list(r["partitions"]) == ["pa", "pn"] and r["seconds"] == 2.0


def test_rates_of_a_recreated_partition_and_a_gone_one():
    prev = _stats(pa=_counters(tx_frames=1000), pb=_counters(tx_frames=5))
    cur = _stats(pa=_counters(tx_frames=10))
    r = live.rates(prev, cur, 1.0)
    assert r["partitions"]["pa"]["tx_fps"] == 10 and list(r["partitions"]) == ["pa"]


def test_rates_ring_fill_when_the_gauges_are_there():
    cur = _stats(pa=_counters(a2h_used=1024, h2a_used=4096, ring_bytes=16384))
    assert live.rates(_stats(), cur, 1.0)["partitions"]["pa"]["ring_fill"] == 0.25
    assert "ring_fill" not in live.rates(_stats(), _stats(pa=_counters()), 1.0)["partitions"]["pa"]


def test_rates_need_time_between_the_answers():
    with pytest.raises(ValueError, match="seconds 0"):
        live.rates(_stats(), _stats(), 0)


@pytest.mark.parametrize("value,text", [(0, "0"), (0.5, "0.50"), (950, "950"), (1000, "1k"),
                                        (12_345, "12.3k"), (4_560_000, "4.56M"), (9.9e9, "9.9G"),
                                        (999_999, "1M")])  # rounds up to the next prefix, not "1e+03k"
def test_human(value, text):
    assert live.human(value) == text


@pytest.mark.parametrize("fn,value,needle", [
    (live.interval, "0", "interval '0':"), (live.interval, "abc", "interval 'abc':"),
    (live.interval, "nan", "interval 'nan':"), (live.interval, "3601", "interval '3601':"),
    (live.count, "0", "count '0':"), (live.count, "x", "count 'x':"),
])
def test_bad_interval_and_count_name_the_value(fn, value, needle):
    with pytest.raises(ConfigError, match=needle):
        fn(value)
    assert live.interval("0.2") == 0.2 and live.count("3") == 3


class _FakeDaemon:
    """`stats` answers: pa sends 100 frames a second more each time."""

    def __init__(self):
        self.n = 0
        self.now = 0.0

    def call(self, path, op, **kw):
        assert op == "stats"
        self.n += 1
        return _stats(pa=_counters(tx_frames=100 * self.n, tx_bytes=12_500 * self.n),
                      uplink={"rx_frames": 0, "tx_frames": 0, "drops": {}})

    def sleep(self, s):
        self.now += s


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [False, True])
def test_watch_prints_count_blocks(monkeypatch, tty):
    d = _FakeDaemon()
    monkeypatch.setattr(live, "call", d.call)
    out = _Tty() if tty else io.StringIO()
    assert live.watch("/x", 0.5, 3, out=out, clock=lambda: d.now, sleep=d.sleep) == 0
    text = out.getvalue()
    assert d.n == 4  # one answer to start from, one per block
    blocks = text.count("rates over 0.50 s")
    assert blocks == 3
    pa = [l for l in text.splitlines() if l.split() and l.split()[0] == "pa"]
    assert len(pa) == 3 and all(l.split()[3] == "200" and l.split()[4] == "200k" for l in pa), pa
    if tty:
        assert text.startswith(live.CLEAR_SCREEN) and text.count(live.HOME) == 4 and live.CLEAR_BELOW in text
    else:
        assert "\x1b" not in text


def test_watch_json_and_ctrl_c(monkeypatch):
    d = _FakeDaemon()
    monkeypatch.setattr(live, "call", d.call)
    out = io.StringIO()
    live.watch("/x", 1.0, 2, as_json=True, out=out, clock=lambda: d.now, sleep=d.sleep)
    rows = [json.loads(l) for l in out.getvalue().splitlines()]
    assert len(rows) == 2 and rows[0]["partitions"]["pa"]["tx_fps"] == 100

    def interrupted(s):
        raise KeyboardInterrupt
    assert live.watch("/x", 1.0, None, out=io.StringIO(), clock=lambda: d.now, sleep=interrupted) == 0


def test_a_link_notifications_name_is_read_from_its_attributes():
    """linkstate.LinkState.changed() knows a link of the uplink's name by
    IFLA_IFNAME, whatever its index (a NIC re-created or renamed to it)."""
    import struct

    from vnetshare.linux.linkstate import _link_name

    def attr(kind, payload):
        n = 4 + len(payload)
        return struct.pack("=HH", n, kind) + payload + bytes((-n) % 4)

    attrs = attr(4, struct.pack("=I", 1500)) + attr(3, b"vsu0\0") + attr(16, b"\x06")
    assert _link_name(attrs, 0, len(attrs)) == "vsu0"
    assert _link_name(attrs[:8], 0, 8) is None
    assert _link_name(attrs, 0, 3) is None
