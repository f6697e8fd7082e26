"""netns.py - the netlink adapter: namespaces, links, addresses, routes.

A thin layer over pyroute2 for what the daemon and the lab do to the
kernel. Every function that acts in a namespace takes `netns`, a NetnsRef:
None (the caller's own), a name ('web': /run/netns/web), a path (anything
with a '/': /run/netns/web, /proc/PID/ns/net) or an open namespace fd.

Rules:
1. Every call runs in a fresh thread that setns()es into the namespace
   (if one is given) and ends afterwards (run_in), or in the thread that
   made the namespace (create_and()). A network namespace belongs to a
   thread, not a process, so the caller's thread never moves
   and nothing forks (the daemon has a C data-plane thread; fork and threads
   don't mix). A socket or device opened by that thread stays in that
   namespace after it ends: that is how a TAP is opened "inside" a
   partition. The fresh thread also lets the daemon's asyncio thread call
   in (pyroute2's sync API runs its own event loop; loops don't nest). The
   calls block: from a coroutine, wrap them in asyncio.to_thread() if the
   wait matters.
2. Each call opens its own pyroute2 IPRoute in the namespace it acts in and
   closes it: no socket outlives the call, no handle leaks between
   namespaces. A partition's making sends its TAP's setup as one batch of
   hand-encoded requests instead (configure(), rtbatch.py: a thread and an
   IPRoute each cost as much as the netlink call they carry), from the
   thread that made the namespace when it made it (create_and()).
   (pyroute2's own IPRoute(netns=...) forks a helper and, by default,
   CREATES a missing netns: not used.)
3. A kernel failure is a NetnsError: an OSError with the kernel's errno,
   and a message naming the object and the namespace:
   "link 'vp0' in netns 'web': File exists".
4. Cleanup (quietly) swallows only "it is already gone": ENOENT, ENODEV,
   ESRCH. Anything else still raises.
6. pyroute2 is imported by the first call that needs it, not with this
   module: a restarting daemon's data path (open the TAPs, bring them up:
   set_up()) needs none of it (issue 12, docs/design-notes.md).
5. A named namespace is made like `ip netns add` makes it: /run/netns is a
   shared mount point, NAME is a file in it with the namespace bind-mounted
   on it; delete() is `ip netns del`: lazy unmount, unlink. The namespace
   itself dies when nothing else holds it (no process, no open fd).
7. A path given as a namespace is opened once (open_fd), and the
   descriptor is what gets checked (on nsfs by its magic, then
   NS_GET_NSTYPE says CLONE_NEWNET) and used: pin() bind-mounts
   /proc/self/fd/N of that descriptor, never the path again, so whatever
   the path names by then, the pin holds the namespace that was checked.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import ipaddress
import os
import socket
import stat
import struct
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from ..core.config import NETNS_RUN_DIR
from ..core.errors import KernelError

if TYPE_CHECKING:
    from pyroute2 import IPRoute  # imported by the calls (rule 6)

RUN_DIR = NETNS_RUN_DIR
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2
IFF_UP = 0x1
IFA_F_NODAD = 0x02   # linux/if_addr.h
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
GONE = frozenset({errno.ENOENT, errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL})
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h, Linux >= 4.11
CLONE_NEWNET = 0x40000000
NSFS_MAGIC = 0x6E736673  # linux/magic.h: the filesystem of /proc/PID/ns/* and their bind mounts
# NS_GET_NSTYPE's answers (linux/sched.h), for the message when it is not CLONE_NEWNET
NS_KINDS = {0x00020000: "mount", 0x04000000: "uts", 0x08000000: "ipc", 0x10000000: "user",
            0x20000000: "pid", 0x02000000: "cgroup", 0x00000080: "time"}

NetnsRef = str | int | None
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(KernelError):
    """A namespace or netlink operation failed; .errno is the kernel's."""


def _fail(err: int, what: str) -> NetnsError:
    return NetnsError(err, f"{what}: {os.strerror(err)}")


def _libc_call(rc: int, what: str) -> None:
    if rc != 0:
        raise _fail(ctypes.get_errno(), what)


# --- namespaces ---------------------------------------------------------------

def path_of(name: str) -> str:
    """/run/netns/NAME, the file `ip netns exec NAME` enters."""
    if not name or "/" in name or name in (".", ".."):
        raise NetnsError(errno.EINVAL, f"netns name {name!r}: not a file name")
    return os.path.join(RUN_DIR, name)


