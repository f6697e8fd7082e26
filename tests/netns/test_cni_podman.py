"""The vnetshare CNI plugin driven by podman (issue 10), as a user runs it.

`podman run --network vnsnet` with a conflist whose plugin is `vnetshare`
(host-local addresses in the lab's LAN 198.18.0.0/24 and fd00:5e::/64):
containers reach each other and the LAN host through the daemon's
partitions, `podman stop`/`start` moves a partition to the container's new
namespace, `podman rm -f` removes it, and a failing ADD tells the user why.
Podman runs inside the sandbox with its own configuration and storage
(tests/netns/runtimes.py). Every podman command and its output is kept in
the test's tmp dir as transcript.txt, and printed (pytest shows it when a
test fails; `-rP` or `-s` shows it always).
"""
from __future__ import annotations

import ipaddress
import json
import os
import time

import pytest

from runtimes import IMAGE, LABEL_IFNAME, NET, attachments, inventory
from runtimes import cni_env, podman  # noqa: F401 (fixtures)
from system import LAN_V4, LAN_V6, wait_for

pytestmark = [pytest.mark.runtime]

RANGE4 = (ipaddress.ip_address("198.18.0.100"), ipaddress.ip_address("198.18.0.200"))
RANGE6 = (ipaddress.ip_address("fd00:5e::100"), ipaddress.ip_address("fd00:5e::200"))
CYCLES = 20


# -- helpers -----------------------------------------------------------------------

def same_netns(a: str, b: str) -> bool:
    sa, sb = os.stat(a), os.stat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def assert_pings(podman, name: str, dst: str, count: int = 3) -> None:
    p = podman.exec(name, "ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", dst, check=False)
    assert f"{count} received" in p.stdout, f"{name} -> {dst}: not every ping answered:\n{p.stdout}{p.stderr}"


def in_range(ip: str, rng) -> bool:
    return rng[0] <= ipaddress.ip_address(ip) <= rng[1]


# -- tests ---------------------------------------------------------------------------

def test_two_containers_reach_each_other_and_the_lan(system, podman, cni_env):
    """Two containers on vnsnet: ping both ways and to the LAN host (IPv4, IPv6), iperf3 between them."""
    before = inventory(system, cni_env)
    podman.run("a")
    podman.run("b")
    ids = {n: podman.container_id(n) for n in ("a", "b")}
    parts = attachments(system)
    assert sorted(parts) == sorted(ids.values()), f"one partition per container expected: {parts}"
    a4, a6 = podman.addresses("a")
    b4, b6 = podman.addresses("b")
    for name, v4, v6 in (("a", a4, a6), ("b", b4, b6)):
        assert in_range(v4, RANGE4) and in_range(v6, RANGE6), f"{name}: {v4} {v6} not host-local's"
        part = parts[ids[name]]
        assert part["labels"][LABEL_IFNAME] == "eth0"
        assert part["name"].startswith("cni") and len(part["name"]) <= 15, part["name"]
        shown = system.cli_json("partition", "show", part["name"])
        assert sorted(shown["ips"]) == sorted([f"{v4}/24", f"{v6}/64"]), shown["ips"]
        assert same_netns(shown["netns"], podman.sandbox_key(name)), "the partition is not in the container"
        # what the container itself sees: eth0 carries host-local's addresses
        seen = podman.exec(name, "ip", "-o", "addr", "show", "dev", "eth0").stdout
        assert f"{v4}/24" in seen and f"{v6}/64" in seen, seen

    assert_pings(podman, "a", b4)
    assert_pings(podman, "b", a4)
    assert_pings(podman, "a", b6)
    assert_pings(podman, "a", LAN_V4)
    assert_pings(podman, "b", LAN_V6)

    # iperf3 between them: bytes moved, and the switch counted them
    tx_before = system.stats(parts[ids["a"]]["name"])["tx_bytes"]
    podman("exec", "-d", "b", "iperf3", "-s", "-1", "-B", b4)
    assert wait_for(lambda: podman.exec("b", "ss", "-Hltn", "sport = :5201").stdout.strip(), timeout=10), \
        "the iperf3 server in b does not listen"
    out = podman.exec("a", "iperf3", "-c", b4, "-t", "2", "-J", check=False, timeout=60)
    result = json.loads(out.stdout)
    assert "error" not in result, result.get("error")
    sent, received = result["end"]["sum_sent"]["bytes"], result["end"]["sum_received"]["bytes"]
    assert sent > 0 and received > 0, f"iperf3: sent {sent}, received {received}"
    podman.note(f"# iperf3 a -> b: {received} bytes, "
                f"{result['end']['sum_received']['bits_per_second'] / 1e9:.2f} Gbit/s")
    tx = system.stats(parts[ids["a"]]["name"])["tx_bytes"] - tx_before
    assert tx >= received, f"partition of a sent {tx} bytes through the switch, iperf3 moved {received}"

    podman("rm", "-f", "-t", "0", "a", "b")
    assert list(attachments(system)) == []
    assert inventory(system, cni_env) == before


