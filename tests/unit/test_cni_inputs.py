"""The CNI plugin against any input (issue 20, item 8).

Whatever a runtime puts in the environment and on stdin, the plugin's
main() writes one result or one error object on stdout, exits 0 with a
result and non-zero with an error object, and prints no traceback. The
daemon and the IPAM plugin are stubs here (no socket, no process), and
hypothesis draws what they answer too. Each example runs main() in this
process, so a few hundred take seconds; derandomized and without an
example database, every CI run tries the same inputs.
"""
from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import subprocess
import sys
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from vnetshare.core import protocol
from vnetshare.frontends import client, cni

CODES = {v for k, v in vars(cni).items() if k.startswith("ERR_")} - {cni.ERR_INTERNAL}
IPAM_TYPES = ("host-local", "static")
SOCKET = "/nonexistent/vnetshare-test/control.sock"


# --- the stubs ---------------------------------------------------------------------------

class FakeDaemon:
    """Answers the plugin as the daemon would: each request is checked by the
    daemon's own protocol.validate_request (after a trip through JSON, as on
    the socket); partitions live in a dict. EINVAL answers are recorded: a
    value from the config or the environment the plugin should have refused."""

    def __init__(self, reachable: bool):
        self.reachable = reachable
        self.parts: dict[str, dict] = {}
        self.einval: list[str] = []
        self.given_addresses = False  # ips or routes, from the IPAM plugin's result

    def call(self, path: str, op: str, timeout: float = 30.0, **fields) -> dict:
        if not self.reachable:
            raise client.DaemonUnreachable(f"no daemon running: {path} does not exist "
                                           "(start one with: vnetshare daemon --uplink IFACE)")
        self.given_addresses |= bool(fields.get("ips") or fields.get("routes"))
        try:
            op, args = protocol.validate_request(json.loads(protocol.encode(protocol.request(op, **fields))))
        except protocol.ProtocolError as e:
            if e.code == "EINVAL":
                self.einval.append(str(e))
            raise client.DaemonError(e.code, str(e)) from None
        if op == "partition.list":
            return {"ok": True, "partitions": list(self.parts.values())}
        if op == "daemon.status":
            return {"ok": True}
        if op in ("partition.show", "partition.delete"):
            if args["name"] not in self.parts:
                raise client.DaemonError("ENOENT", f"no partition named {args['name']!r}")
            part = self.parts.pop(args["name"]) if op == "partition.delete" else self.parts[args["name"]]
            return {"ok": True, "partition": part}
        assert op == "partition.create", op
        if args["mtu"] is not None and args["mtu"] > 1500:
            raise client.DaemonError("EINVAL", f"MTU {args['mtu']}: above the uplink's MTU 1500")
        mac = args["mac"] or "02:00:00:00:00:99"
        if any(p["mac"] == mac for p in self.parts.values()):
            raise client.DaemonError("EEXIST", f"MAC {mac}: already used by another partition")
        part = {"name": args["name"], "mac": mac, "mtu": args["mtu"] or 1500, "ifname": args["ifname"] or "eth0",
                "ips": args["ips"], "labels": args["labels"] or {}, "state": "running",
                "agent": "running (pid 1)", "netns": f"/run/vnetshare/netns/{args['name']}",
                "netns_source": args["netns"]}
        self.parts[args["name"]] = part
        return {"ok": True, "partition": part}


class FakeIpam:
    """The IPAM plugin's answers to VERSION and to the rest, as drawn."""

    def __init__(self, version_out: bytes, status: int, out: bytes):
        self.version_out, self.status, self.out = version_out, status, out
        self.failed = False

    def exec(self, exe: str, name: str, env: dict[str, str], data: bytes) -> subprocess.CompletedProcess:
        if env.get("CNI_COMMAND") == "VERSION":
            return subprocess.CompletedProcess([exe], 0, self.version_out, b"")
        self.failed = self.failed or self.status != 0
        return subprocess.CompletedProcess([exe], self.status, self.out, b"stderr of " + name.encode())


# --- what hypothesis draws ---------------------------------------------------------------

NASTY = ["", " ", "\n", "\0", "a\0b", "9" * 400, "x" * 5000, "-1", "1e400", "none", "any", "../x", "/", ".",
         "\ud800", "é", "02:00:00:00:00:01", "10.0.0.1/24", "100mbit", "64kb", -1, 0, 1, 2 ** 64, -2 ** 63,
         10 ** 400, 1.5, float("nan"), float("inf"), True, False, None, [], {}, [None], {"": None}]
leaves = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=20)
          | st.sampled_from(NASTY))