def _resolve(netns: str | int) -> str | int:
    if isinstance(netns, int):
        return netns
    return netns if "/" in netns else path_of(netns)


def label(netns: NetnsRef) -> str:
    """' in netns NAME' for messages ('' for the caller's own)."""
    if netns is None:
        return ""
    if isinstance(netns, int):
        return f" in netns fd {netns}"
    return f" in netns {netns!r}"


def exists(name: str) -> bool:
    """A named namespace /run/netns/NAME exists (as a mount point)."""
    return mounted(path_of(name))


def mounted(path: str) -> bool:
    """Something is mounted at @path, as a namespace's name or pin is: the
    file alone (left by a reboot in a directory that outlives it, or by a
    lazy unmount) is no namespace."""
    return os.path.ismount(path)


def names() -> list[str]:
    """The named namespaces, like `ip netns list` (sorted)."""
    try:
        return sorted(n for n in os.listdir(RUN_DIR) if os.path.ismount(os.path.join(RUN_DIR, n)))
    except FileNotFoundError:
        return []


def share_dir(directory: str) -> None:
    """Make @directory (created if missing) a shared mount point, as
    iproute2's netns_add does with /run/netns: bound onto itself first if it
    isn't a mount point, so a namespace mounted there shows in every mount
    namespace that shares it."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    bound = False
    while _libc.mount(b"", directory.encode(), b"none", MS_SHARED | MS_REC, None) != 0:
        err = ctypes.get_errno()
        if err != errno.EINVAL or bound:
            raise _fail(err, f"make {directory} a shared mount")
        _libc_call(_libc.mount(directory.encode(), directory.encode(), b"none", MS_BIND | MS_REC, None),
                   f"bind-mount {directory}")
        bound = True


def pin(source: str | int, path: str) -> None:
    """Keep the network namespace at @source alive and reachable at @path,
    whatever happens to @source's name (a runtime's /run/netns entry, a
    /proc/PID/ns/net whose process ends): @path becomes a bind mount of it,
    in a shared directory, the way `ip netns attach` does. @source is opened
    and checked once (open_fd) and the mount is of that descriptor (rule 7).
    NetnsError if @path exists or @source is no network namespace; on
    failure nothing is left.
    """
    fd = open_fd(source)  # a network namespace, or a clear error
    try:
        checked = os.fstat(fd)
        share_dir(os.path.dirname(path))
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
        except FileExistsError:
            raise NetnsError(errno.EEXIST, f"netns pin {path}: already exists") from None
        try:
            _libc_call(_libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), b"none", MS_BIND, None),
                       f"netns {source!r}: bind mount on {path}")
            pinned = os.stat(path)
            if (pinned.st_dev, pinned.st_ino) != (checked.st_dev, checked.st_ino):
                raise NetnsError(errno.EIO, f"netns {source!r}: {path} holds another namespace than the one checked")
        except BaseException:
            _libc.umount2(path.encode(), MNT_DETACH)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
    finally:
        os.close(fd)


def unpin(path: str, what: str | None = None) -> None:
    """Undo pin() (or create()): lazy unmount, unlink. NetnsError(ENOENT) if absent."""
    what = what or f"netns {path}"
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err == errno.ENOENT:
            raise _fail(err, what)
        if err != errno.EINVAL:  # EINVAL: not a mount point; still remove the file
            raise _fail(err, f"{what}: unmount")
    try:
        os.unlink(path)
    except OSError as e:
        raise _fail(e.errno or errno.EIO, what) from None


def create(name: str) -> str:
    """Make a new network namespace named @name; return its path.

    Raises NetnsError(EEXIST) if the name is taken. On failure nothing is left.
    """
    return create_and(name, None)[0]


def create_and(name: str, inside: Callable[[], T] | None) -> tuple[str, T | None]:
    """create() @name, then call @inside() in the thread that made it, which
    is in it (no setns, no thread more); (its path, what @inside returned).
    If @inside raises, the namespace is deleted and its error raised; what
    @inside made outside the namespace is its own to undo."""
    path = path_of(name)
    share_dir(RUN_DIR)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    except FileExistsError:
        raise NetnsError(errno.EEXIST, f"netns {name!r}: already exists") from None

    mounted = False

    def make() -> T | None:
        nonlocal mounted
        _libc_call(_libc.unshare(CLONE_NEWNET), f"netns {name!r}: unshare")
        _libc_call(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None),
                   f"netns {name!r}: bind mount")
        mounted = True
        return inside() if inside is not None else None

    try:
        value = _in_thread(make)
    except BaseException:
        if mounted:
            quietly(delete, name)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    return path, value


def delete(name: str) -> None:
    """Remove the named namespace (ip netns del); NetnsError(ENOENT) if absent."""
    unpin(path_of(name), f"netns {name!r}")


def open_fd(netns: str | int) -> int:
    """An O_RDONLY|O_CLOEXEC fd of a network namespace (name or path; an int is dup'ed).

    Opened once and checked through the fd (rule 7); O_NONBLOCK and
    O_NOCTTY so that a FIFO or a terminal given by mistake neither blocks
    nor changes anything. Raises NetnsError (ENOENT and the like, or EINVAL
    when it is no network namespace). The caller closes it.
    """
    target = _resolve(netns)
    what = f"netns {netns!r}"
    try:
        fd = os.dup(target) if isinstance(target, int) else os.open(
            target, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        raise _fail(e.errno or errno.EIO, what) from None
    try:
        _check_netns_fd(fd, what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_netns_fd(fd: int, what: str) -> None:
    """NetnsError(EINVAL) naming @what unless @fd is a network namespace:
    a file on nsfs (its magic, so that no other file ever gets the ioctl)
    whose NS_GET_NSTYPE is CLONE_NEWNET."""
    buf = ctypes.create_string_buffer(256)  # struct statfs; f_type is its first field, a long
    _libc_call(_libc.fstatfs(fd, buf), f"{what}: fstatfs")
    if struct.unpack_from("l", buf.raw)[0] != NSFS_MAGIC:
        raise NetnsError(errno.EINVAL, f"{what}: not a namespace file ({_file_kind(os.fstat(fd).st_mode)})")
    try:
        nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as e:
        raise _fail(e.errno or errno.EIO, f"{what}: NS_GET_NSTYPE") from None
    if nstype != CLONE_NEWNET:
        raise NetnsError(errno.EINVAL, f"{what}: a {NS_KINDS.get(nstype, 'different')} namespace, "
                                       "not a network namespace")


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "an unknown kind of file"


def _in_thread(fn: Callable[[], T]) -> T:
    box: dict[str, Any] = {}

    def main() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    t = threading.Thread(target=main, name="vnetshare-netns", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_in(netns: NetnsRef, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call fn(*args, **kwargs) in a fresh thread inside @netns; return what it returns.

    With netns None the thread stays in the caller's namespace (a new thread
    inherits it). Even then it is a fresh thread: pyroute2's synchronous
    classes run their own asyncio loop, which fails ("This event loop is
    already running") in a thread that runs one, like the daemon's. fn's
    exceptions propagate to the caller.
    """
    if netns is None:
        return _in_thread(lambda: fn(*args, **kwargs))
    fd = open_fd(netns)

    def enter_and_call() -> T:
        try:
            _libc_call(_libc.setns(fd, CLONE_NEWNET), f"enter netns {netns!r}")
        finally:
            os.close(fd)
        return fn(*args, **kwargs)

    return _in_thread(enter_and_call)


# --- links, addresses, routes ------------------------------------------------

@contextlib.contextmanager
def _netlink(what: str) -> Iterator[None]:
    from pyroute2.netlink.exceptions import NetlinkError  # rule 6

    try:
        yield
    except NetlinkError as e:
        raise _fail(e.code, what) from None


def _ipr(netns: NetnsRef, fn: Callable[[IPRoute], T]) -> T:
    from pyroute2 import IPRoute  # rule 6

    def call() -> T:
        with IPRoute() as ipr:
            return fn(ipr)

    return run_in(netns, call)


def _index(ipr: IPRoute, ifname: str, netns: NetnsRef) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise NetnsError(errno.ENODEV, f"link {ifname!r}{label(netns)}: not found")
    return found[0]


@dataclass(frozen=True)
class Link:
    """One network interface as netlink reports it."""

    index: int
    ifname: str
    mac: str | None
    mtu: int
    up: bool            # administratively up (IFF_UP)
    operstate: str      # UP, DOWN, LOWERLAYERDOWN, UNKNOWN, ...
    kind: str | None    # veth, tun, dummy, ... (None for lo and plain NICs)


def _link(msg: Any) -> Link:
    info = msg.get("IFLA_LINKINFO")
    return Link(
        index=msg["index"],
        ifname=msg.get("IFLA_IFNAME"),
        mac=msg.get("IFLA_ADDRESS"),
        mtu=msg.get("IFLA_MTU"),
        up=bool(msg["flags"] & IFF_UP),
        operstate=msg.get("IFLA_OPERSTATE") or "UNKNOWN",
        kind=info.get_attr("IFLA_INFO_KIND") if info is not None else None,
    )


def links(netns: NetnsRef = None) -> list[Link]:
    """Every link in @netns, by index."""
    def do(ipr: IPRoute) -> list[Link]:
        with _netlink(f"list links{label(netns)}"):
            return sorted((_link(m) for m in ipr.get_links()), key=lambda l: l.index)
    return _ipr(netns, do)


def link(ifname: str, netns: NetnsRef = None) -> Link:
    """The link @ifname in @netns; NetnsError(ENODEV) if there is none."""
    def do(ipr: IPRoute) -> Link:
        with _netlink(f"link {ifname!r}{label(netns)}"):
            return _link(ipr.link("get", index=_index(ipr, ifname, netns))[0])
    return _ipr(netns, do)


def veth_pair(ifname: str, peer: str, netns: NetnsRef = None, peer_netns: NetnsRef = None) -> None:
    """Make veth @ifname in @netns with its @peer end in @peer_netns (both down)."""
    def do(ipr: IPRoute) -> None:
        peer_spec: dict[str, Any] = {"ifname": peer}
        fd = None
        if peer_netns is not None:
            fd = open_fd(peer_netns)
            peer_spec["net_ns_fd"] = fd
        try:
            with _netlink(f"veth {ifname!r}{label(netns)} peer {peer!r}{label(peer_netns)}"):
                ipr.link("add", ifname=ifname, kind="veth", peer=peer_spec)
        finally:
            if fd is not None:
                os.close(fd)
    _ipr(netns, do)


IN6_ADDR_GEN_MODE_EUI64 = 0  # linux/if_link.h


def link_set(ifname: str, netns: NetnsRef = None, *, up: bool | None = None,
             mtu: int | None = None, mac: str | None = None, eui64: bool = False,
             txqueuelen: int | None = None) -> None:
    """Change @ifname: MTU, MAC, transmit queue length and IPv6 address generation first, then
    up/down (None: leave as is). @eui64: the IPv6 link-local address follows
    from the MAC (`ip link set addrgenmode eui64`), whatever the namespace's
    default (stable-privacy, random) says."""
    def do(ipr: IPRoute) -> None:
        with _netlink(f"link {ifname!r}{label(netns)}"):
            index = _index(ipr, ifname, netns)
            change: dict[str, Any] = {}
            if mtu is not None:
                change["mtu"] = mtu
            if mac is not None:
                change["address"] = mac
            if txqueuelen is not None:
                change["txqlen"] = txqueuelen
            if eui64:
                change["IFLA_AF_SPEC"] = {"attrs": [["AF_INET6", {"attrs": [
                    ["IFLA_INET6_ADDR_GEN_MODE", IN6_ADDR_GEN_MODE_EUI64]]}]]}
            if change:
                ipr.link("set", index=index, **change)
            if up is not None:
                ipr.link("set", index=index, state="up" if up else "down")
    _ipr(netns, do)


def set_up(ifname: str, netns: NetnsRef = None) -> bool:
    """Bring @ifname up (IFF_UP) unless it is; True if it was down.

    link_set(up=True) without pyroute2 (rule 6): SIOCGIFFLAGS and, only
    when IFF_UP is clear, SIOCSIFFLAGS, on a socket made in @netns.
    """
    def do() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            req = struct.pack("16sH14x", ifname.encode(), 0)
            try:
                flags = struct.unpack_from("H", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req), 16)[0]
                if flags & IFF_UP:
                    return False
                fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", ifname.encode(), flags | IFF_UP))
            except OSError as e:
                raise _fail(e.errno or errno.EIO, f"link {ifname!r}{label(netns)}: set up") from None
            return True
    return run_in(netns, do)


