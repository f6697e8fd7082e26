"""netns.py and adapter.query() against the real kernel (root, inside the sandbox).

Every namespace and link a test makes is removed by its fixture, even when
the test fails; the last test checks that deleting a namespace leaves
nothing behind.
"""
import asyncio
import errno
import fcntl
import itertools
import os
import signal
import struct
import subprocess

import pytest

from vnetshare import adapter
from vnetshare.core import config
from vnetshare.linux import netns as ns
from vnetshare.linux.netns import NetnsError
from waiting import wait_for

_seq = itertools.count()


@pytest.fixture
def make_ns():
    """make_ns() -> a fresh named netns with lo up; all deleted after the test."""
    made = []

    def make():
        name = f"vt{os.getpid() % 10000}-{next(_seq)}"
        ns.create(name)
        made.append(name)
        ns.lo_up(name)
        return name

    yield make
    for name in made:
        ns.quietly(ns.delete, name)


@pytest.fixture
def host_links():
    """Names appended here are deleted from the caller's netns after the test."""
    names = []
    yield names
    for name in names:
        ns.quietly(ns.delete_link, name)


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, **kw)


def ping(name, addr):
    return run(["ip", "netns", "exec", name, "ping", "-n", "-c1", "-W1", addr])


def test_create_and_delete_a_named_netns():
    name = f"vt{os.getpid() % 10000}-life"
    path = ns.create(name)
    try:
        assert path == f"/run/netns/{name}"
        assert ns.exists(name) and name in ns.names()
        assert config.netns_path(path) == path  # what --netns accepts
        out = run(["ip", "netns", "exec", name, "ip", "-o", "link"])
        assert out.returncode == 0 and ": lo:" in out.stdout and out.stdout.count("\n") == 1
        with pytest.raises(NetnsError) as e:
            ns.create(name)
        assert e.value.errno == errno.EEXIST and repr(name) in str(e.value)
        assert name in run(["ip", "netns", "list"]).stdout
    finally:
        ns.quietly(ns.delete, name)
    assert not ns.exists(name) and not os.path.exists(path) and name not in ns.names()
    with pytest.raises(NetnsError) as e:
        ns.delete(name)
    assert e.value.errno == errno.ENOENT and repr(name) in str(e.value)
    assert ns.quietly(ns.delete, name) is None


def test_run_in_enters_only_a_fresh_thread(make_ns):
    name = make_ns()
    here = os.readlink("/proc/thread-self/ns/net")
    there = ns.run_in(name, os.readlink, "/proc/thread-self/ns/net")
    assert there != here
    assert os.readlink("/proc/thread-self/ns/net") == here  # the caller never moved
    assert ns.run_in(f"/run/netns/{name}", os.readlink, "/proc/thread-self/ns/net") == there
    fd = ns.open_fd(name)
    try:
        assert ns.run_in(fd, os.readlink, "/proc/thread-self/ns/net") == there
    finally:
        os.close(fd)
    with pytest.raises(ZeroDivisionError):
        ns.run_in(name, lambda: 1 / 0)
    assert [link.ifname for link in ns.links(name)] == ["lo"]


def test_calls_work_from_a_running_event_loop(make_ns):
    # the daemon's control thread runs asyncio; pyroute2's sync API can't nest loops
    name = make_ns()

    async def main():
        return ns.links(), ns.links(name), adapter.query("lo")

    here, there, lo = asyncio.run(main())
    assert [link.ifname for link in here] == [link.ifname for link in there] == ["lo"]
    assert lo.mtu == 65536 and lo.speed is None