json_values = st.recursive(leaves, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=12), kids, max_size=4), max_leaves=10)
env_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=40)
env_values = env_text | st.sampled_from(["", "a/b", "-x", "x" * 300, "relative/netns", "/run/netns/x", "dummy",
                                         "eth0", "c1", "a b", "IgnoreUnknown=1;MAC=zz", "MAC", "=", ";;"])


def base_conf(version: str) -> dict:
    """A config with every key this plugin reads, valid."""
    return {  # cniVersion last: the mutations' walk picks early keys more often
        "name": "net1", "type": "vnetshare", "socket": SOCKET,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}]]},
        "dns": {"nameservers": ["10.1.0.1"], "search": ["example.org"], "domain": "example.org", "options": []},
        "mtu": 1400, "mac": "02:00:00:00:00:01", "vlan": 7, "allowIPs": ["10.1.0.0/24"], "trustedRouter": False,
        "stormLimit": 50, "txLimit": "100mbit", "txBurst": "1mb", "rxLimit": ["20kpps"],
        "runtimeConfig": {"mac": "02:00:00:aa:bb:01",
                          "bandwidth": {"egressRate": 1000000, "egressBurst": 800000, "ingressRate": 2000000}},
        "prevResult": {"cniVersion": version, "interfaces": [{"name": "eth0", "mac": "02:00:00:aa:bb:01",
                                                              "sandbox": "/run/netns/x"}],
                       "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 0}]},
        "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}],
        "args": {"cni": {"ips": ["10.1.0.5"]}},
        "cniVersion": version,
    }


@st.composite
def configs(draw) -> dict:
    """A valid config with some keys left out, then up to three values anywhere in it replaced."""
    conf = base_conf(draw(st.sampled_from(("1.1.0",) + cni.SUPPORTED_VERSIONS)))
    for key in draw(st.sets(st.sampled_from(sorted(set(conf) - {"cniVersion", "name", "type", "socket"})))):
        del conf[key]
    for _ in range(draw(st.integers(0, 3))):
        node, key = conf, None
        while True:  # walk down to a value: stop there, or go into it
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            if not isinstance(node[key], (dict, list)) or draw(st.booleans()):
                break
            node, key = node[key], None
        if key is None:
            continue
        if draw(st.integers(0, 9)) == 9:  # (hypothesis draws small numbers more often)
            del node[key]
        else:
            node[key] = draw(json_values)
    if draw(st.integers(0, 9)) == 9:
        conf[draw(st.text(max_size=12))] = draw(json_values)
    return conf


@st.composite
def environments(draw, ipam_dir: str) -> dict[str, str]:
    commands = ["ADD", "ADD", "ADD", "ADD", "DEL", "CHECK", "CHECK", "GC", "STATUS", "VERSION"]
    command = draw(st.sampled_from(commands + [None]))
    command = draw(env_values) if command is None else command
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
           "CNI_PATH": ipam_dir, "CNI_ARGS": draw(st.sampled_from(
               ["", "IgnoreUnknown=1;K8S_POD_NAME=web", "MAC=02:00:00:00:00:07", "IgnoreUnknown=1;MAC=nope"]))}
    for var in draw(st.sets(st.sampled_from(sorted(set(env) - {"CNI_COMMAND"})), max_size=2)
                    if draw(st.integers(0, 3)) == 0 else st.just(set())):
        if draw(st.booleans()):
            del env[var]
        else:
            env[var] = draw(env_values)
    return env


@st.composite
def ipam_answers(draw) -> FakeIpam:
    ok = {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                                         {"address": "fd00:5e::5/64"}],
          "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.0.1"}],
          "dns": {"nameservers": ["10.1.0.1"]}}
    version_out = json.dumps(draw(st.sampled_from([{"supportedVersions": ["0.4.0", "1.0.0"]}, {}, []]) | json_values))
    kind = draw(st.sampled_from(["ok", "ok", "odd", "error", "garbage"]))
    if kind == "ok":
        return FakeIpam(version_out.encode(), 0, json.dumps(ok).encode())
    if kind == "odd":  # a result with something somewhere replaced
        key = draw(st.sampled_from(sorted(ok)))
        ok[key] = draw(json_values | st.just([draw(json_values)]))
        return FakeIpam(version_out.encode(), 0, json.dumps(ok).encode())
    if kind == "error":
        err = {"cniVersion": "1.0.0", "code": draw(json_values | st.integers(1, 200)), "msg": draw(json_values)}
        return FakeIpam(version_out.encode(), draw(st.integers(1, 255)), json.dumps(err).encode())
    return FakeIpam(version_out.encode(), draw(st.integers(0, 255)), draw(st.binary(max_size=40)))