def wait_up(ifname: str, netns: NetnsRef = None, timeout: float = 5.0) -> Link:
    """Wait until @ifname's operstate is UP; NetnsError(ETIMEDOUT) after @timeout s.

    The kernel applies a carrier change (and IPv6 acts on it: a neighbour
    solicitation sent before is left unanswered, ping waits ~1 s for the
    retry) only when its linkwatch work runs, up to a second after `ip link
    set up`; operstate turns UP at that moment. Wait for both ends of a new
    veth (or a TAP and its peer) before the first packet.
    """
    def do(ipr: IPRoute) -> Link:
        deadline = time.monotonic() + timeout
        while True:
            with _netlink(f"link {ifname!r}{label(netns)}"):
                now = _link(ipr.link("get", index=_index(ipr, ifname, netns))[0])
            if now.operstate == "UP":
                return now
            if time.monotonic() > deadline:
                raise NetnsError(errno.ETIMEDOUT, f"link {ifname!r}{label(netns)}: still {now.operstate} "
                                                  f"after {timeout:g} s")
            time.sleep(0.02)
    return _ipr(netns, do)


def lo_up(netns: NetnsRef = None) -> None:
    """Bring the loopback of @netns up (a new namespace starts with it down)."""
    link_set("lo", netns, up=True)


