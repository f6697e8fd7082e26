"""deploy/kubernetes/: the DaemonSet and its companions, checked without a cluster.

No cluster runs here, so this proves what can be proven offline:

1. The API schema: `kubernetes-validate --strict` (an unknown field is an
   error) passes every manifest against KUBERNETES_VERSIONS, and reports
   each document as checked (a kind it has no schema for only warns, so a
   misspelled kind would otherwise pass); the NetworkAttachmentDefinition,
   a Multus CRD it has no schema for, is checked here against the CRD's.
2. What the API server and a reviewer check that the schema can't: host
   network, privilege only where Bidirectional propagation demands it,
   mounts that match volumes and the paths node.sh uses, the image never
   pulled, probes and commands the real CLI parser accepts.
3. node.sh, the script the pods run, runs here against a scratch tree
   standing for the node (VNETSHARE_NODE_ROOT): its choice of uplink, its
   refusals, and the real `vnetshare cni install` writing the real plugin
   file, which then answers the network configs as a runtime calls it.
"""
from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vnetshare.frontends.cli import get_parser

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes"
MANIFESTS = sorted(DEPLOY.glob("*.yaml"))
# The oldest and the newest Kubernetes release supported upstream when these
# were written (2026-11): 1.35 and 1.37.
KUBERNETES_VERSIONS = ("1.35.0", "1.37.0")
IMAGE = "localhost/vnetshare:0.1.0"
SOCKET = "/run/vnetshare/control.sock"
NAD_KIND = "NetworkAttachmentDefinition"
NODE = "worker-1"


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def one(kind: str, path: Path = DEPLOY / "vnetshare.yaml") -> dict:
    found = [d for d in load(path) if d["kind"] == kind]
    assert len(found) == 1, f"{path.name}: {len(found)} documents of kind {kind}"
    return found[0]


def kubernetes_validate(*paths: Path) -> subprocess.CompletedProcess:
    """kubernetes-validate --strict against every version, from this Python's environment."""
    argv = [sys.executable, "-m", "kubernetes_validate", "--strict"]
    for v in KUBERNETES_VERSIONS:
        argv += ["-k", v]
    return subprocess.run(argv + [str(p) for p in paths], capture_output=True, text=True, timeout=300)


def validation_problems(path: Path) -> list[str]:
    """What is wrong with @path by kubernetes-validate's verdict: a non-zero
    exit, an error, a warning other than the NetworkAttachmentDefinition's
    missing schema, or a document it did not report as passed."""
    p = kubernetes_validate(path)
    out = p.stdout + p.stderr
    problems = [] if p.returncode == 0 else [f"exit status {p.returncode}"]
    problems += [line for line in out.splitlines() if line.startswith("ERROR")]
    problems += [line for line in out.splitlines() if line.startswith("WARN")
                 and f"Couldn't find schema for kind {NAD_KIND} " not in line]
    for doc in load(path):
        for v in KUBERNETES_VERSIONS:
            mm = ".".join(v.split(".")[:2])
            if doc.get("kind") == NAD_KIND:
                want = f"Couldn't find schema for kind {NAD_KIND} with api version k8s.cni.cncf.io/v1 " \
                       f"for kubernetes version {mm}"
            else:
                want = f"passed for resource {str(doc.get('kind')).lower()}/{doc['metadata']['name']} " \
                       f"against version {mm}"
            if want not in out:
                problems.append(f"not reported: {want!r}")
    return [f"{path.name}: {x}" for x in problems] + ([f"output:\n{out}"] if problems else [])


# --- 1. the schema ------------------------------------------------------------------------------

def test_the_manifests_are_there():
    assert {p.name for p in MANIFESTS} >= {"vnetshare.yaml", "network-attachment.yaml", "example-pod.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_validate_strict_passes(path):
    assert validation_problems(path) == []


def test_kubernetes_validate_strict_catches_a_misspelled_field(tmp_path):
    """The positive control: strict validation is really on."""
    docs = load(DEPLOY / "vnetshare.yaml")
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    ds["spec"]["template"]["spec"]["hostNetwrok"] = ds["spec"]["template"]["spec"].pop("hostNetwork")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all(docs))
    problems = validation_problems(bad)
    assert problems and "'hostNetwrok' was unexpected" in "\n".join(problems)


