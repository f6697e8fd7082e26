"""The paths under test and everything this run makes for them.

Made holds every namespace, root link, process and the vnetshare daemon the
run made, and removes them by name and PID, whatever state they are in.
One builder per family sets up its paths (veth; bridge; macvlan and
macvlan-lan; vde; pasta; slirp4netns; vns-host; vns and vns-lan; vns-open
and vns-lan-open) and returns
them as Path: who sends, who receives, at which address, which processes
are the switch, and for the tenant workloads (issue 8) who floods the
sender's neighbourhood (storm) and which partition sends under a
--tx-limit (txlimit).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

from vnetshare.linux import procs
from vnetshare.linux.probe import netns_cmd

from .common import BenchError, die_with_parent, popen, say, stop

PREFIX = "vnb"             # every namespace, link and partition made here
LAN_V4 = "198.18.0.1"      # vnetshare lab LAN host (198.18.0.0/15: benchmarking)
VNS_UPLINK = "vnb-up"
VNS_LAN_NS = "vnb-lan"
MV_LOWER = "vnb-mvl"

# every path, in the order of the tables
PATHS = ("veth", "bridge", "macvlan", "macvlan-lan", "vde", "pasta", "slirp4netns", "vns", "vns-lan", "vns-open",
         "vns-lan-open", "vns-host")
HOST_PORT = "vnb-host"     # vns-host: the daemon's --host-port, in this (the sandbox's) namespace
HOST_PORT_V4 = "198.18.0.254"
TX_LIMIT = "200mbit"       # txlimit: the partition's --tx-limit
TX_LIMIT_MBPS = 200.0


# --- what this run made, removed by name and PID ------------------------------

class Made:
    """Everything this run made: namespaces, root links, processes, the daemon."""

    def __init__(self) -> None:
        from vnetshare.linux import netns
        self.nsmod = netns
        self.netns: list[str] = []
        self.links: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.daemon: subprocess.Popen | None = None
        self.sock = ""
        self.partitions: list[str] = []
        self.tmp = tempfile.mkdtemp(prefix="vnetshare-bench-")

    def ns(self, name: str) -> str:
        """A fresh namespace with lo up."""
        if self.nsmod.exists(name):
            raise BenchError(f"netns {name} already exists: not ours, not touched")
        self.nsmod.create(name)
        self.netns.append(name)
        self.nsmod.lo_up(name)
        return name

    def root_link(self, name: str) -> str:
        """Claim a link name in this namespace (made by the caller next)."""
        if any(l.ifname == name for l in self.nsmod.links()):
            raise BenchError(f"link {name} already exists: not ours, not touched")
        self.links.append(name)
        return name

    def proc(self, argv: list[str], **kw) -> subprocess.Popen:
        p = popen(argv, **kw)
        self.procs.append(p)
        return p

    def forget_ended(self) -> None:
        """Drop the processes that ended (servers stopped, clients done)."""
        self.procs = [q for q in self.procs if q.poll() is None]

    def agent_pids(self) -> list[int]:
        """The daemon's agent children (never anyone else's processes)."""
        if self.daemon is None:
            return []
        return procs.agents_of(self.daemon.pid)

    def close(self) -> None:
        """Remove everything, whatever state it is in; report, never raise."""
        def step(what: str, fn, *a) -> None:
            try:
                fn(*a)
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                say(f"cleanup: {what}: {e}")

        for p in reversed(self.procs):
            step(f"process {p.pid}", stop, p)
        self.procs.clear()
        if self.daemon is not None:
            agents = self.agent_pids()
            step(f"daemon {self.daemon.pid}", stop, self.daemon, signal.SIGTERM, 20.0)
            for pid in agents:  # only those the daemon failed to stop
                step(f"agent {pid}", _kill_agent, pid, self.partitions)
            self.daemon = None
        # partitions outlive the daemon by design: their namespaces take the TAPs
        for name in reversed(self.partitions):
            step(f"netns {name}", self.nsmod.quietly, self.nsmod.delete, name)
        for name in reversed(self.netns):
            step(f"netns {name}", self.nsmod.quietly, self.nsmod.delete, name)
        for name in reversed(self.links):
            step(f"link {name}", self.nsmod.quietly, self.nsmod.delete_link, name)
        self.partitions.clear()
        self.netns.clear()
        self.links.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _kill_agent(pid: int, names: list[str]) -> None:
    if procs.is_agent(pid, names):
        os.kill(pid, signal.SIGKILL)


# --- the paths ------------------------------------------------------------------------

@dataclass
class Storm:
    """A third member of the sender's switch that floods broadcasts."""
    ns: str                      # its netns
    ifname: str                  # its interface there
    src: str                     # its IPv4 address (a source the guard lets pass)
    bcast: str                   # the subnet's broadcast address
    partition: str | None = None  # vnetshare: its partition, for the switch's counters