def delete_link(ifname: str, netns: NetnsRef = None) -> None:
    """Delete @ifname (a veth takes its peer with it); NetnsError(ENODEV) if absent."""
    def do(ipr: IPRoute) -> None:
        with _netlink(f"link {ifname!r}{label(netns)}"):
            ipr.link("del", index=_index(ipr, ifname, netns))
    _ipr(netns, do)


def add_address(ifname: str, cidr: str, netns: NetnsRef = None, nodad: bool = False) -> None:
    """Add @cidr ('10.0.0.2/24', 'fd00::2/64') to @ifname.

    IPv4 gets its broadcast address (like `ip addr add ... brd +`). With
    @nodad an IPv6 address skips duplicate address detection and is usable at
    once instead of after ~1-2 s (tests, and partitions whose addresses the
    manager guarantees unique).
    """
    iface = ipaddress.ip_interface(cidr)

    def do(ipr: IPRoute) -> None:
        with _netlink(f"address {cidr} on {ifname!r}{label(netns)}"):
            spec: dict[str, Any] = {
                "index": _index(ipr, ifname, netns),
                "address": str(iface.ip),
                "prefixlen": iface.network.prefixlen,
            }
            if iface.version == 4 and iface.network.prefixlen < 31:
                spec["broadcast"] = True
            if iface.version == 6 and nodad:
                spec["flags"] = IFA_F_NODAD  # pyroute2 sends it as IFA_FLAGS (ifaddrmsg.IFA_F_NODAD)
            ipr.addr("add", **spec)
    _ipr(netns, do)


