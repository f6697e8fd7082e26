"""The CNI plugin driven the way cnitool and the runtimes drive it: CNI_*
variables in the environment, the network config on stdin, JSON on stdout.

Each test runs the real `vnetshare-cni` executable against a real daemon
(the `system` fixture: a LAN namespace, a veth uplink, the daemon) and the
reference host-local IPAM plugin from containernetworking-plugins, with its
leases in the test's own directory.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from runtimes import NET, attachments, conflist, leases_held, plugin_config
from system import LAN_NS, LAN_V4, LAN_V6, UPLINK, wait_for
from vnetshare.frontends import cni
from vnetshare.linux import netns

CNI_PATH = "/usr/lib/cni"
CID = "f" * 64


def plugin_argv() -> list[str]:
    exe = shutil.which("vnetshare-cni")
    return [exe] if exe else [sys.executable, "-P", "-m", "vnetshare.frontends.cni"]


class Plugin:
    """Runs the plugin; remembers the network config it was built with."""

    def __init__(self, system, tmp_path):
        self.system = system
        self.leases = str(tmp_path / "leases")
        self.made_ns: list[str] = []

    def conf(self, version: str = "1.0.0", ipam: bool = True, **own) -> dict:
        """The plugin's stdin: the conflist the runtime tests use (runtimes.conflist)."""
        c = plugin_config(conflist(self.system.sock, self.leases), version, **own)
        if not ipam:
            del c["ipam"]
        return c

    def run(self, command: str, conf: dict | bytes | None, container: str = CID, ns: str | None = "",
            ifname: str = "eth0", args: str = "IgnoreUnknown=1;K8S_POD_NAME=web", **extra) -> tuple[int, dict]:
        env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": container,
               "CNI_NETNS": ns or "", "CNI_IFNAME": ifname, "CNI_ARGS": args, "CNI_PATH": CNI_PATH, **extra}
        env = {k: v for k, v in env.items() if v is not None}
        data = conf if isinstance(conf, bytes) else json.dumps(conf or {}).encode()
        p = subprocess.run(plugin_argv(), input=data, env=env, capture_output=True, timeout=60)
        out = p.stdout.decode()
        assert out.count("\n") <= 1, f"more than one line on stdout: {out!r}"
        return p.returncode, (json.loads(out) if out.strip() else {})

    def ok(self, command: str, conf: dict, **kw) -> dict:
        code, out = self.run(command, conf, **kw)
        assert code == 0, f"{command}: exit {code}: {out}\n{self.system.log()}"
        return out

    def fails(self, command: str, conf, code: int, *words: str, **kw) -> dict:
        status, out = self.run(command, conf, **kw)
        assert status != 0, f"{command} succeeded: {out}"
        assert out.get("code") == code, out
        for w in words:
            assert w in out["msg"], (w, out)
        assert "\n" not in out["msg"], out
        return out

    def netns(self, name: str) -> str:
        path = netns.create(name)
        self.made_ns.append(name)
        return path

    def leases_held(self) -> list[str]:
        return leases_held(self.leases)

    def ours(self) -> list[dict]:
        return list(attachments(self.system).values())

    def close(self) -> None:
        for name in self.made_ns:
            netns.quietly(netns.delete, name)


@pytest.fixture
def plug(system, tmp_path):
    p = Plugin(system, tmp_path)
    try:
        yield p
    finally:
        p.close()


def ping(ns: str, addr: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", addr],
                          capture_output=True, text=True, timeout=20)


# --- VERSION ---------------------------------------------------------------------------------

@pytest.mark.parametrize("version", cni.SUPPORTED_VERSIONS)
def test_version_answers_each_supported_version(plug, version):
    out = plug.ok("VERSION", {"cniVersion": version}, container="dummy", ns="dummy", ifname="dummy")
    assert out == {"cniVersion": version, "supportedVersions": list(cni.SUPPORTED_VERSIONS)}