@dataclass
class Path:
    name: str
    client: str | None           # netns of the sender / pinger (None: this one, the host's)
    server: str                  # netns of the receiver
    addr: str                    # receiver's address
    pids: Callable[[], list[int]] | None = None  # the switch's processes; None: kernel
    storm: Storm | None = None   # storm: who floods the sender's neighbourhood
    limited: str | None = None   # txlimit: netns of a sender under --tx-limit TX_LIMIT


class PeerMissing(BenchError):
    """A peer's program is not on this machine: its path is not measured,
    and its rows say why, but the run does not fail for it."""


def _ip(*argv: str) -> None:
    r = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=15)
    if r.returncode != 0:
        raise BenchError(f"ip {' '.join(argv)}: {r.stderr.strip()}")


def _addr_up(nsmod, ns: str, ifname: str, cidr: str) -> None:
    nsmod.add_address(ifname, cidr, ns)
    nsmod.link_set(ifname, ns, up=True)


def build_veth(made: Made) -> list[Path]:
    n = made.nsmod
    a, b = made.ns("vnb-veth-a"), made.ns("vnb-veth-b")
    n.veth_pair("eth0", "eth0", a, b)
    _addr_up(n, a, "eth0", "198.18.10.1/24")
    _addr_up(n, b, "eth0", "198.18.10.2/24")
    return [Path("veth", a, b, "198.18.10.2")]


def build_bridge(made: Made) -> list[Path]:
    n = made.nsmod
    h, a, b = made.ns("vnb-br"), made.ns("vnb-br-a"), made.ns("vnb-br-b")
    s = made.ns("vnb-br-s")  # storm: the flooding neighbour (idle otherwise)
    _ip("-n", h, "link", "add", "br0", "type", "bridge")
    for port, ns, ip in (("pa", a, "198.18.11.1/24"), ("pb", b, "198.18.11.2/24"), ("ps", s, "198.18.11.3/24")):
        n.veth_pair(port, "eth0", h, ns)
        _ip("-n", h, "link", "set", port, "master", "br0")
        n.link_set(port, h, up=True)
        _addr_up(n, ns, "eth0", ip)
    n.link_set("br0", h, up=True)
    return [Path("bridge", a, b, "198.18.11.2", storm=Storm(s, "eth0", "198.18.11.3", "198.18.11.255"))]


def build_macvlan(made: Made) -> list[Path]:
    n = made.nsmod
    lan, a, b = made.ns("vnb-mv-lan"), made.ns("vnb-mv-a"), made.ns("vnb-mv-b")
    n.veth_pair(made.root_link(MV_LOWER), "lan0", None, lan)
    n.link_set(MV_LOWER, None, up=True)
    _addr_up(n, lan, "lan0", "198.18.12.1/24")
    for x, ns, ip in (("a", a, "198.18.12.11/24"), ("b", b, "198.18.12.12/24")):
        dev = made.root_link(f"vnb-mv{x}")
        _ip("link", "add", dev, "link", MV_LOWER, "type", "macvlan", "mode", "bridge")
        _ip("link", "set", dev, "netns", ns)
        _addr_up(n, ns, dev, ip)
    return [Path("macvlan", a, b, "198.18.12.12"), Path("macvlan-lan", a, lan, "198.18.12.1")]


