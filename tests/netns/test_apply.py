"""`vnetshare apply FILE`: partitions declared in a file, as a user meets it
(the CLI, `partition show`, the partitions' own addresses and pings)."""
from __future__ import annotations

import json

from system import LAN_V4
from vnetshare.linux import netns
from vnetshare.linux.probe import ping


def _write(tmp_path, text: str, name: str = "parts.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _toml(*parts: tuple[str, str, str]) -> str:
    """[[partition]] tables: (name, address, extra TOML lines)."""
    return "".join(f'[[partition]]\nname = "{n}"\nips = ["{ip}/24"]\n{extra}\n' for n, ip, extra in parts)


def _addrs(ns: str) -> list[str]:
    return [a for a in netns.addresses("eth0", ns) if ":" not in a]


def test_apply_creates_changes_prunes_and_is_idempotent(system, tmp_path):
    f = _write(tmp_path, _toml(("pa", "198.18.0.11", f'gateway = "{LAN_V4}"'),
                               ("pb", "198.18.0.12", 'labels = { app = "db" }')))
    out = system.cli("apply", f).stdout
    assert out.splitlines() == ["created pa", "created pb"]
    assert ping("pa", LAN_V4, count=2, interval=0.2).received == 2
    macs = {n: system.cli_json("partition", "show", n)["mac"] for n in ("pa", "pb")}

    # the same file again: nothing to do, nothing changes
    assert system.cli("apply", f).stdout.splitlines() == ["unchanged pa", "unchanged pb"]
    assert {n: system.cli_json("partition", "show", n)["mac"] for n in ("pa", "pb")} == macs

    # pb moves to another address (set can), pa leaves the file
    f = _write(tmp_path, _toml(("pb", "198.18.0.13", 'labels = { app = "db" }')))
    assert system.cli("apply", f).stdout.splitlines() == ["changed pb (ips)"]
    assert _addrs("pb") == ["198.18.0.13/24"]
    assert ping("pb", LAN_V4, count=2, interval=0.2).received == 2
    assert system.state_names() == ["pa", "pb"]  # without --prune, pa stays

    dry = system.cli("apply", "--prune", "--dry-run", f).stdout.splitlines()
    assert dry == ["unchanged pb", "would be deleted pa"]
    assert "pa" in netns.names()
    assert system.cli("apply", "--prune", f).stdout.splitlines() == ["unchanged pb", "deleted pa"]
    assert "pa" not in netns.names() and system.state_names() == ["pb"]
    assert system.cli("apply", "--prune", f).stdout.splitlines() == ["unchanged pb"]


def test_apply_takes_json_and_names_what_failed_while_the_rest_is_made(system, tmp_path):
    doc = {"partitions": [{"name": "pa", "ips": ["198.18.0.11/24"]},
                          {"name": "pc", "ips": ["198.18.0.11/24"]},   # pa's address
                          {"name": "pd", "ips": ["198.18.0.14/24"], "vlan": 7}]}
    p = system.cli("apply", _write(tmp_path, json.dumps(doc), "parts.json"), check=False)
    assert p.returncode == 1
    assert p.stdout.splitlines() == ["created pa", "created pd"]
    assert p.stderr.strip() == ("vnetshare: error: create pc: address 198.18.0.11/24: in use by "
                                "partition 'pa' (untagged)"), p.stderr
    assert system.state_names() == ["pa", "pd"] and "pc" not in netns.names()
    assert system.cli_json("partition", "show", "pd")["vlan"] == 7


def test_a_bad_entry_is_named_by_index_and_field_and_nothing_is_made(system, tmp_path):
    system.create("pa", "--ip", "198.18.0.11/24", "--mac", "02:00:5e:00:00:11")
    bad = _toml(("pb", "198.18.0.12", ""), ("pc", "198.18.0.13", "mtu = 70000"))
    p = system.cli("apply", "--prune", _write(tmp_path, bad), check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr   # EINVAL: docs/cli.md's exit codes
    assert p.stderr.startswith("vnetshare: error: partition 1 ('pc'): MTU 70000: above the range"), p.stderr
    assert system.state_names() == ["pa"] and "pb" not in netns.names()  # nothing made, pa not pruned

    p = system.cli("apply", _write(tmp_path, _toml(("pb", "198.18.0.12", ""), ("pb", "198.18.0.14", "")), "twice.toml"),
                   check=False)
    assert p.returncode == 2
    assert "partition 1 ('pb'): name given twice (also partition 0)" in p.stderr

    # a difference `partition set` cannot make: named, and nothing else done either
    changed = _toml(("pb", "198.18.0.12", ""), ("pa", "198.18.0.11", 'ifname = "net1"'))
    p = system.cli("apply", _write(tmp_path, changed, "ifname.toml"), check=False)
    assert p.returncode == 2
    assert ("partition 1 ('pa'): field 'ifname' is \"net1\" here and \"eth0\" in the "
            "partition, and `partition set` cannot change it") in p.stderr
    assert system.state_names() == ["pa"] and "pb" not in netns.names()
    assert system.cli_json("partition", "show", "pa")["ifname"] == "eth0"

    p = system.cli("apply", _write(tmp_path, "[[partition]]\nname = 'pb'\nips = 'x'\n", "type.toml"),
                   check=False)
    assert p.returncode == 2 and "partition 0 ('pb'): field 'ips' must be a list" in p.stderr


def test_a_create_that_fails_in_the_kernel_is_undone_alone_while_the_others_are_made(system, tmp_path):
    """apply's creates overlap (namespaces made ahead in threads of their
    own): the second's namespace name is taken by someone else's, so its
    making fails there; that one is named and nothing of it is left (the
    other namespace untouched), the first and third are made and reach
    the LAN host."""
    netns.create("pq")
    try:
        doc = {"partitions": [{"name": "pa", "ips": ["198.18.0.21/24"]},
                              {"name": "pq", "ips": ["198.18.0.22/24"]},
                              {"name": "pd", "ips": ["198.18.0.23/24"]}]}
        p = system.cli("apply", _write(tmp_path, json.dumps(doc), "parts.json"), check=False)
        assert p.returncode == 1
        assert p.stdout.splitlines() == ["created pa", "created pd"]
        assert p.stderr.strip() == ("vnetshare: error: create pq: network namespace 'pq' already exists "
                                    "(adopt it with --netns /run/netns/pq)"), p.stderr
        assert system.state_names() == ["pa", "pd"]
        assert [link.ifname for link in netns.links("pq")] == ["lo"]   # someone else's, untouched
        for name in ("pa", "pd"):
            assert ping(name, LAN_V4, count=3, timeout=5).received, name
    finally:
        netns.quietly(netns.delete, "pq")