# --- the plugin, as a process would run it -----------------------------------------------

def run_main(env: dict[str, str], stdin: bytes, daemon: FakeDaemon, ipam: FakeIpam) -> tuple[int, str, str]:
    """cni.main() with @env as its environment and @stdin: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin))
    with mock.patch.dict(os.environ, env, clear=True), mock.patch.object(sys, "stdin", fake_stdin), \
            mock.patch.object(cni, "env_is_tty", lambda: False), mock.patch.object(client, "call", daemon.call), \
            mock.patch.object(cni, "_exec", ipam.exec), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        status = cni.main([])
    return status, out.getvalue(), err.getvalue()


def strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def check_answer(env: dict[str, str], status: int, out: str, err: str, ipam: FakeIpam) -> dict | None:
    """The spec's contract for one call; returns the JSON written, if any."""
    assert err == "", err
    command = env.get("CNI_COMMAND")
    if status == 0 and command in ("DEL", "CHECK", "GC", "STATUS"):
        assert out == "", out
        return None
    assert out.endswith("\n") and out.count("\n") == 1, out
    answer = strict_json(out)
    assert isinstance(answer, dict) and answer.get("cniVersion") in cni.SUPPORTED_VERSIONS, answer
    if status == 0:
        if command == "VERSION":
            assert answer["supportedVersions"] == list(cni.SUPPORTED_VERSIONS)
        else:
            assert command == "ADD", answer
            [iface] = answer["interfaces"]
            assert all(isinstance(iface[k], str) for k in ("name", "mac", "sandbox")), iface
            for ip in answer["ips"]:
                ipaddress.ip_interface(ip["address"])
                assert ip["interface"] == 0 and isinstance(ip.get("gateway", ""), str), ip
            for route in answer.get("routes", []):
                ipaddress.ip_network(route["dst"])
            assert isinstance(answer.get("dns", {}), dict)
        return answer
    assert set(answer) <= {"cniVersion", "code", "msg", "details"}, answer
    code = answer["code"]
    assert isinstance(code, int) and not isinstance(code, bool) and code > 0, answer
    assert code != cni.ERR_INTERNAL, answer  # a bug: the catch-all answered
    assert code in CODES or ipam.failed, answer  # an IPAM plugin's own code is passed on
    for key in ("msg", "details"):
        text = answer.get(key, "")
        assert isinstance(text, str) and text.isprintable() and len(text) <= cni.TEXT_MAX, answer
    assert answer["msg"] and "Traceback" not in out
    return answer


@pytest.fixture(scope="module")
def ipam_dir(tmp_path_factory) -> str:
    """A CNI_PATH directory with IPAM plugins _ipam() finds (never run: FakeIpam answers)."""
    d = tmp_path_factory.mktemp("cni-bin")
    for name in IPAM_TYPES:
        (d / name).write_text("#!/bin/sh\nexit 99\n")
        (d / name).chmod(0o755)
    return str(d)


EXAMPLES = settings(max_examples=400, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@EXAMPLES
@given(data=st.data())
def test_any_config_and_environment_get_a_result_or_an_error_object(ipam_dir, data):
    env = data.draw(environments(ipam_dir), "env")
    conf = data.draw(configs(), "conf")
    daemon = FakeDaemon(reachable=data.draw(st.integers(0, 9), "daemon down") != 9)
    if data.draw(st.booleans(), "attached before"):  # what ADD made: for DEL, CHECK and GC to find
        name = cni.attachment_name("c1", "eth0")
        daemon.parts[name] = {"name": name, "mac": "02:00:00:aa:bb:01", "mtu": 1500, "ifname": "eth0",
                              "ips": ["10.1.0.5/24"], "state": "running", "agent": "running (pid 1)",
                              "netns": "/run/netns/x", "netns_source": "/run/netns/x",
                              "labels": {cni.LABEL_NETWORK: "net1", cni.LABEL_CONTAINER: "c1",
                                         cni.LABEL_IFNAME: "eth0"}}
    ipam = data.draw(ipam_answers(), "ipam")
    status, out, err = run_main(env, json.dumps(conf).encode(), daemon, ipam)
    check_answer(env, status, out, err, ipam)
    # a value from the config or the environment the plugin let through to the daemon, which refused
    # it (the IPAM plugin's addresses and routes are the daemon's to judge)
    assert not daemon.einval or daemon.given_addresses, daemon.einval


@EXAMPLES
@given(env=environments("/nonexistent"), stdin=st.binary(max_size=60) | json_values.map(
    lambda v: json.dumps(v).encode()))
def test_any_stdin_gets_a_result_or_an_error_object(env, stdin):
    ipam = FakeIpam(b"", 0, b"")
    status, out, err = run_main(env, stdin, FakeDaemon(reachable=True), ipam)
    check_answer(env, status, out, err, ipam)


# --- one malformed value each: the code, the key in msg, the value in details ---------------

ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
       "CNI_PATH": "/nonexistent", "CNI_ARGS": ""}