def test_veth_between_two_namespaces_carries_ipv4_and_ipv6(make_ns):
    a, b = make_ns(), make_ns()
    ns.veth_pair("va", "vb", netns=a, peer_netns=b)
    for name, dev, v4, v6 in ((a, "va", "10.77.0.1/24", "fd77::1/64"), (b, "vb", "10.77.0.2/24", "fd77::2/64")):
        ns.add_address(dev, v4, name)
        ns.add_address(dev, v6, name, nodad=True)
        ns.link_set(dev, name, up=True)
    assert ns.addresses("vb", b)[:2] == ["10.77.0.2/24", "fd77::2/64"]  # then the kernel's link-local
    ns.wait_up("va", a)
    ns.wait_up("vb", b)
    for addr in ("10.77.0.2", "fd77::2"):
        r = ping(a, addr)
        assert r.returncode == 0 and "1 received" in r.stdout, r.stdout + r.stderr
    # the host sees none of it
    assert [link.ifname for link in ns.links()] == ["lo"]


def test_default_route_reaches_beyond_the_subnet(make_ns):
    a, b = make_ns(), make_ns()
    ns.veth_pair("va", "vb", netns=a, peer_netns=b)
    ns.add_address("va", "10.78.0.2/24", a)
    ns.add_address("va", "fd78::2/64", a, nodad=True)
    ns.add_address("vb", "10.78.0.1/24", b)
    ns.add_address("vb", "fd78::1/64", b, nodad=True)
    ns.add_address("lo", "192.0.2.1/32", b)  # only reachable through the gateway
    ns.add_address("lo", "2001:db8::1/128", b, nodad=True)
    ns.link_set("va", a, up=True)
    ns.link_set("vb", b, up=True)
    ns.wait_up("va", a)
    ns.wait_up("vb", b)
    ns.add_default_route("10.78.0.1", a)
    ns.add_default_route("fd78::1", a)
    routes = run(["ip", "netns", "exec", a, "ip", "route"]).stdout + \
        run(["ip", "netns", "exec", a, "ip", "-6", "route"]).stdout
    assert "default via 10.78.0.1 dev va" in routes and "default via fd78::1 dev va" in routes
    for addr in ("192.0.2.1", "2001:db8::1"):
        r = ping(a, addr)
        assert r.returncode == 0 and "1 received" in r.stdout, r.stdout + r.stderr


def test_link_set_and_links(make_ns, host_links):
    name = make_ns()
    host_links.append("vh0")
    ns.veth_pair("vh0", "vp0", peer_netns=name)
    ns.link_set("vp0", name, mtu=9000, mac="02:00:5e:00:00:42", up=True)
    peer = ns.link("vp0", name)
    assert (peer.mtu, peer.mac, peer.up, peer.kind) == (9000, "02:00:5e:00:00:42", True, "veth")
    host = ns.link("vh0")
    assert host.kind == "veth" and not host.up and host.operstate == "DOWN"
    assert [link.ifname for link in ns.links(name)] == ["lo", "vp0"]
    lo = ns.links(name)[0]
    assert lo.kind is None and lo.up
    ns.link_set("vp0", name, up=False)
    assert not ns.link("vp0", name).up
    with pytest.raises(NetnsError) as e:
        ns.wait_up("vh0", timeout=0.1)
    assert e.value.errno == errno.ETIMEDOUT and "link 'vh0': still DOWN after 0.1 s" in str(e.value)


def test_errors_keep_errno_and_name_the_object(make_ns, host_links):
    name = make_ns()
    with pytest.raises(NetnsError) as e:
        ns.link("nope0", name)
    assert e.value.errno == errno.ENODEV and isinstance(e.value, OSError)
    assert str(e.value.strerror) == f"link 'nope0' in netns '{name}': not found"
    host_links.append("vh1")
    ns.veth_pair("vh1", "vp1", peer_netns=name)
    with pytest.raises(NetnsError) as e:
        ns.veth_pair("vh1", "vp9", peer_netns=name)
    assert e.value.errno == errno.EEXIST and "veth 'vh1'" in str(e.value) and "File exists" in str(e.value)
    ns.add_address("vp1", "10.79.0.2/24", name)
    with pytest.raises(NetnsError) as e:
        ns.add_address("vp1", "10.79.0.2/24", name)
    assert e.value.errno == errno.EEXIST and "address 10.79.0.2/24 on 'vp1'" in str(e.value)
    with pytest.raises(NetnsError) as e:
        ns.add_default_route("10.99.0.1", name)
    assert e.value.errno == errno.ENETUNREACH and "default route via 10.99.0.1" in str(e.value)
    with pytest.raises(NetnsError) as e:
        ns.run_in("no-such-ns", os.getpid)
    assert e.value.errno == errno.ENOENT and "'no-such-ns'" in str(e.value)
    with pytest.raises(NetnsError) as e:
        ns.open_fd("/etc/hostname")
    assert e.value.errno == errno.EINVAL and "not a namespace file" in str(e.value)
    with pytest.raises(NetnsError) as e:
        ns.open_fd(f"/proc/{os.getpid()}/ns/uts")
    assert e.value.errno == errno.EINVAL and "not a network namespace" in str(e.value)


