"""The command line without a daemon: global options, exit codes, help
texts, the generated reference, man page and completion, the list and the
live view's order (frontends/cli.py, clitools.py, exits.py, clidoc.py,
listing.py, live.py)."""
from __future__ import annotations

import errno
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vnetshare.core.errors import NativeError
from vnetshare.frontends import clidoc, exits, listing, live
from vnetshare.frontends.cli import get_parser
from vnetshare.frontends.client import DaemonError, DaemonNotRunning

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv", [
    ["--socket", "/s", "--json", "partition", "list"],
    ["partition", "list", "--socket", "/s", "--json"],
    ["partition", "--socket", "/s", "list", "--json"],
    ["--json", "partition", "--socket=/s", "list"],
])
def test_global_options_anywhere_on_the_line(argv):
    args = get_parser().parse_args(argv)
    assert (args.cmd, args.pcmd, args.socket, args.json) == ("partition", "list", "/s", True)


def test_global_options_default_and_the_daemons_socket_setting():
    args = get_parser().parse_args(["stats"])
    assert args.socket is None and args.json is False
    d = get_parser(only_daemon=True).parse_args(["daemon", "--uplink", "nic0", "--socket", "/d.sock"])
    assert d.socket == "/d.sock" and d.socket_option.dest == "socket"


def test_exit_codes_are_distinct_and_each_error_code_has_one():
    codes = [ex for ex, _short, _what, _errs in exits.EXITS]
    assert codes == sorted(set(codes)) == list(range(8))
    assert exits.USAGE == 2  # argparse's
    assert {c: exits.exit_code(c) for c in ("ENOENT", "EEXIST", "EADDRINUSE", "ENOSPC", "EINVAL", "EIO",
                                            "EPERM", "ECONNREFUSED", "ESOMETHINGNEW")} == \
        {"ENOENT": 5, "EEXIST": 6, "EADDRINUSE": 7, "ENOSPC": 7, "EINVAL": 2, "EIO": 1, "EPERM": 1,
         "ECONNREFUSED": 3, "ESOMETHINGNEW": 1}


@pytest.mark.parametrize("exc, code, message", [
    (DaemonError("ENOENT", "no partition named 'x'"), "ENOENT", "no partition named 'x'"),
    (DaemonNotRunning("no daemon running: /s does not exist"), "ECONNREFUSED", "no daemon running: /s does not exist"),
    (NativeError(errno.EPERM, "tap_open eth0: Operation not permitted"), "EPERM",
     "tap_open eth0: Operation not permitted"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y.pcapng"), "ENOENT",
     "No such file or directory: /x/y.pcapng"),
])
def test_an_error_is_its_code_and_a_message_without_errno(exc, code, message):
    assert exits.describe(exc) == (code, message)


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-P", "-m", "vnetshare", *argv], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_usage_errors_with_json_are_json_on_stdout():
    p = _run("partition", "show", "bad name", "--json")
    assert p.returncode == 2 and p.stderr == ""
    err = json.loads(p.stdout)["error"]
    assert err["code"] == "EINVAL" and "partition name 'bad name'" in err["message"]
    p = _run("partition", "show", "bad name")
    assert p.returncode == 2 and p.stdout == "" and "partition name 'bad name'" in p.stderr


def test_version_says_the_package_the_c_build_and_the_agent():
    from vnetshare import __version__

    p = _run("--version")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"vnetshare {__version__}"
    assert re.fullmatch(r"  C data plane  ring ABI 1, build [0-9a-f]{12} \(.*_native.*\.so\)", lines[1]), lines
    assert re.fullmatch(r"  agent         .*vnetshare-agent \(available\)", lines[2]), lines
    j = json.loads(_run("--version", "--json").stdout)
    assert j["version"] == __version__ and j["native"]["ring_abi"] == 1 and j["agent"]["available"] is True


def test_every_option_and_name_has_help():
    for cmd in clidoc.commands(get_parser()):
        for o in cmd.options:
            assert o.help, f"vnetshare {' '.join(cmd.path)} {o.flags[0]}: no help text"
        for meta, h in cmd.positionals:
            assert h, f"vnetshare {' '.join(cmd.path)} {meta}: no help text"


def test_docs_cli_md_is_what_the_parser_says():
    text = (ROOT / "docs" / "cli.md").read_text()
    want = clidoc.update(text, {"exits": clidoc.exit_table(), "commands": clidoc.markdown(get_parser())})
    assert text == want, "docs/cli.md is out of date: python3 -m vnetshare.frontends.clidoc update docs/cli.md"
    assert "### vnetshare partition list" in text and "| 5 | not found" in text