def conf(**kw) -> dict:
    return {"cniVersion": "1.1.0", "name": "n", "type": "vnetshare", "socket": SOCKET, **kw}


@pytest.mark.parametrize("command, change, key, shown", [
    ("ADD", {"runtimeConfig": {"bandwidth": {"egressRate": 1000000, "egressBurst": "lots"}}},
     "runtimeConfig.bandwidth.egressBurst", '"lots"'),
    ("ADD", {"runtimeConfig": {"bandwidth": {"ingressRate": 1e400}}}, "runtimeConfig.bandwidth.ingressRate",
     "Infinity"),
    ("ADD", {"runtimeConfig": {"bandwidth": [1]}}, "runtimeConfig.bandwidth", "[1]"),
    ("ADD", {"runtimeConfig": {"mac": 7}}, "runtimeConfig.mac", "7"),
    ("ADD", {"runtimeConfig": "x"}, "runtimeConfig", '"x"'),
    ("ADD", {"txLimit": "100mbit", "txBurst": 64}, "txBurst", "64"),
    ("ADD", {"txLimit": ["100mbit", {}]}, "txLimit", '["100mbit", {}]'),
    ("ADD", {"stormLimit": "9" * 400}, "stormLimit", '"999'),
    ("ADD", {"mtu": 1e400}, "mtu", "Infinity"),
    ("ADD", {"vlan": [7]}, "vlan", "[7]"),
    ("ADD", {"trustedRouter": "yes"}, "trustedRouter", '"yes"'),
    ("ADD", {"ipam": {"type": ""}}, "ipam.type", '""'),
    ("ADD", {"ipam": {"type": "a\0b"}}, "ipam.type", '"a\\u0000b"'),
    ("ADD", {"ipam": []}, "ipam", "[]"),
    ("ADD", {"dns": "8.8.8.8"}, "dns", '"8.8.8.8"'),
    ("ADD", {"dns": {"nameservers": "8.8.8.8"}}, "dns.nameservers", '"8.8.8.8"'),
    ("ADD", {"socket": "/run/a\0b"}, "socket", '"/run/a\\u0000b"'),
    ("ADD", {"name": "a b"}, "name", '"a b"'),
    ("ADD", {"name": "x" * 300}, "name", '"xxx'),
    ("CHECK", {"prevResult": {"ips": 5}}, "prevResult.ips", "5"),
    ("CHECK", {"prevResult": {"ips": [{"address": 5}]}}, "prevResult.ips[0].address", "5"),
    ("CHECK", {"prevResult": {"ips": [{"address": "10.0.0.300/24"}]}}, "prevResult.ips[0].address",
     '"10.0.0.300/24"'),
    ("CHECK", {"prevResult": {"interfaces": [{"name": "eth0", "mac": ["x"]}]}}, "prevResult.interfaces[0].mac",
     '["x"]'),
    ("CHECK", {"prevResult": []}, "prevResult", "[]"),
    ("GC", {"cni.dev/valid-attachments": "c1"}, "cni.dev/valid-attachments", '"c1"'),
    ("GC", {"cni.dev/valid-attachments": [7]}, "cni.dev/valid-attachments[0]", "7"),
    ("GC", {"cni.dev/valid-attachments": [{"containerID": ["c1"], "ifname": "eth0"}]},
     "cni.dev/valid-attachments[0].containerID", '["c1"]'),
])
def test_a_malformed_config_value_is_code_7_naming_key_and_value(command, change, key, shown):
    status, out = cni.run({**ENV, "CNI_COMMAND": command}, json.dumps(conf(**change)).encode())
    assert status == 1 and out["code"] == cni.ERR_INVALID_CONFIG, out
    assert f"config key {key!r}" in out["msg"], out
    assert out["details"].startswith(f"{key} is {shown}"), out