def test_version_with_an_unknown_version_lists_what_it_supports(plug):
    out = plug.ok("VERSION", {"cniVersion": "9.9.9"})
    assert "1.1.0" in out["supportedVersions"] and "0.4.0" in out["supportedVersions"]


# --- ADD, CHECK, DEL ------------------------------------------------------------------------

def test_add_check_del_with_host_local(plug, system):
    ns = plug.netns("ctr1")
    conf = plug.conf()
    res = plug.ok("ADD", conf, ns=ns)
    assert res["cniVersion"] == "1.0.0"
    [iface] = res["interfaces"]
    assert iface["name"] == "eth0" and iface["sandbox"] == ns
    addrs = sorted(ip["address"] for ip in res["ips"])
    assert addrs == ["198.18.0.100/24", "fd00:5e::100/64"], res
    assert all("version" not in ip and ip["interface"] == 0 for ip in res["ips"])
    # the partition: named from the container id, labelled, addresses in the netns
    [part] = plug.ours()
    assert part["name"] == cni.attachment_name(CID, "eth0") and len(part["name"]) <= 15
    assert part["labels"] == {"cni.network": NET, "cni.container": CID, "cni.ifname": "eth0"}
    assert part["netns_source"] == ns and part["mac"] == iface["mac"]
    assert set(netns.addresses("eth0", "ctr1")) >= {"198.18.0.100/24", "fd00:5e::100/64"}
    # replies came back from the LAN host, v4 and v6 (default routes from IPAM)
    for addr in (LAN_V4, LAN_V6):
        p = ping("ctr1", addr)
        assert p.returncode == 0, p.stdout + p.stderr
    assert plug.leases_held() == ["198.18.0.100", "fd00:5e::100"]
    # CHECK against the result ADD gave
    plug.ok("CHECK", dict(conf, prevResult=res), ns=ns)
    # DEL: partition, lease and device gone; DEL again is fine, also without a netns
    plug.ok("DEL", dict(conf, prevResult=res), ns=ns)
    assert plug.ours() == [] and plug.leases_held() == []
    assert [link.ifname for link in netns.links("ctr1")] == ["lo"]
    plug.ok("DEL", conf, ns=ns)
    plug.ok("DEL", conf, ns="")


@pytest.mark.parametrize("version", ["0.4.0", "1.1.0"])
def test_result_format_follows_the_config_version(plug, version):
    ns = plug.netns("ctrv")
    res = plug.ok("ADD", plug.conf(version), ns=ns)
    assert res["cniVersion"] == version
    if version == "0.4.0":
        assert sorted(ip["version"] for ip in res["ips"]) == ["4", "6"]
    else:
        assert res["interfaces"][0]["mtu"] == 1500 and all("version" not in ip for ip in res["ips"])
    plug.ok("DEL", plug.conf(version), ns=ns)