def test_quietly_swallows_only_gone(make_ns):
    name = make_ns()
    assert ns.quietly(ns.delete_link, "nope0", name) is None
    assert ns.quietly(ns.delete, "never-made") is None
    with pytest.raises(NetnsError) as e:
        ns.quietly(ns.open_fd, "/etc/hostname")
    assert e.value.errno == errno.EINVAL


def test_adopt_a_netns_by_proc_path(host_links):
    # a namespace held only by a process, as a container runtime passes it
    proc = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        path = f"/proc/{proc.pid}/ns/net"
        assert wait_for(lambda: os.readlink(path) != os.readlink("/proc/self/ns/net"))
        assert config.netns_path(path) == path
        host_links.append("vh2")
        ns.veth_pair("vh2", "vc2", peer_netns=path)
        assert [link.ifname for link in ns.links(path)] == ["lo", "vc2"]
        ns.delete_link("vc2", path)
        assert [link.ifname for link in ns.links(path)] == ["lo"]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


# -- pinning an adopted namespace (issue 20, item 8) --------------------------------

@pytest.fixture
def pin_dir(tmp_path):
    """Where a test pins; pin() makes it a shared mount point: unmounted after."""
    d = tmp_path / "pins"
    yield d
    if os.path.ismount(d):
        subprocess.run(["umount", "--lazy", str(d)], check=True)