@pytest.mark.parametrize("var, value, shown", [
    ("CNI_IFNAME", "a/b", '"a/b"'),
    ("CNI_IFNAME", "x" * 16, '"xxxx'),
    ("CNI_CONTAINERID", "-c1", '"-c1"'),
    ("CNI_CONTAINERID", "c" * 300, '"ccc'),
    ("CNI_NETNS", "run/netns/x", '"run/netns/x"'),
    ("CNI_PATH", "/usr/lib\0/cni", '"/usr/lib\\u0000/cni"'),
    ("CNI_ARGS", "MAC=zz:00", None),
])
def test_a_malformed_variable_is_code_4_naming_it(var, value, shown):
    status, out = cni.run({**ENV, var: value}, json.dumps(conf()).encode())
    assert status == 1 and out["code"] == cni.ERR_INVALID_ENV, out
    assert out["msg"].startswith(var), out
    if shown:
        assert out["details"].startswith(f"{var} is {shown}"), out


def test_an_unknown_key_is_code_2_with_its_value():
    status, out = cni.run(ENV, json.dumps(conf(frobnicate={"a": 1})).encode())
    assert (status, out["code"]) == (1, cni.ERR_UNSUPPORTED_FIELD)
    assert "'frobnicate'" in out["msg"] and out["details"].startswith('frobnicate is {"a": 1}'), out


@pytest.mark.parametrize("stdin", [b"[]", b'"x"', b"5", b"null", b"\xff\xfe", b"{", b"[" * 100000])
def test_stdin_that_is_no_json_object_is_code_6(stdin):
    status, out = cni.run(ENV, stdin)
    assert status == 1 and out["code"] == cni.ERR_DECODE and out["cniVersion"] == cni.LATEST, out


def test_an_error_object_speaks_the_configs_version():
    status, out = cni.run({**ENV, "CNI_IFNAME": ""}, json.dumps(conf(cniVersion="0.4.0")).encode())
    assert (status, out["code"], out["cniVersion"]) == (1, cni.ERR_INVALID_ENV, "0.4.0")


def test_a_bug_is_an_error_object_too(monkeypatch):
    """The last resort: an exception nobody expected is ERR_INTERNAL, one line, where it happened."""
    monkeypatch.setattr(cni, "cmd_add", lambda req: {}["boom"])
    status, out = cni.run(ENV, json.dumps(conf()).encode())
    assert status == 1 and out["code"] == cni.ERR_INTERNAL, out
    assert "KeyError" in out["msg"] and "test_cni_inputs.py:" in out["details"], out


@pytest.mark.parametrize("command, change, key", [
    ("ADD", {"runtimeConfig": {"bandwidth": {"egressRate": 1000000, "egressBurst": "lots"}}},
     "runtimeConfig.bandwidth.egressBurst"),
    ("GC", {"cni.dev/valid-attachments": {"containerID": "c1"}}, "cni.dev/valid-attachments"),
])
def test_the_plugin_process_answers_on_stdout_with_a_status_and_nothing_else(command, change, key):
    """Issue 20's two examples, through the executable a runtime runs."""
    env = {**ENV, "CNI_COMMAND": command, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    p = subprocess.run([sys.executable, "-P", "-m", "vnetshare.frontends.cni"], env=env, capture_output=True,
                       input=json.dumps(conf(**change)).encode(), timeout=60)
    assert p.returncode == 1 and p.stderr == b"", p.stderr.decode()
    out = p.stdout.decode()
    assert out.count("\n") == 1 and strict_json(out)["code"] == cni.ERR_INVALID_CONFIG, out
    assert f"config key {key!r}" in strict_json(out)["msg"], out


@pytest.mark.parametrize("valid", ["c1", {"containerID": "c1", "ifname": "eth0"}, [["c1", "eth0"]]])
def test_gc_with_malformed_valid_attachments_deletes_nothing(valid):
    """Read as they came (a string's letters, an object's keys), these kept
    nothing valid, and GC deleted every attachment of the network."""
    daemon = FakeDaemon(reachable=True)
    name = cni.attachment_name("c1", "eth0")
    daemon.parts[name] = {"name": name, "mac": "02:00:00:aa:bb:01", "labels": {
        cni.LABEL_NETWORK: "n", cni.LABEL_CONTAINER: "c1", cni.LABEL_IFNAME: "eth0"}}
    with mock.patch.object(client, "call", daemon.call):
        status, out = cni.run({**ENV, "CNI_COMMAND": "GC"},
                              json.dumps(conf(**{"cni.dev/valid-attachments": valid})).encode())
    assert status == 1 and out["code"] == cni.ERR_INVALID_CONFIG, out
    assert "cni.dev/valid-attachments" in out["msg"] and list(daemon.parts) == [name]