def configure(ifname: str, netns: NetnsRef, *, mtu: int, addresses: list[str], nodad: bool = False,
              gateway: str | None = None, routes: list[str] = (), here: bool = False,
              txqueuelen: int | None = None) -> None:
    """A new link's setup in one netlink batch (rtbatch.py): what
    link_set(@ifname, mtu=@mtu, eui64=True, up=True, txqueuelen=@txqueuelen), sysctl of its IPv4
    promote_secondaries to 1, lo_up(), add_address() of each of
    @addresses (with @nodad), add_route("default", @gateway) and
    add_route(DST, GW, ifname=@ifname) of each "DST[ via GW]" of @routes do,
    in that order, with their errors (rule 3); without pyroute2 (rule 6).
    @here: the calling thread is in @netns already (create_and()'s
    @inside), and runs it; @netns then only names it in messages."""
    from .rtbatch import LOOPBACK_IFINDEX, Batch

    def do() -> None:
        try:
            index = socket.if_nametoindex(ifname)
        except OSError as e:
            raise _fail(e.errno or errno.ENODEV, f"link {ifname!r}{label(netns)}") from None
        b = Batch()
        b.link(index, f"link {ifname!r}{label(netns)}", mtu=mtu, eui64=True, promote_secondaries=True,
               txqueuelen=txqueuelen)
        b.link(index, f"link {ifname!r}{label(netns)}", up=True)
        b.link(LOOPBACK_IFINDEX, f"link 'lo'{label(netns)}", up=True)
        for cidr in addresses:
            b.address(index, cidr, f"address {cidr} on {ifname!r}{label(netns)}", nodad=nodad)
        if gateway:
            b.route("default", gateway, f"default route via {gateway}{label(netns)}")
        for route in routes:
            dst, _, gw = route.partition(" via ")
            b.route(dst, gw or None, f"route {dst}" + (f" via {gw}" if gw else f" dev {ifname}") + label(netns),
                    oif=index)
        b.send(_fail)
    if here:
        do()
    else:
        run_in(netns, do)


