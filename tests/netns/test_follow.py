"""The daemon follows its NIC (issue 21, item 5), as a user sees it.

The NIC is the veth end vsu0 of system.System, the LAN host at its far end
(lan0 in vst-lan). Deleting vsu0 takes lan0 with it; "the NIC re-created"
is a new veth pair of the same names, the LAN host's end with its old MAC
and addresses (the LAN host is the same machine: only the daemon's side
changed). Everything is watched through `vnetshare events --follow`, the
CLI, ping and the partitions' own links.
"""
from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import threading
import time

from vnetshare.core import config
from vnetshare.linux import ethtool, netns
from vnetshare.linux.probe import netns_cmd, ping, tcp_transfer
from vnetshare.linux.procs import python_argv

from system import A, B, LAN_IF, LAN_NS, LAN_V4, LAN_V6, UPLINK, System, lan_mac, set_features, wait_for
from test_events import Follower

REPLY = re.compile(r"\[(\d+\.\d+)\] \d+ bytes from")
REBIND_ROUNDS = 5
REBIND_BOUND_S = 1.0  # issue 21: the LAN again within a second


def recreate_uplink(lan_host_mac: str) -> int:
    """The NIC made again (see the module's docstring), both ends up; its new ifindex."""
    netns.veth_pair(UPLINK, LAN_IF, None, LAN_NS)
    netns.link_set(LAN_IF, LAN_NS, mac=lan_host_mac)
    netns.add_address(LAN_IF, f"{LAN_V4}/24", LAN_NS, nodad=True)
    netns.add_address(LAN_IF, f"{LAN_V6}/64", LAN_NS, nodad=True)
    netns.link_set(LAN_IF, LAN_NS, up=True)
    netns.link_set(UPLINK, None, up=True)
    return netns.link(UPLINK).index


def tap_mtu(name: str) -> int:
    return netns.link("eth0", name).mtu


def daemon_argv(sock: str, uplink: str, state_dir: str) -> list[str]:
    return python_argv("vnetshare", "--socket", sock, "daemon", "--uplink", uplink, "--state-dir", state_dir)


