"""The host reaches its partitions (issue 21): `vnetshare daemon --host-port`.

The sandbox's own namespace plays the host: its NIC is the veth vsu0 to the
LAN host (system.py), and it has its own address on that NIC, 198.18.0.254
and fd00:5e::fe, and routes through it, as a server has before vnetshare.
The daemon makes the host port vnshost and, with --take-address, moves
those onto it. Everything is checked as a user would: ping, a TCP transfer
hashed at both ends, `ip addr`, `ip route`, the LAN host's neighbour cache,
`vnetshare stats`.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

import pytest

from vnetshare.linux import netns
from vnetshare.linux.probe import ping, tcp_transfer

from system import A, B, LAN_IF, LAN_NS, LAN_V4, LAN_V6, UPLINK, System, send_frames, wait_for

pytestmark = pytest.mark.root

HOST_PORT = "vnshost"
HOST_V4, HOST_V6 = "198.18.0.254", "fd00:5e::fe"   # the host's own, on its NIC at first
FAR_V4, FAR_V6 = "203.0.113.1", "fd00:99::1"        # behind the LAN host: reached through routes
TAKE = ("--host-port", HOST_PORT, "--take-address")


def host_addresses(ifname: str) -> list[str]:
    """The global addresses of @ifname in the host's (the sandbox's) namespace."""
    return [a.cidr for a in netns.address_list(ifname)]


def routes_of(ifname: str) -> set[str]:
    """`ip route` lines (both families) through @ifname, as words."""
    out = set()
    for family in ("-4", "-6"):
        for r in json.loads(_run("ip", "-j", family, "route", "show", "dev", ifname)):
            if r.get("protocol") != "kernel":
                out.add(r["dst"] + (f" via {r['gateway']}" if r.get("gateway") else ""))
    return out


def lan_neighbour(addr: str) -> str | None:
    """The MAC the LAN host has cached for @addr (its `ip neigh`), or None."""
    for n in json.loads(_run("ip", "netns", "exec", LAN_NS, "ip", "-j", "neigh", "show", addr)):
        if n.get("lladdr"):
            return n["lladdr"]
    return None


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=20).stdout


@pytest.fixture
def host(tmp_path):
    """A host with its addresses and routes on its NIC, which the LAN host
    has cached; the daemon not started yet (each test starts it)."""
    s = System(tmp_path)
    try:
        netns.add_address(UPLINK, f"{HOST_V4}/24", nodad=True)
        netns.add_address(UPLINK, f"{HOST_V6}/64", nodad=True)
        netns.add_address("lo", f"{FAR_V4}/32", LAN_NS)
        netns.add_address("lo", f"{FAR_V6}/128", LAN_NS)
        netns.add_route(f"{FAR_V4}/32", LAN_V4)                # the host's own routes, through its NIC
        netns.add_route("fd00:99::/64", LAN_V6)
        netns.add_route("default", LAN_V4)
        for addr in (LAN_V4, LAN_V6):
            assert ping(None, addr, count=1).ok  # and the LAN host caches the NIC's MAC for the host
        yield s
    finally:
        try:
            s.close()
        finally:
            netns.quietly(netns.delete_link, HOST_PORT)  # a killed daemon's, when a test failed


def started(s: System, *extra: str) -> System:
    s.start_daemon(*extra)
    s.create(A[0], "--ip", f"{A[1]}/24", "--ip", f"{A[2]}/64", "--gateway", LAN_V4)
    return s


def host_port_counters(s: System) -> dict:
    return s.cli_json("stats")["host_port"]["counters"]


# -- the host and its partitions ------------------------------------------------

@pytest.mark.parametrize("family", [4, 6])
def test_host_and_partition_ping_each_other(host, family):
    s = started(host, *TAKE)
    part, mine = (A[1], HOST_V4) if family == 4 else (A[2], HOST_V6)
    before = host_port_counters(s)
    r = ping(None, part, count=5)
    assert r.ok, r.output
    r = ping(A[0], mine, count=5)
    assert r.ok, r.output
    after = host_port_counters(s)
    assert after["tx_frames"] - before["tx_frames"] >= 10  # 5 requests, 5 replies
    assert after["rx_frames"] - before["rx_frames"] >= 10
    assert sum(after["drops"].values()) == 0, after["drops"]


@pytest.mark.parametrize("direction", ["host-to-partition", "partition-to-host"])
@pytest.mark.parametrize("family", [4, 6])
def test_host_and_partition_tcp_bytes_arrive_intact(host, direction, family):
    s = started(host, *TAKE)
    part, mine = (A[1], HOST_V4) if family == 4 else (A[2], HOST_V6)
    if direction == "host-to-partition":
        r = tcp_transfer(A[0], None, part, 128 << 20)
    else:
        r = tcp_transfer(None, A[0], mine, 128 << 20)
    assert r.received_bytes == r.sent_bytes == 128 << 20
    assert r.received_sha256 == r.sent_sha256
    assert host_port_counters(s)["tx_bytes"] > (128 << 20 if direction == "host-to-partition" else 0)


def test_a_second_address_on_the_host_port_reaches_the_partitions(host):
    """Without --take-address the host keeps its NIC's address; one it
    gives the host port in a subnet of its own (the partition has one
    there too) reaches the partitions: the host port sends from any
    address (its L3 guard is off)."""
    s = host
    s.start_daemon("--host-port", HOST_PORT)
    s.create(A[0], "--ip", f"{A[1]}/24", "--ip", "192.0.2.11/24")
    assert host_addresses(UPLINK) == [f"{HOST_V4}/24", f"{HOST_V6}/64"]  # untouched
    netns.add_address(HOST_PORT, "192.0.2.254/24")
    r = ping(None, "192.0.2.11", count=3)
    assert r.ok, r.output
    r = ping(A[0], "192.0.2.254", count=3)
    assert r.ok, r.output
    assert ping(None, LAN_V4, count=2).ok  # the LAN through the NIC, as before


def test_the_host_port_keeps_its_own_source_mac(host):
    """What the guard still checks on the host port: a frame from another
    MAC is dropped (spoof), while its own pass."""
    s = started(host, *TAKE)
    mac = s.cli_json("stats")["host_port"]["mac"]
    assert ping(None, A[1], count=2).ok
    own = bytes.fromhex("ff" * 6) + bytes.fromhex(mac.replace(":", "")) + b"\x88\xb5" + bytes(46)
    other = bytes.fromhex("ff" * 6) + bytes.fromhex("020000000099") + b"\x88\xb5" + bytes(46)
    before = host_port_counters(s)
    send_frames(None, [own, other, other], ifname=HOST_PORT)
    after = wait_for(lambda: (c := host_port_counters(s))["drops"]["spoof"] - before["drops"]["spoof"] >= 2 and c)
    assert after, host_port_counters(s)
    assert after["drops"]["spoof"] - before["drops"]["spoof"] == 2
    assert after["tx_frames"] - before["tx_frames"] >= 1


# -- the host's address moves, and comes back -------------------------------------

def test_take_address_moves_addresses_and_routes_and_stop_gives_them_back(host):
    nic_mac = netns.link(UPLINK).mac
    assert lan_neighbour(HOST_V4) == nic_mac
    s = started(host, *TAKE)
    port_mac = s.cli_json("stats")["host_port"]["mac"]
    assert port_mac == netns.link(HOST_PORT).mac != nic_mac
    # the host port has the host's addresses and routes, the NIC none of them
    assert host_addresses(HOST_PORT) == [f"{HOST_V4}/24", f"{HOST_V6}/64"]
    assert host_addresses(UPLINK) == []
    assert routes_of(HOST_PORT) == {f"{FAR_V4} via {LAN_V4}", f"fd00:99::/64 via {LAN_V6}",
                                    f"default via {LAN_V4}"}
    assert routes_of(UPLINK) == set()
    assert netns.sysctl_get(f"net/ipv4/conf/{UPLINK}/arp_ignore") == "1"
    # the LAN learned the host port's MAC from the announcement, before any traffic
    assert wait_for(lambda: lan_neighbour(HOST_V4) == port_mac and lan_neighbour(HOST_V6) == port_mac), \
        (lan_neighbour(HOST_V4), lan_neighbour(HOST_V6))
    # the host reaches the LAN, and what lies behind it, through the host port
    before = host_port_counters(s)
    for addr in (LAN_V4, LAN_V6, FAR_V4, FAR_V6):
        r = ping(None, addr, count=3)
        assert r.ok, (addr, r.output)
    assert ping(LAN_NS, HOST_V4, count=3).ok and ping(LAN_NS, HOST_V6, count=3).ok
    after = host_port_counters(s)
    assert after["tx_to_wire"] - before["tx_to_wire"] >= 12
    r = tcp_transfer(LAN_NS, None, LAN_V4, 64 << 20)
    assert r.ok and r.received_bytes == 64 << 20
    assert os.path.exists(os.path.join(s.dir, "hostport.json"))

    assert s.stop_daemon() == 0
    assert not any(l.ifname == HOST_PORT for l in netns.links())
    assert host_addresses(UPLINK) == [f"{HOST_V4}/24", f"{HOST_V6}/64"]
    assert routes_of(UPLINK) == {f"{FAR_V4} via {LAN_V4}", f"fd00:99::/64 via {LAN_V6}",
                                 f"default via {LAN_V4}"}
    assert netns.sysctl_get(f"net/ipv4/conf/{UPLINK}/arp_ignore") == "0"
    assert wait_for(lambda: lan_neighbour(HOST_V4) == nic_mac and lan_neighbour(HOST_V6) == nic_mac), \
        (lan_neighbour(HOST_V4), lan_neighbour(HOST_V6))
    for addr in (LAN_V4, LAN_V6, FAR_V4):
        r = ping(None, addr, count=2)
        assert r.ok, (addr, r.output)
    assert not os.path.exists(os.path.join(s.dir, "hostport.json"))


def test_partitions_reach_the_lan_as_before(host):
    s = started(host, *TAKE)
    s.create(B[0], "--ip", f"{B[1]}/24", "--ip", f"{B[2]}/64")
    for src, dst in ((A[0], LAN_V4), (A[0], LAN_V6), (A[0], B[1]), (B[0], LAN_V4)):
        r = ping(src, dst, count=3)
        assert r.ok, (src, dst, r.output)
    r = tcp_transfer(LAN_NS, A[0], LAN_V4, 64 << 20)
    assert r.ok and r.received_bytes == 64 << 20
    assert sum(s.stats(A[0])["drops"].values()) == 0


def test_a_killed_daemon_leaves_the_host_port_and_the_next_one_adopts_it(host):
    s = started(host, *TAKE)
    mac = netns.link(HOST_PORT).mac
    s.daemon.send_signal(signal.SIGKILL)
    assert s.daemon.wait(timeout=20) == -signal.SIGKILL
    s.daemon = None
    # as it was: the host's addresses on the host port, which no one serves
    assert host_addresses(HOST_PORT) == [f"{HOST_V4}/24", f"{HOST_V6}/64"]
    assert host_addresses(UPLINK) == []
    assert not ping(None, LAN_V4, count=1, timeout=0.5).ok
    s.start_daemon(*TAKE)
    assert netns.link(HOST_PORT).mac == mac
    for addr in (A[1], A[2], LAN_V4, FAR_V4):
        r = ping(None, addr, count=2)
        assert r.ok, (addr, r.output)
    events = [json.loads(line) for line in s.cli("events", "--json").stdout.splitlines()]
    up = [e for e in events if e["event"] == "host_port.up"]
    assert up and up[-1]["adopted"] is True, up
    # killed again, and started without --host-port: the NIC gets its addresses back
    s.daemon.send_signal(signal.SIGKILL)
    s.daemon.wait(timeout=20)
    s.daemon = None
    s.start_daemon()
    assert not any(l.ifname == HOST_PORT for l in netns.links())
    assert host_addresses(UPLINK) == [f"{HOST_V4}/24", f"{HOST_V6}/64"]
    assert f"default via {LAN_V4}" in routes_of(UPLINK)
    assert ping(None, LAN_V4, count=2).ok
    assert ping(A[0], LAN_V4, count=2).ok


def test_a_tcp_session_of_the_hosts_lives_through_the_moves_a_restart_and_a_kill(host):
    """What an SSH session over the NIC needs: opened before the daemon
    runs, its bytes still arrive both ways after --take-address, a restart
    (the addresses back to the NIC and onto the host port again), a
    SIGKILL and the next daemon's adoption, and the stop."""
    s = host

    def listener() -> socket.socket:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((LAN_V4, 5311))
        ls.listen(1)
        return ls

    ls = netns.run_in(LAN_NS, listener)
    ours = socket.create_connection((LAN_V4, 5311), timeout=30)
    ls.settimeout(10)
    theirs, _ = ls.accept()
    theirs.settimeout(30)

    def both_ways(step: str) -> None:
        for a, b in ((ours, theirs), (theirs, ours)):
            data = f"{step} {a.getsockname()}".encode() * 100
            a.sendall(data)
            got = b""
            while len(got) < len(data):
                chunk = b.recv(65536)
                assert chunk, f"{step}: the connection closed"
                got += chunk
            assert got == data, step

    try:
        both_ways("before")
        s.start_daemon(*TAKE)
        both_ways("taken")
        assert s.stop_daemon() == 0
        s.start_daemon(*TAKE)
        both_ways("restarted")
        s.daemon.send_signal(signal.SIGKILL)
        s.daemon.wait(timeout=20)
        s.daemon = None
        s.start_daemon(*TAKE)
        both_ways("after the kill")
        assert s.stop_daemon() == 0
        both_ways("given back")
        assert host_addresses(UPLINK) == [f"{HOST_V4}/24", f"{HOST_V6}/64"]
    finally:
        for sock in (ours, theirs, ls):
            sock.close()