def sysctl(key: str, value: str | int, netns: NetnsRef = None) -> None:
    """Set a network sysctl (e.g. 'net/ipv4/conf/eth0/promote_secondaries') in @netns."""
    def write() -> None:
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(f"{value}\n")
    try:
        run_in(netns, write)
    except OSError as e:
        raise _fail(e.errno or errno.EIO, f"sysctl {key}{label(netns)}") from None


def del_address(ifname: str, cidr: str, netns: NetnsRef = None) -> None:
    """Remove @cidr from @ifname; NetnsError(EADDRNOTAVAIL) if it has no such address."""
    iface = ipaddress.ip_interface(cidr)

    def do(ipr: IPRoute) -> None:
        with _netlink(f"address {cidr} on {ifname!r}{label(netns)}"):
            ipr.addr("del", index=_index(ipr, ifname, netns), address=str(iface.ip),
                     prefixlen=iface.network.prefixlen)
    _ipr(netns, do)


def addresses(ifname: str, netns: NetnsRef = None) -> list[str]:
    """The addresses on @ifname as CIDRs, IPv4 first."""
    def do(ipr: IPRoute) -> list[str]:
        with _netlink(f"addresses of {ifname!r}{label(netns)}"):
            msgs = ipr.addr("dump", index=_index(ipr, ifname, netns))
            msgs = sorted(msgs, key=lambda m: m["family"])
            return [f"{m.get('IFA_ADDRESS')}/{m['prefixlen']}" for m in msgs]
    return _ipr(netns, do)


def add_route(dst: str, gateway: str | None = None, netns: NetnsRef = None,
              ifname: str | None = None, replace: bool = False) -> None:
    """Add a route to @dst (a prefix, or "default") via @gateway, or on-link
    through @ifname without one; with @replace, the route to @dst that
    exists (`ip route replace`) is replaced, and none is no error."""
    def do(ipr: IPRoute) -> None:
        what = ("default route" if dst == "default" else f"route {dst}") + (
            f" via {gateway}" if gateway else f" dev {ifname}")
        with _netlink(f"{what}{label(netns)}"):
            kw: dict[str, Any] = {"gateway": gateway} if gateway else {}
            if ifname is not None:
                kw["oif"] = _index(ipr, ifname, netns)
            if not kw:
                raise NetnsError(errno.EINVAL, f"{what}: needs a gateway or a device")
            if dst == "default" and gateway:
                kw["family"] = socket.AF_INET6 if ":" in gateway else socket.AF_INET
            ipr.route("replace" if replace else "add", dst=dst, **kw)
    _ipr(netns, do)


def del_route_to(dst: str, gateway: str | None = None, netns: NetnsRef = None) -> None:
    """Remove the route to @dst (a prefix, or "default" of @gateway's
    family); ENOENT (NetnsError) if there is none."""
    def do(ipr: IPRoute) -> None:
        with _netlink(f"route {dst}{label(netns)}"):
            kw: dict[str, Any] = {}
            if dst == "default":
                kw["family"] = socket.AF_INET6 if gateway and ":" in gateway else socket.AF_INET
            ipr.route("del", dst=dst, **kw)
    _ipr(netns, do)


def add_default_route(gateway: str, netns: NetnsRef = None) -> None:
    """Add the default route via @gateway (IPv4 or IPv6, by its form)."""
    add_route("default", gateway, netns)


def sysctl_get(key: str, netns: NetnsRef = None) -> str:
    """A network sysctl's value as the kernel writes it, without the newline."""
    def read() -> str:
        with open(f"/proc/sys/{key}") as f:
            return f.read().strip()
    try:
        return run_in(netns, read)
    except OSError as e:
        raise _fail(e.errno or errno.EIO, f"sysctl {key}{label(netns)}") from None


