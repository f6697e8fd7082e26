"""runtimes.py - podman and containerd inside the test sandbox, for the CNI tests.

One home for driving real container runtimes against the `system` fixture's
daemon through the vnetshare CNI plugin. The rules it keeps:

Rule 1: a runtime runs only inside scripts/sandbox.sh (fresh network and
        mount namespaces): assert_sandbox() is called before any mount.
Rule 2: the runtimes' configuration, storage and state live in directories
        this module makes (under the test's tmp dir, or the sandbox's own
        /run) and removes.
Rule 3: the host paths the runtimes insist on (/dev/shm, /var/lib/cni,
        /var/lib/containers, /etc/cni/net.d, /opt/cni/bin) are covered by
        mounts in the sandbox's private mount namespace, made per test and
        unmounted after it (a pytest session shares one mount namespace). A
        directory missing on the host is never created there: its nearest
        existing ancestor gets an overlay whose upper layer is in the
        sandbox's /run, and the directory is made in that overlay.
Rule 4: processes end only by PID: the containerd we started, and shims or
        conmons whose command line names a directory or socket of ours.
Rule 5: cgroup directories the runtimes leave (podman's libpod_parent, the
        ctr namespace's) that were not there before are removed after.

Every runtime command a test runs goes through a Transcript: it is written
to a file in the test's tmp dir and printed (pytest shows it for a failed
test), as a user would see it in a terminal.

The image: scripts/image.sh builds a Debian rootfs tarball (no registry);
scripts/test.sh passes its path as VNETSHARE_IMAGE. It is imported into one
podman store per pytest session; containerd gets `podman save` of it.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from vnetshare.linux import netns, procs

NET = "vnsnet"                       # the conflist's network name
IMAGE = "localhost/cnitest:latest"   # what `podman import TAR cnitest` names it
LABEL_NETWORK, LABEL_CONTAINER, LABEL_IFNAME = "cni.network", "cni.container", "cni.ifname"  # the plugin's
CTR_NAMESPACE = f"vnstest{os.getpid()}"   # ctr's namespace, one per session: cgroups /vnstestPID/<id>
# where the runtimes write by default; none of it may appear on the host (rule 3)
HOST_TRACES = ("/var/lib/cni", "/var/lib/containers", "/var/lib/containerd", "/opt/cni", "/opt/containerd",
               "/etc/cni/net.d/cni.lock")
REFERENCE_PLUGINS = "/usr/lib/cni"   # Debian's containernetworking-plugins (host-local)
CGROUP_ROOT = "/sys/fs/cgroup"
SHIM_SOCKETS = "/run/containerd"     # fixed in containerd 1.6; the sandbox's /run is private
IMAGE_HELP = ("build it with `scripts/image.sh cnitest iproute2,iputils-ping,iperf3,python3` and pass "
              "the path it prints as VNETSHARE_IMAGE (scripts/test.sh does both)")


# -- where we are ------------------------------------------------------------------

def assert_sandbox() -> None:
    """Refuse to go on unless both the network and the mount namespace are the sandbox's."""
    here = os.readlink("/proc/self/ns/net")
    assert os.environ.get("VNETSHARE_SANDBOX") == here, \
        "runtime tests run only inside ./scripts/sandbox.sh (fresh network namespace)"
    host_mnt = os.environ.get("VNETSHARE_HOST_MNTNS")
    assert host_mnt and os.readlink("/proc/self/ns/mnt") != host_mnt, \
        "runtime tests run only inside ./scripts/sandbox.sh (fresh mount namespace)"


def image_tarball() -> str:
    """The rootfs tarball of VNETSHARE_IMAGE; fails (never skips) without it."""
    path = os.environ.get("VNETSHARE_IMAGE")
    if not path:
        pytest.fail(f"VNETSHARE_IMAGE is not set: {IMAGE_HELP}", pytrace=False)
    if not os.path.isfile(path):
        pytest.fail(f"VNETSHARE_IMAGE={path}: no such file: {IMAGE_HELP}", pytrace=False)
    return path


def pids_naming(text: str) -> list[int]:
    """Processes whose command line contains @text (a directory or socket of ours)."""
    needle = text.encode()
    return [pid for pid, _, argv in procs.processes()
            if pid != os.getpid() and any(needle in a for a in argv)]


