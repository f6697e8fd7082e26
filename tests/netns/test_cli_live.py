"""The command line as an operator scripts it: exit codes, errors as JSON,
global options anywhere, list filters, and text that never shows a Python
repr (frontends/exits.py, clitools.py, listing.py)."""
from __future__ import annotations

import json
import os
import re
import subprocess

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from system import A, B, LAN_V4, UPLINK, lan_mac, send_frames, wait_for
from vnetshare.frontends import exits
from vnetshare.linux import netns
from vnetshare.linux.procs import python_argv


def _run(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(python_argv("vnetshare", *argv), capture_output=True, text=True, timeout=60,
                          env=env)


def _one_line(p: subprocess.CompletedProcess) -> str:
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr and "[Errno" not in p.stderr, p.stderr
    return lines[0]


def test_each_failure_has_its_exit_code_and_json_error(two):
    s = two
    # not found, text and JSON (on stdout, nothing on stderr)
    p = s.cli("partition", "show", "nosuch", check=False)
    assert p.returncode == exits.NOT_FOUND and _one_line(p) == "vnetshare: error: no partition named 'nosuch'"
    p = s.cli("partition", "delete", "nosuch", "--json", check=False)
    assert p.returncode == exits.NOT_FOUND and p.stderr == ""
    assert json.loads(p.stdout) == {"error": {"code": "ENOENT", "message": "no partition named 'nosuch'"}}
    # already exists; --may-exist makes it no error and changes nothing
    p = s.cli("partition", "create", A[0], check=False)
    assert p.returncode == exits.EXISTS and "already exists" in _one_line(p)
    before = s.cli_json("partition", "show", A[0])
    p = s.cli("partition", "create", A[0], "--may-exist")
    assert p.stdout == f"partition {A[0]} exists already\n"
    assert s.cli_json("partition", "create", A[0], "--may-exist")["mac"] == before["mac"]
    assert s.cli_json("partition", "show", A[0])["ips"] == before["ips"]
    # refused by policy: another's MAC
    p = s.cli("partition", "create", "pc", "--mac", before["mac"], "--json", check=False)
    assert p.returncode == exits.REFUSED, p
    assert json.loads(p.stdout)["error"]["code"] == "EADDRINUSE" and before["mac"] in p.stdout
    # usage: argparse's 2, and with --json an error object too
    p = s.cli("partition", "create", "pc", "--ip", "banana", check=False)
    assert p.returncode == exits.USAGE and "'banana' is not an IPv4 or IPv6 address; give ADDRESS/PREFIX, e.g. " \
        "192.0.2.10/24 or 2001:db8::10/64" in _one_line(p)
    p = s.cli("--json", "partition", "create", "pc", "--mtu", "100", check=False)
    err = json.loads(p.stdout)["error"]
    assert p.returncode == exits.USAGE and err["code"] == "EINVAL" and "MTU 100" in err["message"]
    # --if-exists: deleting what is not there is no error; then really deleted
    assert s.cli("partition", "delete", "nosuch", "--if-exists").stdout == "no partition nosuch: nothing to delete\n"
    assert s.cli_json("partition", "delete", B[0], "--if-exists") == {"name": B[0], "deleted": True}
    assert s.cli_json("partition", "delete", B[0], "--if-exists") == {"name": B[0], "deleted": False}
    assert [p["name"] for p in s.cli_json("partition", "list")] == [A[0]]


def test_no_daemon_is_exit_3_and_the_options_go_anywhere(system, tmp_path):
    gone = str(tmp_path / "none.sock")
    p = _run("partition", "list", "--socket", gone)
    assert p.returncode == exits.NOT_RUNNING and gone in _one_line(p)
    p = _run("partition", "list", "--json", "--socket", gone)
    assert p.returncode == exits.NOT_RUNNING and json.loads(p.stdout)["error"]["code"] == "ECONNREFUSED"
    # --socket and --json after the command, or between its words, or from the environment
    system.create(A[0], "--ip", f"{A[1]}/24")
    for argv in (["partition", "list", "--socket", system.sock, "--json"],
                 ["partition", "--socket", system.sock, "list", "--json"],
                 ["--json", "partition", "list", "--socket", system.sock]):
        p = _run(*argv)
        assert p.returncode == 0 and [x["name"] for x in json.loads(p.stdout)] == [A[0]], (argv, p)
    p = _run("partition", "list", "--names", env={**os.environ, "VNETSHARE_SOCKET": system.sock})
    assert p.returncode == 0 and p.stdout == f"{A[0]}\n", p


def test_the_daemon_without_its_uplink_says_so_in_one_line_and_leaves_nothing(tmp_path):
    run, state = tmp_path / "run", tmp_path / "state"
    before = set(os.listdir("/run"))
    locks = set(os.listdir("/run/vnetshare/uplinks")) if os.path.isdir("/run/vnetshare/uplinks") else set()
    p = _run("daemon", "--uplink", "nosuch0", "--socket", str(tmp_path / "c.sock"), "--state-dir", str(state),
             "--runtime-dir", str(run))
    assert p.returncode == exits.FAILURE
    assert _one_line(p) == "vnetshare: error: uplink 'nosuch0' not found"
    assert os.listdir(tmp_path) == []  # no socket, no daemon.lock, no state directory
    assert set(os.listdir("/run")) == before
    after = set(os.listdir("/run/vnetshare/uplinks")) if os.path.isdir("/run/vnetshare/uplinks") else set()
    assert after == locks and not any(n.startswith("nosuch0@") for n in after)


def test_an_mtu_out_of_range_names_it_and_the_range(system):
    p = system.cli("partition", "create", "pc", "--mtu", "100", check=False)
    assert p.returncode == exits.USAGE
    assert _one_line(p).endswith("MTU 100: below the range; a partition's MTU is 1280 to the uplink's MTU "
                                 "(at most 65535): IPv6, which every partition has, needs 1280 or more "
                                 "(IPv4 alone would take 68)")
    # the daemon knows the uplink's: its refusal gives that range
    p = system.cli("partition", "create", "pc", "--mtu", "9000", check=False)
    assert p.returncode == exits.USAGE
    assert _one_line(p) == ("vnetshare: error: MTU 9000: above the range; a partition's MTU is 1280 to 1500 "
                            "(the uplink's MTU): IPv6, which every partition has, needs 1280 or more "
                            "(IPv4 alone would take 68)")
    assert system.state_names() == [] and "pc" not in netns.names()
    # the least works, with both families
    system.create("pc", "--mtu", "1280", "--ip", "198.18.0.30/24", "--ip", "fd00:5e::30/64")
    assert system.cli_json("partition", "show", "pc")["mtu"] == 1280


def test_list_has_a_header_columns_and_filters(system):
    assert system.cli("partition", "list").stdout == "no partitions\n"
    system.create(A[0], "--ip", f"{A[1]}/24", "--vlan", "10", "--tx-limit", "50mbit", "--label", "team=red")
    system.create(B[0], "--ip", f"{B[1]}/24", "--label", "team=blue")
    out = system.cli("partition", "list").stdout.splitlines()
    assert out[0].split() == ["NAME", "IFNAME", "MAC", "MTU", "ADDRESSES", "AGENT"] and len(out) == 3
    wide = system.cli("partition", "list", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[5:10] == ["VLAN", "TX-LIMIT", "RX-LIMIT", "STORM", "LABELS"]
    row = dict(zip(wide[0].split(), wide[1].split()))
    assert row["NAME"] == A[0] and row["VLAN"] == "10" and row["TX-LIMIT"] == "50mbit" and row["LABELS"] == "team=red"
    assert dict(zip(wide[0].split(), wide[2].split()))["VLAN"] == "-"
    assert system.cli("partition", "list", "--columns", "name,labels").stdout == (
        f"NAME  LABELS\n{A[0]}    team=red\n{B[0]}    team=blue\n")
    assert [p["name"] for p in system.cli_json("partition", "list", "--label", "team=blue")] == [B[0]]
    assert [p["name"] for p in system.cli_json("partition", "list", "--vlan", "10")] == [A[0]]
    assert [p["name"] for p in system.cli_json("partition", "list", "--vlan", "none")] == [B[0]]
    assert system.cli("partition", "list", "--vlan", "11").stdout == "no partitions match\n"
    p = system.cli("partition", "list", "--columns", "name,colour", check=False)
    assert p.returncode == exits.USAGE and "column 'colour': not one of name, " in _one_line(p)


def test_events_filters_and_top_sort(system):
    system.create(A[0], "--ip", f"{A[1]}/24")
    system.create(B[0], "--ip", f"{B[1]}/24")
    lines = system.cli("events", "--partition", B[0]).stdout.splitlines()
    assert lines and all(f"  {B[0]}  " in line for line in lines), lines
    kinds = {e["event"] for e in map(json.loads, system.cli("events", "--kind", "partition.*", "--json")
                                     .stdout.splitlines())}
    assert kinds == {"partition.created"}
    both = {e["event"] for e in map(json.loads, system.cli("events", "--kind", "partition.*", "--kind",
                                                            "daemon.*", "--json").stdout.splitlines())}
    assert both == {"partition.created", "daemon.started"}
    # top --sort tx: the partition that sends is first, though its name sorts last
    mac = system.cli_json("partition", "show", B[0])["mac"]
    frame = bytes(Ether(src=mac, dst=lan_mac()) / IP(src=B[1], dst=LAN_V4) / ICMP() / (b"x" * 1000))
    import threading

    stop = threading.Event()

    def send():
        while not stop.is_set():
            send_frames(B[0], [frame] * 20)

    t = threading.Thread(target=send)
    t.start()
    try:
        out = system.cli("top", "-n", "1", "-d", "0.5", "--sort", "tx").stdout.splitlines()
    finally:
        stop.set()
        t.join()
    rows = [line.split()[0] for line in out[2:] if line.strip()]
    assert rows[:2] == [B[0], A[0]], out
    assert system.cli("top", "-n", "1", "-d", "0.2").stdout.splitlines()[2].split()[0] == A[0]


# Every command's text output, against a daemon with partitions that have
# limits, a VLAN, labels, drops, an adopted namespace: nothing a person reads
# may be a Python repr.
REPR = re.compile(r"\{'|\['|\bTrue\b|\bFalse\b|\bNone\b")


def test_no_text_output_shows_a_python_repr(system):
    s = system
    s.create(A[0], "--ip", f"{A[1]}/24", "--ip", "fd00:5e::11/64", "--gateway", LAN_V4, "--vlan", "10",
             "--tx-limit", "50mbit", "--rx-limit", "20mbit", "--rx-limit", "5kpps", "--label", "team=red",
             "--allow-ip", "203.0.113.0/24", "--trusted-router")
    s.create(B[0], "--ip", f"{B[1]}/24", "--storm-limit", "none", "--route", "10.9.0.0/16 via " + LAN_V4)
    s.cli("partition", "set", B[0], "--ip", "198.18.0.22/24", "--allow-llc")
    # a drop: B sends from an address that is not its own
    mac = s.cli_json("partition", "show", B[0])["mac"]
    send_frames(B[0], [bytes(Ether(src=mac, dst=lan_mac()) / IP(src="192.0.2.99", dst=LAN_V4) / ICMP())])
    assert wait_for(lambda: s.stats(B[0])["drops"].get("ip_spoof")), s.stats(B[0])
    commands = [
        ["partition", "list"], ["partition", "list", "-o", "wide"], ["partition", "show", A[0]],
        ["partition", "show", B[0]], ["adapter"], ["stats"], ["events"], ["status"],
        ["top", "-n", "1", "-d", "0.2"], ["stats", "--watch", "0.2", "-n", "1"], ["--version"],
        ["partition", "set", A[0], "--vlan", "none"], ["partition", "create", A[0], "--may-exist"],
        ["partition", "delete", "nosuch", "--if-exists"],
    ]
    seen = []
    for argv in commands:
        p = s.cli(*argv)
        text = p.stdout + p.stderr
        assert not REPR.search(text), f"vnetshare {' '.join(argv)}:\n{text}"
        seen.append(text)
    # capture's lines, while B pings the LAN host
    ping = subprocess.Popen(["ip", "netns", "exec", B[0], "ping", "-c", "20", "-i", "0.2", LAN_V4],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        p = s.cli("capture", B[0], "-c", "2")
    finally:
        ping.kill()
        ping.wait()
    assert not REPR.search(p.stdout + p.stderr) and "ICMP echo" in p.stdout, p
    seen.append(p.stdout)
    # the daemon's settings, and where each comes from
    p = _run("daemon", "--uplink", UPLINK, "--config", "none", "--print-config", "--socket", s.sock)
    assert p.returncode == 0 and not REPR.search(p.stdout + p.stderr) and "uplink" in p.stdout, p
    shown = "".join(seen)
    # what the checks must have seen, so they did not pass on empty output
    assert "ip_spoof=1" in shown and "team=red" in shown and "50mbit" in shown and "vlan      10" in shown


def test_completion_offers_the_running_daemons_partitions(system, tmp_path):
    """The scripts setup.sh installs (clidoc.py), run by their shells with a
    `vnetshare` on PATH: commands, options, and the daemon's partition names
    where a command takes one."""
    from vnetshare.frontends import clidoc
    from vnetshare.frontends.cli import get_parser

    system.create(A[0])
    system.create(B[0])
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "vnetshare").write_text("#!/bin/sh\nexec " + " ".join(python_argv("vnetshare")) + ' "$@"\n')
    (bindir / "vnetshare").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    (tmp_path / "c.bash").write_text(clidoc.bash(get_parser()))
    (tmp_path / "c.zsh").write_text(clidoc.zsh(get_parser()))
    bash = f"""source {tmp_path}/c.bash
comp() {{ COMP_WORDS=("$@"); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); COMPREPLY=(); _vnetshare; echo "${{COMPREPLY[*]}}"; }}
comp vnetshare part
comp vnetshare --socket {system.sock} partition show ''
comp vnetshare --socket {system.sock} events --partition p
comp vnetshare --socket {system.sock} partition create ''
comp vnetshare --socket {tmp_path}/none.sock partition delete ''
"""
    out = subprocess.run(["bash", "-c", bash], env=env, capture_output=True, text=True, timeout=60)
    lines = out.stdout.split("\n")
    assert lines[:3] == ["partition", f"{A[0]} {B[0]}", f"{A[0]} {B[0]}"], out
    assert "--may-exist" in lines[3].split() and A[0] not in lines[3].split()  # a new name: options only
    assert lines[4] == "" and out.stderr == "", out  # no daemon: nothing, and no noise
    zsh = f"""source {tmp_path}/c.zsh 2>/dev/null
compadd() {{ [[ $1 == -a ]] && print -r -- "${{(P)2}}" }}
comp() {{ words=("$@"); CURRENT=${{#words}}; PREFIX=${{words[-1]}}; _vnetshare }}
comp vnetshare --socket {system.sock} capture ''
comp vnetshare partition li
"""
    out = subprocess.run(["zsh", "-f", "-c", zsh], env=env, capture_output=True, text=True, timeout=60)
    lines = out.stdout.split("\n")
    assert lines[0] == f"{A[0]} {B[0]}" and "list" in lines[1].split(), out