def _ino(path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


@pytest.mark.parametrize("kind, why", [
    ("regular file", "not a namespace file (a regular file)"),
    ("directory", "not a namespace file (a directory)"),
    ("mount namespace", "a mount namespace, not a network namespace"),
    ("FIFO", "not a namespace file (a FIFO)"),
])
def test_pin_refuses_what_is_no_network_namespace_and_leaves_nothing(tmp_path, pin_dir, kind, why):
    import concurrent.futures

    path = {"regular file": tmp_path / "plain", "directory": tmp_path / "dir", "FIFO": tmp_path / "fifo",
            "mount namespace": f"/proc/{os.getpid()}/ns/mnt"}[kind]
    if kind == "regular file":
        path.write_text("")
    elif kind == "directory":
        path.mkdir()
    elif kind == "FIFO":
        os.mkfifo(path)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        attempt = pool.submit(ns.pin, str(path), str(pin_dir / "p"))
        try:
            with pytest.raises(NetnsError) as e:
                attempt.result(timeout=10)  # a FIFO opened for reading without O_NONBLOCK waits for a writer
        finally:
            if kind == "FIFO" and not attempt.done():
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # let it go
    assert e.value.errno == errno.EINVAL
    assert e.value.strerror == f"netns {str(path)!r}: {why}"
    assert not pin_dir.exists(), "pin() made its directory before its check"


def test_pin_holds_the_namespace_it_checked_whatever_the_path_names_by_then(make_ns, tmp_path, pin_dir,
                                                                            monkeypatch):
    """A runtime's path that names another namespace between pin()'s check and
    its mount (here a symlink retargeted from a to b in the hook pin() calls
    in between) changes nothing: the pin is a mount of the checked descriptor."""
    a, b = make_ns(), make_ns()
    link = tmp_path / "ctr-netns"
    os.symlink(ns.path_of(a), link)
    share_dir = ns.share_dir

    def retarget_then_share(directory):
        os.symlink(ns.path_of(b), tmp_path / "next")
        os.replace(tmp_path / "next", link)
        share_dir(directory)

    monkeypatch.setattr(ns, "share_dir", retarget_then_share)
    pin = str(pin_dir / "p")
    ns.pin(str(link), pin)
    try:
        assert os.readlink(link) == ns.path_of(b)  # the swap did happen, after the check
        assert _ino(pin) == _ino(ns.path_of(a)) != _ino(ns.path_of(b))
        # it is a's namespace that the pin keeps: a device made through it shows in a, not in b
        ns.veth_pair("vpin0", "vpin1", pin, pin)
        assert "vpin0" in [link.ifname for link in ns.links(a)]
        assert [link.ifname for link in ns.links(b)] == ["lo"]
    finally:
        ns.unpin(pin)
    assert not os.path.exists(pin)


def test_adapter_query_on_a_veth(make_ns, host_links):
    name = make_ns()
    host_links.append("up0")
    ns.veth_pair("up0", "lan0", peer_netns=name)
    ns.link_set("lan0", name, mtu=9000)
    info = adapter.query("lan0", netns=name)
    assert info.ifname == "lan0" and info.mtu == 9000 and info.ifindex > 0
    assert info.mac == ns.link("lan0", name).mac
    assert info.speed == 10000 and info.duplex == "Full"
    assert info.features["tx-tcp-segmentation"] is True
    assert info.features["tx-checksum-ip-generic"] is True
    assert "" not in info.features
    fns = adapter.derive(info)
    assert fns.mtu == 9000
    assert fns.tun_offloads & adapter.TUN_F_TSO4 and fns.tun_offloads & adapter.TUN_F_CSUM and fns.vnet_gso
    # the caller's own namespace, and the same through a path
    assert adapter.query("up0").mtu == 1500
    assert adapter.query("lan0", netns=f"/run/netns/{name}").mtu == 9000


TUNSETIFF, TUNSETOFFLOAD = 0x400454CA, 0x400454D0
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    return fd


@pytest.mark.parametrize("mode", ["mirror", "emulate"])
def test_derived_offloads_fit_a_tap_opened_inside_the_netns(make_ns, host_links, mode):
    name = make_ns()
    host_links.append("up1")
    ns.veth_pair("up1", "lan1")
    fns = adapter.derive(adapter.query("up1"), mode)
    fd = ns.run_in(name, open_tap, "tap0")  # opened by a thread inside: the TAP lives there
    try:
        assert [link.ifname for link in ns.links(name)] == ["lo", "tap0"]
        assert "tap0" not in [link.ifname for link in ns.links()]
        fcntl.ioctl(fd, TUNSETOFFLOAD, fns.tun_offloads)  # EINVAL if derive() broke tun.c's rules
        feats = adapter.query("tap0", netns=name).features
        assert feats["tx-checksum-ip-generic"] and feats["tx-tcp-segmentation"] and feats["tx-tcp6-segmentation"]
    finally:
        os.close(fd)  # a non-persistent TAP goes with its last fd
    assert wait_for(lambda: [link.ifname for link in ns.links(name)] == ["lo"])


def test_adapter_query_missing_uplink(make_ns):
    name = make_ns()
    with pytest.raises(NetnsError) as e:
        adapter.query("xyz")
    assert e.value.errno == errno.ENODEV and e.value.strerror == "uplink 'xyz' not found"
    with pytest.raises(NetnsError, match=f"uplink 'xyz' not found in netns '{name}'"):
        adapter.query("xyz", netns=name)
    with pytest.raises(config.ConfigError, match=r"uplink 'a/b'"):
        adapter.query("a/b")


def test_deleted_netns_leaves_nothing_behind(host_links):
    name = f"vt{os.getpid() % 10000}-gone"
    ns.create(name)
    host_links.append("vh3")
    try:
        ns.veth_pair("vh3", "vg3", peer_netns=name)
        ns.add_address("vg3", "10.80.0.2/24", name)
        ns.link_set("vg3", name, up=True)
        assert "vh3" in [link.ifname for link in ns.links()]
    finally:
        ns.quietly(ns.delete, name)
    assert not os.path.exists(f"/run/netns/{name}")
    assert name not in ns.names()
    assert name not in run(["ip", "netns", "list"]).stdout
    # the namespace itself is gone: its veth end went with it, taking the host end
    assert wait_for(lambda: [link.ifname for link in ns.links()] == ["lo"]), ns.links()


def _l3(name: str) -> tuple:
    """What a namespace's v0 has: MTU, up, addresses (with flags), routes,
    promote_secondaries, lo's state, as `ip` prints them."""
    def ip(*argv):
        return run(["ip", "netns", "exec", name, "ip", *argv]).stdout
    addrs = sorted(line.split(None, 2)[2].split(" valid_lft")[0] for line in ip("-o", "addr", "show", "dev", "v0")
                   .splitlines() if " fe80::" not in line)  # the link-local: after the carrier, checked apart
    link = ns.link("v0", name)
    return (link.mtu, link.up, ns.link("lo", name).up, addrs, ip("route"), ip("-6", "route"),
            ns.sysctl_get("net/ipv4/conf/v0/promote_secondaries", name),
            ns.sysctl_get("net/ipv6/conf/v0/addr_gen_mode", name))


def test_configure_in_one_batch_makes_what_the_calls_one_at_a_time_make(make_ns):
    """netns.configure() (one netlink batch, a partition's making) against
    link_set, sysctl, lo_up, add_address, add_default_route and add_route
    one at a time, on twin links: the same MTU, state, addresses (IPv4
    broadcast, IPv6 nodad, the link-local from the MAC), routes and
    sysctls; an error names the request and keeps the kernel's errno."""
    a, b = make_ns(), make_ns()
    ips = ["10.80.0.2/24", "10.80.0.3/24", "fd80::2/64"]
    routes = ["10.81.0.0/16 via 10.80.0.9", "10.82.0.0/16", "fd81::/64 via fd80::9"]
    for name in (a, b):
        ns.veth_pair("v0", "v1", netns=name, peer_netns=name)
        ns.link_set("v0", name, mac="02:00:5e:00:80:02")
        ns.sysctl("net/ipv6/conf/v0/addr_gen_mode", 1, name)  # none: eui64 must come from the call
        ns.link_set("lo", name, up=False)
        ns.link_set("v1", name, up=True)
    ns.configure("v0", a, mtu=1400, addresses=ips, nodad=True, gateway="10.80.0.1", routes=routes)
    ns.link_set("v0", b, mtu=1400, eui64=True, up=True)
    ns.sysctl("net/ipv4/conf/v0/promote_secondaries", 1, b)
    ns.lo_up(b)
    for cidr in ips:
        ns.add_address("v0", cidr, b, nodad=True)
    ns.add_default_route("10.80.0.1", b)
    for route in routes:
        dst, _, gw = route.partition(" via ")
        ns.add_route(dst, gw or None, b, ifname="v0")
    got, want = _l3(a), _l3(b)
    assert got == want
    assert got[:3] == (1400, True, True) and got[6:] == ("1", "0")
    wait_for(lambda: "fe80::5eff:fe00:8002/64" in ns.addresses("v0", a), what="v0's link-local from its MAC")
    assert "brd 10.80.0.255" in " ".join(got[3]) and "nodad" in " ".join(got[3])
    with pytest.raises(NetnsError) as e:
        ns.configure("v1", a, mtu=1400, addresses=["10.83.0.2/24"], gateway="10.99.0.1")
    assert e.value.errno == errno.ENETUNREACH and f"default route via 10.99.0.1 in netns '{a}'" in str(e.value)
    assert "10.83.0.2/24" in " ".join(ns.addresses("v1", a))  # the requests before it were made
    with pytest.raises(NetnsError) as e:
        ns.configure("nope0", a, mtu=1400, addresses=[])
    assert e.value.errno == errno.ENODEV and f"link 'nope0' in netns '{a}'" in str(e.value)
