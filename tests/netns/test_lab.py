"""The embedded default: `vnetshare lab up|down|demo`, as a user runs them."""
import json
import subprocess

from schemacheck import schema_errors
from vnetshare.linux import netns
from vnetshare.linux.probe import ping
from vnetshare.linux.procs import python_argv


def vns(sock, *argv, timeout=180):
    return subprocess.run(python_argv("vnetshare", "--socket", sock, *argv),
                          capture_output=True, text=True, timeout=timeout)


def nothing_left():
    assert netns.names() == []
    assert [link.ifname for link in netns.links()] == ["lo"]


def test_lab_up_explore_down(tmp_path):
    sock = str(tmp_path / "control.sock")
    try:
        p = vns(sock, "lab", "up")
        assert p.returncode == 0, p.stdout + p.stderr
        assert sorted(netns.names()) == ["lab-a", "lab-b", "vns-lan"]
        assert ping("lab-a", "198.18.0.12", count=2).ok
        assert ping("lab-b", "198.18.0.1", count=2).ok
        lst = json.loads(vns(sock, "partition", "list", "--json").stdout)
        assert [x["name"] for x in lst] == ["lab-a", "lab-b"]
        again = vns(sock, "lab", "up")
        assert again.returncode != 0 and "lab down" in again.stderr
    finally:
        p = vns(sock, "lab", "down")
    assert p.returncode == 0, p.stderr
    nothing_left()


def test_lab_demo_passes_and_cleans_up(tmp_path):
    p = vns(str(tmp_path / "control.sock"), "lab", "demo", "--seconds", "1", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert not schema_errors("lab_demo", out), schema_errors("lab_demo", out)[:5]
    assert out["ok"] and len(out["checks"]) == 6
    assert {c["test"] for c in out["checks"]} == {"ping IPv4", "ping IPv6", "iperf3 TCP"}
    nothing_left()