# -- how it shows --------------------------------------------------------------------

def test_the_host_port_is_no_partition_but_stats_show_it(host):
    s = started(host, *TAKE)
    assert ping(None, A[1], count=2).ok
    assert [p["name"] for p in s.cli_json("partition", "list")] == [A[0]]
    st = s.cli_json("stats")
    assert list(st["partitions"]) == [A[0]]
    hp = st["host_port"]
    assert hp["name"] == HOST_PORT and hp["counters"]["rx_frames"] >= 2
    assert hp["taken"]["addresses"] == [f"{HOST_V4}/24", f"{HOST_V6}/64"]
    text = s.cli("stats").stdout
    assert f"host port {HOST_PORT}: rx " in text
    # the forwarding table names it: its own MAC static on its port
    rows = [r for r in s.cli_json("fdb") if r["port_kind"] == "host_port"]
    assert rows == [{"mac": hp["mac"], "vlan": None, "port": HOST_PORT, "port_kind": "host_port",
                     "static": True, "age_seconds": None}], rows
    assert f"{HOST_PORT} (host port)" in s.cli("fdb").stdout
    # a partition may not take its MAC
    p = s.cli("partition", "create", B[0], "--mac", hp["mac"], check=False)
    assert p.returncode == 7 and f"in use by the host port {HOST_PORT}" in p.stderr, p.stderr  # exits.REFUSED