def test_a_misspelled_kind_does_not_pass_as_a_warning(tmp_path):
    """kubernetes-validate only warns about a kind it has no schema for: the
    check above still fails it, because the document is not reported passed."""
    docs = load(DEPLOY / "vnetshare.yaml")
    next(d for d in docs if d["kind"] == "DaemonSet")["kind"] = "DaemonSett"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all(docs))
    p = kubernetes_validate(bad)
    assert p.returncode == 0, "kubernetes-validate no longer passes unknown kinds: this test can go"
    assert any("daemonsett/vnetshare" in x for x in validation_problems(bad))


def nad() -> dict:
    return one(NAD_KIND, DEPLOY / "network-attachment.yaml")


def test_network_attachment_definition_matches_its_crd(tmp_path):
    """The Multus CRD's schema (k8snetworkplumbingwg network-attachment-definition-client
    artifacts/networks-crd.yaml): spec has only `config`, a string; metadata
    is an ObjectMeta, checked strictly by wrapping it in a kind the validator knows."""
    d = nad()
    assert d["apiVersion"] == "k8s.cni.cncf.io/v1"
    assert set(d) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(d["spec"]) == {"config"} and isinstance(d["spec"]["config"], str)
    wrapped = tmp_path / "nad-metadata.yaml"
    wrapped.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": d["metadata"]}))
    assert validation_problems(wrapped) == []


def test_network_attachment_config_is_a_vnetshare_conflist():
    conf = json.loads(nad()["spec"]["config"])
    assert conf["name"] == nad()["metadata"]["name"]  # what Multus and runtimes report
    assert [p["type"] for p in conf["plugins"]] == ["vnetshare"]
    plugin = conf["plugins"][0]
    assert plugin["socket"] == SOCKET
    # cluster-wide config, per-node host-local pools would collide on one LAN
    assert plugin["ipam"]["type"] != "host-local"
    if plugin["ipam"]["type"] == "static":
        assert plugin.get("capabilities", {}).get("ips") is True, "static IPAM needs the pod's ips"


def example_pod_networks() -> list[dict]:
    pod = one("Pod", DEPLOY / "example-pod.yaml")
    return json.loads(pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"])


def test_example_pod_asks_for_the_attachment():
    pod = one("Pod", DEPLOY / "example-pod.yaml")
    nets = example_pod_networks()
    assert [n["name"] for n in nets] == [nad()["metadata"]["name"]]
    # a NetworkAttachmentDefinition is found in the pod's own namespace unless named
    assert nets[0].get("namespace", pod["metadata"]["namespace"]) == nad()["metadata"]["namespace"]
    for ip in nets[0]["ips"]:
        ipaddress.ip_interface(ip)
    for c in pod["spec"]["containers"]:
        assert (c["image"], c["imagePullPolicy"]) == (IMAGE, "Never")


# --- 2. what the schema can't see ----------------------------------------------------------------

def daemonset() -> dict:
    return one("DaemonSet")


def pod_spec() -> dict:
    return daemonset()["spec"]["template"]["spec"]


def container(name: str) -> dict:
    spec = pod_spec()
    found = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name]
    assert len(found) == 1, name
    return found[0]


def mounts(c: dict) -> dict[str, object]:
    """mountPath -> where it comes from: ('hostPath', path), ('configMap', name) or ('emptyDir',)."""
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    out = {}
    for m in c.get("volumeMounts", []):
        v = volumes[m["name"]]
        out[m["mountPath"]] = (("hostPath", v["hostPath"]["path"]) if "hostPath" in v
                               else ("configMap", v["configMap"]["name"]) if "configMap" in v
                               else (next(k for k in v if k != "name"),))
    return out


def cli(argv: list[str]):
    """argv as the real `vnetshare` parser reads it (a parse error fails the test)."""
    assert argv[0] == "vnetshare", argv
    try:
        return get_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"vnetshare refuses {shlex.join(argv)}")