def build_vde(made: Made) -> list[Path]:
    n = made.nsmod
    _need("vde_switch", "vde2")
    _need("vde_plug2tap", "vde2")
    a, b = made.ns("vnb-vde-a"), made.ns("vnb-vde-b")
    ctl = os.path.join(made.tmp, "vde.ctl")
    with open(os.path.join(made.tmp, "vde_switch.log"), "wb") as log:
        # its console reads stdin and it ends on EOF: keep a pipe open
        sw = made.proc(["vde_switch", "-s", ctl], stdin=subprocess.PIPE, stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(ctl, "ctl")):
        if sw.poll() is not None or time.monotonic() > deadline:
            raise BenchError("vde_switch did not start")
        time.sleep(0.02)
    plugs = []
    for ns, ip in ((a, "198.18.13.1/24"), (b, "198.18.13.2/24")):
        with open(os.path.join(made.tmp, f"vde_plug2tap-{ns}.log"), "wb") as log:
            plugs.append(made.proc(netns_cmd(ns, ["vde_plug2tap", "-s", ctl, "tap0"]), stdout=log, stderr=log))
        deadline = time.monotonic() + 10
        while not any(l.ifname == "tap0" for l in n.links(ns)):
            if plugs[-1].poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"vde_plug2tap did not make tap0 in {ns}")
            time.sleep(0.02)
        _addr_up(n, ns, "tap0", ip)
    pids = [sw.pid] + [p.pid for p in plugs]
    return [Path("vde", a, b, "198.18.13.2", pids=lambda: pids)]


def _need(tool: str, package: str) -> None:
    if not shutil.which(tool):
        raise PeerMissing(f"{tool} missing: install Debian's {package} (scripts/test.sh does)")


# pasta and slirp4netns give a namespace the host's own TCP/IP stack: they
# terminate the namespace's TCP and UDP on a TAP and open sockets of their
# own on the host (NAT, in effect). The "host" here is a namespace of ours,
# vnb-<peer>-h, whose only link is a veth to its LAN host vnb-<peer>-lan
# (also its default route), so what the peer sends leaves through that veth
# and nothing else; the peer's process runs in vnb-<peer>-h and attaches to
# the container's namespace vnb-<peer>-c. ICMP goes through ping sockets, as
# on a Debian host, where systemd opens net.ipv4.ping_group_range to every
# group (a new namespace starts with none).
PASTA_ARGV = ["pasta", "--config-net", "-t", "none", "-u", "none", "-T", "none", "-U", "none", "--no-map-gw",
              "--quiet", "-f", "--runas", "0"]
SLIRP_ARGV = ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox",
              "--enable-seccomp"]


