"""The whole system, driven as a user drives it: daemon, CLI, partitions, traffic."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess

import pytest

from vnetshare.linux import netns, procs
from vnetshare.core.config import mac_bytes
from vnetshare.linux.probe import iperf3, ping, tcp_transfer
from vnetshare.linux.procs import python_argv

from system import (A, B, cli_as_nobody, LAN_IF, LAN_NS, LAN_V4, LAN_V6, UPLINK, Sniffer, System, lan_mac, marker_broadcast,
                    send_frames, wait_for)



# -- traffic ------------------------------------------------------------------

@pytest.mark.parametrize("dst", ["partition", "lan"])
@pytest.mark.parametrize("family", [4, 6])
def test_ping(two, dst, family):
    addr = {("partition", 4): B[1], ("partition", 6): B[2], ("lan", 4): LAN_V4, ("lan", 6): LAN_V6}[dst, family]
    r = ping(A[0], addr, count=5)
    assert r.ok, r.output
    st = two.stats(A[0])
    assert st["tx_frames"] >= 5 and st["rx_frames"] >= 5
    # the replies were for an idle partition: the switch wrote them to its TAP itself
    assert st["rx_direct"] >= 1, st


@pytest.mark.parametrize("path", ["partition", "lan"])
def test_iperf3_tcp(two, path):
    server_ns, addr = (B[0], B[1]) if path == "partition" else (LAN_NS, LAN_V4)
    r = iperf3(server_ns, A[0], addr, nbytes=1 << 30)
    assert r.ok, r.error
    # -n is checked between 128 KiB writes: now and then one more goes out
    assert 1 << 30 <= r.sent_bytes <= (1 << 30) + (1 << 20) and r.gbps > 0.5, r
    # iperf3's receiver stops counting at the end-of-test message, sometimes
    # with bytes still in flight (seen on a bare veth too): equality is
    # proved by test_tcp_bytes_arrive_intact; here, nearly all arrived
    assert r.received_bytes >= r.sent_bytes - (8 << 20)


@pytest.mark.parametrize("path", ["partition", "lan"])
@pytest.mark.parametrize("family", [4, 6])
def test_tcp_bytes_arrive_intact(two, path, family):
    server_ns = B[0] if path == "partition" else LAN_NS
    addr = {("partition", 4): B[1], ("partition", 6): B[2], ("lan", 4): LAN_V4, ("lan", 6): LAN_V6}[path, family]
    r = tcp_transfer(server_ns, A[0], addr, 256 << 20)
    assert r.received_bytes == r.sent_bytes == 256 << 20
    assert r.received_sha256 == r.sent_sha256


def test_arp_and_neighbour_discovery_through_the_switch(two):
    assert ping(A[0], LAN_V4, count=1).ok and ping(A[0], LAN_V6, count=1).ok
    assert ping(A[0], B[1], count=1).ok and ping(A[0], B[2], count=1).ok
    neigh = json.loads(_nsout(A[0], "ip", "-j", "neigh"))
    learned = {n["dst"]: n.get("lladdr") for n in neigh}
    b_mac = two.cli_json("partition", "show", B[0])["mac"]
    assert learned.get(LAN_V4) == lan_mac() and learned.get(LAN_V6) == lan_mac()
    assert learned.get(B[1]) == b_mac and learned.get(B[2]) == b_mac


def _nsout(ns: str, *argv: str) -> str:
    import subprocess

    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          check=True, timeout=20).stdout


def test_mtu_full_size_passes_one_more_fails(two):
    mtu = two.cli_json("partition", "show", A[0])["mtu"]
    assert ping(A[0], LAN_V4, count=2, size=mtu - 28, dont_fragment=True).ok
    assert ping(A[0], B[1], count=2, size=mtu - 28, dont_fragment=True).ok
    r = ping(A[0], LAN_V4, count=1, size=mtu - 27, dont_fragment=True)
    assert r.received == 0
    # that one never left pa's own stack; a partition that raises its own
    # MTU gets it out, and the switch must drop it and count it
    netns.link_set("eth0", A[0], mtu=mtu + 100)
    before = two.stats(A[0])["drops"].get("mtu", 0)
    r = ping(A[0], LAN_V4, count=1, size=mtu - 27, dont_fragment=True)
    assert r.sent == 1 and r.received == 0, r.output
    assert wait_for(lambda: two.stats(A[0])["drops"].get("mtu", 0) == before + 1, timeout=5), two.stats(A[0])
    assert ping(A[0], LAN_V4, count=1, size=mtu - 28, dont_fragment=True).ok  # full size still passes


# -- isolation ----------------------------------------------------------------

def test_a_partition_never_sees_another_partitions_unicast(two):
    a_mac = mac_bytes(two.cli_json("partition", "show", A[0])["mac"])
    b_mac = mac_bytes(two.cli_json("partition", "show", B[0])["mac"])
    c = ("pc", "198.18.0.13", "fd00:5e::13")
    two.create(c[0], "--ip", f"{c[1]}/24")
    start, end = (b"isolation-%s-" % w + os.urandom(4).hex().encode() for w in (b"start", b"end"))
    probe = 333  # echo requests of this size from pa are for pb: it must see them
    sniff = Sniffer(B[0], "eth0")
    try:
        send_frames(A[0], [marker_broadcast(a_mac, start)])
        assert ping(A[0], LAN_V4, count=5).ok
        assert ping(A[0], c[1], count=5).ok
        assert iperf3(LAN_NS, A[0], LAN_V4, seconds=1).ok
        assert ping(A[0], B[1], count=2, size=probe).ok
        send_frames(A[0], [marker_broadcast(a_mac, end)])
        assert wait_for(lambda: any(end in f for f in sniff.frames), timeout=5), "pb's capture missed a broadcast"
    finally:
        frames = sniff.close()
    # positive control, same capture: what had to reach pb did, from the
    # window's first frame to its last
    assert any(start in f for f in frames), "pb's capture missed the broadcast that opened the window"
    to_b = [f for f in frames if f[:6] == b_mac and f[6:12] == a_mac and len(f) == 14 + 28 + probe]
    assert len(to_b) == 2, f"pb's capture saw {len(to_b)} of pa's 2 echo requests to it"
    seen = [f for f in frames if f[0] & 1 == 0 and f[:6] != b_mac]
    assert not seen, f"{len(seen)} unicast frames for others reached pb, first dst {seen[0][:6].hex(':')}"
    assert not [f for f in frames if f[6:12] == a_mac and f[0] & 1 == 0 and f[:6] != b_mac]


def test_spoofed_source_mac_is_dropped_and_counted(two):
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    a_mac = two.cli_json("partition", "show", A[0])["mac"]
    b_mac = two.cli_json("partition", "show", B[0])["mac"]
    spoof = "02:66:66:66:66:66"
    legit = b"legit-" + os.urandom(4).hex().encode()
    dsts = (lan_mac(), b_mac, "ff:ff:ff:ff:ff:ff")
    before = two.stats(A[0])["drops"]["spoof"]
    lan = Sniffer(LAN_NS, LAN_IF)
    peer = Sniffer(B[0], "eth0")
    try:
        # five spoofed frames to each, then one with pa's own MAC to each:
        # one ring, one order, so once the legit ones are seen the spoofed
        # ones before them were judged
        frames = [bytes(Ether(src=spoof, dst=dst) / IP(src=A[1], dst=LAN_V4) / ICMP() / b"spoofed!")
                  for dst in dsts for _ in range(5)]
        frames += [bytes(Ether(src=a_mac, dst=dst) / IP(src=A[1], dst=LAN_V4) / ICMP() / (legit + dst.encode()))
                   for dst in dsts]
        send_frames(A[0], frames)
        # positive control, same captures: each saw pa's legit frames to it
        for cap, dst in ((lan, lan_mac()), (lan, "ff:ff:ff:ff:ff:ff"), (peer, b_mac), (peer, "ff:ff:ff:ff:ff:ff")):
            mark = legit + dst.encode()
            assert wait_for(lambda: any(mark in f for f in cap.frames), timeout=5), f"a legit frame to {dst} was not seen"
        assert wait_for(lambda: two.stats(A[0])["drops"].get("spoof", 0) >= before + 15, timeout=5), two.stats(A[0])
        assert ping(A[0], LAN_V4, count=1).ok  # and the partition's own traffic still flows
    finally:
        got = lan.close() + peer.close()
    assert not [f for f in got if f[6:12] == mac_bytes(spoof)], "a spoofed frame got through"


# -- resilience -----------------------------------------------------------------

def test_killed_agent_is_replaced_and_traffic_resumes(two):
    show = two.cli_json("partition", "show", A[0])
    pid = int(show["agent"].split("pid ")[1].rstrip(")"))
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: ping(A[0], LAN_V4, count=1, timeout=1).ok, timeout=10), two.log()
    new = two.cli_json("partition", "show", A[0])["agent"]
    assert "running" in new and str(pid) not in new


def test_daemon_restart_adopts_partitions(two):
    assert two.stop_daemon() == 0
    assert not two.agent_pids()
    assert sorted(netns.names()) == sorted([LAN_NS, A[0], B[0]])  # partitions outlive the daemon
    two.start_daemon()
    names = [p["name"] for p in two.cli_json("partition", "list")]
    assert names == [A[0], B[0]]
    assert wait_for(lambda: ping(A[0], B[1], count=1, timeout=1).ok, timeout=10), two.log()
    assert ping(A[0], LAN_V4, count=3).ok


def test_coalescing_batches_dense_traffic_and_can_be_turned_off(two):
    def naps() -> int:
        return two.cli_json("stats")["uplink"]["naps"]

    # default: a TCP stream is dense traffic, the switch takes it in batches
    before = naps()
    assert tcp_transfer(B[0], A[0], B[1], 64 << 20).ok
    assert naps() > before
    assert "coalescing adaptive, up to 100 us" in open(two.log_path).read()

    assert two.stop_daemon() == 0
    two.start_daemon("--coalesce-usecs", "0")
    assert "coalescing off" in open(two.log_path).read()
    assert wait_for(lambda: ping(A[0], B[1], count=1, timeout=1).ok, timeout=10), two.log()
    r = tcp_transfer(B[0], A[0], B[1], 64 << 20)
    assert r.ok and r.received_bytes == 64 << 20
    assert naps() == 0


def test_direct_delivery_can_be_turned_off(two):
    assert ping(A[0], B[1], count=3, interval=0.05).ok
    assert two.stats(B[0])["rx_direct"] >= 1  # on by default (control)
    assert two.stop_daemon() == 0
    two.start_daemon("--direct-share", "0")
    assert wait_for(lambda: ping(A[0], B[1], count=1, timeout=1).ok, timeout=10), two.log()
    assert ping(A[0], B[1], count=3, interval=0.05).ok
    st = two.stats(B[0])
    assert st["rx_frames"] >= 3 and st["rx_direct"] == 0, st  # the agent wrote every frame


def test_short_tap_queue_and_byte_limit_ping_under_a_tcp_stream(system):
    import threading

    assert system.stop_daemon() == 0
    system.start_daemon("--tap-txqueuelen", "16", "--tap-byte-limit", "auto")
    for name, v4, v6 in (A, B):
        system.create(name, "--ip", f"{v4}/24", "--ip", f"{v6}/64", "--gateway", LAN_V4)
    link = subprocess.run(["ip", "-n", A[0], "link", "show", "eth0"], capture_output=True, text=True).stdout
    assert "qlen 16" in link, link  # the default is 1000
    done = []
    t = threading.Thread(target=lambda: done.append(tcp_transfer(B[0], A[0], B[1], 1 << 30)))
    t.start()
    try:
        sent0 = system.stats(A[0])["tx_frames"]
        assert wait_for(lambda: system.stats(A[0])["tx_frames"] > sent0 + 1000, timeout=20)  # the stream runs
        r = ping(A[0], B[1], count=10, interval=0.05)
        # replies come back; a probe may be lost: 16 frames of queue drop
        # what does not fit, a ping as well as the stream (performance.md)
        assert r.received >= 1, r.output
    finally:
        t.join(90)
    assert done and done[0].received_bytes == done[0].sent_bytes == 1 << 30
    assert done[0].received_sha256 == done[0].sent_sha256


def test_sigterm_stops_daemon_cleanly(two):
    agents = two.agent_pids()
    assert len(agents) == 2
    assert two.stop_daemon() == 0
    assert not any(os.path.exists(f"/proc/{p}") for p in agents), "agents outlived the daemon"
    assert not os.path.exists(two.sock)


# -- bad input ------------------------------------------------------------------

def _leftovers(s: System, expect_ns: list[str]) -> None:
    assert sorted(netns.names()) == sorted([LAN_NS] + expect_ns)
    assert s.state_names() == sorted(expect_ns)
    assert len(s.agent_pids()) == len(expect_ns)
    assert [link.ifname for link in netns.links()] == ["lo", UPLINK]


@pytest.mark.parametrize("argv,needle", [
    (["partition", "create", "bad name"], "partition name 'bad name'"),
    (["partition", "create", "--", "-x"], "-x"),
    (["partition", "create", "okname", "--ip", "10.1.2.300/24"], "10.1.2.300/24"),
    (["partition", "create", "okname", "--ip", "10.1.2.3"], "10.1.2.3"),
    (["partition", "create", "okname", "--mac", "01:00:5e:00:00:01"], "01:00:5e:00:00:01"),
    (["partition", "create", "okname", "--mac", "zz:00:00:00:00:01"], "zz:00:00:00:00:01"),
    (["partition", "create", "okname", "--mtu", "9000"], "9000"),
    (["partition", "create", "okname", "--mtu", "abc"], "abc"),
    (["partition", "create", "okname", "--ip", "198.18.0.20/24", "--gateway", "fd00::1"], "fd00::1"),
    (["partition", "create", "okname", "--netns", "/nonexistent"], "/nonexistent"),
    (["partition", "delete", "nosuch"], "nosuch"),
    (["partition", "show", "nosuch"], "nosuch"),
])
def test_bad_input_one_line_names_the_value_leaves_nothing(system, argv, needle):
    p = system.cli(*argv, check=False)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert "Traceback" not in p.stderr
    _leftovers(system, [])


@pytest.mark.parametrize("kind, why", [
    ("regular file", "not a namespace file (a regular file)"),
    ("directory", "not a namespace file (a directory)"),
    ("mount namespace", "a mount namespace, not a network namespace"),
])
def test_adopting_what_is_no_network_namespace_is_one_line_naming_it(system, tmp_path, kind, why):
    given = tmp_path / "given"
    given.mkdir()
    path = {"regular file": given / "plain", "directory": given / "dir",
            "mount namespace": f"/proc/{os.getpid()}/ns/mnt"}[kind]
    if kind == "regular file":
        path.write_text("")
    elif kind == "directory":
        path.mkdir()
    p = system.cli("partition", "create", "x1", "--netns", str(path), check=False)
    assert p.returncode != 0
    assert p.stderr.strip().splitlines() == [f"vnetshare: error: netns {str(path)!r}: {why}"], p.stderr
    _leftovers(system, [])
    assert os.listdir(os.path.join(system.dir, "netns")) == []


def test_duplicate_name_is_refused_and_first_is_untouched(system):
    system.create("dup", "--ip", "198.18.0.21/24")
    p = system.cli("partition", "create", "dup", "--ip", "198.18.0.22/24", check=False)
    assert p.returncode != 0 and "dup" in p.stderr and "exists" in p.stderr
    assert system.cli_json("partition", "show", "dup")["ips"] == ["198.18.0.21/24"]
    assert ping("dup", LAN_V4, count=1).ok
    _leftovers(system, ["dup"])


def test_create_refuses_a_device_name_taken_in_an_adopted_netns(system):
    # refused before anything is made (an early failure, no undo step runs);
    # the adopted netns itself must stay, untouched
    netns.create("adopt")
    try:
        netns.veth_pair("eth0", "peer0", "adopt", "adopt")
        p = system.cli("partition", "create", "x1", "--netns", "/run/netns/adopt", check=False)
        assert p.returncode != 0 and "eth0" in p.stderr, p.stderr
        assert "adopt" in netns.names()
        assert system.state_names() == [] and system.agent_pids() == []
    finally:
        netns.delete("adopt")


@contextlib.contextmanager
def _read_only(directory: str):
    """@directory read-only, as a filesystem goes after an error (errors=remount-ro).

    A read-only bind mount of it over itself, in the sandbox's own mount
    namespace: the daemon's open files (its log) stay writable, anything new
    (the state file's temporary) is refused with EROFS, even to root. Mounts
    below it keep their own mode (rbind): the daemon's netns pin directory
    stays writable, so an adopting create fails late too.
    """
    host_mnt = os.environ.get("VNETSHARE_HOST_MNTNS")
    assert host_mnt and os.readlink("/proc/self/ns/mnt") != host_mnt, "not in the sandbox's mount namespace"
    subprocess.run(["mount", "--rbind", directory, directory], check=True, capture_output=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", directory, directory], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", "--recursive", directory], check=True, capture_output=True)


@pytest.mark.parametrize("adopted", [False, True], ids=["own-netns", "adopted-netns"])
def test_failed_create_late_leaves_nothing(system, adopted):
    # create's last step, saving the state file, fails because the state
    # directory went read-only: by then the netns, TAP, address, route,
    # rings, switch port and agent exist, and every undo step must run
    system.create("warm", "--ip", "198.18.0.50/24")  # first use may open lasting fds
    system.cli("partition", "delete", "warm")
    base_fds = len(os.listdir(f"/proc/{system.daemon.pid}/fd"))
    mac = "02:00:5e:00:00:51"
    argv = ["partition", "create", "late", "--mac", mac, "--ip", "198.18.0.51/24", "--gateway", LAN_V4]
    expect_ns = [LAN_NS]
    if adopted:
        netns.create("adopt")
        argv += ["--netns", "/run/netns/adopt"]
        expect_ns.append("adopt")
    try:
        with _read_only(system.dir):
            p = system.cli(*argv, check=False)
            assert p.returncode != 0, system.log()
            lines = p.stderr.strip().splitlines()
            assert len(lines) == 1 and "Read-only file system" in lines[0], p.stderr
            # it failed late: the agent, started after the TAP, rings and
            # port, ran and was stopped by the undo
            assert "vnetshare-agent[late]: stopped" in system.log(), system.log()
            assert "Traceback" not in system.log()
        # what the daemon made is all gone
        assert sorted(netns.names()) == sorted(expect_ns)
        if adopted:
            assert [link.ifname for link in netns.links("adopt")] == ["lo"], "the TAP was left in the adopted netns"
            assert os.listdir(os.path.join(system.dir, "netns")) == [], "the netns pin was left"
        assert [link.ifname for link in netns.links()] == ["lo", UPLINK]
        assert system.agent_pids() == []
        assert not [pid for pid, _, _ in procs.processes() if procs.is_agent(pid, "late")], "an agent was left"
        assert system.daemon_memfds() == 0
        assert len(os.listdir(f"/proc/{system.daemon.pid}/fd")) <= base_fds
        assert system.state_names() == [] and system.cli_json("partition", "list") == []
        st = system.cli_json("stats")
        assert st["uplink"]["ports"] == 0 and st["partitions"] == {}, st
        # positive control: the same name, MAC and address work at once now
        system.cli(*argv)
        assert ping("adopt" if adopted else "late", LAN_V4, count=2).ok
        assert system.cli_json("stats")["uplink"]["ports"] == 1
        system.cli("partition", "delete", "late")
    finally:
        if adopted:
            netns.delete("adopt")


def test_adopting_an_existing_netns(system):
    netns.create("ctr")
    try:
        system.create("web", "--netns", "/run/netns/ctr", "--ip", "198.18.0.30/24")
        assert ping("ctr", LAN_V4, count=2).ok
        system.cli("partition", "delete", "web")
        assert "ctr" in netns.names(), "an adopted namespace must not be deleted"
    finally:
        netns.delete("ctr")


def test_no_daemon(tmp_path):
    s = System.__new__(System)
    s.sock = str(tmp_path / "none.sock")
    p = s.cli("partition", "list", check=False)
    assert p.returncode != 0
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "no daemon running" in p.stderr


def test_not_root(system):
    code, err = cli_as_nobody(system.sock, "partition", "list")
    assert code == 4  # exits.DENIED
    assert err.strip().splitlines() == ["vnetshare: error: must run as root (try: sudo vnetshare ...)"]


@pytest.mark.parametrize("value,needle", [("-1", "window -1:"), ("10001", "window 10001:"), ("abc", "window 'abc':")])
def test_daemon_bad_coalescing_window(tmp_path, value, needle):
    import subprocess

    p = subprocess.run(python_argv("vnetshare", "--socket", str(tmp_path / "c.sock"),
                        "daemon", "--uplink", UPLINK, "--state-dir", str(tmp_path), "--coalesce-usecs", value),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in p.stderr, p.stderr
    assert not os.path.exists(tmp_path / "c.sock")


def test_uplink_missing(tmp_path):
    import subprocess

    p = subprocess.run(python_argv("vnetshare", "--socket", str(tmp_path / "c.sock"),
                        "daemon", "--uplink", "nosuch0", "--state-dir", str(tmp_path)),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "nosuch0" in p.stderr and "Traceback" not in p.stderr
    assert not os.path.exists(tmp_path / "c.sock")


# -- lifecycle ------------------------------------------------------------------

def test_create_delete_20_leaves_nothing(system):
    system.cli("partition", "create", "warm")  # first use may open lasting fds
    system.cli("partition", "delete", "warm")
    base_fds = len(os.listdir(f"/proc/{system.daemon.pid}/fd"))
    for i in range(20):
        name = f"loop{i}"
        system.cli("partition", "create", name, "--ip", f"198.18.1.{i + 1}/24")
        assert len(system.agent_pids()) == 1
        assert system.daemon_memfds() == 2
        system.cli("partition", "delete", name)
    _leftovers(system, [])
    assert system.daemon_memfds() == 0
    assert len(os.listdir(f"/proc/{system.daemon.pid}/fd")) <= base_fds


def test_list_show_adapter_stats(two):
    lst = two.cli_json("partition", "list")
    assert [p["name"] for p in lst] == [A[0], B[0]]
    show = two.cli_json("partition", "show", A[0])
    assert show["ips"] == [f"{A[1]}/24", f"{A[2]}/64"] and show["gateway"] == LAN_V4
    fn = {f["function"]: f for f in show["functions"]}
    assert fn["mtu"]["value"] == 1500 and fn["mtu"]["source"] == "mtu"
    assert fn["tso4"]["value"] is True and "tcp-segmentation" in fn["tso4"]["source"]
    ad = two.cli_json("adapter")
    assert ad["uplink"]["ifname"] == UPLINK and ad["uplink"]["mtu"] == 1500
    st = two.cli_json("stats")
    assert set(st["partitions"]) == {A[0], B[0]}
    text = two.cli("partition", "list").stdout
    assert A[0] in text and B[0] in text
    assert "tso4" in two.cli("partition", "show", A[0]).stdout
    assert UPLINK in two.cli("adapter").stdout


def test_offloads_emulate_gives_partitions_everything(tmp_path):
    s = System(tmp_path)
    try:
        s.start_daemon("--offloads", "emulate")
        ad = s.cli_json("adapter")
        assert ad["mode"] == "emulate"
        fn = {f["function"]: f for f in ad["functions"]}
        for name in ("csum", "tso4", "tso6", "uso4", "uso6"):
            assert fn[name]["value"] is True and "emulated" in fn[name]["source"], fn[name]
        s.create("em", "--ip", "198.18.0.40/24")
        assert ping("em", LAN_V4, count=2).ok
        r = tcp_transfer(LAN_NS, "em", LAN_V4, 64 << 20)
        assert r.ok
    finally:
        s.close()
    assert netns.names() == []


def test_the_partition_limit_is_one_clear_line(tmp_path):
    from system import System

    s = System(tmp_path)
    try:
        s.start_daemon("--max-partitions", "2")
        s.cli("partition", "create", "pa")
        s.cli("partition", "create", "pb")
        p = s.cli("partition", "create", "pc", check=False)
        assert p.returncode == 7  # exits.REFUSED: the limit
        assert p.stderr.strip() == ("vnetshare: error: partition 'pc': this daemon serves at most 2 partitions; "
                                    "start it with --max-partitions N to raise the limit"), p.stderr
        assert "pc" not in netns.names() and s.state_names() == ["pa", "pb"]
        assert s.stop_daemon() == 0
        # a daemon told fewer than the state holds refuses to start and forgets nothing
        bad = subprocess.run(python_argv("vnetshare", "--socket", s.sock, "daemon", "--uplink", UPLINK,
                                         "--state-dir", s.dir, "--max-partitions", "1"),
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "start with --max-partitions 2 or more" in bad.stderr, bad.stderr
        assert s.state_names() == ["pa", "pb"]
        s.start_daemon("--max-partitions", "3")
        assert [p["name"] for p in s.cli_json("partition", "list")] == ["pa", "pb"]
    finally:
        s.close()