class Pinger:
    """`ping -D -i 0.01` from a partition in the background; its lines as
    they come (ping flushes each), read by a thread."""

    def __init__(self, ns: str, addr: str):
        self.proc = subprocess.Popen(netns_cmd(ns, ["ping", "-D", "-n", "-i", "0.01", "-W", "1", addr]),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._t = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._t.start()

    def replies(self) -> list[float]:
        """The Unix times of its replies so far."""
        return [float(m.group(1)) for m in map(REPLY.match, list(self.lines)) if m]

    def reply_after(self, t0: float, timeout: float = 5.0) -> float | None:
        """The time of its first reply after @t0, waiting up to @timeout s."""
        return wait_for(lambda: next((t for t in self.replies() if t > t0), None), timeout=timeout)

    def stop(self) -> None:
        """End it, by its PID."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)
        self._t.join(timeout=5)


def test_a_recreated_nic_is_rebound_and_partitions_reach_the_lan_within_a_second(two, tmp_path):
    mac = lan_mac()
    f = Follower(two)
    figures = []
    try:
        for rnd in range(REBIND_ROUNDS):
            old = netns.link(UPLINK).index
            assert ping(A[0], LAN_V4, count=1).ok
            pinger = Pinger(A[0], LAN_V4)
            try:
                netns.delete_link(UPLINK)  # lan0 goes with it
                gone = f.wait(lambda e: e["event"] == "uplink.gone" and e["ifindex"] == old)
                assert gone and gone["ifname"] == UPLINK, (f.events, two.log())
                if rnd == 0:
                    assert "(gone: not served" in two.cli("adapter").stdout.splitlines()[0]
                time.sleep(0.2)  # frames for the wire meanwhile: dropped and counted, never blocking
                t0 = time.time()
                new = recreate_uplink(mac)
                rebound = f.wait(lambda e: e["event"] == "uplink.rebound" and e["new_ifindex"] == new)
                assert rebound and rebound["old_ifindex"] == old != new, (f.events, two.log())
                first = pinger.reply_after(t0)
            finally:
                pinger.stop()
            assert first is not None, f"no reply after the NIC was re-created (round {rnd}): {pinger.lines[-5:]}"
            figures.append({"reply_s": round(first - t0, 3), "rebound_s": round(rebound["time"] - t0, 3)})
            up = two.cli_json("stats")["uplink"]
            assert up["drops"]["tx_no_uplink"] >= 1 and up["attached"] == 1 and up["rebinds"] == rnd + 1, up
            # today's symptom was tx_errors climbing for good: a few while a
            # NIC is unregistered or not yet up (the socket refuses), then none
            assert ping(A[0], LAN_V4, count=5, interval=0.05).ok
            assert two.cli_json("stats")["uplink"]["drops"]["tx_errors"] == up["drops"]["tx_errors"]
    finally:
        f.close()
    median = statistics.median(x["reply_s"] for x in figures)
    print(f"rebind: median {median:.3f} s from `ip link add` to the first ping reply; rounds: "
          + json.dumps(figures))
    assert median < REBIND_BOUND_S, figures
    # the partition's own view: what it sent while the NIC was gone
    assert two.stats(A[0])["drops"]["no_uplink"] >= 1
    # everyone reaches the LAN, IPv4 and IPv6, and a partition made now does too
    for name in (A[0], B[0]):
        assert ping(name, LAN_V4, count=2).ok and ping(name, LAN_V6, count=2).ok
    two.create("pc", "--ip", "198.18.0.13/24")
    assert ping("pc", LAN_V4, count=2).ok
    adapter = two.cli_json("adapter")["uplink"]
    assert adapter["ifindex"] == netns.link(UPLINK).index and adapter["mac"] == netns.link(UPLINK).mac
    # the NIC's lock is its name's: still this daemon's after the re-create
    other = subprocess.run(daemon_argv(str(tmp_path / "o.sock"), UPLINK, str(tmp_path / "o")),
                           capture_output=True, text=True, timeout=60)
    assert other.returncode == 1 and f"pid {two.daemon.pid}" in other.stderr, other.stderr


def test_a_renamed_nic_is_let_go_and_one_renamed_to_its_name_is_served(two):
    """The daemon serves the name --uplink gives (its lock is the name's):
    the NIC renamed away, even up (probes: the kernel allows it), is let
    go; a device renamed to the name is served."""
    f = Follower(two)
    try:
        index = netns.link(UPLINK).index
        subprocess.run(["ip", "link", "set", UPLINK, "name", "vsu9"], check=True, timeout=10)
        gone = f.wait(lambda e: e["event"] == "uplink.gone")
        assert gone and gone["ifindex"] == index, f.events
        assert not ping(A[0], LAN_V4, count=2, interval=0.05, timeout=0.3).ok
        subprocess.run(["ip", "link", "set", "vsu9", "name", UPLINK], check=True, timeout=10)
        back = f.wait(lambda e: e["event"] == "uplink.rebound")
        assert back and back["old_ifindex"] == back["new_ifindex"] == index, f.events
        assert wait_for(lambda: ping(A[0], LAN_V4, count=1, timeout=0.5).ok, timeout=10)
    finally:
        f.close()


def test_mtu_lowered_then_raised_partitions_follow(system):
    s = system
    s.create(A[0], "--ip", f"{A[1]}/24")                  # the uplink's MTU: follows it
    s.create(B[0], "--ip", f"{B[1]}/24", "--mtu", "1400")  # its own: at most that
    assert (tap_mtu(A[0]), tap_mtu(B[0])) == (1500, 1400)
    f = Follower(s)
    try:
        netns.link_set(LAN_IF, LAN_NS, mtu=1300)  # the LAN's MTU, and the NIC's with it
        netns.link_set(UPLINK, mtu=1300)
        ev = f.wait(lambda e: e["event"] == "uplink.mtu")
        assert ev and (ev["old"], ev["new"]) == (1500, 1300), f.events
        assert ev["partitions"] == {A[0]: 1300, B[0]: 1300} and ev["failed"] == {}
        assert (tap_mtu(A[0]), tap_mtu(B[0])) == (1300, 1300)
        assert s.cli_json("partition", "show", A[0])["mtu"] == 1300
        # the partition's stack knows: full-size frames pass, one byte more
        # fails in the partition (not silently in the switch), and a larger
        # ping without DF passes, fragmented by the partition
        assert ping(A[0], LAN_V4, count=2, size=1300 - 28, dont_fragment=True).ok
        drops = s.stats(A[0])["drops"]["mtu"]
        big = ping(A[0], LAN_V4, count=1, size=1301 - 28, dont_fragment=True)
        assert not big.ok and "mtu=1300" in big.output, big.output
        assert ping(A[0], LAN_V4, count=2, size=1472).ok
        assert s.stats(A[0])["drops"]["mtu"] == drops
        assert s.create("pc", "--ip", "198.18.0.13/24")["mtu"] == 1300

        netns.link_set(LAN_IF, LAN_NS, mtu=9000)  # the LAN takes jumbo frames first
        netns.link_set(UPLINK, mtu=9000)
        ev = f.wait(lambda e: e["event"] == "uplink.mtu" and e["new"] == 9000)
        assert ev and ev["old"] == 1300, f.events
        # made with the uplink's MTU: follow it up; made with 1400: back to 1400
        assert ev["partitions"] == {A[0]: 9000, B[0]: 1400, "pc": 9000}
        assert (tap_mtu(A[0]), tap_mtu(B[0]), tap_mtu("pc")) == (9000, 1400, 9000)
        assert ping(A[0], LAN_V4, count=2, size=9000 - 28, dont_fragment=True).ok
        assert ping(B[0], LAN_V4, count=2, size=1400 - 28, dont_fragment=True).ok
        assert not ping(B[0], LAN_V4, count=1, size=1401 - 28, dont_fragment=True).ok
        assert s.create("pd", "--ip", "198.18.0.14/24")["mtu"] == 9000
        assert s.cli_json("adapter")["uplink"]["mtu"] == 9000
    finally:
        f.close()
    assert "uplink vsu0: MTU 1500 -> 1300" in s.log()


def test_an_offload_turned_off_on_the_uplink_is_followed_by_the_partitions(two):
    feats = lambda name: netns.run_in(name, ethtool.query, "eth0").features  # noqa: E731
    assert feats(A[0])["tx-tcp-segmentation"] and feats(B[0])["tx-tcp-segmentation"]
    f = Follower(two)
    try:
        set_features(UPLINK, tx_tcp_segmentation=False)
        ev = f.wait(lambda e: e["event"] == "uplink.offloads")
        assert ev, f.events
        assert ev["features"]["tx-tcp-segmentation"] == [True, False]
        assert "TUN_F_TSO4" in ev["offloads"]["before"] and "TUN_F_TSO4" not in ev["offloads"]["after"]
        assert ev["partitions"] == [A[0], B[0]] and ev["recreate"] == {}
        assert "tx-tcp-segmentation off" in ev["message"]
        # the partitions' TAPs, live: no TCPv4 segmentation, TCPv6 kept
        assert not feats(A[0])["tx-tcp-segmentation"] and feats(A[0])["tx-tcp6-segmentation"]
        tso4 = next(r for r in two.cli_json("adapter")["functions"] if r["function"] == "tso4")
        assert tso4["value"] is False
        r = tcp_transfer(LAN_NS, A[0], LAN_V4, 32 << 20)
        assert r.received_bytes == r.sent_bytes == 32 << 20 and r.received_sha256 == r.sent_sha256
        assert two.create("pc", "--ip", "198.18.0.13/24")
        assert not feats("pc")["tx-tcp-segmentation"]
        set_features(UPLINK, tx_tcp_segmentation=True)
        back = f.wait(lambda e: e["event"] == "uplink.offloads" and e["features"].get("tx-tcp-segmentation")
                      == [False, True])
        assert back and back["partitions"] == [A[0], B[0], "pc"], f.events
        assert feats(A[0])["tx-tcp-segmentation"] and feats("pc")["tx-tcp-segmentation"]
    finally:
        f.close()


def test_a_second_daemon_on_the_same_uplink_is_refused_naming_the_first(system, tmp_path):
    p = subprocess.run(daemon_argv(str(tmp_path / "vns3.sock"), UPLINK, str(tmp_path / "vns3")),
                       capture_output=True, text=True, timeout=60)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1, p.stderr
    assert f"pid {system.daemon.pid}" in lines[0] and UPLINK in lines[0] and system.sock in lines[0], lines
    assert not os.path.exists(tmp_path / "vns3.sock")
    # the first one was left alone
    system.create(A[0], "--ip", f"{A[1]}/24")
    assert ping(A[0], LAN_V4, count=2).ok


def test_lo_and_a_non_ethernet_device_are_refused(tmp_path):
    subprocess.run(["ip", "tuntap", "add", "dev", "vst-tun0", "mode", "tun"], check=True, timeout=10)
    try:
        for dev, needle in (("lo", "the loopback device"), ("vst-tun0", "a layer-3 device")):
            p = subprocess.run(daemon_argv(str(tmp_path / f"{dev}.sock"), dev, str(tmp_path / dev)),
                               capture_output=True, text=True, timeout=60)
            lines = p.stderr.strip().splitlines()
            assert p.returncode == 1 and len(lines) == 1, p.stderr
            assert f"uplink {dev!r}" in lines[0] and needle in lines[0] and "not an Ethernet NIC" in lines[0]
            assert not os.path.exists(tmp_path / f"{dev}.sock")
    finally:
        netns.quietly(netns.delete_link, "vst-tun0")


def _vns(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """vnetshare as a user types it: no --socket unless given."""
    return subprocess.run(python_argv("vnetshare", *argv), capture_output=True, text=True, timeout=timeout)


def _names(p: subprocess.CompletedProcess) -> list[str]:
    assert p.returncode == 0, p.stderr
    return [x["name"] for x in json.loads(p.stdout)]


def test_the_lab_runs_beside_a_daemon_on_the_default_socket(tmp_path):
    s = System(tmp_path)
    s.sock = config.DEFAULT_SOCKET  # a real deployment's socket
    lab_up = False
    try:
        s.start_daemon()
        s.create("real", "--ip", "198.18.0.13/24")
        p = _vns("lab", "up")
        lab_up = p.returncode == 0
        assert lab_up, p.stdout + p.stderr
        assert f"--socket {config.LAB_SOCKET} partition list" in p.stdout  # the plain one finds the other
        assert _names(_vns("partition", "list", "--json")) == ["real"]
        assert _names(_vns("--socket", config.LAB_SOCKET, "partition", "list", "--json")) == ["lab-a", "lab-b"]
        assert ping("lab-a", "198.18.0.12", count=2).ok and ping("real", LAN_V4, count=2).ok
        assert s.stop_daemon() == 0
        # the lab alone: plain commands find its daemon
        assert _names(_vns("partition", "list", "--json")) == ["lab-a", "lab-b"]
        p = _vns("lab", "down")
        lab_up = p.returncode != 0
        assert not lab_up, p.stderr
        assert not os.path.exists(config.LAB_SOCKET)
        assert not {"lab-a", "lab-b", "vns-lan"} & set(netns.names())
    finally:
        if lab_up:
            _vns("lab", "down")
        s.close()
    assert netns.names() == []