# --- moving addresses and routes from one link to another -----------------------
#
# What a device has, read whole enough to be made again on another device
# (the host port takes the uplink's addresses and routes, hostport.py). A
# record is plain data (asdict() is its JSON); its device is not in it.

IFA_F_SECONDARY = 0x01
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
# ifa_flags a user may set (linux/if_addr.h): homeaddress, managetempaddr,
# noprefixroute, mcautojoin; the rest is the kernel's bookkeeping
# (permanent, tentative, deprecated, dadfailed, secondary, stable-privacy)
IFA_F_SETTABLE = 0x10 | 0x100 | 0x200 | 0x400
INFINITY_LIFE = 0xFFFFFFFF
RT_TABLE_LOCAL = 255
RTN_UNICAST = 1
RTPROT_KERNEL = 2


@dataclass(frozen=True)
class Address:
    """One address of a device: enough to add it again, there or elsewhere.

    @valid and @preferred are the seconds left when it was read (None:
    forever, as a static address); @label is IPv4's (eth0, eth0:1).
    """

    family: int         # 4 or 6
    address: str
    prefixlen: int
    flags: int = 0      # IFA_F_SETTABLE bits only
    secondary: bool = False
    broadcast: str | None = None
    label: str | None = None
    valid: int | None = None
    preferred: int | None = None

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


def _address(msg: Any) -> Address:
    family = 4 if msg["family"] == socket.AF_INET else 6
    flags = msg.get("IFA_FLAGS") or msg["flags"]
    life = msg.get("IFA_CACHEINFO") or {}
    valid, preferred = life.get("ifa_valid", INFINITY_LIFE), life.get("ifa_preferred", INFINITY_LIFE)
    return Address(family, msg.get("IFA_ADDRESS"), msg["prefixlen"], flags & IFA_F_SETTABLE,
                   bool(flags & IFA_F_SECONDARY), msg.get("IFA_BROADCAST"), msg.get("IFA_LABEL"),
                   None if valid == INFINITY_LIFE else valid, None if preferred == INFINITY_LIFE else preferred)


def address_list(ifname: str, netns: NetnsRef = None, scope_max: int = 200) -> list[Address]:
    """The addresses on @ifname whose scope is at most @scope_max (the
    default: global and site, not link or host), IPv4 first, each family
    in the kernel's order (an IPv4 subnet's primary before its secondaries)."""
    def do(ipr: IPRoute) -> list[Address]:
        with _netlink(f"addresses of {ifname!r}{label(netns)}"):
            msgs = ipr.addr("dump", index=_index(ipr, ifname, netns))
            return [_address(m) for m in sorted(msgs, key=lambda m: m["family"]) if m["scope"] <= scope_max]
    return _ipr(netns, do)


def put_address(ifname: str, a: Address, netns: NetnsRef = None, label_as: str | None = None) -> None:
    """Add @a to @ifname as it was, lifetimes and flags too (an IPv6 one
    without duplicate address detection: it is the same host's address,
    moving); @label_as: its IPv4 label here (default: @a's own)."""
    def do(ipr: IPRoute) -> None:
        with _netlink(f"address {a.cidr} on {ifname!r}{label(netns)}"):
            spec: dict[str, Any] = {"index": _index(ipr, ifname, netns), "address": a.address,
                                    "prefixlen": a.prefixlen, "family": FAMILIES[a.family],
                                    "flags": a.flags | (IFA_F_NODAD if a.family == 6 else 0)}
            if a.broadcast:
                spec["broadcast"] = a.broadcast
            if a.family == 4 and (label_as or a.label):
                spec["label"] = label_as or a.label
            if a.valid is not None or a.preferred is not None:
                valid = INFINITY_LIFE if a.valid is None else a.valid
                spec["IFA_CACHEINFO"] = {"ifa_valid": valid, "cstamp": 0, "tstamp": 0,
                                         "ifa_preferred": min(valid, INFINITY_LIFE if a.preferred is None
                                                              else a.preferred)}
            ipr.addr("add", **spec)
    _ipr(netns, do)


