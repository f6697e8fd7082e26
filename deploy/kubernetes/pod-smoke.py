"""pod-smoke.py - the DaemonSet's pod, played by podman on this machine, without a cluster

    deploy/kubernetes/build-image.sh                      # the image tarball
    ./scripts/sandbox.sh python3 deploy/kubernetes/pod-smoke.py build/images/vnetshare-0.1.0.image.tar

Reads vnetshare.yaml and runs its two containers as a kubelet would, on a
node that is this sandbox (fresh network and mount namespaces, so nothing
here touches the host):

0. The image imported as build-image.sh tells a node to
   (`ctr -n k8s.io images import`) into a containerd of our own, listed
   under the name the pod spec gives, and run.
1. The node: /run made a shared mount (systemd does that on a real node, and
   mount propagation needs it); a veth pair whose end vns-up0 is the node's
   NIC and whose other end sits in the namespace vns-lan, 198.18.0.1/24,
   playing the LAN; the uplink chosen by the node's file /etc/vnetshare/uplink.
2. Each container with the pod spec's command, env, mounts (hostPath: the
   same path for /run/..., a scratch directory for /etc and /opt; ConfigMap:
   its keys as files; emptyDir: a tmpfs; propagation as given), security
   context (privileged, capabilities dropped, read-only root, no new
   privileges), hostNetwork and hostPID. The initContainer runs in primary
   mode, so it writes the conflist too.
3. The readiness probe's command until it succeeds.
4. What containerd's CRI does for a pod: a namespace pinned at
   /run/netns/cni-<id> after the daemon started (it must appear in the pod
   through HostToContainer propagation), then the installed plugin run on
   the node with the installed conflist, CNI_NETNS that path: ADD; the pod
   pings the LAN; the daemon's pin of its namespace is seen on the node
   (Bidirectional propagation).
5. The daemon's container replaced, as a rolling update does: ADD of a second
   pod and its ping, so a new daemon works; whether the first pod's traffic
   survived is reported, not required.
6. DEL of both pods: no partition and no pin left on the node.

Prints each step and exits 0 only if every requirement held. The
podman store, the containers, the links, the namespaces and the cgroups are
removed at the end, also on failure. Not run in CI: it needs an image built
with the network (build-image.sh) and takes about a minute.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_NAME = "smoke-node"
UPLINK, LAN_END, LAN_NS, LAN_IP = "vns-up0", "vns-lan0", "vns-lan", "198.18.0.1"
SUBNET = "198.18.0.0/24"


def sh(*argv: str, check: bool = True, timeout: float = 120, env: dict | None = None,
       input: str | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check and p.returncode != 0:
        raise SystemExit(f"pod-smoke: {' '.join(argv)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p


def step(text: str) -> None:
    print(f"pod-smoke: {text}", flush=True)


def wait(what: str, probe, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if probe():
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"pod-smoke: {what}: not within {timeout:.0f} s")
        time.sleep(0.5)


class Node:
    def __init__(self, image_tar: str):
        here = os.readlink("/proc/self/ns/net")
        if os.environ.get("VNETSHARE_SANDBOX") != here or \
                os.readlink("/proc/self/ns/mnt") == os.environ.get("VNETSHARE_HOST_MNTNS"):
            raise SystemExit("pod-smoke: run me inside ./scripts/sandbox.sh")
        docs = [d for d in yaml.safe_load_all(open(os.path.join(HERE, "vnetshare.yaml"))) if d]
        self.configmap = next(d for d in docs if d["kind"] == "ConfigMap")
        self.pod = next(d for d in docs if d["kind"] == "DaemonSet")["spec"]["template"]["spec"]
        self.image_tar = image_tar
        self.tmp = tempfile.mkdtemp(prefix="vnetshare-smoke.", dir="/var/tmp")
        self.cgroup = f"vnetshare-smoke-{os.getpid()}"
        self.containers: list[str] = []
        self.netns: list[str] = []

    # -- the machine ------------------------------------------------------------
    def setup(self) -> None:
        t = self.tmp
        for d in ("storage", "tmp", "configmap", "node"):
            os.makedirs(f"{t}/{d}")
        sh("mount", "--make-rshared", "/run")
        sh("mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/dev/shm")
        for d in ("/var/lib/containers", "/var/lib/cni"):
            if os.path.isdir(d):
                sh("mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", d)
        sh("mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", f"{t}/storage")
        with open(f"{t}/containers.conf", "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n')
        with open(f"{t}/storage.conf", "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{t}/storage"\n'
                    'runroot = "/run/vnetshare-smoke-storage"\n')
        os.environ.update(CONTAINERS_CONF=f"{t}/containers.conf", CONTAINERS_STORAGE_CONF=f"{t}/storage.conf",
                          TMPDIR=f"{t}/tmp")
        loaded = sh("podman", "load", "-q", "-i", self.image_tar).stdout.strip()
        self.image = self.pod["containers"][0]["image"]
        step(f"{loaded}; the pod spec names {self.image}")
        # the ConfigMap as the kubelet writes it, primary mode
        data = dict(self.configmap["data"], **{"cni-mode": "primary", f"subnet.{NODE_NAME}": SUBNET})
        for key, value in data.items():
            with open(f"{t}/configmap/{key}", "w") as f:
                f.write(value)
        # the NIC and the LAN
        sh("ip", "link", "add", UPLINK, "type", "veth", "peer", "name", LAN_END)
        sh("ip", "netns", "add", LAN_NS)
        self.netns.append(LAN_NS)
        sh("ip", "link", "set", LAN_END, "netns", LAN_NS)
        sh("ip", "-n", LAN_NS, "addr", "add", f"{LAN_IP}/24", "dev", LAN_END)
        sh("ip", "-n", LAN_NS, "link", "set", LAN_END, "up")
        sh("ip", "-n", LAN_NS, "link", "set", "lo", "up")
        sh("ip", "link", "set", UPLINK, "up")
        os.makedirs(f"{t}/node/etc/vnetshare")
        with open(f"{t}/node/etc/vnetshare/uplink", "w") as f:
            f.write(f"{UPLINK}\n")
        step(f"node {NODE_NAME}: uplink {UPLINK} (in its /etc/vnetshare/uplink), LAN host {LAN_IP} in {LAN_NS}")

    def host_path(self, path: str) -> str:
        """A hostPath on this node: /run is the sandbox's own, the rest a scratch tree."""
        return path if path.startswith("/run/") else f"{self.tmp}/node{path}"

    # -- a container of the pod spec -------------------------------------------
    def podman_run(self, c: dict, name: str, detach: bool) -> subprocess.CompletedProcess:
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        argv = ["podman", "run", "--name", name, "--pull=never", "--systemd=false",
                "--cgroup-parent", f"/{self.cgroup}"]
        if self.pod.get("hostNetwork"):
            argv += ["--network", "host"]
        if self.pod.get("hostPID"):
            argv += ["--pid", "host"]
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            argv.append("--privileged")
        for cap in sc.get("capabilities", {}).get("drop", []):
            argv += ["--cap-drop", cap]
        for cap in sc.get("capabilities", {}).get("add", []):
            argv += ["--cap-add", cap]
        if sc.get("readOnlyRootFilesystem"):
            argv += ["--read-only", "--read-only-tmpfs=false"]  # like the kubelet: no tmpfs on /run or /tmp
        if sc.get("allowPrivilegeEscalation") is False:
            argv += ["--security-opt", "no-new-privileges"]
        if "runAsUser" in sc:
            argv += ["--user", str(sc["runAsUser"])]
        for e in c.get("env", []):
            if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
                argv += ["-e", f"{e['name']}={NODE_NAME}"]
            elif "value" in e:
                argv += ["-e", f"{e['name']}={e['value']}"]
            else:
                raise SystemExit(f"pod-smoke: env {e['name']}: no way to play {e}")
        for m in c.get("volumeMounts", []):
            v = volumes[m["name"]]
            opts = ["ro"] if m.get("readOnly") else []
            opts += {"Bidirectional": ["rshared"], "HostToContainer": ["rslave"]}.get(m.get("mountPropagation"), [])
            if "hostPath" in v:
                src = self.host_path(v["hostPath"]["path"])
                if v["hostPath"].get("type") == "DirectoryOrCreate":
                    os.makedirs(src, exist_ok=True)
                argv += ["-v", f"{src}:{m['mountPath']}" + (":" + ",".join(opts) if opts else "")]
            elif "configMap" in v:
                argv += ["-v", f"{self.tmp}/configmap:{m['mountPath']}:ro"]
            elif "emptyDir" in v:
                argv += ["--tmpfs", m["mountPath"]]
            else:
                raise SystemExit(f"pod-smoke: volume {v['name']}: no way to play {v}")
        if detach:
            argv.append("-d")
        else:
            argv.append("--rm")
        argv += [c["image"], *c["command"], *c.get("args", [])]
        self.containers.append(name)
        return sh(*argv, check=False, timeout=300)

    def start_daemon(self, name: str) -> None:
        c = next(c for c in self.pod["containers"] if c["name"] == "vnetshare")
        p = self.podman_run(c, name, detach=True)
        if p.returncode != 0:
            raise SystemExit(f"pod-smoke: the daemon's container did not start:\n{p.stdout}{p.stderr}")
        probe = c["readinessProbe"]["exec"]["command"]

        def ready() -> bool:
            running = sh("podman", "inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip()
            if running != "true":
                logs = sh("podman", "logs", name, check=False)
                raise SystemExit(f"pod-smoke: the daemon's container stopped:\n{logs.stdout}{logs.stderr}")
            return sh("podman", "exec", name, *probe, check=False).returncode == 0
        wait("the readiness probe", ready)
        logs = sh("podman", "logs", name, check=False)
        step(f"container {name} ready (readiness probe: {' '.join(probe)}); its log: "
             + (logs.stdout + logs.stderr).strip().splitlines()[0])

    # -- what containerd's CRI does for a pod ----------------------------------
    def cni(self, command: str, container_id: str, netns: str) -> dict | None:
        conflist = json.load(open(self.host_path("/etc/cni/net.d/10-vnetshare.conflist")))
        conf = {"cniVersion": conflist["cniVersion"], "name": conflist["name"], **conflist["plugins"][0]}
        env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": container_id,
               "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
               "CNI_PATH": f"{self.host_path('/opt/cni/bin')}:/usr/lib/cni",
               "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={container_id[:8]}"}
        p = sh(self.host_path("/opt/cni/bin/vnetshare"), env=env, input=json.dumps(conf), check=False)
        if p.returncode != 0:
            raise SystemExit(f"pod-smoke: plugin {command}: exit {p.returncode}: {p.stdout}{p.stderr}")
        return json.loads(p.stdout) if p.stdout.strip() else None

    def pod_sandbox(self) -> tuple[str, str]:
        """A namespace pinned as containerd pins a pod's: /run/netns/cni-<uuid>."""
        name = f"cni-{uuid.uuid4()}"
        path = f"/run/netns/{name}"
        open(path, "w").close()
        sh("unshare", f"--net={path}", "true")
        self.netns.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name, path

    def ping(self, ns: str) -> bool:
        return sh("ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", LAN_IP, check=False).returncode == 0

    # -- the image as a node's containerd takes it -------------------------------
    def containerd_import(self) -> None:
        """`ctr -n k8s.io images import` into a containerd of our own, then run the image."""
        root, run = f"{self.tmp}/containerd", tempfile.mkdtemp(prefix="vns-smoke-ctrd-", dir="/run")
        sock = f"{run}/containerd.sock"
        with open(f"{self.tmp}/containerd.toml", "w") as f:
            f.write(f'version = 2\nroot = "{root}"\nstate = "{run}/state"\nplugin_dir = "{run}/plugins"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{run}/opt"\n'
                    f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n')
        log = open(f"{self.tmp}/containerd.log", "wb")
        proc = subprocess.Popen(["containerd", "--config", f"{self.tmp}/containerd.toml"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        ctr = ["ctr", "--address", sock, "-n", "k8s.io"]
        # ctr run puts its container's cgroup under /k8s.io in the host's hierarchy
        cgroups = [f"/sys/fs/cgroup/{c}/k8s.io" for c in os.listdir("/sys/fs/cgroup")]
        had = {d for d in cgroups if os.path.isdir(d)}
        try:
            wait("containerd", lambda: proc.poll() is None and os.path.exists(sock) and
                 sh("ctr", "--address", sock, "version", check=False).returncode == 0, 30)
            sh(*ctr, "images", "import", self.image_tar, timeout=300)
            names = sh(*ctr, "images", "ls", "-q").stdout.split()
            assert self.image in names, f"ctr -n k8s.io images ls: {names}, not {self.image}"
            out = sh(*ctr, "run", "--rm", self.image, "vns-smoke-ctr", "vnetshare", "cni", "install", "--help")
            assert "--standalone" in out.stdout, out.stdout
            step(f"ctr -n k8s.io images import: containerd knows {self.image}, the name the kubelet asks for, "
                 "and runs it")
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()
            for d in cgroups:
                for sub in ([f"{d}/vns-smoke-ctr"] + ([d] if d not in had else [])):
                    if os.path.isdir(sub):
                        os.rmdir(sub)
            for d in (root, run):
                for m in reversed(sh("findmnt", "-rn", "-o", "TARGET", check=False).stdout.split()):
                    if m.startswith(d + "/"):
                        sh("umount", "-l", m, check=False)
                shutil.rmtree(d, ignore_errors=True)

    # -- the run ---------------------------------------------------------------
    def run(self) -> None:
        self.setup()
        self.containerd_import()
        init = self.pod["initContainers"][0]
        p = self.podman_run(init, "smoke-install-cni", detach=False)
        if p.returncode != 0:
            raise SystemExit(f"pod-smoke: the initContainer failed:\n{p.stdout}{p.stderr}")
        step("initContainer: " + " / ".join(line for line in (p.stdout + p.stderr).splitlines() if line))
        assert os.access(self.host_path("/opt/cni/bin/vnetshare"), os.X_OK)

        self.start_daemon("smoke-daemon-1")
        ns1, path1 = self.pod_sandbox()
        fs = sh("podman", "exec", "smoke-daemon-1", "stat", "-f", "-c", "%T", path1, check=False).stdout.strip()
        step(f"{path1}, pinned after the daemon started, is in its container as {fs or 'nothing'}"
             + (" (a namespace: HostToContainer works)" if fs == "nsfs" else ""))
        id1 = uuid.uuid4().hex * 2
        result = self.cni("ADD", id1, path1)
        addr = result["ips"][0]["address"]
        step(f"plugin ADD: {addr} on eth0 in {ns1}")
        wait(f"{ns1} pings the LAN host {LAN_IP}", lambda: self.ping(ns1), 20)
        step(f"{ns1} ({addr}) pings the LAN host {LAN_IP} through the daemon in the pod")
        pins = self.pins()
        step(f"the daemon's namespace pins, seen on the node (Bidirectional): {pins}")
        assert pins, "the daemon's pins did not reach the node"

        # a rolling update: the daemon's container replaced
        sh("podman", "rm", "-f", "-t", "30", "smoke-daemon-1")
        self.containers.remove("smoke-daemon-1")
        self.start_daemon("smoke-daemon-2")
        survived = self.ping(ns1)
        logs = sh("podman", "logs", "smoke-daemon-2", check=False)
        for line in (logs.stdout + logs.stderr).splitlines():
            if "adopt" in line:
                step(f"smoke-daemon-2 says: {line.strip()}")
        step(f"after the daemon's container was replaced, {ns1} {'still pings' if survived else 'does NOT ping'} "
             "the LAN host (reported, not required)")
        ns2, path2 = self.pod_sandbox()
        id2 = uuid.uuid4().hex * 2
        result = self.cni("ADD", id2, path2)
        wait(f"{ns2} pings the LAN host {LAN_IP}", lambda: self.ping(ns2), 20)
        step(f"a pod started after the update, {ns2} ({result['ips'][0]['address']}), pings the LAN host")

        # the pods go: DEL, and nothing of theirs stays pinned on the node
        self.cni("DEL", id1, path1)
        self.cni("DEL", id2, path2)
        left = sh("podman", "exec", "smoke-daemon-2", "vnetshare", "partition", "list", "--json").stdout
        assert json.loads(left) == [], left
        pins = self.pins()
        step(f"plugin DEL of both pods: no partition left; pins left on the node: {pins or 'none'}")
        assert not pins, pins
        step("PASS")

    def pins(self) -> list[str]:
        """Namespace pins under /run/vnetshare/netns/ as the node sees them (each once)."""
        mounts = sh("findmnt", "-rn", "-o", "TARGET", check=False).stdout.split()
        return sorted({m for m in mounts if m.startswith("/run/vnetshare/netns/")})

    def close(self) -> None:
        for name in reversed(self.containers):
            sh("podman", "rm", "-f", "-t", "0", name, check=False)
        for name in self.netns:
            sh("ip", "netns", "del", name, check=False)
        sh("ip", "link", "del", UPLINK, check=False)
        for d in (f"/sys/fs/cgroup/{c}/{self.cgroup}" for c in os.listdir("/sys/fs/cgroup")):
            if os.path.isdir(d):
                sh("find", d, "-depth", "-type", "d", "-exec", "rmdir", "{}", "+", check=False)
        sh("umount", f"{self.tmp}/storage", check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not os.path.isfile(argv[0]):
        print("usage: ./scripts/sandbox.sh python3 deploy/kubernetes/pod-smoke.py IMAGE.tar "
              "(from deploy/kubernetes/build-image.sh)", file=sys.stderr)
        return 2
    node = Node(argv[0])
    try:
        node.run()
    finally:
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
