"""The CNI plugin's pure parts, without a daemon: cni.run() is the whole
plugin minus its process (environment and stdin in, status and JSON out)."""
import json

import pytest
from hypothesis import given, strategies as st

from vnetshare.core import config
from vnetshare.frontends import cni, cni_install

ENV = {"CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
       "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": ""}


def run(command: str, conf, **env):
    data = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    return cni.run({**ENV, "CNI_COMMAND": command, **env}, data)


def conf(**kw):
    return {"cniVersion": "1.0.0", "name": "n", "type": "vnetshare", "socket": "/nonexistent/control.sock", **kw}


@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=15))
def test_attachment_names_are_valid_partition_names(container, ifname):
    for attempt in range(5):
        name = cni.attachment_name(container, ifname, attempt)
        assert config.partition_name(name) == name and len(name) == 15


def test_attachment_names_are_stable_and_distinct():
    a = cni.attachment_name("abc", "eth0")
    assert a == cni.attachment_name("abc", "eth0")
    assert len({a, cni.attachment_name("abc", "eth1"), cni.attachment_name("abd", "eth0"),
                cni.attachment_name("abc", "eth0", 1)}) == 4


def test_version_needs_nothing_else():
    status, out = cni.run({"CNI_COMMAND": "VERSION"}, b"")
    assert status == 0 and out["cniVersion"] == cni.LATEST


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_no_daemon_is_code_100_naming_the_socket(command):
    c = conf(prevResult={"cniVersion": "1.0.0", "ips": []})
    status, out = run(command, c)
    assert status == 1 and out["code"] == cni.ERR_NO_DAEMON, out
    assert "/nonexistent/control.sock" in out["msg"] and "vnetshare daemon" in out["msg"]
    assert "'socket'" in out["details"]


def test_status_without_daemon_is_code_50():
    status, out = run("STATUS", conf(cniVersion="1.1.0"))
    assert (status, out["code"], out["cniVersion"]) == (1, 50, "1.1.0")


@pytest.mark.parametrize("text, want", [
    ("", {}),
    ("IgnoreUnknown=1;K8S_POD_NAME=web;FOO=bar", {"IgnoreUnknown": "1", "K8S_POD_NAME": "web", "FOO": "bar"}),
    ("MAC=02:00:00:00:00:01", {"MAC": "02:00:00:00:00:01"}),
])
def test_cni_args(text, want):
    assert cni._cni_args(text) == want


@pytest.mark.parametrize("text, words", [("FOO=bar", ["'FOO'", "IgnoreUnknown"]), ("MAC", ["'MAC'", "KEY=VALUE"])])
def test_cni_args_refused(text, words):
    with pytest.raises(cni.CniError) as e:
        cni._cni_args(text)
    assert e.value.code == cni.ERR_INVALID_ENV
    for w in words:
        assert w in e.value.msg + e.value.details


@pytest.mark.parametrize("change, code, word", [
    ({"allowIPs": "10.0.0.0/8"}, cni.ERR_INVALID_CONFIG, "'allowIPs'"),
    ({"trustedRouter": "yes"}, cni.ERR_INVALID_CONFIG, "'trustedRouter'"),
    ({"allowLLC": "yes"}, cni.ERR_INVALID_CONFIG, "'allowLLC'"),
    ({"stormLimit": -1}, cni.ERR_INVALID_CONFIG, "'stormLimit'"),
    ({"txBurst": "64kb"}, cni.ERR_INVALID_CONFIG, "'txBurst'"),
    ({"ipam": {"type": "../evil"}}, cni.ERR_INVALID_CONFIG, "'ipam.type'"),
    ({"ipam": "host-local"}, cni.ERR_INVALID_CONFIG, "'ipam'"),
    ({"runtimeConfig": {"mac": "nope"}}, cni.ERR_INVALID_CONFIG, "runtimeConfig.mac"),
    ({"name": ""}, cni.ERR_INVALID_CONFIG, "'name'"),
])
def test_config_values_checked_before_anything_happens(change, code, word):
    status, out = run("ADD", conf(**change))
    assert status == 1 and out["code"] == code and word in out["msg"], out


def test_bandwidth_capability_becomes_rate_limits():
    req = cni.Request({**ENV, "CNI_COMMAND": "ADD"}, json.dumps(conf(runtimeConfig={"bandwidth": {
        "egressRate": 1000000, "egressBurst": 800000, "ingressRate": 2000000}})).encode())
    assert req.fields["tx_limit"] == ["1000000bit"] and req.fields["tx_burst"] == ["100000b"]
    assert req.fields["rx_limit"] == ["2000000bit"] and "rx_burst" not in req.fields


def test_conflist_for_a_v6_subnet_routes_v6():
    c = cni_install.conflist("lan", "fd00:5e::/64")
    assert c["plugins"][0]["ipam"]["routes"] == [{"dst": "::/0"}]
    assert c["cniVersion"] in cni.SUPPORTED_VERSIONS