def test_the_man_page_renders_without_warnings():
    page = clidoc.man(get_parser(), "0.1.0")
    assert "\n.SH EXIT STATUS\n" in page and "\n.SS vnetshare partition create\n" in page
    assert "VNETSHARE_SOCKET" in page and "\\fB\\-\\-may\\-exist\\fR" in page
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=page, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_completion_scripts_parse(shell):
    script = getattr(clidoc, shell)(get_parser())
    p = subprocess.run([shell, "-n"], input=script, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr


def test_the_module_prints_each_file():
    for kind in ("man", "bash", "zsh", "markdown", "exits"):
        p = subprocess.run([sys.executable, "-P", "-m", "vnetshare.frontends.clidoc", kind], capture_output=True,
                           text=True, timeout=60, cwd=ROOT)
        assert p.returncode == 0 and len(p.stdout) > 200, (kind, p.stderr)


def test_the_frontends_do_not_import_cli():
    """capture.py and live.py take their parser helpers from clitools.py."""
    for name in ("capture", "live", "listing", "clitools", "exits"):
        text = (ROOT / "vnetshare" / "frontends" / f"{name}.py").read_text()
        assert not re.search(r"from \.cli import|from \. import cli\b|import_module\(.*cli", text), name


def _part(name, vlan=None, labels=None, tx_bps=None):
    """A partition as `partition list --json` gives it (docs/cli.md, the one shape)."""
    return {"name": name, "ifname": "eth0", "mac": "02:00:00:00:00:01", "mtu": 1500, "ips": [],
            "vlan": vlan, "labels": labels or {}, "storm_limit_pps": 1000, "agent": "running (pid 1)",
            "tx_limit_bps": tx_bps, "tx_burst_bytes": 65536 if tx_bps else None, "tx_limit_pps": None,
            "tx_burst_frames": None, "rx_limit_bps": None, "rx_burst_bytes": None, "rx_limit_pps": None,
            "rx_burst_frames": None}


def test_list_filters_and_says_when_empty():
    parts = [_part("a", vlan=10, labels={"team": "red"}), _part("b", labels={"team": "blue", "env": "x"})]
    assert [p["name"] for p in listing.select(parts, [("team", "blue")], None)] == ["b"]
    assert [p["name"] for p in listing.select(parts, [("team", "blue"), ("env", "y")], None)] == []
    assert [p["name"] for p in listing.select(parts, [], 0)] == ["b"]   # 0: untagged
    assert [p["name"] for p in listing.select(parts, [], 10)] == ["a"]
    assert listing.render([], listing.DEFAULT) == "no partitions"
    assert listing.render([], listing.DEFAULT, filtered=True) == "no partitions match"
    text = listing.render([_part("a", vlan=10, tx_bps=50_000_000)], listing.WIDE)
    head, row = text.splitlines()
    assert dict(zip(head.split(), row.split()))["TX-LIMIT"] == "50mbit"   # as the user writes it
    head, row = listing.render([_part("c")], ["name", "vlan", "tx-limit"]).splitlines()
    assert row.split() == ["c", "-", "-"]   # untagged (null), no limit


def test_top_sorts_by_name_or_the_biggest_rate_first():
    view = {"partitions": {"a": {"rx_bps": 1.0, "tx_bps": 9.0, "drops_ps": 0.0},
                           "b": {"rx_bps": 5.0, "tx_bps": 1.0, "drops_ps": 3.0},
                           "c": {"rx_bps": 5.0, "tx_bps": 0.0, "drops_ps": 0.0}}}
    assert [n for n, _r in live.ordered(view, "name")] == ["a", "b", "c"]
    assert [n for n, _r in live.ordered(view, "rx")] == ["b", "c", "a"]  # ties by name
    assert [n for n, _r in live.ordered(view, "tx")] == ["a", "b", "c"]
    assert [n for n, _r in live.ordered(view, "drops")] == ["b", "a", "c"]


def test_events_filter_by_partition_and_kind():
    keep = live.event_filter("pa", ["partition.*", "agent.exited"])
    assert keep({"event": "partition.created", "partition": "pa"})
    assert keep({"event": "agent.exited", "partition": "pa"})
    assert not keep({"event": "agent.started", "partition": "pa"})
    assert not keep({"event": "partition.created", "partition": "pb"})
    assert live.event_filter()({"event": "daemon.started", "partition": None})


def test_groups_text_names_members_and_the_querier(capsys):
    from vnetshare.frontends.cli import _print_groups

    _print_groups({"snooping": True, "groups": [
        {"vlan": None, "group": "239.1.2.3", "members": [
            {"port": "pa", "port_kind": "partition", "expires_seconds": 250.2},
            {"port": "hp", "port_kind": "host_port", "expires_seconds": 100.0}]},
        {"vlan": 10, "group": "ff05::20", "members": [
            {"port": "pb", "port_kind": "partition", "expires_seconds": 3.0}]}],
        "queriers": [{"vlan": None, "family": "ipv4", "address": "10.9.0.100", "port": "eth1",
                      "port_kind": "uplink", "expires_seconds": 240.0, "interval_seconds": 260.0}]})
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["VLAN", "GROUP", "MEMBERS", "EXPIRES"]
    assert out[1].split() == ["-", "239.1.2.3", "pa,", "hp", "(host", "port)", "100s"]
    assert out[2].split() == ["10", "ff05::20", "pb", "3s"]
    assert out[-1].split() == ["-", "ipv4", "10.9.0.100", "eth1", "(uplink)", "240s", "260s"]
    _print_groups({"snooping": True, "groups": [], "queriers": []})
    assert capsys.readouterr().out.splitlines() == [
        "no groups", "no querier heard: groups nobody joined flood to their VLAN"]
    _print_groups({"snooping": False, "groups": [], "queriers": []})
    assert "snooping is off" in capsys.readouterr().out