@dataclass(frozen=True)
class Route:
    """One route through a device, as `ip route` would add it again: a
    unicast route of any table but the local one (whose routes come and go
    with the addresses)."""

    family: int                 # 4 or 6
    dst: str                    # a prefix, or "default"
    gateway: str | None = None
    table: int = 254            # main
    priority: int | None = None  # the metric
    proto: int = 3              # boot, as `ip route add` makes it
    scope: int = 0
    prefsrc: str | None = None

    def describe(self) -> str:
        return (self.dst + (f" via {self.gateway}" if self.gateway else "")
                + ("" if self.table == 254 else f" table {self.table}")
                + ("" if self.priority is None else f" metric {self.priority}"))


def _route(msg: Any) -> Route:
    family = 4 if msg["family"] == socket.AF_INET else 6
    dst = msg.get("RTA_DST")
    return Route(family, f"{dst}/{msg['dst_len']}" if dst is not None else "default",
                 msg.get("RTA_GATEWAY"), msg.get("RTA_TABLE") or msg["table"], msg.get("RTA_PRIORITY"),
                 msg["proto"], msg["scope"], msg.get("RTA_PREFSRC"))


def routes_via(ifname: str, netns: NetnsRef = None) -> tuple[list[Route], list[str]]:
    """The routes through @ifname that are not the kernel's own (RTPROT_KERNEL:
    the prefix routes of its addresses and fe80::/64 come and go with
    them), both families, every table but the local one; and, in words,
    the ones that cannot be made again one by one (multipath, nexthop
    objects, routes of another type than unicast)."""
    def do(ipr: IPRoute) -> tuple[list[Route], list[str]]:
        with _netlink(f"routes of {ifname!r}{label(netns)}"):
            index = _index(ipr, ifname, netns)
            found: list[Route] = []
            other: list[str] = []
            for family in (socket.AF_INET, socket.AF_INET6):
                for m in ipr.route("dump", family=family):
                    table = m.get("RTA_TABLE") or m["table"]
                    if table == RT_TABLE_LOCAL or m["proto"] == RTPROT_KERNEL:
                        continue
                    hops = m.get("RTA_MULTIPATH") or []
                    if m.get("RTA_OIF") != index and not any(h["oif"] == index for h in hops):
                        continue
                    if hops or m.get("RTA_NH_ID") or m["type"] != RTN_UNICAST:
                        other.append(_route(m).describe())
                    else:
                        found.append(_route(m))
            return found, other
    return _ipr(netns, do)


def _route_spec(ipr: IPRoute, r: Route, ifname: str, netns: NetnsRef) -> dict[str, Any]:
    if r.dst == "default":
        dst, length = ("0.0.0.0" if r.family == 4 else "::"), "0"
    else:
        dst, _, length = r.dst.partition("/")
    spec: dict[str, Any] = {"family": FAMILIES[r.family], "dst": dst, "dst_len": int(length),
                            "oif": _index(ipr, ifname, netns), "table": r.table, "proto": r.proto,
                            "scope": r.scope, "type": RTN_UNICAST}
    for key, value in (("gateway", r.gateway), ("priority", r.priority), ("prefsrc", r.prefsrc)):
        if value is not None:
            spec[key] = value
    return spec


def put_route(ifname: str, r: Route, netns: NetnsRef = None) -> None:
    """Route @r through @ifname, replacing the route of the same key (its
    destination, table and metric) wherever it went: one netlink request,
    so the destination is never without a route."""
    def do(ipr: IPRoute) -> None:
        with _netlink(f"route {r.describe()} dev {ifname}{label(netns)}"):
            ipr.route("replace", **_route_spec(ipr, r, ifname, netns))
    _ipr(netns, do)


def del_route(ifname: str, r: Route, netns: NetnsRef = None) -> None:
    """Remove @r through @ifname; NetnsError(ESRCH) if there is none."""
    def do(ipr: IPRoute) -> None:
        with _netlink(f"route {r.describe()} dev {ifname}{label(netns)}"):
            ipr.route("del", **_route_spec(ipr, r, ifname, netns))
    _ipr(netns, do)


# --- cleanup ------------------------------------------------------------------

def quietly(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """fn(*args, **kwargs), except that "already gone" (rule 4) returns None."""
    try:
        return fn(*args, **kwargs)
    except OSError as e:
        if e.errno in GONE:
            return None
        raise