def test_a_device_of_that_name_that_is_not_the_host_port_is_left_alone(host):
    netns.veth_pair(HOST_PORT, "vnshost-peer")
    try:
        with pytest.raises(AssertionError, match=f"--host-port '{HOST_PORT}': a device of that name exists "
                                                 r"\(veth, MAC .*\) and is not this daemon's host port"):
            host.start_daemon(*TAKE)
        assert netns.link(HOST_PORT).kind == "veth"
        assert host_addresses(UPLINK) == [f"{HOST_V4}/24", f"{HOST_V6}/64"]
    finally:
        netns.quietly(netns.delete_link, HOST_PORT)


def test_host_port_mac_given_and_refused_when_a_partition_has_it(host):
    s = started(host)
    part_mac = s.cli_json("partition", "show", A[0])["mac"]
    assert s.stop_daemon() == 0
    with pytest.raises(AssertionError, match=f"host port '{HOST_PORT}': MAC {part_mac}: in use by "
                                             f"partition '{A[0]}'; give it another with --host-port-mac"):
        s.start_daemon("--host-port", HOST_PORT, "--host-port-mac", part_mac)
    assert not any(l.ifname == HOST_PORT for l in netns.links())
    assert not os.path.exists(os.path.join(s.dir, "hostport.json"))
    s.start_daemon("--host-port", HOST_PORT, "--host-port-mac", "02:00:5e:00:00:fe")
    assert netns.link(HOST_PORT).mac == "02:00:5e:00:00:fe"
    netns.add_address(HOST_PORT, "192.0.2.254/24")
    s.cli("partition", "set", A[0], "--ip", f"{A[1]}/24", "--ip", "192.0.2.11/24")
    assert ping(None, "192.0.2.11", count=2).ok


