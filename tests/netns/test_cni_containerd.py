"""The vnetshare CNI plugin driven by containerd's `ctr run --cni` (issue 10).

ctr reads the same conflist as podman (bound over /etc/cni/net.d inside the
sandbox) and runs the plugin from /opt/cni/bin (the test's plugin dir bound
there). What ctr 1.6 sends, and so what these tests hold it to: ADD with
CNI_NETNS=/proc/PID/ns/net and CNI_CONTAINERID=NAMESPACE-ID; DEL when a
foreground run ends (with or without --rm), none for a detached container
(-d), whose partition outlives the container until the next DEL for it or
a GC, which the tests send by hand as a runtime would. containerd runs with its own config, root and state
(tests/netns/runtimes.py).
"""
from __future__ import annotations

import threading

import pytest

from runtimes import CTR_NAMESPACE, IMAGE, LABEL_IFNAME, attachments, call_plugin, inventory
from runtimes import cni_env, containerd, podman  # noqa: F401 (fixtures)
from system import LAN_V4, LAN_V6, wait_for

pytestmark = [pytest.mark.runtime]



def test_ctr_run_rm_attaches_through_the_plugin(system, containerd, cni_env):
    """`ctr run --cni --rm`: the container gets a partition, reaches the LAN host, and the partition goes with it."""
    before = inventory(system, cni_env)
    cid = "rm1"
    seen: list[dict] = []
    done = threading.Event()
    result = {}

    def run():
        try:
            result["p"] = containerd.run(cid, "--rm", IMAGE, cid, "sh", "-c",
                                         f"ip -o addr show dev eth0 && ping -n -c 4 -i 0.5 -W 2 {LAN_V4} "
                                         f"&& ping -n -c 2 -W 2 {LAN_V6}", check=False)
        finally:
            done.set()

    t = threading.Thread(target=run)
    t.start()
    try:
        # while it runs, the daemon has its partition, labelled with ctr's container id
        def attached() -> bool:
            a = attachments(system).get(f"{CTR_NAMESPACE}-{cid}")
            if a:
                seen.append(a)
            return bool(a) or done.is_set()

        wait_for(attached, timeout=60)
    finally:
        t.join(timeout=120)
    p = result["p"]
    assert p.returncode == 0, f"ctr run: exit {p.returncode}\n{p.stdout}{p.stderr}"
    assert seen, "no partition labelled with the container appeared while it ran"
    part = seen[0]
    assert part["labels"][LABEL_IFNAME] == "eth0"
    v4 = next(ip for ip in part["ips"] if "." in ip)
    assert v4 in p.stdout, f"the container's eth0 does not carry the partition's {v4}:\n{p.stdout}"
    assert "4 received" in p.stdout and "2 received" in p.stdout, f"pings to the LAN host lost:\n{p.stdout}"

    # --rm: ctr sent DEL; the partition, its namespace pin and the lease are gone
    assert list(attachments(system)) == []
    assert inventory(system, cni_env) == before


def test_ctr_detached_cleaned_by_del_and_gc(system, containerd, cni_env):
    """Detached containers: ctr sends no DEL; the next DEL removes one, GC the other, and nothing else."""
    before = inventory(system, cni_env)
    system.cli("partition", "create", "keep", "--ip", "198.18.0.50/24")   # not the plugin's: GC must leave it
    for cid in ("d1", "d2"):
        containerd.run(cid, "-d", IMAGE, cid, "sleep", "infinity")
    parts = attachments(system)
    assert sorted(parts) == [f"{CTR_NAMESPACE}-d1", f"{CTR_NAMESPACE}-d2"], parts
    p = containerd.ctr("task", "exec", "--exec-id", "ping", "d1", "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2",
                       LAN_V4)
    assert "3 received" in p.stdout
    assert len(cni_env.leases_held()) == 4

    containerd.remove("d1")
    containerd.remove("d2")
    assert sorted(attachments(system)) == sorted(parts), "ctr removed partitions on its own: update this test"

    # the next DEL for d1 (what a runtime sends again; CNI_NETNS empty: the container is gone)
    p = call_plugin(cni_env, "DEL", f"{CTR_NAMESPACE}-d1", netns_path="")
    assert p.returncode == 0, f"DEL: exit {p.returncode}: {p.stdout}{p.stderr}"
    assert sorted(attachments(system)) == [f"{CTR_NAMESPACE}-d2"]
    assert len(cni_env.leases_held()) == 2, f"d1's leases not released: {cni_env.leases_held()}"

    # GC with no valid attachment left: d2's partition and lease go; "keep" stays
    p = call_plugin(cni_env, "GC", version="1.1.0", extra={"cni.dev/valid-attachments": []})
    assert p.returncode == 0, f"GC: exit {p.returncode}: {p.stdout}{p.stderr}"
    assert list(attachments(system)) == []
    assert cni_env.leases_held() == []
    assert [q["name"] for q in system.cli_json("partition", "list")] == ["keep"]
    system.cli("partition", "delete", "keep")
    assert inventory(system, cni_env) == before