def test_everything_lives_in_one_namespace_with_what_it_names():
    docs = load(DEPLOY / "vnetshare.yaml")
    ns = one("Namespace")["metadata"]["name"]
    assert all(d["metadata"].get("namespace") == ns for d in docs if d["kind"] != "Namespace")
    # a privileged pod with host namespaces: Pod Security admission must allow it there
    assert one("Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    spec = pod_spec()
    assert spec["serviceAccountName"] == one("ServiceAccount")["metadata"]["name"]
    assert one("ServiceAccount")["automountServiceAccountToken"] is False  # no API access at all
    assert spec["automountServiceAccountToken"] is False
    names = {v["name"] for v in spec["volumes"]}
    used = {m["name"] for c in spec["initContainers"] + spec["containers"] for m in c["volumeMounts"]}
    assert used == names, f"volumes without a mount: {names - used}; mounts without a volume: {used - names}"
    assert {v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v} == \
        {one("ConfigMap")["metadata"]["name"]}


def test_daemonset_runs_on_every_node_in_the_host_network():
    ds = daemonset()
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= labels.items()  # the API server insists
    assert ds["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    spec = pod_spec()
    assert spec["hostNetwork"] is True
    assert spec["hostPID"] is True  # /proc/PID/ns/net of other containers
    assert not spec.get("hostIPC")
    assert spec["priorityClassName"] == "system-node-critical"
    assert {"operator": "Exists"} in spec["tolerations"]  # every taint
    assert spec["terminationGracePeriodSeconds"] > 0


def test_the_image_is_never_pulled():
    for c in pod_spec()["initContainers"] + pod_spec()["containers"]:
        assert (c["image"], c["imagePullPolicy"]) == (IMAGE, "Never"), c["name"]


def test_every_container_has_requests_and_a_memory_limit():
    for c in pod_spec()["initContainers"] + pod_spec()["containers"]:
        r = c["resources"]
        assert {"cpu", "memory"} <= set(r["requests"]) and "memory" in r["limits"], c["name"]


def test_privilege_only_where_bidirectional_propagation_needs_it():
    """The API server refuses Bidirectional in an unprivileged container; the
    installer needs no privilege at all."""
    for c in pod_spec()["initContainers"] + pod_spec()["containers"]:
        bidirectional = any(m.get("mountPropagation") == "Bidirectional" for m in c["volumeMounts"])
        assert bool(c["securityContext"].get("privileged")) == bidirectional, c["name"]
    init = container("install-cni")["securityContext"]
    assert init["allowPrivilegeEscalation"] is False
    assert init["capabilities"]["drop"] == ["ALL"] and "add" not in init["capabilities"]


def test_mounts_are_the_paths_node_sh_and_the_plugin_use():
    daemon = container("vnetshare")
    assert mounts(daemon) == {
        "/etc/vnetshare/config": ("configMap", "vnetshare-config"),
        "/host/etc/vnetshare": ("hostPath", "/etc/vnetshare"),
        # the same path inside and out: the plugin on the host and the daemon
        # here name the socket, the state and the namespaces alike
        "/run/vnetshare": ("hostPath", "/run/vnetshare"),
        "/run/netns": ("hostPath", "/run/netns"),
        "/tmp": ("emptyDir",),
    }
    props = {m["mountPath"]: m.get("mountPropagation") for m in daemon["volumeMounts"]}
    assert props["/run/vnetshare"] == "Bidirectional"  # namespace pins reach the host
    assert props["/run/netns"] == "HostToContainer"  # the runtime's later namespaces appear
    assert mounts(container("install-cni")) == {
        "/etc/vnetshare/config": ("configMap", "vnetshare-config"),
        "/host/etc/vnetshare": ("hostPath", "/etc/vnetshare"),
        "/host/opt/cni/bin": ("hostPath", "/opt/cni/bin"),
        "/host/etc/cni/net.d": ("hostPath", "/etc/cni/net.d"),
        "/tmp": ("emptyDir",),
    }
    script = node_sh()
    for line in ("conf=$root/etc/vnetshare/config", "node_conf=$root/host/etc/vnetshare",
                 "bin_dir=$root/host/opt/cni/bin", "conf_dir=$root/host/etc/cni/net.d", f"socket={SOCKET}"):
        assert f"\n{line}\n" in script, line


def test_containers_run_node_sh_from_the_configmap():
    assert "node.sh" in one("ConfigMap")["data"]
    assert container("install-cni")["command"] == ["/bin/sh", "/etc/vnetshare/config/node.sh", "install-cni"]
    assert container("vnetshare")["command"] == ["/bin/sh", "/etc/vnetshare/config/node.sh", "daemon"]
    for name in ("install-cni", "vnetshare"):
        env = {e["name"]: e for e in container(name)["env"]}
        assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def test_probes_ask_the_daemon_on_its_socket():
    c = container("vnetshare")
    for probe in ("readinessProbe", "livenessProbe"):
        args = cli(c[probe]["exec"]["command"])
        assert (args.cmd, args.socket) == ("adapter", SOCKET), probe


# --- 3. node.sh, run ---------------------------------------------------------------------------

def node_sh() -> str:
    return one("ConfigMap")["data"]["node.sh"]


class Node:
    """A scratch tree standing for a node and the pod's mounts: the ConfigMap's
    keys as files (as the kubelet writes them), the node's /etc/vnetshare,
    its CNI directories and /sys/class/net."""

    def __init__(self, tmp: Path, config: dict[str, str] | None = None, files: dict[str, str] | None = None,
                 nics: tuple[str, ...] = ("lo", "eth0", "ens2f1")):
        self.tmp = tmp
        self.root = tmp / "node"
        data = copy.deepcopy(one("ConfigMap")["data"])
        data.update(config or {})
        self.conf = self.root / "etc/vnetshare/config"
        self.conf.mkdir(parents=True)
        for key, value in data.items():
            (self.conf / key).write_text(value)
        (self.root / "host/etc/vnetshare").mkdir(parents=True)
        for key, value in (files or {}).items():
            (self.root / "host/etc/vnetshare" / key).write_text(value)
        self.bin_dir = self.root / "host/opt/cni/bin"
        self.conf_dir = self.root / "host/etc/cni/net.d"
        self.bin_dir.mkdir(parents=True)
        self.conf_dir.mkdir(parents=True)
        (self.root / "sys/class/net").mkdir(parents=True)
        for nic in nics:
            (self.root / "sys/class/net" / nic).mkdir()
        self.fakebin = tmp / "bin"
        self.fakebin.mkdir()
        self.argv_log = tmp / "argv"

    def run(self, cmd: str, vnetshare: str = "record") -> subprocess.CompletedProcess:
        """node.sh CMD with `vnetshare` either recording its argv or the real CLI."""
        exe = self.fakebin / "vnetshare"
        if vnetshare == "record":
            exe.write_text(f"#!/bin/sh\nprintf '%s\\n' vnetshare \"$@\" > '{self.argv_log}'\n")
        else:
            exe.write_text(f"#!/bin/sh\nPYTHONPATH='{REPO}' exec '{sys.executable}' -m vnetshare \"$@\"\n")
        exe.chmod(0o755)
        script = self.tmp / "node.sh"
        script.write_text(node_sh())
        env = {"PATH": f"{self.fakebin}:/usr/bin:/bin", "VNETSHARE_NODE_ROOT": str(self.root),
               "NODE_NAME": NODE, "PYTHONDONTWRITEBYTECODE": "1"}
        return subprocess.run(["/bin/sh", str(script), cmd], env=env, capture_output=True, text=True, timeout=120)

    def argv(self) -> list[str] | None:
        return self.argv_log.read_text().splitlines() if self.argv_log.exists() else None


def test_no_uplink_chosen_stops_the_pod_saying_where_to_set_it(tmp_path):
    """The shipped ConfigMap chooses no uplink, and nothing is guessed."""
    node = Node(tmp_path)
    p = node.run("daemon")
    assert p.returncode == 1
    assert f"vnetshare: node {NODE}: no uplink chosen" in p.stderr
    assert f"uplink.{NODE}" in p.stderr and "/etc/vnetshare/uplink" in p.stderr
    assert node.argv() is None  # no daemon started


@pytest.mark.parametrize("config, files, uplink, source", [
    ({"uplink": "eth0"}, {}, "eth0", "ConfigMap vnetshare-config key uplink"),
    ({"uplink": "eth0"}, {"uplink": "ens2f1\n"}, "ens2f1", "the node's /etc/vnetshare/uplink"),
    ({"uplink": "eth0", f"uplink.{NODE}": "ens2f1"}, {"uplink": "eth0"}, "ens2f1",
     f"ConfigMap vnetshare-config key uplink.{NODE}"),
    ({"uplink": "ens2f1", "uplink.worker-2": "eth0"}, {}, "ens2f1", "ConfigMap vnetshare-config key uplink"),
    ({"uplink": "ens2f1", f"uplink.{NODE}": ""}, {"uplink": "# set by provisioning\n\n"}, "ens2f1",
     "ConfigMap vnetshare-config key uplink"),
], ids=["cluster-default", "node-file-over-default", "node-key-over-node-file", "other-nodes-key",
        "empty-values-fall-through"])
def test_daemon_uplink_is_the_most_specific_choice(tmp_path, config, files, uplink, source):
    node = Node(tmp_path, config, files)
    p = node.run("daemon")
    assert p.returncode == 0, p.stderr
    assert f"vnetshare: node {NODE}: uplink {uplink} (from {source})" in p.stdout
    args = cli(node.argv())
    assert (args.cmd, args.uplink, args.socket, args.state_dir) == ("daemon", uplink, SOCKET, "/run/vnetshare")


def test_daemon_args_reach_the_daemon(tmp_path):
    node = Node(tmp_path, {"uplink": "ens2f1", "daemon-args": "--offloads emulate  --storm-limit 500"})
    p = node.run("daemon")
    assert p.returncode == 0, p.stderr
    args = cli(node.argv())
    assert (args.offloads, args.storm_limit) == ("emulate", 500)


@pytest.mark.parametrize("uplink, says", [
    ("eth9", "uplink eth9 (from ConfigMap vnetshare-config key uplink) does not exist; this node has: "),
    ("../eth0", "uplink '../eth0' (from ConfigMap vnetshare-config key uplink) is not an interface name"),
])
def test_daemon_uplink_must_be_a_nic_of_the_node(tmp_path, uplink, says):
    node = Node(tmp_path, {"uplink": uplink})
    p = node.run("daemon")
    assert p.returncode == 1
    assert says in p.stderr
    if "does not exist" in says:
        assert "ens2f1" in p.stderr  # what it could have been
    assert node.argv() is None


def plugin_call(plugin: Path, command: str, conf: dict, tmp: Path) -> tuple[int, dict]:
    """The installed plugin run as a runtime runs it: CNI_* variables, the config on stdin."""
    env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": "c0ffee" * 4,
           "CNI_NETNS": "/proc/1/ns/net", "CNI_IFNAME": "net1", "CNI_PATH": str(tmp / "no-ipam"),
           "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=vnetshare-example"}
    p = subprocess.run([str(plugin)], input=json.dumps(conf), env=env, capture_output=True, text=True, timeout=60)
    return p.returncode, json.loads(p.stdout)


def runtime_config(conflist: dict, plugin: dict, tmp: Path, **runtime) -> dict:
    """One plugin's stdin, as runtimes build it from a conflist; the socket
    is moved to a path where no daemon can answer."""
    conf = {"cniVersion": conflist["cniVersion"], "name": conflist["name"], **plugin}
    conf["socket"] = str(tmp / "no-daemon.sock")
    if runtime:
        conf["runtimeConfig"] = runtime
    return conf


def assert_the_plugin_takes(plugin: Path, conflist: dict, tmp: Path, **runtime) -> None:
    """VERSION knows the conflist's cniVersion; ADD accepts every key and value
    and gets as far as asking the daemon (code 100: nothing answers)."""
    rc, out = plugin_call(plugin, "VERSION", {"cniVersion": conflist["cniVersion"]}, tmp)
    assert rc == 0 and conflist["cniVersion"] in out["supportedVersions"], out
    conf = runtime_config(conflist, conflist["plugins"][0], tmp, **runtime)
    rc, out = plugin_call(plugin, "ADD", conf, tmp)
    assert (rc, out["code"]) == (1, 100), out
    assert str(tmp / "no-daemon.sock") in out["msg"], out


def test_install_cni_secondary_writes_the_plugin_alone(tmp_path):
    node = Node(tmp_path)
    (node.conf_dir / "10-vnetshare.conflist").write_text("{}")  # an earlier primary install
    (node.conf_dir / "10-flannel.conflist").write_text("{}")  # the cluster's network: not ours
    p = node.run("install-cni", vnetshare="real")
    assert p.returncode == 0, p.stderr
    plugin = node.bin_dir / "vnetshare"
    assert plugin.stat().st_mode & stat.S_IXOTH and os.listdir(node.bin_dir) == ["vnetshare"]
    assert sorted(os.listdir(node.conf_dir)) == ["10-flannel.conflist"]
    assert "removed the 10-vnetshare.conflist of an earlier primary install" in p.stdout
    # Multus hands it the NetworkAttachmentDefinition's config with the pod's ips
    ips = example_pod_networks()[0]["ips"]
    assert_the_plugin_takes(plugin, json.loads(nad()["spec"]["config"]), tmp_path, ips=ips)


def test_install_cni_primary_needs_a_subnet(tmp_path):
    node = Node(tmp_path, {"cni-mode": "primary"})
    p = node.run("install-cni", vnetshare="real")
    assert p.returncode == 1
    assert f"primary mode needs a subnet: set subnet.{NODE}" in p.stderr
    assert os.listdir(node.bin_dir) == [] and os.listdir(node.conf_dir) == []


def test_install_cni_primary_writes_this_nodes_conflist(tmp_path):
    node = Node(tmp_path, {"cni-mode": "primary", "subnet": "10.9.0.0/24", f"subnet.{NODE}": "10.9.1.0/24",
                           "gateway": "10.9.1.254"})
    p = node.run("install-cni", vnetshare="real")
    assert p.returncode == 0, p.stderr
    assert "subnet 10.9.1.0/24 (from ConfigMap vnetshare-config key subnet.worker-1)" in p.stdout
    assert "warning" not in p.stderr
    conflist = json.loads((node.conf_dir / "10-vnetshare.conflist").read_text())
    assert conflist["name"] == "vnetshare"
    [plugin] = conflist["plugins"]
    assert (plugin["type"], plugin["socket"]) == ("vnetshare", SOCKET)
    assert plugin["ipam"]["type"] == "host-local"
    assert plugin["ipam"]["ranges"] == [[{"subnet": "10.9.1.0/24", "gateway": "10.9.1.254"}]]
    assert_the_plugin_takes(node.bin_dir / "vnetshare", conflist, tmp_path)


def test_install_cni_primary_warns_when_another_network_sorts_first(tmp_path):
    node = Node(tmp_path, {"cni-mode": "primary"}, {"subnet": "10.9.2.0/24"})
    (node.conf_dir / "05-cilium.conflist").write_text("{}")
    p = node.run("install-cni", vnetshare="real")
    assert p.returncode == 0, p.stderr
    assert "(from the node's /etc/vnetshare/subnet)" in p.stdout
    assert re.search(r"warning: /etc/cni/net.d/05-cilium.conflist sorts before 10-vnetshare.conflist", p.stderr)


def test_install_cni_refuses_an_unknown_mode(tmp_path):
    node = Node(tmp_path, {f"cni-mode.{NODE}": "only"})
    p = node.run("install-cni", vnetshare="real")
    assert p.returncode == 1
    assert f"cni-mode 'only' (from ConfigMap vnetshare-config key cni-mode.{NODE})" in p.stderr
    assert os.listdir(node.bin_dir) == []


@pytest.mark.parametrize("mode, files", [("secondary", {}), ("primary", {"subnet": "10.9.3.0/24"})])
def test_install_cni_commands_are_what_the_cli_takes(tmp_path, mode, files):
    """Every option node.sh gives `vnetshare cni install` means what node.sh means."""
    node = Node(tmp_path, {"cni-mode": mode}, files)
    p = node.run("install-cni")
    assert p.returncode == 0, p.stderr
    args = cli(node.argv())
    assert (args.cmd, args.ccmd, args.standalone) == ("cni", "install", True)
    assert args.bin_dir == str(node.bin_dir)
    if mode == "primary":
        assert (args.conf_dir, args.subnet, args.name, args.socket) == \
            (str(node.conf_dir), "10.9.3.0/24", "vnetshare", SOCKET)
    else:
        assert args.conf_dir is None
