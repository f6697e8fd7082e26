"""hostport.py - the host port: the host's own device on the switch.

    vnetshare daemon --uplink IFACE --host-port NAME [--host-port-mac MAC] [--take-address]

Frames the switch sends on the uplink through AF_PACKET never reach the
host's own stack on that NIC, and what the host sends on the NIC never
reaches the switch (the uplink socket ignores outgoing frames): a host
whose address is on the shared NIC cannot reach its partitions, as with
macvlan. The host port is a device in the host's namespace attached to the
switch like a partition (a TAP, an agent, two rings, a port: the DMA path
every port has), but it is the daemon's own, not a tenant: Open vSwitch's
internal port, the Shared Ethernet Adapter's own interface. Give it the
host's address (--take-address moves it from the NIC, as enslaving a NIC
to a Linux bridge needs) and the host reaches its partitions, and the LAN
through the switch and the NIC.

Rules:
1. What the switch checks (native/guard.h): the host port is trusted: any
   source address (GUARD_F_L3_ANY), router advertisements, redirects and
   DHCP server and relay messages (GUARD_F_TRUSTED_ROUTER), 802.3 length
   frames (GUARD_F_ALLOW_LLC). Kept: its own source MAC (the switch learns
   no station behind a port, so a frame from another MAC could get no
   answer, and a partition's MAC is not the host's to take), untagged
   frames only (it is a port of no VLAN), the MTU, the vnet header's
   checksum and segmentation requests (what the kernel does with them),
   and the link-layer control frames (STP, PAUSE, LACP, LLDP, 802.1X: the
   host speaks them on the NIC itself, which still has its own link).
   Storm control is the daemon's --storm-limit, as for a partition: its
   broadcasts are copied into every partition's ring whoever sends them.
   No rate limits.
2. One host port per daemon: switch port HOST_PORT_ID (manager.py), its
   agent supervised as a partition's; not a partition: not in `partition
   list` or the partitions' state, but `stats` and the metrics show it
   apart. Its record is STATE_DIR/hostport.json, written atomically
   (state.write_atomic()) before the change it describes.
3. Its MAC is --host-port-mac, or derived from the uplink's MAC and its
   name (host_mac()): the same at every start, so the LAN's neighbour
   caches stay right across restarts.
4. It comes and goes with the daemon: made (or adopted) at start once the
   partitions are served, before the control socket; a clean stop gives
   back what it took, then deletes it. The TAP is persistent, so a daemon
   killed with SIGKILL leaves it there with the host's addresses and routes,
   unserved; the next daemon adopts it as it is (nothing moves), or,
   started without that --host-port, gives the NIC back what the record
   says was taken and deletes it. A device named NAME that is not the
   recorded TAP (a TAP with the recorded MAC) is never touched: the daemon
   does not start.
5. --take-address moves what the uplink has when the daemon starts (take()):
   its global addresses and its routes (not the kernel's own prefix routes:
   they follow the addresses), in an order that leaves no address and no
   destination without a way at any moment: each address added to the host
   port first, then each route replaced through the host port (one netlink
   request each: the same key, another device), then the addresses removed
   from the NIC, secondaries first. The NIC then stops answering ARP for
   addresses it no longer has (arp_ignore 1) and taking router
   advertisements (accept_ra 0), so it makes no address or route beside the
   host port's; their old values are recorded once, before the first
   change. A gratuitous ARP or unsolicited NA per address tells the LAN its
   new MAC. give_back() is the mirror image, announced from the NIC.
6. The record says what is taken before anything moves, and each step
   accepts its own half-done state (an address already there, a route
   already gone), so a take or give-back cut short by a crash is finished by
   the next daemon.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Callable

from . import adapter
from .core import config, state as statefile
from .core.errors import VnetshareError, message
from .dataplane.guard import GuardPolicy
from .dataplane.switch import PortPolicy
from .dataplane.tap import open_tap
from .linux import announce, netns

log = logging.getLogger("vnetshare.hostport")

RECORD = "hostport.json"
TAP_KIND = "tun"
# what the NIC stops doing while the host port has its addresses (rule 5)
NIC_SYSCTLS = (("net/ipv4/conf/{}/arp_ignore", "1"), ("net/ipv6/conf/{}/accept_ra", "0"))
HOST_NETNS = "/proc/self/ns/net"  # the daemon's own: the host's namespace


class HostPortError(VnetshareError):
    """The host port cannot be made, adopted, or its addresses moved."""


def host_mac(uplink_mac: str, name: str) -> str:
    """The host port's MAC when none is given (rule 3): a locally
    administered unicast address from a hash of the uplink's MAC and @name."""
    raw = bytearray(hashlib.sha256(b"vnetshare host port\0" + config.mac_bytes(uplink_mac)
                                   + name.encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02
    return raw.hex(":")


def policy(mac: str, storm_pps: int) -> PortPolicy:
    """The switch's view of the host port (rule 1)."""
    return PortPolicy(guard=GuardPolicy(mac, l3_any=True, trusted_router=True, allow_llc=True),
                      storm_pps=storm_pps, storm_burst=config.storm_burst(storm_pps))


@dataclass
class Taken:
    """What --take-address moved from the uplink (rule 5)."""

    uplink: str
    addresses: list[netns.Address] = field(default_factory=list)
    routes: list[netns.Route] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)  # the NIC's values before


@dataclass
class Record:
    """STATE_DIR/hostport.json (rule 2)."""

    name: str
    mac: str
    agent_uid: int | None = None
    agent_pid: int | None = None
    taken: Taken | None = None


def load(path: str) -> Record | None:
    """The record at @path, or None if there is none; HostPortError naming
    the file if it cannot be read as one."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise HostPortError(f"host port record {path}: {message(e)}") from None
    try:
        t = raw.pop("taken", None)
        rec = Record(**raw)
        if t is not None:
            rec.taken = Taken(t["uplink"], [netns.Address(**a) for a in t["addresses"]],
                              [netns.Route(**r) for r in t["routes"]], dict(t["sysctls"]))
        config.ifname(rec.name, "host port name")
        config.mac(rec.mac)
    except (TypeError, KeyError, AttributeError, VnetshareError) as e:
        raise HostPortError(f"host port record {path}: not a host port record ({e})") from None
    return rec


def save(path: str, rec: Record) -> None:
    statefile.write_atomic(path, (json.dumps(asdict(rec), indent=1) + "\n").encode())


def forget(path: str) -> None:
    """Remove the record (none is fine)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _label(a: netns.Address, nic: str, port: str) -> str | None:
    """@a's IPv4 label on @port: nic:alias becomes port:alias if that fits
    a label (15 bytes), else port."""
    if a.label is None or not a.label.startswith(nic + ":"):
        return port if a.family == 4 else None
    alias = port + a.label[len(nic):]
    return alias if len(alias) <= config.NAME_MAX else port


def _quiet_exists(fn: Callable[..., None], *args) -> None:
    """fn(*args), except that "it is there already" is no error (rule 6)."""
    try:
        fn(*args)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise


def _set_sysctls(values: dict[str, str]) -> None:
    for key, value in values.items():
        try:
            netns.sysctl(key, value)
        except OSError as e:
            if e.errno != errno.ENOENT:  # no IPv6 on this host
                raise


def _read_sysctls(nic: str) -> dict[str, str]:
    out = {}
    for key, _ in NIC_SYSCTLS:
        try:
            out[key.format(nic)] = netns.sysctl_get(key.format(nic))
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
    return out


class HostPort:
    """The daemon's host port (module rules): start(), stop(), describe()."""

    def __init__(self, cfg: config.DaemonConfig, manager, uplink_mac: str, functions,
                 on_event: Callable[..., None]):
        self.cfg = cfg
        self.manager = manager
        self.uplink_mac = uplink_mac
        self.functions = functions
        self._event = on_event
        self.path = os.path.join(cfg.state_dir, RECORD)
        self.rec: Record | None = None  # while served
        self._port_rec: statefile.PartitionState | None = None

    # -- start and stop --------------------------------------------------
    def start(self) -> None:
        """Rule 4: retire a recorded host port the daemon was not asked
        for; make or adopt the one it was; take the uplink's addresses if
        asked (rule 5). HostPortError, one line, if it cannot."""
        rec = load(self.path)
        name = self.cfg.host_port
        if rec is not None and rec.name != name:
            self._retire(rec)
            rec = None
        if name is None:
            return
        mac = self.cfg.host_port_mac or host_mac(self.uplink_mac, name)
        link = netns.quietly(netns.link, name)
        if link is not None and (rec is None or link.kind != TAP_KIND or link.mac != rec.mac):
            raise HostPortError(f"--host-port {name!r}: a device of that name exists ({link.kind or 'a NIC'}, "
                                f"MAC {link.mac}) and is not this daemon's host port; name another")
        if link is None and rec is not None and rec.taken is not None:
            log.warning("host port %s: gone while it had the uplink's addresses (a daemon killed, "
                        "the device deleted): giving them back to %s", name, rec.taken.uplink)
            self._give_back(rec)
        adopted = link is not None
        rec = rec or Record(name, mac)
        if not adopted:
            rec.mac = mac
        save(self.path, rec)  # rule 6: before the device is made
        tap_fd = open_tap(name, None, mac=None if rec.mac == mac and adopted else mac,
                          offloads=self.functions.tun_offloads, persist=True)
        try:
            if rec.mac != mac:  # --host-port-mac changed: the record follows the device
                rec.mac = mac
                save(self.path, rec)
            netns.link_set(name, mtu=self.functions.mtu, up=True)
        except BaseException:
            os.close(tap_fd)
            if not adopted:
                netns.quietly(netns.delete_link, name)
            raise
        self._port_rec = statefile.PartitionState(
            name=name, netns=HOST_NETNS, netns_created=False, ifname=name, mac=mac, mtu=self.functions.mtu,
            agent_uid=rec.agent_uid, agent_pid=rec.agent_pid, ring_size=self.cfg.ring_size)
        try:
            self.manager.serve_host_port(self._port_rec, tap_fd, policy(mac, self.cfg.storm_limit), self._saved)
        except BaseException:
            if not adopted:
                netns.quietly(netns.delete_link, name)
                forget(self.path)
            raise
        self.rec = rec
        self._saved()
        how = "adopted" if adopted else "made"
        self._event("host_port.up", None, f"host port {name} {how} ({mac}, mtu {self.functions.mtu})",
                    name=name, mac=mac, adopted=adopted)
        if self.cfg.take_address:
            self.take()

    def _saved(self) -> None:
        """The manager changed the port's record (its agent): save ours."""
        self.rec.agent_uid, self.rec.agent_pid = self._port_rec.agent_uid, self._port_rec.agent_pid
        save(self.path, self.rec)

    def stop(self) -> None:
        """A clean stop (rule 4): what was taken goes back to the uplink,
        then the port, its agent and its TAP go, and the record."""
        rec, self.rec = self.rec, None
        if rec is None:
            return
        try:
            if rec.taken is not None:
                self._give_back(rec)
        finally:
            last = self.manager.stop_host_port()
            netns.quietly(netns.delete_link, rec.name)
            if rec.taken is None:
                forget(self.path)
        self._event("host_port.down", None, f"host port {rec.name} removed (it had sent "
                    f"{last.get('tx_frames', 0)} frames, received {last.get('rx_frames', 0)})", name=rec.name)

    def _retire(self, rec: Record) -> None:
        """A recorded host port this daemon was not asked for (rule 4)."""
        log.info("host port %s: not asked for (--host-port %s): removing it", rec.name,
                 self.cfg.host_port or "not given")
        if rec.taken is not None:
            self._give_back(rec)
        link = netns.quietly(netns.link, rec.name)
        if link is not None and link.kind == TAP_KIND and link.mac == rec.mac:
            netns.quietly(netns.delete_link, rec.name)
        forget(self.path)

    # -- the uplink's addresses (rule 5) -----------------------------------
    def take(self) -> None:
        """Move the uplink's global addresses and routes onto the host port."""
        rec, nic, port = self.rec, self.cfg.uplink, self.rec.name
        addrs = netns.address_list(nic)
        routes, others = netns.routes_via(nic)
        for what in others:
            log.warning("--take-address: route %s through %s is not moved (multipath, a nexthop object "
                        "or not unicast): move it to %s yourself", what, nic, port)
        t = rec.taken or Taken(nic)
        if t.uplink != nic:
            raise HostPortError(f"--take-address: the host port {port} holds addresses of {t.uplink}, "
                                f"not of --uplink {nic}")
        if not t.sysctls:
            t.sysctls = _read_sysctls(nic)
        t.addresses += [a for a in addrs if a.address not in {b.address for b in t.addresses}]
        t.routes += [r for r in routes if r not in t.routes]
        rec.taken = t
        save(self.path, rec)  # rule 6
        try:
            for a in sorted(addrs, key=lambda a: a.secondary):
                _quiet_exists(netns.put_address, port, a, None, _label(a, nic, port))
            _set_sysctls({key.format(nic): value for key, value in NIC_SYSCTLS})
            for r in routes:
                netns.put_route(port, r)
                netns.quietly(netns.del_route, nic, r)
            for a in sorted(addrs, key=lambda a: not a.secondary):
                netns.quietly(netns.del_address, nic, a.cidr)
        except OSError as e:
            log.error("--take-address: %s: giving back what moved", e)
            self._give_back(rec)
            raise HostPortError(f"--take-address: {e.strerror or e}") from None
        self._announce(port, rec.mac, addrs)
        moved = [a.cidr for a in addrs]
        if not t.addresses:
            log.warning("--take-address: %s has no address to take", nic)
        self._event("host_port.taken", None, f"host port {port} has the addresses of {nic}: "
                    f"{' '.join(a.cidr for a in t.addresses) or 'none'}; routes: "
                    f"{', '.join(r.describe() for r in t.routes) or 'none'}", name=port, uplink=nic,
                    moved=moved, addresses=[a.cidr for a in t.addresses],
                    routes=[r.describe() for r in t.routes])

    def uplink_back(self) -> None:
        """The uplink was re-created (hosting.py rule 6): a new device has the
        kernel's default sysctls again; while the host port holds its
        addresses, the new NIC must not answer ARP for them nor take RAs."""
        if self.rec is None or self.rec.taken is None:
            return
        try:
            _set_sysctls({key.format(self.cfg.uplink): value for key, value in NIC_SYSCTLS})
        except OSError as e:
            log.warning("host port %s: the new %s keeps its default sysctls: %s", self.rec.name,
                        self.cfg.uplink, e.strerror or e)

    def _give_back(self, rec: Record) -> None:
        """Rule 5's mirror image: what @rec.taken lists goes back to its
        uplink; the record then says nothing is taken."""
        t, port = rec.taken, rec.name
        if netns.quietly(netns.link, t.uplink) is None:
            raise HostPortError(f"host port {port}: cannot give the addresses back, the uplink "
                                f"{t.uplink} is gone (the record {self.path} keeps them)")
        has_port = netns.quietly(netns.link, port) is not None
        now = {a.address: a for a in netns.address_list(port)} if has_port else {}
        back = []
        for a in sorted(t.addresses, key=lambda a: a.secondary):
            cur = now.get(a.address)
            if cur is None and a.valid is not None:
                log.warning("host port %s: %s had a lifetime and is gone: not given back", port, a.cidr)
                continue
            if cur is not None:  # its lifetimes now, its label on the NIC
                a = netns.Address(a.family, a.address, a.prefixlen, cur.flags, a.secondary, a.broadcast,
                                  a.label, cur.valid, cur.preferred)
            _quiet_exists(netns.put_address, t.uplink, a)
            back.append(a)
        _set_sysctls(t.sysctls)
        for r in t.routes:
            try:
                netns.put_route(t.uplink, r)
            except OSError as e:  # its gateway went with an address not given back
                log.warning("host port %s: route %s not given back to %s: %s", port, r.describe(), t.uplink, e)
                continue
            if has_port:
                netns.quietly(netns.del_route, port, r)
        if has_port:
            for a in sorted(t.addresses, key=lambda a: not a.secondary):
                netns.quietly(netns.del_address, port, a.cidr)
        self._announce(t.uplink, netns.link(t.uplink).mac, back)
        rec.taken = None
        save(self.path, rec)
        self._event("host_port.returned", None, f"{t.uplink} has its addresses back: "
                    f"{' '.join(a.cidr for a in back) or 'none'}", name=port, uplink=t.uplink,
                    addresses=[a.cidr for a in back])

    @staticmethod
    def _announce(ifname: str, mac: str, addrs: list[netns.Address]) -> None:
        """Tell the LAN @addrs are at @mac now; a failure (the link down)
        is a log line: the caches then learn it when they ask again."""
        try:
            announce.send(ifname, mac, [a.address for a in addrs])
        except OSError as e:
            log.warning("announcing %s on %s: %s", " ".join(a.address for a in addrs), ifname, e.strerror or e)

    # -- reports -----------------------------------------------------------
    def describe(self) -> dict | None:
        """What `stats`, the metrics and `daemon.status` say of it; None
        when there is none."""
        if self.rec is None:
            return None
        t = self.rec.taken
        return {"name": self.rec.name, "mac": self.rec.mac,
                "taken": None if t is None else {"uplink": t.uplink, "addresses": [a.cidr for a in t.addresses],
                                                 "routes": [r.describe() for r in t.routes]}}
