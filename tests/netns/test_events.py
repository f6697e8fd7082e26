"""Events and the live view, as a user sees them: `vnetshare events --follow --json`
started before things happen, `vnetshare stats --watch` / `top` on a pipe."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time

from vnetshare.linux import netns
from vnetshare.linux.probe import netns_cmd, ping
from vnetshare.linux.procs import python_argv

from system import A, B, LAN_IF, LAN_NS, LAN_V4, UPLINK, lan_mac, send_frames, wait_for
from waiting import describe


class Follower:
    """`vnetshare events --follow --json` in the background: its stdout lines
    as they come (a reader thread), its stderr kept; ended by its PID."""

    def __init__(self, system, *extra: str):
        self.proc = subprocess.Popen(python_argv("vnetshare", "--socket", system.sock, "events", "--follow",
                                                 "--json", *extra),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        # the history comes first: once daemon.started is in, it follows
        assert self.wait(lambda e: e["event"] == "daemon.started"), self.stderr()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def events(self) -> list[dict]:
        return [json.loads(line) for line in list(self.lines)]

    def wait(self, pred, timeout: float = 10.0) -> dict:
        """The first event that satisfies @pred, waiting up to @timeout s."""
        return wait_for(lambda: next((e for e in self.events if pred(e)), None), timeout=timeout,
                        what=lambda: f"an event with {describe(pred)}; events: {self.events}; "
                                     f"stderr: {self.stderr()}")

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.poll() is not None else "(running)"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        self._t.join(timeout=5)


def _agent_pid(s, name: str) -> int:
    return int(s.cli_json("partition", "show", name)["agent"].split("pid ")[1].rstrip(")"))


def _kinds(events: list[dict], partition: str | None = None) -> list[str]:
    return [e["event"] for e in events if partition is None or e["partition"] == partition]


def test_killed_agent_gives_died_then_restarted_in_order(two):
    f = Follower(two)
    try:
        pid = _agent_pid(two, A[0])
        os.kill(pid, signal.SIGKILL)
        restarted = f.wait(lambda e: e["event"] == "agent.restarted" and e["partition"] == A[0])
        assert restarted, (f.events, two.log())
        before = f.events[:f.events.index(restarted)]
        died = [e for e in before if e["event"] == "agent.died"][-1]
        assert died["partition"] == A[0] and died["pid"] == pid and died["signal"] == "SIGKILL"
        assert died["exit_status"] is None and "killed by SIGKILL" in died["message"]
        assert restarted["pid"] == _agent_pid(two, A[0]) != pid and restarted["restarts"] == 1
        after_start = f.events[[e["event"] for e in f.events].index("daemon.started"):]
        assert _kinds(after_start, A[0])[-2:] == ["agent.died", "agent.restarted"]
        assert "agent.died" not in _kinds(f.events, B[0])
    finally:
        f.close()
    # the same, as lines, and in the daemon's log
    text = two.cli("events").stdout.splitlines()
    died_line = next(line for line in text if " agent.died " in line)
    assert died_line.split()[2] == A[0] and died_line.endswith(died["message"])
    assert f"partition {A[0]}: {died['message']}" in two.log()


def test_agent_failed_after_the_restart_limit_names_the_reason(system):
    from vnetshare.core.lifecycle import AGENT_RESTART_MAX

    system.create("pf", "--ip", "198.18.0.14/24")
    f = Follower(system)
    try:
        for i in range(1, AGENT_RESTART_MAX + 1):
            os.kill(_agent_pid(system, "pf"), signal.SIGKILL)
            assert f.wait(lambda e: e["event"] == "agent.restarted" and e["restarts"] == i), f.events
        pid = _agent_pid(system, "pf")
        os.kill(pid, signal.SIGKILL)
        failed = f.wait(lambda e: e["event"] == "agent.failed")
        assert failed and failed["partition"] == "pf", f.events
        assert f"died {AGENT_RESTART_MAX + 1} times" in failed["reason"] and failed["message"] == failed["reason"]
        died = f.events[f.events.index(failed) - 1]
        assert died["event"] == "agent.died" and died["pid"] == pid and "starting" not in died["message"]
        assert system.cli_json("partition", "show", "pf")["agent"].startswith("failed")
    finally:
        f.close()


def test_create_set_delete_events(system):
    f = Follower(system)
    try:
        system.create("pc", "--ip", "198.18.0.13/24")
        system.cli("partition", "set", "pc", "--storm-limit", "100", "--vlan", "5")
        system.cli("partition", "delete", "pc")
        assert f.wait(lambda e: e["event"] == "partition.deleted"), f.events
        got = [e for e in f.events if e["partition"] == "pc"]
    finally:
        f.close()
    assert _kinds(got) == ["partition.created", "agent.started", "partition.changed", "partition.deleted"]
    created, started, changed, _deleted = got
    assert created["ips"] == ["198.18.0.13/24"] and created["adopted"] is False
    assert started["pid"] > 0
    assert changed["fields"] == ["storm_limit", "vlan"] and changed["values"] == {"storm_limit_pps": 100, "vlan": 5}
    assert all(e["time"] <= n["time"] for e, n in zip(got, got[1:]))
    log = system.log()
    assert all(f"partition pc: {e['message']}" in log for e in got), log


def test_a_restarted_daemon_tells_it_adopted_the_partitions(two):
    assert two.stop_daemon() == 0
    two.start_daemon()
    got = [json.loads(line) for line in two.cli("events", "--json").stdout.splitlines()]
    assert _kinds(got) == ["partition.adopted", "agent.started"] * 2 + ["daemon.started"], got
    assert [e["partition"] for e in got[:4]] == [A[0], A[0], B[0], B[0]]
    assert got[-1]["partitions"] == 2 and got[1]["pid"] == _agent_pid(two, A[0])


def test_spoofed_frames_start_drops_naming_the_reason_and_stop(two):
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    f = Follower(two)
    try:
        # positive control: a normal ping moves pa's counters, and starts nothing
        before = two.stats(A[0])["tx_frames"]
        assert ping(A[0], LAN_V4, count=3, interval=0.05).ok
        assert two.stats(A[0])["tx_frames"] >= before + 3
        # then spoofed frames: a watcher look after the ping's sees them
        frames = [bytes(Ether(src="02:66:66:66:66:66", dst=lan_mac()) / IP(src=A[1], dst=LAN_V4) / ICMP())
                  for _ in range(20)]
        send_frames(A[0], frames)
        started = f.wait(lambda e: e["event"] == "drops.started")
        assert started, (f.events, two.stats(A[0])["drops"])
        assert started["partition"] == A[0] and started["reason"] == "spoof"
        assert 1 <= started["count"] <= 20 and "spoof" in started["message"]
        # the ping came before the spoof: a look that saw it came before too,
        # and started nothing: the only drops event is the spoof's
        assert [e for e in f.events if e["event"] == "drops.started"] == [started]
        stopped = f.wait(lambda e: e["event"] == "drops.stopped", timeout=15)
        assert stopped and stopped["partition"] == A[0] and stopped["reason"] == "spoof"
        assert stopped["count"] == 20 == two.stats(A[0])["drops"]["spoof"]
    finally:
        f.close()
    line = next(line for line in two.cli("events").stdout.splitlines() if " drops.started " in line)
    assert A[0] in line and "spoof" in line


def test_uplink_down_and_up(system):
    f = Follower(system)
    try:
        netns.link_set(LAN_IF, LAN_NS, up=False)  # the far end: the uplink loses its carrier
        down = f.wait(lambda e: e["event"] == "uplink.down")
        assert down and down["ifname"] == UPLINK and down["operstate"] != "UP", f.events
        assert "uplink.up" not in _kinds(f.events)
        netns.link_set(LAN_IF, LAN_NS, up=True)
        up = f.wait(lambda e: e["event"] == "uplink.up")
        assert up and up["operstate"] == "UP" and f.events.index(up) > f.events.index(down)
    finally:
        netns.link_set(LAN_IF, LAN_NS, up=True)
        f.close()


def test_follow_ends_with_an_error_when_the_daemon_stops_and_ctrl_c_exits_0(system):
    quit_ = Follower(system)
    f = Follower(system)
    quit_.proc.send_signal(signal.SIGINT)
    assert quit_.proc.wait(timeout=10) == 0
    assert "Traceback" not in quit_.stderr()
    t = time.monotonic()
    assert system.stop_daemon() == 0
    assert time.monotonic() - t < 10, "a follower held the daemon's stop up"
    assert f.proc.wait(timeout=10) == 1
    err = f.stderr().strip().splitlines()
    assert len(err) == 1 and "ended the event stream (it stopped)" in err[0], err
    assert _kinds(f.events)[-1] == "daemon.stopping"
    f.close()


def test_stats_watch_on_a_pipe_prints_blocks_with_sane_rates(two):
    assert ping(A[0], LAN_V4, count=1).ok  # neighbours known: only the pings below move
    before = two.stats(A[0])["tx_frames"]
    # pings every 50 ms until both views are read, then ended by its PID: its
    # summary says every ping was answered, so the rates below are a ping's
    pinger = subprocess.Popen(netns_cmd(A[0], ["ping", "-n", "-i", "0.05", LAN_V4]),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: two.stats(A[0])["tx_frames"] >= before + 3, what="pa's pings to reach the switch")
        plain = two.cli("stats", "--watch", "0.2", "-n", "3").stdout
        rows = [json.loads(line) for line in two.cli("top", "-d", "0.5", "-n", "2", "--json").stdout.splitlines()]
    finally:
        pinger.send_signal(signal.SIGINT)
        out = pinger.communicate(timeout=10)[0]
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    # (the one echo in flight when SIGINT came may miss its reply)
    assert m and int(m.group(1)) >= 20 and int(m.group(2)) >= int(m.group(1)) - 1, out
    blocks = [b for b in plain.strip().split("\n\n")]
    assert len(blocks) == 3, plain
    for b in blocks:
        lines = b.splitlines()
        assert "partition(s), rates over" in lines[0] and lines[1].startswith("PARTITION")
        assert [line.split()[0] for line in lines[2:]] == [A[0], B[0], "(uplink)"]
    assert "\x1b" not in plain
    # pa pings 20 a second: it sends and gets about 20 frames a second; pb
    # only says what a fresh host says (IPv6 neighbour and router solicitations)
    assert len(rows) == 2
    for r in rows:
        pa, pb = r["partitions"][A[0]], r["partitions"][B[0]]
        assert 8 <= pa["tx_fps"] <= 40 and 8 <= pa["rx_fps"] <= 40, pa
        assert 8 * 98 * 8 <= pa["tx_bps"] <= 40 * 120 * 8, pa
        assert pb["tx_fps"] < pa["tx_fps"] / 2 and pa["drops_ps"] == 0, r
        assert r["seconds"] >= 0.45  # top -d 0.5: the rates are over its own interval, however long


def test_bad_watch_values_and_no_daemon(system, tmp_path):
    for argv, needle in ((["stats", "--watch", "0"], "interval '0'"),
                         (["top", "-d", "x"], "interval 'x'"),
                         (["stats", "--watch", "-n", "0"], "count '0'")):
        p = system.cli(*argv, check=False)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr
    p = subprocess.run(python_argv("vnetshare", "--socket", str(tmp_path / "none.sock"), "events", "--follow"),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 3 and "no daemon running" in p.stderr and len(p.stderr.splitlines()) == 1