def wait_gone(find, timeout: float = 10.0) -> list[int]:
    """Wait until find() returns no PID; return those still there after @timeout."""
    deadline = time.monotonic() + timeout
    while (left := find()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def end_pids(pids: list[int], timeout: float = 10.0) -> None:
    """SIGKILL @pids (processes we started) and wait until they are gone or zombies."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def gone() -> bool:
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        return False
            except (FileNotFoundError, ProcessLookupError):
                pass
        return True

    deadline = time.monotonic() + timeout
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)


def mounts_under(path: str) -> list[str]:
    """Mount points at or below @path in this mount namespace, deepest first."""
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == path or point.startswith(path + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def umount(point: str) -> None:
    if subprocess.run(["umount", point], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=30)


def remove_tree(path: str) -> None:
    """Unmount whatever a runtime left mounted under @path, then remove it."""
    if os.path.lexists(path):
        for point in mounts_under(path):
            umount(point)
        shutil.rmtree(path, ignore_errors=True)


# -- the transcript ----------------------------------------------------------------

class Transcript:
    """Runs the runtime commands of one test; keeps and prints what a user would see."""

    def __init__(self, path: str):
        self.path = path

    def note(self, text: str) -> None:
        with open(self.path, "a") as f:
            f.write(text + "\n")
        print(text, flush=True)

    def run(self, argv: list[str], *, shown: list[str] | None = None, env: dict | None = None,
            check: bool = True, timeout: float = 120, input: str | None = None,
            quiet: bool = False) -> subprocess.CompletedProcess:
        """Run @argv; record `$ SHOWN`, its output and a non-zero status.

        @shown is the command as a user types it (without the --address or
        the environment the harness adds); @quiet leaves out the harness's
        own bookkeeping unless it fails. With @check, a non-zero exit fails
        the test with the command and its output.
        """
        line = "$ " + shlex.join(shown or argv)
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                               input=input, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            self.note(f"{line}\n{_text(e.stdout)}{_text(e.stderr)}[timed out after {timeout:.0f} s]")
            raise AssertionError(f"{line}: timed out after {timeout:.0f} s (transcript: {self.path})") from None
        out = p.stdout + p.stderr
        if quiet and p.returncode == 0:
            return p
        self.note(line + ("\n" + out.rstrip("\n") if out.strip() else "")
                  + (f"\n[exit {p.returncode}]" if p.returncode else "")
                  + (f"\n[{time.monotonic() - t0:.1f} s]" if time.monotonic() - t0 > 5 else ""))
        if check:
            assert p.returncode == 0, f"{line}: exit {p.returncode}\n{out}"
        return p


def _text(b) -> str:
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


# -- mounts in the sandbox's mount namespace ------------------------------------------

class Mounts:
    """Mounts made for one test in the sandbox's private mount namespace; close() undoes them."""

    def __init__(self, scratch: str):
        assert_sandbox()
        self.scratch = scratch      # under the sandbox's /run: overlay upper and work dirs
        self.points: list[str] = []

    def _ours(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.points)

    def _mount(self, argv: list[str], point: str) -> None:
        p = subprocess.run(["mount", *argv, point], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, f"mount {' '.join(argv)} {point}: {p.stderr}"
        self.points.append(point)

    def reveal(self, path: str) -> None:
        """Make directory @path exist without creating anything on the host (rule 3)."""
        if os.path.isdir(path):
            return
        base = os.path.dirname(path)
        while not os.path.isdir(base):
            base = os.path.dirname(base)
        if not self._ours(base):
            layer = tempfile.mkdtemp(prefix="ovl-", dir=self.scratch)
            os.mkdir(os.path.join(layer, "upper"))
            os.mkdir(os.path.join(layer, "work"))
            self._mount(["-t", "overlay", "-o",
                         f"lowerdir={base},upperdir={layer}/upper,workdir={layer}/work",
                         "vnetshare-test"], base)
        os.makedirs(path)

    def tmpfs(self, path: str) -> None:
        self.reveal(path)
        self._mount(["-t", "tmpfs", "-o", "mode=0755", "vnetshare-test"], path)

    def bind(self, src: str, path: str) -> None:
        self.reveal(path)
        self._mount(["--bind", src], path)

    def close(self) -> None:
        while self.points:
            point = self.points.pop()
            for inner in mounts_under(point):  # what a runtime mounted below ours
                if inner != point:
                    umount(inner)
            umount(point)   # ours only: a mount of the same path under it (the sandbox's /dev/shm) stays


# -- cgroups ---------------------------------------------------------------------------

class CgroupSweep:
    """Remove the cgroup directories named @names made while it was open (rule 5)."""

    def __init__(self, names: list[str]):
        self.names = names
        self.before = set(self._dirs())

    def _dirs(self) -> list[str]:
        found = []
        try:
            hierarchies = os.listdir(CGROUP_ROOT)
        except FileNotFoundError:
            return found
        for h in hierarchies:
            top = os.path.join(CGROUP_ROOT, h)
            if os.path.islink(top) or not os.path.isdir(top):
                continue
            for name in self.names:
                for d, _, _ in os.walk(os.path.join(top, name)):
                    found.append(d)
        return found

    def new(self) -> list[str]:
        """The directories made since it was opened, deepest first."""
        return sorted(set(self._dirs()) - self.before, key=lambda d: d.count("/"), reverse=True)

    def close(self) -> list[str]:
        """Remove the new directories, deepest first; return those still busy."""
        busy = []
        for d in self.new():
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError:
                busy.append(d)   # populated: someone else's (a concurrent run), or a leak
        return busy


def _cgroup_procs(d: str) -> list[int]:
    try:
        with open(os.path.join(d, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


# -- the CNI side: plugin, conflist, leases -----------------------------------------------

def install_plugin(bin_dir: str) -> str:
    """Install the vnetshare plugin as BIN_DIR/vnetshare, the way a user does.

    `vnetshare cni install --bin-dir DIR`; where that command is missing, a
    two-line script that runs this installation's plugin module.
    """
    os.makedirs(bin_dir, exist_ok=True)
    target = os.path.join(bin_dir, "vnetshare")
    p = subprocess.run(procs.python_argv("vnetshare", "cni", "install", "--bin-dir", bin_dir),
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or not os.access(target, os.X_OK):
        if os.path.lexists(target):
            os.unlink(target)
        with open(target, "w") as f:
            f.write(f"#!/bin/sh\nexec {' '.join(procs.python_argv('vnetshare.frontends.cni'))} \"$@\"\n")
        os.chmod(target, 0o755)
    return target


def conflist(socket: str, leases: str, name: str = NET) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [{
            "type": "vnetshare",
            "socket": socket,
            "ipam": {
                "type": "host-local",
                "ranges": [
                    [{"subnet": "198.18.0.0/24", "rangeStart": "198.18.0.100",
                      "rangeEnd": "198.18.0.200", "gateway": "198.18.0.1"}],
                    [{"subnet": "fd00:5e::/64", "rangeStart": "fd00:5e::100", "rangeEnd": "fd00:5e::200"}],
                ],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": leases,
            },
        }],
    }


def leases_held(data_dir: str, network: str = NET) -> list[str]:
    """host-local's lease files in @data_dir (one per address handed out), none when all are released."""
    d = os.path.join(data_dir, network)
    try:
        return sorted(n for n in os.listdir(d) if n != "lock" and not n.startswith("last_reserved_ip"))
    except FileNotFoundError:
        return []


def plugin_config(conflist: dict, version: str | None = None, **keys) -> dict:
    """What a runtime puts on the plugin's stdin: the conflist's first plugin
    entry with the list's name and cniVersion (@version if given) and @keys."""
    return {"cniVersion": version or conflist["cniVersion"], "name": conflist["name"],
            **conflist["plugins"][0], **keys}


class CniEnv:
    """What either runtime needs for one test, removed by close().

    The private mounts, the plugin installed in `bin`, the conflist in
    `net`, host-local's leases in `leases`, the cgroup sweep.
    """

    def __init__(self, tmp_path, socket: str):
        assert_sandbox()
        self.dir = os.path.join(str(tmp_path), "runtime")
        self.bin = os.path.join(self.dir, "bin")
        self.net = os.path.join(self.dir, "net")
        self.leases = os.path.join(self.dir, "leases")
        for d in (self.bin, self.net, self.leases):
            os.makedirs(d, exist_ok=True)
        self.transcript = Transcript(os.path.join(str(tmp_path), "transcript.txt"))
        self.scratch = tempfile.mkdtemp(prefix="vns-rt-", dir="/run")
        self.traces = {p for p in HOST_TRACES if os.path.lexists(p)}
        self.cgroups = CgroupSweep(["libpod_parent", CTR_NAMESPACE])
        self.containers: set[str] = set()   # ids the runtimes gave this test's containers
        self.mounts = Mounts(self.scratch)
        try:
            for path in ("/dev/shm", "/var/lib/cni", "/var/lib/containers"):
                self.mounts.tmpfs(path)
            self.plugin = install_plugin(self.bin)
            self.conflist = conflist(socket, self.leases)
            with open(os.path.join(self.net, f"{NET}.conflist"), "w") as f:
                json.dump(self.conflist, f, indent=1)
        except BaseException:
            self.close()
            raise

    def _owns(self, cgroup: str) -> bool:
        return f"/{CTR_NAMESPACE}/" in cgroup + "/" or any(i in os.path.basename(cgroup) for i in self.containers)

    def leases_held(self) -> list[str]:
        return leases_held(self.leases)

    def close(self) -> list[str]:
        """Undo the mounts and cgroups; return what is wrong (busy cgroups, traces on the host)."""
        problems = []
        # processes still in our containers' cgroups (a runtime lost track of them): ours to end
        strays = sorted({pid for d in self.cgroups.new() if self._owns(d) for pid in _cgroup_procs(d)})
        if strays:
            problems.append(f"processes left in the test's container cgroups: {strays}")
            end_pids(strays)
        self.mounts.close()
        # a busy cgroup of someone else's container (a concurrent run) is not ours to judge
        problems += [f"cgroup left busy: {d}" for d in self.cgroups.close() if self._owns(d)]
        remove_tree(self.scratch)
        new = sorted(p for p in HOST_TRACES if os.path.lexists(p) and p not in self.traces)
        if new:
            problems.append(f"runtime files appeared outside the sandbox's mounts: {new}")
        return problems


def call_plugin(env: CniEnv, command: str, containerid: str = "", netns_path: str = "", ifname: str = "eth0",
                extra: dict | None = None, version: str | None = None) -> subprocess.CompletedProcess:
    """Run the installed plugin by hand, as a runtime does (a late DEL, a GC).

    Its stdin is the conflist's plugin entry with the list's name and
    cniVersion (@version instead if given) and the @extra keys.
    """
    conf = plugin_config(env.conflist, version, **(extra or {}))
    e = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": containerid, "CNI_NETNS": netns_path,
         "CNI_IFNAME": ifname, "CNI_PATH": f"{env.bin}:{REFERENCE_PLUGINS}"}
    shown = [f"CNI_COMMAND={command}", f"CNI_CONTAINERID={containerid}", f"CNI_NETNS={netns_path}",
             f"CNI_IFNAME={ifname}", env.plugin]
    env.transcript.note(f"# stdin of the next command: {json.dumps(conf)}")
    return env.transcript.run([env.plugin], shown=shown, env=e, input=json.dumps(conf), check=False, timeout=60)


# -- what is left: the things a user would look at ----------------------------------------

def attachments(system, network: str = NET) -> dict[str, dict]:
    """The partitions the plugin made on @network (`partition list --json`), by CNI container id."""
    return {p["labels"][LABEL_CONTAINER]: p for p in system.cli_json("partition", "list")
            if (p.get("labels") or {}).get(LABEL_NETWORK) == network}


def inventory(system, env: CniEnv) -> dict:
    """Partitions, the daemon's namespace pins, named namespaces, links of the
    sandbox's own netns, agents, leases: equal before and after, nothing was left."""
    return {
        "partitions": sorted(p["name"] for p in system.cli_json("partition", "list")),
        "pins": mounts_under(system.dir),   # the daemon's hold on adopted namespaces
        "netns": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],  # files too
        "links": sorted(link.ifname for link in netns.links()),
        "agents": system.agent_pids(),
        "leases": env.leases_held(),
    }


# -- podman ------------------------------------------------------------------------------

class PodmanStore:
    """The image store every podman test of a session shares: the image is imported once.

    graphroot under a session tmp dir, runroot and libpod's tmp dir under the
    sandbox's /run; removed by close() at the end of the session.
    """

    def __init__(self, root: str):
        self.root = root
        self.graphroot = os.path.join(root, "graph")
        self.run = tempfile.mkdtemp(prefix="vns-podman-", dir="/run")
        self.storage_conf = os.path.join(root, "storage.conf")
        with open(self.storage_conf, "w") as f:
            f.write("[storage]\n"
                    'driver = "overlay"\n'
                    f'graphroot = "{self.graphroot}"\n'
                    f'runroot = "{self.run}/storage"\n')
        self.imported = False
        self.saved: str | None = None

    def close(self) -> None:
        for pid in pids_naming(self.graphroot):   # conmons of containers a failed test left
            end_pids([pid])
        remove_tree(self.graphroot)
        remove_tree(self.run)
        remove_tree(self.root)


_store: PodmanStore | None = None


def shared_store(config, tmp_path_factory) -> PodmanStore:
    global _store
    if _store is None:
        _store = PodmanStore(str(tmp_path_factory.mktemp("podman-store")))
        config.add_cleanup(_close_store)
    return _store


def _close_store() -> None:
    global _store
    if _store is not None:
        _store.close()
        _store = None


class Podman:
    """podman for one test: containers.conf pointing at the test's conflist and plugin.

    p("ps", "-a") runs `podman ps -a` and records it; close() removes every
    container of the test (DEL through the plugin while the daemon still runs).
    """

    def __init__(self, env: CniEnv, store: PodmanStore):
        self.env, self.store = env, store
        self.conf = os.path.join(env.dir, "containers.conf")
        with open(self.conf, "w") as f:
            f.write("[containers]\n"
                    'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                    "[engine]\n"
                    'cgroup_manager = "cgroupfs"\n'
                    'events_logger = "file"\n'
                    'runtime = "runc"\n'
                    f'tmp_dir = "{store.run}/libpod"\n'
                    f'image_copy_tmp_dir = "{store.root}"\n'
                    "[network]\n"
                    'network_backend = "cni"\n'
                    f'network_config_dir = "{env.net}"\n'
                    f'cni_plugin_dirs = ["{env.bin}", "{REFERENCE_PLUGINS}"]\n')
        self.environ = {**os.environ, "CONTAINERS_CONF": self.conf,
                        "CONTAINERS_STORAGE_CONF": store.storage_conf}

    def __call__(self, *args: str, check: bool = True, timeout: float = 120,
                 quiet: bool = False) -> subprocess.CompletedProcess:
        return self.env.transcript.run(["podman", *args], env=self.environ, check=check, timeout=timeout,
                                       quiet=quiet)

    def note(self, text: str) -> None:
        self.env.transcript.note(text)

    def ensure_image(self) -> str:
        if not self.store.imported:
            self("import", image_tarball(), "cnitest")
            self.store.imported = True
        return IMAGE

    def saved_image(self) -> str:
        """A `podman save` tarball of the image (for containerd), made once per session."""
        if self.store.saved is None:
            self.ensure_image()
            out = os.path.join(self.store.root, "cnitest-saved.tar")
            self("save", "-o", out, IMAGE)
            self.store.saved = out
        return self.store.saved

    def run(self, name: str, *cmd: str, opts: tuple[str, ...] = (), check: bool = True) -> subprocess.CompletedProcess:
        """`podman run -d --name NAME --network vnsnet IMAGE CMD`."""
        self.ensure_image()
        p = self("run", "-d", "--name", name, "--network", NET, *opts, IMAGE, *(cmd or ("sleep", "infinity")),
                 check=check)
        self.env.containers.update(self.container_ids())
        return p

    def container_ids(self) -> list[str]:
        return self("ps", "-a", "--no-trunc", "--format", "{{.ID}}", quiet=True).stdout.split()

    def container_id(self, name: str) -> str:
        return self("inspect", "--format", "{{.Id}}", name).stdout.strip()

    def addresses(self, name: str) -> tuple[str, str]:
        """The container's IPv4 and IPv6 address on vnsnet, as podman reports them."""
        n = json.loads(self("inspect", "--format", "{{json .NetworkSettings.Networks}}", name).stdout)[NET]
        return n["IPAddress"], n["GlobalIPv6Address"]

    def sandbox_key(self, name: str) -> str:
        """The container's network namespace (/run/netns/netns-UUID), what podman gave the plugin."""
        return self("inspect", "--format", "{{.NetworkSettings.SandboxKey}}", name).stdout.strip()

    def exec(self, name: str, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return self("exec", name, *cmd, check=check, timeout=timeout)

    def close(self) -> list[str]:
        """Remove the test's containers; return what could not be cleaned (for the test to fail on)."""
        problems = []
        self.env.containers.update(self.container_ids())
        if self.env.containers:
            p = self("rm", "-f", "-a", "-t", "0", check=False)
            if p.returncode != 0:
                problems.append(f"podman rm -fa: exit {p.returncode}: {p.stdout}{p.stderr}")
        left = wait_gone(lambda: pids_naming(self.store.graphroot))   # conmons exit after rm returns
        if left:
            problems.append(f"processes of the test's containers left running: {left}")
            end_pids(left)
        return problems


# -- containerd --------------------------------------------------------------------------

class Containerd:
    """A containerd of our own: config, root and state in our dirs; `ctr --address SOCK`.

    ctr run --cni reads /etc/cni/net.d and runs plugins from /opt/cni/bin
    (and /usr/lib/cni): the test's conflist dir and plugin dir are bound
    there, inside the sandbox only.
    """

    def __init__(self, env: CniEnv, ready_timeout: float = 30.0):
        self.env = env
        self.root = os.path.join(env.dir, "containerd")
        self.rundir = tempfile.mkdtemp(prefix="vns-ctrd-", dir="/run")   # short: socket paths
        self.sock = os.path.join(self.rundir, "containerd.sock")
        self.log_path = os.path.join(env.dir, "containerd.log")
        self.conf = os.path.join(env.dir, "containerd.toml")
        # the shims' sockets go to /run/containerd/s whatever the config says: the sandbox's /run
        self.shim_dir = None if os.path.exists(SHIM_SOCKETS) else SHIM_SOCKETS
        env.mounts.bind(env.net, "/etc/cni/net.d")
        env.mounts.bind(env.bin, "/opt/cni/bin")
        with open(self.conf, "w") as f:
            f.write("version = 2\n"
                    f'root = "{self.root}"\n'
                    f'state = "{self.rundir}/state"\n'
                    f'plugin_dir = "{self.rundir}/plugins"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    '[plugins."io.containerd.internal.v1.opt"]\n'
                    f'  path = "{self.rundir}/opt"\n'
                    "[grpc]\n"
                    f'  address = "{self.sock}"\n'
                    "[ttrpc]\n"
                    f'  address = "{self.sock}.ttrpc"\n')
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["containerd", "--config", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"containerd exited at start ({self.proc.returncode}): {self.log()}")
            if os.path.exists(self.sock) and subprocess.run(
                    ["ctr", "--address", self.sock, "version"], capture_output=True, timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"containerd did not answer on {self.sock} in {ready_timeout:.0f} s: "
                                     f"{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return ""

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """`ctr -n vnstest ARGS` against our containerd."""
        return self.env.transcript.run(["ctr", "--address", self.sock, "--namespace", CTR_NAMESPACE, *args],
                                       shown=["ctr", "-n", CTR_NAMESPACE, *args], check=check, timeout=timeout)

    def import_image(self, tarball: str) -> str:
        self.ctr("images", "import", tarball, timeout=300)
        return IMAGE

    def run(self, cid: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """`ctr run --cni ARGS... IMAGE-and-command` (the caller gives image, id and command in ARGS)."""
        self.env.containers.add(cid)
        return self.ctr("run", "--cni", *args, check=check, timeout=timeout)

    def remove(self, cid: str) -> None:
        """Kill the task, then delete it and the container (ctr calls no CNI DEL for this)."""
        self.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            p = self.ctr("task", "delete", cid, check=False)
            if p.returncode == 0 or "not found" in p.stderr:
                break
            time.sleep(0.2)
        self.ctr("container", "delete", cid, check=False)

    def close(self) -> list[str]:
        """Remove our containers, stop containerd by PID, end its shims; return problems."""
        problems = []
        if self.proc.poll() is None:
            for cid in self.ctr("containers", "list", "--quiet", check=False).stdout.split():
                self.remove(cid)
        code = procs.stop(self.proc, grace=20)
        if code not in (0, -signal.SIGTERM):
            problems.append(f"containerd exited with {code}: {self.log()}")
        shims = wait_gone(lambda: pids_naming(self.sock))   # `containerd-shim-runc-v2 ... -address SOCK`
        if shims:
            problems.append(f"containerd shims left running: {shims}")
        end_pids(shims)
        remove_tree(self.root)
        remove_tree(self.rundir)
        if self.shim_dir:
            remove_tree(self.shim_dir)
        return problems


# -- fixtures (import them into a test module) ------------------------------------------------

@pytest.fixture
def cni_env(system, tmp_path):
    """A CniEnv for the `system` fixture's daemon; its mounts and cgroups undone after."""
    env = CniEnv(tmp_path, system.sock)
    problems = []
    try:
        yield env
    finally:
        problems = env.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def podman(cni_env, request, tmp_path_factory):
    """Podman on the vnsnet network through the vnetshare plugin; the test's containers removed after."""
    p = Podman(cni_env, shared_store(request.config, tmp_path_factory))
    problems = []
    try:
        yield p
    finally:
        problems = p.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def containerd(cni_env, podman):
    """Our own containerd, the image imported; stopped and removed after."""
    tarball = podman.saved_image()
    c = Containerd(cni_env)
    problems = []
    try:
        c.import_image(tarball)
        yield c
    finally:
        problems = c.close()
    assert not problems, "\n".join(problems)
