"""Every command's --json output, from a running daemon with partitions of
each kind (a VLAN, a rate limit, labels, an address change), validates
against vnetshare/schema/vnetshare.json: one shape per object across the
commands (docs/cli.md, "JSON output"). `lab demo --json` runs a daemon of
its own: tests/netns/test_lab.py validates its output."""
from __future__ import annotations

import json
import subprocess

from schemacheck import schema_errors
from system import A, B, LAN_V4, wait_for
from vnetshare.linux.probe import netns_cmd, ping

# a's kernel joins 239.5.5.5 (it sends the IGMP report itself) and stays until killed
JOIN = ("import socket, sys, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, "
        "socket.inet_aton('239.5.5.5') + socket.inet_aton(sys.argv[1])); print('joined', flush=True); time.sleep(60)")


def _lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines()]


def test_every_json_output_validates_against_the_schema(two):
    two.cli("partition", "set", A[0], "--tx-limit", "100mbit", "--rx-limit", "5kpps", "--label", "team=web")
    two.cli("partition", "set", B[0], "--vlan", "10", "--storm-limit", "none")
    assert ping(A[0], LAN_V4, count=1).ok
    member = subprocess.Popen(netns_cmd(A[0], ["python3", "-c", JOIN, A[1]]), stdout=subprocess.PIPE, text=True)
    try:
        assert member.stdout.readline().strip() == "joined"
        assert wait_for(lambda: two.cli_json("groups")["groups"], timeout=10), two.cli_json("groups")
        groups = two.cli_json("groups")
    finally:
        member.kill()
        member.wait(5)
    assert [(g["group"], [m["port"] for m in g["members"]]) for g in groups["groups"]] == [("239.5.5.5", [A[0]])]
    outputs = {
        "partition_list": [two.cli_json("partition", "list")],
        "partition": [two.cli_json("partition", "show", n) for n in (A[0], B[0])],
        "stats": [two.cli_json("stats")],
        "fdb": [two.cli_json("fdb"), two.cli_json("fdb", "--vlan", "10")],
        "groups": [groups, two.cli_json("groups", "--vlan", "10")],
        "adapter": [two.cli_json("adapter")],
        "status": [json.loads(two.cli("status", "--json").stdout)],
        "event": _lines(two.cli("events", "--json").stdout),
        "rates": _lines(two.cli("top", "-n", "2", "-d", "0.2", "--json").stdout)
        + _lines(two.cli("stats", "--watch", "0.2", "-n", "1", "--json").stdout),
        "verify": [json.loads(two.cli("verify", "--json").stdout)],  # last: it makes partitions of its own
    }
    for name, instances in outputs.items():
        assert instances, name
        for instance in instances:
            errors = schema_errors(name, instance)
            assert not errors, (name, errors[:5])
    # the shapes say what they are: a's limits as numbers, b's VLAN, untagged is null
    shown = {p["name"]: p for p in outputs["partition_list"][0]}
    assert shown[A[0]]["tx_limit_bps"] == 100_000_000 and shown[A[0]]["rx_limit_pps"] == 5000
    assert shown[A[0]]["vlan"] is None and shown[B[0]]["vlan"] == 10 and shown[B[0]]["storm_limit_pps"] is None
    assert outputs["stats"][0]["policy"][A[0]]["tx_limit_bps"] == 100_000_000
    changed = [e for e in outputs["event"] if e["event"] == "partition.changed" and e["partition"] == B[0]]
    assert changed and changed[0]["values"] == {"vlan": 10, "storm_limit_pps": None}, changed
    rep = outputs["verify"][0]
    assert rep["ok"] and rep["facts"]["vlan"] not in (None, 10) and len(rep["checks"]) > 10, rep

