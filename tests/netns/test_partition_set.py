"""`vnetshare partition set` changes what `create` set, live, as a user
sees it: addresses with their gateway and routes, MTU, labels, rate depths
and the MAC, in the partition's namespace and in the switch, kept across a
daemon restart; a change that would leave a gateway unreachable is refused
with one line and changes nothing. And `vnetshare fdb`, the switch's
forwarding table."""
from __future__ import annotations

import json
import subprocess

from system import A, B, LAN_IF, LAN_NS, LAN_V4, UPLINK, lan_mac, wait_for
from vnetshare.linux import netns
from vnetshare.linux.probe import ping

NEW_NET = "198.51.100"  # a second subnet the LAN host has too


def _ns(ns: str, *argv: str) -> str:
    p = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, f"{ns}: {' '.join(argv)}: {p.stdout}{p.stderr}"
    return p.stdout


def _routes(ns: str, family: str = "-4") -> dict[str, str | None]:
    return {r["dst"]: r.get("gateway") for r in json.loads(_ns(ns, "ip", "-j", family, "route", "show"))}


def _refused(system, *argv: str) -> str:
    p = system.cli("partition", "set", *argv, check=False)
    lines = p.stderr.strip().splitlines()
    assert p.returncode != 0 and len(lines) == 1 and "Traceback" not in p.stderr, (argv, p.stdout, p.stderr)
    return lines[0]


def test_set_moves_addresses_gateway_and_routes_together_and_keeps_them_across_a_restart(system):
    name = "ps"
    netns.add_address(LAN_IF, f"{NEW_NET}.1/24", LAN_NS, nodad=True)
    system.create(name, "--ip", "198.18.0.61/24", "--gateway", LAN_V4, "--label", "team=a")
    state = system.state_record(name)

    # the new address alone would leave the gateway on none of its subnets: refused, nothing changed
    line = _refused(system, name, "--ip", f"{NEW_NET}.61/24")
    assert f"gateway {LAN_V4}" in line and "none of its subnets" in line, line
    line = _refused(system, name, "--route", "203.0.113.0/24 via 192.0.2.1")
    assert "route '203.0.113.0/24 via 192.0.2.1'" in line, line
    line = _refused(system, name, "--mtu", "9000")
    assert "MTU 9000" in line and "uplink" in line, line
    line = _refused(system, name, "--tx-burst", "1mb")
    assert "--tx-burst 1mb" in line and "no tx limit" in line, line
    assert system.state_record(name) == state
    assert "198.18.0.61/24" in _ns(name, "ip", "-4", "addr", "show", "dev", "eth0")

    p = system.cli("partition", "set", name, "--ip", f"{NEW_NET}.61/24", "--gateway", f"{NEW_NET}.1",
                   "--route", f"203.0.113.0/24 via {NEW_NET}.1", "--mtu", "1400",
                   "--label", "team=b", "--label", "env=test")
    out = p.stdout.strip()
    assert out.startswith(f"changed partition {name}: "), out
    for change in (f"gateway {LAN_V4} -> {NEW_NET}.1", f"ips 198.18.0.61/24 -> {NEW_NET}.61/24",
                   "labels team=a -> env=test,team=b", "mtu 1500 -> 1400",
                   f"routes none -> 203.0.113.0/24 via {NEW_NET}.1"):
        assert change in out, (change, out)
    # applied in the namespace: the address, the routes, the TAP's MTU; and it works
    addrs = _ns(name, "ip", "-4", "addr", "show", "dev", "eth0")
    assert f"{NEW_NET}.61/24" in addrs and "198.18.0.61" not in addrs, addrs
    routes = _routes(name)
    assert routes["default"] == f"{NEW_NET}.1" and routes["203.0.113.0/24"] == f"{NEW_NET}.1", routes
    assert netns.link("eth0", name).mtu == 1400
    assert ping(name, f"{NEW_NET}.1", count=2).ok

    # labels: KEY- removes; a rate's depth alone, when the rate is set
    assert "labels env=test,team=b -> env=test" in system.cli("partition", "set", name, "--label", "team-").stdout
    system.cli("partition", "set", name, "--rx-limit", "100mbit")
    out = system.cli("partition", "set", name, "--rx-burst", "2mb").stdout
    assert "rx_limit 100mbit burst" in out and "-> 100mbit burst 2mb" in out, out
    # the same value again changes nothing, and says so
    assert "nothing changed" in system.cli("partition", "set", name, "--mtu", "1400").stdout

    want = system.cli_json("partition", "show", name)
    assert system.stop_daemon() == 0
    system.start_daemon()
    got = system.cli_json("partition", "show", name)
    for key in ("ips", "gateway", "routes", "mtu", "labels", "rx_limit_bps", "rx_burst_bytes", "mac"):
        assert got[key] == want[key], key
    assert got["labels"] == {"env": "test"} and got["mtu"] == 1400 and got["rx_burst_bytes"] == 2 * 1024 * 1024
    assert netns.link("eth0", name).mtu == 1400 and _routes(name)["default"] == f"{NEW_NET}.1"
    assert wait_for(lambda: ping(name, f"{NEW_NET}.1", count=1).ok)

    # gateway and routes removed
    out = system.cli("partition", "set", name, "--gateway", "none", "--route", "none").stdout
    assert f"gateway {NEW_NET}.1 -> none" in out and "routes 203.0.113.0/24" in out, out
    assert "default" not in _routes(name) and "203.0.113.0/24" not in _routes(name)