def test_stop_start_moves_the_partition(system, podman, cni_env):
    """stop is DEL (partition and lease go), start is ADD in the container's new namespace."""
    before = inventory(system, cni_env)
    podman.run("a")
    podman.run("b")
    a_id = podman.container_id("a")
    old_key = podman.sandbox_key("a")
    old = attachments(system)[a_id]
    assert same_netns(old["netns"], old_key)
    b4, _ = podman.addresses("b")
    assert_pings(podman, "a", b4)
    leases_running = cni_env.leases_held()
    assert len(leases_running) == 4, leases_running  # two containers, IPv4 and IPv6 each

    podman("stop", "-t", "0", "a")
    assert a_id not in attachments(system), "podman stop left a's partition"
    assert len(attachments(system)) == 1, "podman stop of a touched b's partition"
    assert len(cni_env.leases_held()) == 2, f"a's leases not released: {cni_env.leases_held()}"
    assert not os.path.exists(old_key), f"{old_key} still there after stop"

    podman("start", "a")
    new_key = podman.sandbox_key("a")
    new = attachments(system)[a_id]
    assert new_key != old_key
    assert same_netns(new["netns"], new_key), "the partition is not in the restarted container's namespace"
    assert new["name"] == old["name"], "the partition's name is not stable for the same container"
    a4, a6 = podman.addresses("a")
    shown = system.cli_json("partition", "show", new["name"])
    assert sorted(shown["ips"]) == sorted([f"{a4}/24", f"{a6}/64"]), shown["ips"]
    assert_pings(podman, "a", b4)
    assert_pings(podman, "a", LAN_V4)

    podman("rm", "-f", "-t", "0", "a", "b")
    assert inventory(system, cni_env) == before


def test_run_rm_cycles_leave_nothing_behind(system, podman, cni_env):
    """20 run / rm -f cycles: each makes one partition and removes it; nothing is left after."""
    before = inventory(system, cni_env)
    podman.ensure_image()
    t0 = time.monotonic()
    for i in range(CYCLES):
        podman.run(f"c{i}")
        cid = podman.container_id(f"c{i}")
        parts = attachments(system)
        assert list(parts) == [cid], f"cycle {i}: partitions {sorted(p['name'] for p in parts.values())}"
        podman("rm", "-f", "-t", "0", f"c{i}")
        assert list(attachments(system)) == [], f"cycle {i}: rm -f left the partition"
    elapsed = time.monotonic() - t0
    podman.note(f"# {CYCLES} run/rm cycles: {elapsed:.1f} s ({elapsed / CYCLES:.2f} s each)")
    after = inventory(system, cni_env)
    assert after == before, f"left behind: {after} (before: {before})"
    assert elapsed < CYCLES * 10, f"{CYCLES} cycles took {elapsed:.0f} s"


def test_add_without_daemon_tells_the_user(system, podman, cni_env):
    """With the daemon stopped, podman run fails (126) with the plugin's message; nothing is left."""
    podman.ensure_image()
    system.stop_daemon()
    p = podman.run("x", check=False)
    assert p.returncode == 126, f"podman run: exit {p.returncode}"
    assert "no daemon running" in p.stderr and system.sock in p.stderr, \
        f"the user is not told that no daemon answers on {system.sock}:\n{p.stderr}"
    assert "Traceback" not in p.stderr
    assert cni_env.leases_held() == [], f"the failed ADD kept its lease: {cni_env.leases_held()}"
    podman("rm", "-f", "-t", "0", "x")

    # the remedy the message names works: start the daemon, and the same network attaches
    system.start_daemon()
    assert list(attachments(system)) == []
    p = podman("run", "--rm", "--network", NET, IMAGE, "ping", "-n", "-c", "2", "-W", "2", LAN_V4)
    assert "2 received" in p.stdout
    assert list(attachments(system)) == [] and cni_env.leases_held() == []