def _nat_peer(made: Made, name: str, subnet: str, argv: list[str], ifname: str) -> Path:
    """Host namespace, LAN host and container for the NAT peer @name
    (pasta, slirp4netns), on @subnet (198.18.N); the peer started as @argv
    plus the container's namespace; its interface there is @ifname."""
    n = made.nsmod
    short = "slirp" if name == "slirp4netns" else name
    h, lan, c = made.ns(f"vnb-{short}-h"), made.ns(f"vnb-{short}-lan"), made.ns(f"vnb-{short}-c")
    n.veth_pair("eth0", "lan0", h, lan)
    _addr_up(n, lan, "lan0", f"{subnet}.1/24")
    _addr_up(n, h, "eth0", f"{subnet}.2/24")
    _ip("-n", h, "route", "add", "default", "via", f"{subnet}.1")
    subprocess.run(netns_cmd(h, ["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"]), check=True,
                   timeout=15)
    with open(os.path.join(made.tmp, f"{name}.log"), "wb") as log:
        peer = made.proc(netns_cmd(h, argv), stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while not any(l.ifname == ifname and l.up for l in n.links(c)):
        if peer.poll() is not None or time.monotonic() > deadline:
            with open(os.path.join(made.tmp, f"{name}.log"), errors="replace") as f:
                tail = " ".join(l.strip() for l in f if "syslog" not in l)[-300:]
            raise BenchError(f"{name} did not bring up {ifname} in {c}: {tail}")
        time.sleep(0.02)
    return Path(name, c, lan, f"{subnet}.1", pids=lambda: [peer.pid] if peer.poll() is None else [])


def build_pasta(made: Made) -> list[Path]:
    """pasta as podman starts it (--config-net: the container gets the host's
    address and routes; -t/-u/-T/-U none: no port forwarding; --no-map-gw:
    the gateway is the LAN host, not the host), on the container's
    namespace; -f keeps it our child (podman lets it daemonize); --runas 0:
    Debian 12's pasta cannot enter the namespace as root otherwise (it drops
    to nobody first)."""
    _need("pasta", "passt")
    return [_nat_peer(made, "pasta", "198.18.14", PASTA_ARGV + ["--netns", "/run/netns/vnb-pasta-c"], "eth0")]


def build_slirp4netns(made: Made) -> list[Path]:
    """slirp4netns as rootless podman starts it (--configure: 10.0.2.100/24
    via 10.0.2.2 on tap0; --mtu=65520; --disable-host-loopback; the sandbox
    and seccomp filter podman turns on), on the container's namespace."""
    _need("slirp4netns", "slirp4netns")
    return [_nat_peer(made, "slirp4netns", "198.18.15",
                      SLIRP_ARGV + ["--netns-type=path", "/run/netns/vnb-slirp-c", "tap0"], "tap0")]


DAEMON_ARGS: list[str] = []  # --daemon-arg


def start_vns(made: Made, host_port: bool = False) -> None:
    """The lab topology: LAN namespace, veth uplink, the daemon on it;
    with @host_port, the daemon's --host-port HOST_PORT too."""
    from vnetshare.frontends.lab import LabError, make_lan_host, start_daemon
    if made.nsmod.exists(VNS_LAN_NS):
        raise BenchError(f"netns {VNS_LAN_NS} already exists: not ours, not touched")
    made.root_link(VNS_UPLINK)
    made.netns.append(VNS_LAN_NS)
    make_lan_host(VNS_UPLINK, VNS_LAN_NS, "lan0", f"{LAN_V4}/24", "fd00:5e::1/64")
    made.sock = os.path.join(made.tmp, "control.sock")
    extra = tuple(DAEMON_ARGS)
    if host_port:
        extra += ("--host-port", made.root_link(HOST_PORT))
    try:
        made.daemon = start_daemon(made.sock, VNS_UPLINK, made.tmp, os.path.join(made.tmp, "daemon.log"),
                                   extra, timeout=20, preexec_fn=die_with_parent)
    except LabError as e:
        raise BenchError(str(e)) from None


def vns_pids(made: Made) -> list[int]:
    return [made.daemon.pid] + made.agent_pids()


def create_partition(made: Made, name: str, ip: str, **policy) -> float:
    """Create partition @name (control request, as the CLI sends it, @policy
    as its fields: allow_ips=["any"] is --allow-ip any); seconds taken."""
    from vnetshare.frontends.client import DaemonError, call
    made.partitions.append(name)
    t0 = time.perf_counter()
    try:
        call(made.sock, "partition.create", name=name, ips=[f"{ip}/24"], gateway=LAN_V4, timeout=30, **policy)
    except DaemonError as e:
        raise BenchError(f"partition create {name}: {e}") from None
    return time.perf_counter() - t0


def create_idle(made: Made, names: list[str], cidr, errors: list[str], what: str,
                times: list[float] | None = None) -> list[str]:
    """Create partitions @names, each with the one address cidr(i) and no
    gateway (the many-partition phases), until one fails (its error goes to
    @errors, named by @what); the names made. Each create's seconds go to
    @times."""
    from vnetshare.frontends.client import DaemonError, DaemonUnreachable, call
    made_now: list[str] = []
    for i, name in enumerate(names):
        made.partitions.append(name)
        t0 = time.perf_counter()
        try:
            call(made.sock, "partition.create", name=name, ips=[cidr(i)], timeout=60)
        except (DaemonError, DaemonUnreachable) as e:
            made.partitions.remove(name)
            errors.append(f"{what}: partition {name}: {e}")
            break
        if times is not None:
            times.append(time.perf_counter() - t0)
        made_now.append(name)
    return made_now


def partition_ifname(made: Made, name: str) -> str:
    from vnetshare.frontends.client import call
    return call(made.sock, "partition.show", name=name, timeout=30)["partition"]["ifname"]


def delete_partition(made: Made, name: str) -> None:
    from vnetshare.frontends.client import call
    call(made.sock, "partition.delete", name=name, timeout=30)
    made.partitions.remove(name)


def build_vns(made: Made) -> list[Path]:
    """Partitions a and b (the paths), s (storm: floods; the daemon's default
    --storm-limit) and l (txlimit: --tx-limit TX_LIMIT); s and l idle otherwise."""
    if made.daemon is None:
        start_vns(made)
    create_partition(made, "vnb-a", "198.18.0.11")
    create_partition(made, "vnb-b", "198.18.0.12")
    create_partition(made, "vnb-s", "198.18.0.13")
    create_partition(made, "vnb-l", "198.18.0.14", tx_limit=[TX_LIMIT])
    storm = Storm("vnb-s", partition_ifname(made, "vnb-s"), "198.18.0.13", "198.18.0.255", partition="vnb-s")
    pids = lambda: vns_pids(made)  # noqa: E731 - agents may be restarted
    return [Path("vns", "vnb-a", "vnb-b", "198.18.0.12", pids=pids, storm=storm),
            Path("vns-lan", "vnb-a", VNS_LAN_NS, LAN_V4, pids=pids, storm=storm, limited="vnb-l")]


def build_vns_open(made: Made) -> list[Path]:
    """The same as vns and vns-lan on the same daemon, from partitions made
    with --allow-ip any (the L3 guard off): what the guard costs."""
    if made.daemon is None:
        start_vns(made)
    create_partition(made, "vnb-oa", "198.18.0.21", allow_ips=["any"])
    create_partition(made, "vnb-ob", "198.18.0.22", allow_ips=["any"])
    pids = lambda: vns_pids(made)  # noqa: E731 - agents may be restarted
    return [Path("vns-open", "vnb-oa", "vnb-ob", "198.18.0.22", pids=pids),
            Path("vns-lan-open", "vnb-oa", VNS_LAN_NS, LAN_V4, pids=pids)]


def build_vns_host(made: Made) -> list[Path]:
    """The host (this namespace) to partition h through the daemon's host
    port, which has a second address of the host's (no --take-address: the
    uplink has none here). First of the vns builders: the daemon they share
    is started with the host port."""
    if made.daemon is None:
        start_vns(made, host_port=True)
    elif HOST_PORT not in made.links:
        raise BenchError("the daemon runs without --host-port")
    made.nsmod.add_address(HOST_PORT, f"{HOST_PORT_V4}/24")
    create_partition(made, "vnb-h", "198.18.0.15")
    pids = lambda: vns_pids(made)  # noqa: E731 - agents may be restarted
    return [Path("vns-host", None, "vnb-h", "198.18.0.15", pids=pids)]


BUILDERS = (("veth", build_veth, ("veth",)), ("bridge", build_bridge, ("bridge",)),
            ("macvlan", build_macvlan, ("macvlan", "macvlan-lan")), ("vde", build_vde, ("vde",)),
            ("pasta", build_pasta, ("pasta",)), ("slirp4netns", build_slirp4netns, ("slirp4netns",)),
            ("vns-host", build_vns_host, ("vns-host",)),
            ("vns", build_vns, ("vns", "vns-lan")), ("vns-open", build_vns_open, ("vns-open", "vns-lan-open")))

# workloads that only some paths run (the rest: every path)
ONLY_ON = {"storm": ("bridge", "vns", "vns-lan"), "txlimit": ("vns-lan",), "capture": ("vns",)}
# paths that run only some workloads (the guard's cost: against vns, vns-lan)
RUNS_ONLY = {"vns-open": ("tcp1", "udp64", "ping"), "vns-lan-open": ("tcp1", "udp64", "ping"),
             "vns-host": ("tcp1", "ping")}


def runs(path: str, workload: str) -> bool:
    """Whether @path has @workload at all (before --only)."""
    return path in ONLY_ON.get(workload, (path,)) and workload in RUNS_ONLY.get(path, (workload,))


def key(path: str) -> str:
    """A path's name as its rows begin: vns-lan -> vns_lan."""
    return path.replace("-", "_")


def owner(row: str) -> str | None:
    """The path a row belongs to: the longest whose key begins it
    (vns_lan_open_tcp1_Gbps is vns-lan-open's, not vns's)."""
    best = None
    for p in PATHS:
        if row.startswith(key(p) + "_") and (best is None or len(p) > len(best)):
            best = p
    return best


def free_names(nsmod) -> None:
    """Refuse to start next to leftovers: nothing named vnb-* is ours to remove."""
    taken = [n for n in nsmod.names() if n.startswith(PREFIX + "-")]
    taken += [l.ifname for l in nsmod.links() if l.ifname.startswith(PREFIX + "-")]
    if taken:
        raise BenchError(f"{', '.join(taken)} already exist (an earlier run killed hard?): "
                         "remove them by hand, this benchmark only removes what it made")