def test_set_mac_stops_the_traffic_changes_switch_and_tap_and_resumes(two):
    old = two.cli_json("partition", "show", A[0])["mac"]
    new = "02:00:5e:00:00:99"
    line = _refused(two, A[0], "--mac", two.cli_json("partition", "show", B[0])["mac"])
    assert "in use by partition 'pb'" in line, line

    out = two.cli("partition", "set", A[0], "--mac", new).stdout
    assert f"mac {old} -> {new}" in out, out
    assert netns.link("eth0", A[0]).mac == new
    # the switch's table follows: the new MAC is A's port, the old one no one's
    rows = two.cli_json("fdb", "--partition", A[0])
    assert [(r["mac"], r["static"]) for r in rows] == [(new, True)], rows
    # addresses and routes as they were (the link went down and up), and traffic flows
    assert A[2] + "/64" in _ns(A[0], "ip", "-6", "addr", "show", "dev", "eth0")
    assert _routes(A[0])["default"] == LAN_V4
    # the link went down and up: IPv6 addresses pass DAD again, and the LAN's
    # entry for the old MAC must go stale first: wait, don't ping once
    assert wait_for(lambda: ping(A[0], LAN_V4, count=1).ok, what="A reaches the LAN over IPv4")
    assert wait_for(lambda: ping(A[0], "fd00:5e::1", count=1).ok, what="A reaches the LAN over IPv6")
    assert wait_for(lambda: ping(B[0], A[1], count=1).ok)   # its neighbours learnt the new MAC
    assert new in two.state_record(A[0])

    assert two.stop_daemon() == 0
    two.start_daemon()
    assert two.cli_json("partition", "show", A[0])["mac"] == new
    assert wait_for(lambda: ping(A[0], LAN_V4, count=1).ok)


def test_fdb_shows_partitions_static_and_the_lan_host_learned_with_its_age(two):
    assert ping(A[0], LAN_V4, count=1).ok
    macs = {n: two.cli_json("partition", "show", n)["mac"] for n in (A[0], B[0])}
    lan = lan_mac()
    rows = two.cli_json("fdb")
    by_mac = {r["mac"]: r for r in rows}
    for n in (A[0], B[0]):
        assert by_mac[macs[n]] == {"mac": macs[n], "vlan": None, "port": n, "port_kind": "partition",
                                   "static": True, "age_seconds": None}, rows
    host = by_mac[lan]
    assert host["port"] == UPLINK and host["port_kind"] == "uplink" and not host["static"], rows
    assert host["vlan"] is None and 0 <= host["age_seconds"] < 30, host
    # its age grows while the LAN host is quiet
    assert wait_for(lambda: {r["mac"]: r for r in two.cli_json("fdb")}[lan]["age_seconds"]
                    >= host["age_seconds"] + 1, timeout=5)
    text = two.cli("fdb").stdout
    assert f"{lan}" in text and "learned" in text and f"{UPLINK} (uplink)" in text, text

    # filters
    assert [r["mac"] for r in two.cli_json("fdb", "--partition", B[0])] == [macs[B[0]]]
    assert two.cli_json("fdb", "--vlan", "10") == []
    assert two.cli("fdb", "--vlan", "10").stdout.strip() == "no entries"
    two.cli("partition", "set", B[0], "--vlan", "10")
    assert [(r["mac"], r["vlan"]) for r in two.cli_json("fdb", "--vlan", "10")] == [(macs[B[0]], 10)]
    untagged = {r["mac"] for r in two.cli_json("fdb", "--vlan", "none")}
    assert macs[A[0]] in untagged and lan in untagged and macs[B[0]] not in untagged
    p = two.cli("fdb", "--partition", "nosuch", check=False)
    assert p.returncode != 0 and "no partition named 'nosuch'" in p.stderr and len(p.stderr.splitlines()) == 1