def test_add_into_a_proc_pid_netns_outlives_its_process_and_name(plug, system):
    """containerd passes /proc/PID/ns/net: the partition must not depend on
    that path (or a /run/netns name) staying valid."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        assert wait_for(lambda: os.readlink(path) != os.readlink("/proc/self/ns/net"), 5)
        res = plug.ok("ADD", plug.conf(), ns=path, container="default-ctr9")
    finally:
        holder.kill()
        holder.wait()
    [part] = plug.ours()
    shown = system.cli_json("partition", "show", part["name"])
    assert shown["state"] == "running", shown
    assert shown["netns"] != path and shown["netns"].startswith(system.dir)  # pinned under the daemon's dir
    # the namespace lives on pinned: its device still answers from the LAN host
    lan = subprocess.run(["ip", "netns", "exec", LAN_NS, "ping", "-c", "2", "-i", "0.2", "-W", "2",
                          res["ips"][0]["address"].split("/")[0]], capture_output=True, text=True, timeout=20)
    assert lan.returncode == 0, lan.stdout + lan.stderr
    # containerd's DEL: CNI_NETNS empty
    plug.ok("DEL", plug.conf(), ns="", container="default-ctr9")
    assert plug.ours() == [] and plug.leases_held() == []
    assert not os.path.exists(shown["netns"])


def test_mac_from_cni_args_and_runtime_config(plug):
    ns = plug.netns("ctrm")
    res = plug.ok("ADD", plug.conf(), ns=ns, args="IgnoreUnknown=1;MAC=02:00:00:aa:bb:01")
    assert res["interfaces"][0]["mac"] == "02:00:00:aa:bb:01"
    plug.ok("DEL", plug.conf(), ns=ns)
    conf = plug.conf(runtimeConfig={"mac": "02:00:00:aa:bb:02"})
    res = plug.ok("ADD", conf, ns=ns, args="IgnoreUnknown=1;MAC=02:00:00:aa:bb:01")
    assert res["interfaces"][0]["mac"] == "02:00:00:aa:bb:02"  # runtimeConfig wins
    assert netns.link("eth0", "ctrm").mac == "02:00:00:aa:bb:02"
    plug.ok("DEL", conf, ns=ns)


def test_own_keys_reach_the_partition(plug, system):
    ns = plug.netns("ctrk")
    conf = plug.conf(mtu=1400, vlan=7, txLimit="100mbit", rxLimit="20kpps", stormLimit=50,
                     allowIPs=["10.9.0.0/16"])
    plug.ok("ADD", conf, ns=ns)
    [part] = plug.ours()
    shown = system.cli_json("partition", "show", part["name"])
    assert (shown["mtu"], shown["vlan"], shown["storm_limit_pps"]) == (1400, 7, 50)
    assert shown["tx_limit_bps"] == 100_000_000 and shown["rx_limit_pps"] == 20_000, shown
    assert shown["allow_ips"] == ["10.9.0.0/16"]
    assert netns.link("eth0", "ctrk").mtu == 1400
    plug.ok("DEL", conf, ns=ns)


def test_l2_only_without_ipam(plug):
    ns = plug.netns("ctrl2")
    res = plug.ok("ADD", plug.conf(ipam=False), ns=ns)
    assert res["ips"] == [] and res["interfaces"][0]["name"] == "eth0"
    assert netns.link("eth0", "ctrl2").up
    plug.ok("DEL", plug.conf(ipam=False), ns=ns)
    assert plug.ours() == []


def test_add_again_without_del_replaces_the_stale_partition(plug):
    ns1, ns2 = plug.netns("ctra"), plug.netns("ctrb")
    plug.ok("ADD", plug.conf(), ns=ns1)
    res = plug.ok("ADD", plug.conf(), ns=ns2)  # podman start after a crash: a new netns
    [part] = plug.ours()
    assert part["netns_source"] == ns2 and part["name"] == cni.attachment_name(CID, "eth0")
    # the old lease went back: one address per family is held, the new one
    held = plug.leases_held()
    assert len(held) == 2 and res["ips"][0]["address"].split("/")[0] in held, (held, res)
    assert [link.ifname for link in netns.links("ctra")] == ["lo"]
    plug.ok("DEL", plug.conf(), ns=ns2)


def test_check_finds_what_changed(plug, system):
    ns = plug.netns("ctrc")
    conf = plug.conf()
    res = plug.ok("ADD", conf, ns=ns)
    wrong = json.loads(json.dumps(res))
    wrong["ips"][0]["address"] = "198.18.0.199/24"
    plug.fails("CHECK", dict(conf, prevResult=wrong), cni.ERR_CHECK, "addresses", ns=ns)
    other = plug.netns("ctrd")
    plug.fails("CHECK", dict(conf, prevResult=res), cni.ERR_CHECK, "another network namespace", ns=other)
    plug.fails("CHECK", conf, cni.ERR_INVALID_CONFIG, "prevResult", ns=ns)
    plug.fails("CHECK", dict(conf, prevResult=res), cni.ERR_UNKNOWN_CONTAINER, "no partition",
               ns=ns, container="someone-else")
    plug.ok("DEL", conf, ns=ns)
    plug.fails("CHECK", dict(conf, prevResult=res), cni.ERR_UNKNOWN_CONTAINER, ns=ns)


def test_del_of_a_partition_removed_behind_its_back(plug, system):
    ns = plug.netns("ctre")
    plug.ok("ADD", plug.conf(), ns=ns)
    [part] = plug.ours()
    system.cli("partition", "delete", part["name"])
    plug.ok("DEL", plug.conf(), ns=ns)
    assert plug.leases_held() == []


def test_del_after_a_daemon_restart(plug, system):
    ns = plug.netns("ctrr")
    plug.ok("ADD", plug.conf(), ns=ns)
    system.stop_daemon()
    system.start_daemon()
    [part] = plug.ours()
    assert system.cli_json("partition", "show", part["name"])["state"] == "running"
    plug.ok("DEL", plug.conf(), ns=ns)
    assert plug.ours() == [] and plug.leases_held() == []


# --- STATUS and GC ---------------------------------------------------------------------------

def test_status_follows_the_daemon(plug, system):
    conf = plug.conf("1.1.0")
    plug.ok("STATUS", conf)
    system.stop_daemon()
    plug.fails("STATUS", conf, cni.ERR_NOT_AVAILABLE, "not available", system.sock)
    plug.fails("STATUS", plug.conf("1.0.0"), cni.ERR_INCOMPATIBLE_VERSION, "1.1.0")
    system.start_daemon()
    plug.ok("STATUS", conf)


def test_gc_removes_only_its_own_stale_attachments(plug, system):
    keep_ns, drop_ns = plug.netns("ctrg1"), plug.netns("ctrg2")
    conf = plug.conf("1.1.0")
    plug.ok("ADD", conf, ns=keep_ns, container="keep")
    plug.ok("ADD", conf, ns=drop_ns, container="drop")
    other = dict(conf, name="othernet", ipam={})
    plug.ok("ADD", other, ns=drop_ns, container="drop", ifname="eth1")   # another network's
    system.create("manual")                                               # not the plugin's at all
    plug.ok("GC", dict(conf, **{"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}))
    names = {p["labels"].get("cni.container") for p in plug.ours()}
    assert names == {"keep"}
    assert plug.leases_held() == ["198.18.0.100", "fd00:5e::100"]   # "drop"'s lease released
    everything = {p["name"] for p in system.cli_json("partition", "list")}
    assert "manual" in everything and cni.attachment_name("drop", "eth1") in everything
    plug.ok("DEL", other, ns=drop_ns, container="drop", ifname="eth1")
    plug.ok("DEL", conf, ns=keep_ns, container="keep")


# --- failures ----------------------------------------------------------------------------------

def test_add_with_the_daemon_stopped_says_so_and_keeps_no_lease(plug, system):
    ns = plug.netns("ctrx")
    system.stop_daemon()
    out = plug.fails("ADD", plug.conf(), cni.ERR_NO_DAEMON, "no daemon running", system.sock, ns=ns)
    assert "vnetshare daemon" in out["msg"] and out["details"]
    assert plug.leases_held() == []
    system.start_daemon()


def test_add_failing_in_the_daemon_releases_the_lease(plug, system):
    ns = plug.netns("ctry")
    netns.veth_pair("eth0", "ctry-peer", "ctry", "ctry")  # the ifname is taken in that netns
    out = plug.fails("ADD", plug.conf(), cni.ERR_DAEMON_REFUSED, "eth0", "already exists", ns=ns)
    assert "EEXIST" in out["details"]
    assert plug.leases_held() == [] and plug.ours() == []


def _nothing_made(plug, ns_name: str) -> None:
    """A refused ADD left no partition of ours, no lease and no device."""
    assert plug.ours() == [] and plug.leases_held() == []
    assert [link.ifname for link in netns.links(ns_name)] == ["lo"]


def test_add_with_a_mac_someone_has_is_code_7_naming_the_key_and_owner(plug, system):
    """CNI_ARGS MAC= is what Multus fills from a pod's annotation: a pod must
    not get another partition's MAC, nor the uplink's, through it."""
    ns = plug.netns("ctrmac")
    taken = system.create("manual")["mac"]
    out = plug.fails("ADD", plug.conf(), cni.ERR_INVALID_CONFIG, "CNI_ARGS MAC", taken, "partition 'manual'",
                     ns=ns, args=f"IgnoreUnknown=1;MAC={taken}")
    assert "CNI_ARGS MAC" in out["details"]
    _nothing_made(plug, "ctrmac")
    uplink = netns.link(UPLINK).mac
    plug.fails("ADD", plug.conf(runtimeConfig={"mac": uplink}), cni.ERR_INVALID_CONFIG, "runtimeConfig.mac",
               uplink, f"uplink {UPLINK}", ns=ns)
    _nothing_made(plug, "ctrmac")
    # positive control: the same call with a MAC no one has
    res = plug.ok("ADD", plug.conf(), ns=ns, args="IgnoreUnknown=1;MAC=02:00:00:aa:bb:07")
    assert res["interfaces"][0]["mac"] == "02:00:00:aa:bb:07" and len(plug.leases_held()) == 2
    plug.ok("DEL", plug.conf(), ns=ns)


def test_an_ipam_address_another_partition_has_is_code_7_and_the_lease_goes_back(plug, system):
    ns = plug.netns("ctrip")
    system.create("holder", "--ip", "198.18.0.100/24")   # host-local's first address
    out = plug.fails("ADD", plug.conf(), cni.ERR_INVALID_CONFIG, "IPAM plugin 'host-local'", "198.18.0.100/24",
                     "partition 'holder'", ns=ns)
    assert "range" in out["details"]
    _nothing_made(plug, "ctrip")
    # an address no host may have: refused before the daemon is asked
    static = {"type": "static", "addresses": [{"address": "198.18.0.255/24"}]}
    plug.fails("ADD", dict(plug.conf(), ipam=static), cni.ERR_INVALID_CONFIG, "IPAM plugin 'static'",
               "198.18.0.255/24", "broadcast address", ns=ns)
    _nothing_made(plug, "ctrip")
    # positive control: the next address host-local hands out is free
    res = plug.ok("ADD", plug.conf(), ns=ns)
    assert res["ips"][0]["address"] == "198.18.0.101/24", res
    plug.ok("DEL", plug.conf(), ns=ns)
    assert plug.leases_held() == []


@pytest.mark.parametrize("conf_change, code, words", [
    ({"txlimit": "100mbit"}, cni.ERR_UNSUPPORTED_FIELD, ["'txlimit'"]),
    ({"vlan": 5000}, cni.ERR_INVALID_CONFIG, ["'vlan'", "5000"]),
    ({"mtu": "big"}, cni.ERR_INVALID_CONFIG, ["'mtu'"]),
    ({"mac": "zz:00"}, cni.ERR_INVALID_CONFIG, ["mac", "zz:00"]),
    ({"txLimit": "100 parsecs"}, cni.ERR_INVALID_CONFIG, ["'txLimit'"]),
    ({"socket": "relative.sock"}, cni.ERR_INVALID_CONFIG, ["'socket'"]),
    ({"type": "bridge"}, cni.ERR_INVALID_CONFIG, ["'type'", "bridge"]),
    ({"cniVersion": "2.0.0"}, cni.ERR_INCOMPATIBLE_VERSION, ["2.0.0", "1.1.0"]),
    ({"ipam": {"type": "no-such-ipam"}}, cni.ERR_IPAM, ["no-such-ipam", CNI_PATH]),
])
def test_bad_config_is_one_line_naming_the_key(plug, conf_change, code, words):
    ns = plug.netns("ctrbad")
    plug.fails("ADD", dict(plug.conf(), **conf_change), code, *words, ns=ns)
    assert plug.ours() == [] and plug.leases_held() == []


@pytest.mark.parametrize("env, code, words", [
    ({"CNI_NETNS": ""}, cni.ERR_INVALID_ENV, ["CNI_NETNS"]),
    ({"CNI_COMMAND": "FROB"}, cni.ERR_INVALID_ENV, ["FROB"]),
    ({"CNI_ARGS": "FOO=1"}, cni.ERR_INVALID_ENV, ["'FOO'"]),
    ({"CNI_PATH": None}, cni.ERR_INVALID_ENV, ["CNI_PATH"]),
])
def test_bad_environment(plug, env, code, words):
    ns = plug.netns("ctrenv")
    extra = dict(env)
    command = extra.pop("CNI_COMMAND", "ADD")
    ns_arg = extra.pop("CNI_NETNS", ns)
    args = extra.pop("CNI_ARGS", "IgnoreUnknown=1")
    plug.fails(command, plug.conf(), code, *words, ns=ns_arg, args=args, **extra)


def test_stdin_that_is_not_json(plug):
    plug.fails("ADD", b"{not json", cni.ERR_DECODE, "not JSON", ns="/run/netns/x")


# --- install ------------------------------------------------------------------------------------

def test_install_links_and_writes_a_conflist_podman_would_read(tmp_path, plug):
    bin_dir, conf_dir = tmp_path / "bin", tmp_path / "net.d"
    p = subprocess.run(["vnetshare", "cni", "install", "--bin-dir", str(bin_dir), "--conf-dir", str(conf_dir),
                        "--name", "lan", "--subnet", "198.18.0.0/24", "--gateway", LAN_V4],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    link = bin_dir / "vnetshare"
    assert os.path.islink(link) and os.path.basename(os.readlink(link)) == "vnetshare-cni"
    conflist = json.loads((conf_dir / "10-lan.conflist").read_text())
    assert conflist["name"] == "lan" and conflist["plugins"][0]["type"] == "vnetshare"
    assert conflist["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "198.18.0.0/24", "gateway": LAN_V4}]]
    # the link is the plugin: VERSION through it
    v = subprocess.run([str(link)], input=b'{"cniVersion":"1.0.0"}', env={"CNI_COMMAND": "VERSION"},
                       capture_output=True, timeout=30)
    assert json.loads(v.stdout)["supportedVersions"] == list(cni.SUPPORTED_VERSIONS)
    bad = subprocess.run(["vnetshare", "cni", "install", "--bin-dir", str(bin_dir), "--conf-dir",
                          str(conf_dir)], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "--subnet" in bad.stderr


def test_standalone_plugin_works_without_vnetshare_installed(tmp_path, plug):
    """What a DaemonSet puts on a node: one file that needs only python3."""
    bin_dir = tmp_path / "bin"
    p = subprocess.run(["vnetshare", "cni", "install", "--standalone", "--bin-dir", str(bin_dir)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    exe = bin_dir / "vnetshare"
    assert not os.path.islink(exe) and os.access(exe, os.X_OK)
    # -I: no site-packages, no PYTHONPATH: the installed vnetshare is out of reach
    ns = plug.netns("ctrsa")
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "standalone", "CNI_NETNS": ns, "CNI_IFNAME": "eth0",
           "CNI_PATH": CNI_PATH, "PATH": os.environ["PATH"]}
    run = subprocess.run([sys.executable, "-I", str(exe)], input=json.dumps(plug.conf()).encode(),
                         env=env, capture_output=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["ips"][0]["address"] == "198.18.0.100/24"
    run = subprocess.run([sys.executable, "-I", str(exe)], input=json.dumps(plug.conf()).encode(),
                         env=dict(env, CNI_COMMAND="DEL"), capture_output=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert plug.ours() == []