@pytest.mark.parametrize("argv,message", [
    (("--take-address",), "--take-address: needs --host-port NAME"),
    (("--host-port", UPLINK), f"--host-port '{UPLINK}': is the uplink"),
    (("--host-port", "a/b"), "interface name 'a/b': must not contain '/'"),
])
def test_bad_host_port_options_are_one_line(host, argv, message):
    p = host_cli_daemon(host, *argv)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr


def host_cli_daemon(s: System, *argv: str) -> subprocess.CompletedProcess:
    from vnetshare.linux.procs import python_argv

    return subprocess.run(python_argv("vnetshare", "--socket", s.sock, "daemon", "--uplink", UPLINK,
                                      "--state-dir", s.dir, *argv), capture_output=True, text=True, timeout=30)


# -- the host port follows the NIC (issue 21, items 4 and 5 together) -------------

def test_the_host_port_follows_a_recreated_nic_and_its_mtu(host):
    """The NIC re-created under a host port that holds its addresses: the new
    NIC gets the sysctls that keep it from answering ARP for the host's
    addresses, and the host reaches the LAN and its partition again; the
    NIC's MTU lowered: the host port's TAP follows, as partitions do."""
    from test_events import Follower
    from test_follow import recreate_uplink
    s = started(host, *TAKE)
    lan_mac = netns.link(LAN_IF, LAN_NS).mac
    f = Follower(s)
    try:
        netns.delete_link(UPLINK)
        assert f.wait(lambda e: e["event"] == "uplink.gone"), f.events
        recreate_uplink(lan_mac)
        assert f.wait(lambda e: e["event"] == "uplink.rebound"), f.events
        assert netns.sysctl_get(f"net/ipv4/conf/{UPLINK}/arp_ignore") == "1"
        assert wait_for(lambda: ping(None, LAN_V4, count=1).ok, timeout=10)
        assert ping(None, A[1], count=2).ok
        assert lan_neighbour(HOST_V4) in (None, netns.link(HOST_PORT).mac)  # never the new NIC's
        netns.link_set(LAN_IF, LAN_NS, mtu=1400)
        netns.link_set(UPLINK, mtu=1400)
        ev = f.wait(lambda e: e["event"] == "uplink.mtu")
        assert ev and ev["partitions"].get(f"host port {HOST_PORT}") == 1400, f.events
        assert netns.link(HOST_PORT).mtu == 1400
    finally:
        f.close()
