"""manager.py - the partition manager: makes, adopts, serves and removes partitions.

The patent's partition manager: it creates partitions, allocates their DMA
path (two sealed memfd rings), hands each agent its descriptors, and tells
the data plane (the switch) about the port.

Rules:
1. All or nothing: create() records an undo step after each thing it makes;
   on any failure it runs them backwards, so a failed create leaves no
   namespace, link, process, descriptor, port or state entry.
2. The state file changes only after the kernel did: it always describes
   what exists (saved atomically, see state.py), and what should exist
   again: a record whose re-creation failed (rule 5) is kept, unserved.
   A batch (apply, saving_once()) writes once, at its end: until then the
   file lags what the batch made (design-notes.md, "Many partitions at
   once").
3. Partitions (netns, persistent TAP, addresses, state entry) outlive the
   daemon and a new daemon adopts them (docs/design-notes.md says why);
   their agents do not (supervisor.py rules 1-4: agents, their restarts,
   signals and uids). Records outlive a reboot too; namespaces do not
   (rule 5).
4. A partition's MAC and addresses are its own: create refuses a MAC the
   uplink, the host port, another partition or a station the switch
   learned on the wire has, and create and set an address another partition of the same VLAN
   has (_check_identity()), before anything is made, with EADDRINUSE and
   one line naming the owner. Adoption does not ask: a partition that
   exists keeps its MAC, and a station on the wire with it is a conflict
   (native/switch.h), as is one heard between the question and the port.
   Re-creation (rule 5) asks, as create does.
5. A partition whose namespace is gone when a daemon starts (a reboot, or
   `ip netns del` while no daemon ran) is made again from its record if
   vnetshare had made that namespace: by the code create() runs, all or
   nothing, after every surviving partition is served (adopt_all), with a
   partition.recreated event. If that fails, the record is kept unserved
   (set refused, delete drops only the record, the next daemon tries
   again) with a partition.recreate_failed event. One whose namespace was
   adopted (--netns, CNI) is forgotten, its pin removed, with a
   partition.forgotten event: its runtime makes a new one and adds it again.
6. Partitions follow their uplink: a record's mtu_given is the MTU it was
   created with (None: the uplink's); its TAP has mtu_for() of it under
   the uplink's MTU now, lowered with the uplink and raised back up to
   mtu_given (follow_mtu()), at start, at re-creation and whenever the
   NIC's MTU changes; changed offloads are set on each TAP live
   (TUNSETOFFLOAD), and a TAP that refuses is named as needing a re-create
   (follow_functions()).
"""
from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

from . import adapter
from .core import config, state as statefile
from .linux import netns, procs
from .agent import AgentError
from .dataplane.guard import GuardPolicy
from .core.errors import ConfigError, NativeError, VnetshareError
from .core.lifecycle import Event, Lifecycle, State
from .dataplane.ring import RingFds, create_fds
from .dataplane.switch import PortPolicy
from .dataplane.tap import open_tap
from .supervisor import Agent, PartitionError, Starting, Supervisor, close_fd

log = logging.getLogger("vnetshare.manager")

DEFAULT_IFNAME = "eth0"
HOST_PORT_ID = 0  # the switch port of the daemon's host port (hostport.py); partitions' start at 1


@dataclass
class Partition:
    """A live partition: its record plus what the daemon holds for it."""

    rec: statefile.PartitionState
    port_id: int
    tap_fd: int
    a2h: RingFds
    h2a: RingFds
    agent: Agent | None = None
    life: Lifecycle = field(default_factory=Lifecycle)
    restarts: int = 0  # agents started after one died, since this daemon serves it

    def close_fds(self) -> None:
        for fd in (self.tap_fd,):
            close_fd(fd)
        self.a2h.close()
        self.h2a.close()


def function_rows(functions, mtu: int | None = None) -> list[dict]:
    """The adapter's rows as dicts; a partition's own MTU replaces the default."""
    rows = [asdict(r) for r in functions.rows]
    if mtu is not None:
        for r in rows:
            if r["function"] == "mtu":
                r["value"] = mtu
    return rows


def _words(value, field: str = "") -> str:
    """A set value of @field as `partition set` and its event write it."""
    if field == "vlan":
        return config.vlan_name(value).replace("VLAN ", "") if value else "none"
    if field == "storm_limit" and value is None:
        return "the daemon's default"
    if hasattr(value, "describe"):
        return value.describe()
    if value is None or value == [] or value == {}:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


class Undo:
    """A stack of cleanup steps, run backwards unless commit() was called."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, fn: Callable[[], None]) -> None:
        self._steps.append((what, fn))

    def commit(self) -> None:
        self._steps.clear()

    def __enter__(self) -> "Undo":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.rollback()

    def rollback(self) -> None:
        """Run the steps, backwards (what __exit__ does)."""
        while self._steps:
            what, fn = self._steps.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - undo must go on
                log.warning("undo %s failed: %s", what, e)


class PartitionManager:
    """Creates, adopts, supervises and deletes partitions for one daemon."""

    def __init__(self, switch, functions, state: statefile.State, cfg: config.DaemonConfig,
                 on_agent_fd: Callable[[int, Callable[[], None]], None] | None = None,
                 on_agent_fd_remove: Callable[[int], None] | None = None,
                 on_event: Callable[..., None] | None = None, uplink_mac: str | None = None):
        self.switch = switch
        self.uplink_mac = uplink_mac.lower() if uplink_mac else None  # no partition may take it
        self.functions = functions
        self.state = state
        self.cfg = cfg
        self.parts: dict[str, Partition] = {}
        # events.EventLog.emit(kind, partition, message, **details): the
        # lifecycle events (and their log lines) of what happens here
        self._event = on_event or (lambda kind, partition, message, **details: None)
        self.no_uso = False  # the kernel refused TUN_F_USO4/6: never offered again (_open_tap)
        # the agents (supervisor.py): started, restarted, stopped; their uids
        self.agents = Supervisor(cfg, on_agent_fd, on_agent_fd_remove,
                                 lambda *a, **k: self._event(*a, **k), self._served)
        self.unserved: dict[str, str] = {}  # records kept whose re-creation failed: why (rule 5)
        self.host: Partition | None = None  # the host port while served (serve_host_port())
        self._host_saved: Callable[[], None] = lambda: None
        self._unsaved: set[str | None] | None = None  # saving_once(): the names whose records wait
        self._wire: dict[str, dict] | None = None  # create_many(): the wire's stations when it began

    # -- helpers ---------------------------------------------------------
    def _save(self, *names: str) -> None:
        """Write the state: the records of partitions @names (made, changed
        or gone), or with none named everything that changed (state.py rule 5).
        Inside saving_once(), only noted."""
        if self._unsaved is not None:
            self._unsaved.update(names or [None])  # None: everything that changed
            return
        statefile.save(self.cfg.state_path, self.state, changed=names or None)

    @contextlib.contextmanager
    def saving_once(self):
        """Many changes, one write of the state at the end (apply): the
        records of every partition made, changed or deleted meanwhile."""
        if self._unsaved is not None:
            yield
            return
        self._unsaved = set()
        try:
            yield
        finally:
            names, self._unsaved = self._unsaved, None
            if names:
                statefile.save(self.cfg.state_path, self.state,
                               changed=None if None in names else sorted(names))

    def _open_tap(self, ifname: str, ns_path: str, mac: str | None = None) -> int:
        """The partition's persistent TAP with the partitions' offloads.

        A kernel before 6.2 refuses TUN_F_USO4/6 with EINVAL: then every
        partition goes without UDP segmentation (adapter.drop_uso, which
        `vnetshare adapter` shows) and the open is tried once more.
        """
        try:
            return open_tap(ifname, ns_path, mac=mac, offloads=self.functions.tun_offloads, persist=True)
        except NativeError as e:
            if e.errno != errno.EINVAL or not self.functions.tun_offloads & adapter.USO_BITS:
                raise
        log.warning("the kernel refuses TUN_F_USO4/6 (before Linux 6.2): partitions get no UDP segmentation")
        self.functions = adapter.drop_uso(self.functions)
        self.no_uso = True
        return open_tap(ifname, ns_path, mac=mac, offloads=self.functions.tun_offloads, persist=True)

    def _policy(self, rec: statefile.PartitionState):
        """The switch's view of @rec: identity guard, VLAN, storm control, rates."""
        storm = self.cfg.storm_limit if rec.storm_limit is None else rec.storm_limit
        try:
            guard = GuardPolicy.for_partition(rec.mac, rec.ips, rec.allow_ips, rec.trusted_router,
                                              rec.allow_llc)
        except VnetshareError as e:
            raise PartitionError("EINVAL", f"partition {rec.name!r}: {e}") from None
        return PortPolicy(guard=guard, vlan=rec.vlan, storm_pps=storm,
                          storm_burst=config.storm_burst(storm),
                          tx=rec.tx_limit, rx=rec.rx_limit)

    def _mac_owner(self, mac: str, name: str | None = None) -> str | None:
        """Who but partition @name (None: the host port asks) has @mac
        already (rule 4), as words to follow "in use by", or None."""
        if mac == self.uplink_mac:
            return f"the uplink {self.cfg.uplink} itself"
        if self.host is not None and mac == self.host.rec.mac:
            return f"the host port {self.host.rec.name}"
        owner = next((r.name for r in self.state.partitions.values()
                      if r.mac == mac and r.name != name), None)
        if owner is not None:
            return f"partition {owner!r}"
        station = self.switch.fdb_find(mac) if self._wire is None else self._wire.get(mac)
        if station is not None:
            return (f"a station on the wire ({config.vlan_name(station['vlan'])}, "
                    f"seen {station['age']:.0f} s ago)")
        return None

    def _check_identity(self, name: str, mac: str | None, ips: list[str], vlan: int) -> None:
        """Rule 4: @mac (None: not changing) and @ips (normalised, in VLAN
        @vlan) are no one else's; a PartitionError EADDRINUSE names the owner."""
        if mac is not None:
            owner = self._mac_owner(mac, name)
            if owner is not None:
                raise PartitionError("EADDRINUSE", f"MAC {mac}: in use by {owner}")
        others = ((r.name, r.vlan, r.ips) for r in self.state.partitions.values() if r.name != name)
        taken = config.address_owner(ips, vlan, others)
        if taken is not None:
            raise PartitionError("EADDRINUSE", f"address {taken[0]}: in use by partition {taken[1]!r} "
                                               f"({config.vlan_name(vlan)})")

    def _pin_path(self, name: str) -> str:
        return os.path.join(self.cfg.pin_dir, name)

    def _free_port_id(self) -> int:
        used = {p.port_id for p in self.parts.values()}
        return next(i for i in range(1, len(used) + 2) if i not in used)

    # -- agents (supervisor.py) ---------------------------------------------
    @property
    def uids(self):
        """The agents' uids (agent.UidPool; supervisor.py rule 4)."""
        return self.agents.uids

    @property
    def stopping(self) -> bool:
        """The daemon stops: agents that end are not replaced."""
        return self.agents.stopping

    def _served(self, name: str, agent: Agent) -> tuple[Partition, Callable[[], None]] | None:
        """The partition (or host port) @agent serves now, and how its
        record is saved; None if none (deleted, or served by another)."""
        if self.host is not None and self.host.agent is agent:
            return self.host, self._host_saved
        part = self.parts.get(name)
        if part is None or part.agent is not agent:
            return None
        return part, lambda: self._save(name)

    # -- create ----------------------------------------------------------
    def create(self, args: dict) -> dict:
        """Make partition @args["name"] as @args say (rule 1); its describe()."""
        name = args["name"]
        with Undo() as undo:
            part = self._make(self._begin(args, undo), undo)
            self.parts[name] = part
            self._serve(part, undo)
            self._save(name)
            undo.commit()
        self._created(part)
        return self.describe(name)

    CREATE_AHEAD = 4    # create_many(): namespaces made in threads of their own ahead of the rest
    CREATE_OVERLAP = 8  # create_many(): agents started before the first of them is awaited

    def create_many(self, requests: list[dict]) -> dict[str, BaseException]:
        """create() of each of @requests in turn (apply), each all or
        nothing (rule 1) on its own; {name: why} of those that failed.

        Three steps overlap. Each request's checks, uid and record come
        first, in order, so it is checked against every one before it (and
        the wire's stations as they were when the batch began); its
        namespace and configured TAP (_make_ns(), kernel work) are then
        made in a thread of a pool, up to CREATE_AHEAD ahead; its rings,
        port and agent's start follow in order; an agent takes a few
        milliseconds to its "ready", and its answer is awaited only once
        CREATE_OVERLAP more have started (or at the end). A request that
        fails at any step is undone like a create() that failed, whatever
        was made for the others meanwhile (no part of its undo)."""
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        failed: dict[str, BaseException] = {}
        # the stations on the wire asked once, not once a create (rule 4:
        # one heard since is a conflict the switch catches at the port)
        wire: dict[str, dict] = {}
        for st in sorted(self.switch.fdb(), key=lambda st: -st["age"]):  # the most recently seen last
            wire[st["mac"]] = st
        self._wire = wire  # reset below, whatever happens
        making: deque = deque()    # (rec, undo, future of _make_ns())
        waiting: deque = deque()   # (part, undo, Starting)

        def fail(name: str, undo: Undo, e: BaseException) -> None:
            undo.rollback()
            if not isinstance(e, (VnetshareError, OSError)):
                raise e
            failed[name] = e

        def start(rec: statefile.PartitionState, undo: Undo, made) -> None:
            try:
                part = self._make_port(rec, made.result(), undo)
                self.parts[rec.name] = part
                waiting.append((part, undo, self.agents.start(part)))
            except BaseException as e:  # noqa: BLE001 - fail() raises what is no VnetshareError/OSError
                fail(rec.name, undo, e)

        def finish(part: Partition, undo: Undo, starting: Starting) -> None:
            try:
                self._serve(part, undo, starting)
                self._save(part.rec.name)
            except BaseException as e:  # noqa: BLE001 - as above
                fail(part.rec.name, undo, e)
                return
            undo.commit()
            self._created(part)

        with ThreadPoolExecutor(max_workers=self.CREATE_AHEAD, thread_name_prefix="vnetshare-make") as pool:
            try:
                for args in requests:
                    undo = Undo()
                    try:
                        rec = self._begin(args, undo)
                    except BaseException as e:  # noqa: BLE001 - as above
                        fail(args["name"], undo, e)
                        continue
                    making.append((rec, undo, pool.submit(self._make_ns, rec, undo)))
                    if len(making) > self.CREATE_AHEAD:
                        start(*making.popleft())
                    if len(waiting) > self.CREATE_OVERLAP:
                        finish(*waiting.popleft())
                while making:
                    start(*making.popleft())
                while waiting:
                    finish(*waiting.popleft())
            finally:  # after an unexpected error, the rest undone
                self._wire = None
                for rec, undo, made in making:
                    made.exception()  # its thread done with @undo
                    undo.rollback()
                for part, undo, starting in waiting:
                    self.agents.abandon(starting)
                    undo.rollback()
        return failed

    def _created(self, part: Partition) -> None:
        """A create() succeeded: its lifecycle and events."""
        rec = part.rec
        adopted = not rec.netns_created
        part.life.fire(Event.CREATED)
        self._event("partition.created", rec.name, f"created ({rec.ifname} {rec.mac} mtu {rec.mtu} "
                    f"{' '.join(rec.ips) or 'no address'}" + (f", adopted {rec.netns}" if adopted else "") + ")",
                    ifname=rec.ifname, mac=rec.mac, mtu=rec.mtu, ips=list(rec.ips), netns=rec.netns,
                    adopted=adopted)
        self._event("agent.started", rec.name, f"agent {part.agent.pid} serves it", pid=part.agent.pid)

    def _begin(self, args: dict, undo: Undo) -> statefile.PartitionState:
        """create()'s checks, then its uid and its record, in the state
        (so later checks see it), each pushed on @undo; _make() follows."""
        name = args["name"]
        if name in self.state.partitions:
            raise PartitionError("EEXIST", f"partition {name!r} already exists")
        if len(self.state.partitions) - len(self.unserved) >= self.cfg.max_partitions:  # served and being made
            raise PartitionError("ENOSPC", f"partition {name!r}: this daemon serves at most "
                                           f"{self.cfg.max_partitions} partitions; start it with "
                                           "--max-partitions N to raise the limit")
        uplink_mtu = self.functions.mtu
        mtu = args.get("mtu") or uplink_mtu
        if mtu > uplink_mtu:
            try:
                config.mtu(mtu, uplink_mtu)
            except ConfigError as e:  # its message gives the range
                raise PartitionError("EINVAL", str(e)) from None
        ifname = args.get("ifname") or DEFAULT_IFNAME
        mac = args.get("mac") or config.random_mac()
        ips = args.get("ips") or []
        gateway = args.get("gateway")
        routes = args.get("routes") or []
        adopted = args.get("netns")
        policy_args = {k: args[k] for k in ("allow_ips", "trusted_router", "allow_llc", "vlan",
                                            "storm_limit")
                       if args.get(k) is not None}
        for k in ("tx_limit", "rx_limit"):
            if args.get(k) is not None:
                policy_args[k] = args[k]
        self._check_identity(name, mac, ips, policy_args.get("vlan", 0))

        # a policy the switch would refuse fails here, before anything is made
        self._policy(statefile.PartitionState(name=name, netns="", netns_created=False, ifname=ifname,
                                              mac=mac, mtu=mtu, ips=list(ips), **policy_args))
        try:
            agent_uid = self.uids.allocate()  # supervisor.py rule 4
        except AgentError as e:
            raise PartitionError("ENOSPC", f"partition {name!r}: {e}") from None
        undo.push("agent uid", lambda: self.uids.release(agent_uid))
        rec = statefile.PartitionState(
            name=name, netns="", netns_created=not adopted, ifname=ifname, mac=mac,
            mtu=mtu, ips=list(ips), gateway=gateway, routes=list(routes), ring_size=self.cfg.ring_size,
            netns_source=adopted or None, labels=dict(args.get("labels") or {}), agent_uid=agent_uid,
            mtu_given=args.get("mtu") or None, **policy_args,
        )
        self.state.partitions[name] = rec
        undo.push("state", lambda: (self.state.partitions.pop(name, None), self.parts.pop(name, None)))
        return rec

    def _make(self, rec: statefile.PartitionState, undo: Undo) -> Partition:
        """Everything @rec describes, made (rule 1: each step pushed on
        @undo): _make_ns(), then two rings and its switch port; _serve()
        then starts its agent. create(), create_many() and re-creation
        (rule 5) all make a partition this way."""
        return self._make_port(rec, self._make_ns(rec, undo), undo)

    def _make_ns(self, rec: statefile.PartitionState, undo: Undo) -> int:
        """@rec's namespace (a new one, or the one rec.netns_source names,
        pinned) and its TAP with its MAC, MTU, addresses, gateway and
        routes; each step pushed on @undo; sets rec.netns, returns the TAP's
        descriptor. Kernel work only: create_many() runs several in threads
        of its own."""
        name, ifname = rec.name, rec.ifname

        def configure(ns_path: str, here: bool) -> None:
            # MTU, IPv6 link-local from the MAC, up, lo up, addresses,
            # routes: one netlink batch. With promote_secondaries: `partition
            # set --ip` adds the new address before the old one goes; without
            # it, removing a primary IPv4 address takes the secondaries of its
            # subnet with it
            netns.configure(ifname, ns_path, mtu=rec.mtu, addresses=rec.ips, nodad=True,
                            gateway=rec.gateway, routes=rec.routes, here=here,
                            txqueuelen=self.cfg.tap_txqueuelen)

        if rec.netns_created:
            if netns.exists(name):
                raise PartitionError("EEXIST", f"network namespace {name!r} already exists "
                                               "(adopt it with --netns /run/netns/" + name + ")")
            if ifname == "lo":  # a namespace made just now holds lo alone
                raise PartitionError("EEXIST", f"device {ifname!r} already exists in {netns.path_of(name)}")

            def inside() -> int:
                # in the thread that made the namespace: no setns, no thread more
                fd = self._open_tap(ifname, None, rec.mac)
                try:
                    configure(netns.path_of(name), True)
                except BaseException:
                    close_fd(fd)  # the TAP goes with the namespace
                    raise
                return fd

            ns_path, tap_fd = netns.create_and(name, inside)
            rec.netns = ns_path
            undo.push("netns", lambda: netns.delete(name))
            undo.push("tap fd", lambda: close_fd(tap_fd))
            undo.push("tap", lambda: netns.quietly(netns.delete_link, ifname, ns_path))
            return tap_fd
        # pinned under our own name: the partition does not depend on
        # the runtime's name for it (gone after `ip netns del`, or a
        # /proc/PID/ns/net whose PID is reused) and survives a restart;
        # pin() checks the very descriptor it pins (netns.py, rule 7)
        ns_path = self._pin_path(name)
        netns.quietly(netns.unpin, ns_path)  # a crash's leftover: the state has no such partition
        netns.pin(rec.netns_source, ns_path)
        undo.push("netns pin", lambda: netns.quietly(netns.unpin, ns_path))
        rec.netns = ns_path
        if any(link.ifname == ifname for link in netns.links(ns_path)):
            raise PartitionError("EEXIST", f"device {ifname!r} already exists in {ns_path}")
        tap_fd = self._open_tap(ifname, ns_path, rec.mac)
        undo.push("tap fd", lambda: close_fd(tap_fd))
        undo.push("tap", lambda: netns.quietly(netns.delete_link, ifname, ns_path))
        configure(ns_path, False)
        return tap_fd

    def _make_port(self, rec: statefile.PartitionState, tap_fd: int, undo: Undo) -> Partition:
        """@rec's two rings and its switch port (with the TAP @tap_fd for
        direct writes), each pushed on @undo."""
        a2h = create_fds(rec.ring_size)
        undo.push("a2h ring", a2h.close)
        h2a = create_fds(rec.ring_size)
        undo.push("h2a ring", h2a.close)
        part = Partition(rec, self._free_port_id(), tap_fd, a2h, h2a)
        self.switch.add_port(part.port_id, rec.mac, a2h, h2a, rec.ring_size, policy=self._policy(rec))
        undo.push("port", lambda: self.switch.del_port(part.port_id))
        if self.cfg.direct_share:
            self.switch.set_tap(part.port_id, tap_fd)
        return part

    def _serve(self, part: Partition, undo: Undo, starting: Starting | None = None) -> None:
        """@part's agent, started (or the one start()ed as @starting) and
        its answer awaited (rule 1: pushed on @undo); sets rec.agent_pid."""
        part.agent = self.agents.spawn(part) if starting is None else self.agents.finish(part, starting)
        undo.push("agent", lambda: self.agents.stop(part.agent))
        part.rec.agent_pid = part.agent.pid

    # -- live changes ----------------------------------------------------
    SETTABLE = ("ips", "gateway", "routes", "mtu", "mac", "labels", "allow_ips", "trusted_router",
                "allow_llc", "vlan", "storm_limit", "tx_limit", "rx_limit")

    def _set_changes(self, rec: statefile.PartitionState, args: dict) -> dict:
        """What `partition set` @args change in @rec: {field: new value},
        the record's own fields (mtu_given with mtu), only those that differ."""
        changes = {k: args[k] for k in ("ips", "routes", "mac", "allow_ips", "trusted_router",
                                        "allow_llc", "vlan", "storm_limit")
                   if args.get(k) is not None}
        if args.get("gateway") is not None:
            changes["gateway"] = None if args["gateway"] == "none" else args["gateway"]
        if args.get("labels") is not None:
            labels = dict(rec.labels)
            for key, value in args["labels"].items():
                if value is None:
                    labels.pop(key, None)
                else:
                    labels[key] = value
            try:
                changes["labels"] = config.labels(labels)
            except VnetshareError as e:
                raise PartitionError("EINVAL", f"partition {rec.name!r}: {e}") from None
        if args.get("mtu") is not None:
            if args["mtu"] > self.functions.mtu:
                raise PartitionError("EINVAL", f"MTU {args['mtu']}: above the uplink's MTU "
                                               f"{self.functions.mtu} (from {config.MTU_MIN})")
            changes["mtu_given"] = args["mtu"]
            changes["mtu"] = self.mtu_for(replace(rec, mtu_given=args["mtu"]), self.functions.mtu)
        for d in ("tx", "rx"):
            limit, burst = args.get(f"{d}_limit"), args.get(f"{d}_burst")
            if limit is not None:
                changes[f"{d}_limit"] = limit
            elif burst:  # a new depth for the rate it has
                old = getattr(rec, f"{d}_limit")
                if not old.limited:
                    raise PartitionError("EINVAL", f"--{d}-burst {' '.join(burst)}: partition "
                                                   f"{rec.name!r} has no {d} limit; give --{d}-limit too")
                try:
                    new = config.rate_limit(config.rate_text(old), burst, f"--{d}-limit", d)
                except VnetshareError as e:
                    raise PartitionError("EINVAL", str(e)) from None
                given = config.burst_buckets(burst)
                changes[f"{d}_limit"] = replace(
                    new, **{f"{u}_burst": getattr(old, f"{u}_burst") for u in ("bits", "pkts")
                            if u not in given and getattr(old, f"{u}_per_sec")})
        return {k: v for k, v in changes.items() if getattr(rec, k) != v}

    def _sync_l3(self, rec: statefile.PartitionState, old: statefile.PartitionState | None) -> None:
        """Make the TAP's addresses, default route and routes @rec's, from
        what it has (@old's, or after its link was down and up, what the
        kernel kept): new addresses first, then the routes (replaced: a
        route the kernel kept is no error), routes @old had and @rec has
        not removed, then old addresses removed, and the routes again
        (a subnet that went took its routes along)."""
        ifname, ns = rec.ifname, rec.netns
        have = set(netns.addresses(ifname, ns))
        for cidr in rec.ips:
            if cidr not in have:
                netns.add_address(ifname, cidr, ns, nodad=True)

        def routes() -> None:
            if rec.gateway:
                netns.add_route("default", rec.gateway, ns, replace=True)
            for route in rec.routes:
                dst, _, gw = route.partition(" via ")
                netns.add_route(dst, gw or None, ns, ifname=ifname, replace=True)
        routes()
        if old is not None:
            if old.gateway and old.gateway != rec.gateway and (
                    rec.gateway is None or (":" in rec.gateway) != (":" in old.gateway)):
                netns.quietly(netns.del_route_to, "default", old.gateway, ns)
            wanted = {r.partition(" via ")[0] for r in rec.routes}
            for route in old.routes:
                dst, _, gw = route.partition(" via ")
                if dst not in wanted:
                    netns.quietly(netns.del_route_to, dst, gw or None, ns)
            for cidr in old.ips:
                if cidr not in rec.ips:
                    netns.quietly(netns.del_address, ifname, cidr, ns)
            routes()

    def _new_mac(self, rec: statefile.PartitionState, part: Partition | None, mac: str, policy) -> None:
        """Give @rec's partition @mac (@policy: the switch's, with @mac): its traffic stopped (the TAP down:
        the partition's stack sends nothing, frames for it wait in the
        switch's queue or are dropped, counted), the switch's port (its MAC
        table entry, the guard's identity, the uplink's membership:
        native/switch.c sw_port_new_mac()) and the TAP changed, traffic
        resumed (the TAP up), the addresses and routes the link's down took
        (IPv6 addresses, routes) made again, as @rec has them."""
        # the TAP announces its new MAC when it comes up (gratuitous ARP,
        # unsolicited NA): its neighbours need not wait for their cache to age
        netns.sysctl(f"net/ipv4/conf/{rec.ifname}/arp_notify", 1, rec.netns)
        netns.quietly(netns.sysctl, f"net/ipv6/conf/{rec.ifname}/ndisc_notify", 1, rec.netns)
        netns.link_set(rec.ifname, rec.netns, up=False)
        try:
            if part is not None:
                self.switch.set_policy(part.port_id, mac, policy)
            netns.link_set(rec.ifname, rec.netns, mac=mac)
        except BaseException:
            netns.quietly(netns.link_set, rec.ifname, rec.netns, mac=rec.mac)
            if part is not None:
                netns.quietly(self.switch.set_policy, part.port_id, rec.mac, self._policy(rec))
            raise
        finally:
            netns.link_set(rec.ifname, rec.netns, up=True)
            self._sync_l3(rec, None)

    def _values_json(self, rec: statefile.PartitionState, changes: dict) -> dict:
        """The new values of @changes (made in @rec) as `partition show
        --json` has them: VLAN, storm control and rates in policy_json()'s
        keys, the rest as the record has them."""
        pj, out = self.policy_json(rec), {}
        for k, v in changes.items():
            if k in ("tx_limit", "rx_limit"):
                out.update({key: pj[key] for key in pj if key.startswith(k[:3])})
            elif k == "storm_limit":
                out["storm_limit_pps"] = pj["storm_limit_pps"]
            elif k == "vlan":
                out["vlan"] = pj["vlan"]
            elif k != "mtu_given":
                out[k] = v
        return out

    def set(self, args: dict) -> dict:
        """Change a partition while it runs: addresses with their gateway
        and routes, MTU, MAC, labels and policy.

        Fields of @args that are None stay as they are. All is checked
        before anything changes (a gateway the new addresses can't reach is
        refused, config.py rule 7); then the TAP's MTU, addresses and routes
        (new addresses added before old ones go, so the routes through them
        stay), its MAC (_new_mac()), the switch's policy (applied between
        two rounds: no frame is lost) and the state file, each undone if a
        later step fails. Returns the partition's describe() and "changes":
        [{"field", "old", "new"}] in words, as `partition show` writes them.
        """
        name = args["name"]
        rec = self.state.partitions.get(name)
        if rec is None:
            raise PartitionError("ENOENT", f"no partition named {name!r}")
        if name in self.unserved:
            raise PartitionError("EAGAIN", self._unserved_line(name))
        changes = self._set_changes(rec, args)
        new = replace(rec, **changes)
        if {"ips", "vlan", "mac"} & changes.keys():
            self._check_identity(name, changes.get("mac"), new.ips, new.vlan)
        if {"ips", "gateway", "routes"} & changes.keys():
            for what, value in ([("gateway", new.gateway)] if new.gateway else []) + [
                    ("route", r) for r in new.routes if " via " in r]:
                try:
                    if what == "gateway":
                        config.gateway(value, new.ips)
                    else:
                        config.route(value, new.ips)
                except VnetshareError as e:
                    raise PartitionError("EINVAL", f"partition {name!r}: {e}") from None
            off = config.unreachable_gateway(new.ips, new.gateway, new.routes)
            if off is not None:
                raise PartitionError("EINVAL", f"partition {name!r}: {off} would be on none of its subnets "
                                               f"({', '.join(new.ips) or 'no address'}); change --gateway or "
                                               "--route with --ip, or give 'none'")
        policy = self._policy(new)
        part = self.parts.get(name)
        with Undo() as undo:
            if "mtu" in changes:
                netns.link_set(rec.ifname, rec.netns, mtu=new.mtu)
                undo.push("mtu", lambda: netns.link_set(rec.ifname, rec.netns, mtu=rec.mtu))
            if {"ips", "gateway", "routes"} & changes.keys():
                netns.sysctl(f"net/ipv4/conf/{rec.ifname}/promote_secondaries", 1, rec.netns)
                undo.push("addresses and routes", lambda: self._sync_l3(rec, new))
                self._sync_l3(new, rec)
            if "mac" in changes:
                undo.push("mac", lambda: self._new_mac(new, part, rec.mac, self._policy(rec)))
                self._new_mac(new, part, new.mac, policy)
            elif part is not None:
                old_policy = self._policy(rec)
                self.switch.set_policy(part.port_id, rec.mac, policy)
                undo.push("policy", lambda: self.switch.set_policy(part.port_id, rec.mac, old_policy))
            before = {k: getattr(rec, k) for k in changes}
            for k, v in changes.items():
                setattr(rec, k, v)
            undo.push("record", lambda: [setattr(rec, k, v) for k, v in before.items()])
            self._save(name)
            undo.commit()
        shown = [{"field": k, "old": _words(before[k], k), "new": _words(changes[k], k)}
                 for k in sorted(changes) if k != "mtu_given"]
        self._event("partition.changed", name,
                    "set " + (", ".join(f"{c['field']} {c['old']} -> {c['new']}" for c in shown) or "nothing"),
                    fields=[c["field"] for c in shown], changes=shown, values=self._values_json(rec, changes))
        return dict(self.describe(name), changes=shown)

    # -- the uplink changed (rule 6) ----------------------------------------
    @staticmethod
    def mtu_for(rec: statefile.PartitionState, uplink_mtu: int) -> int:
        """The MTU @rec's TAP has under an uplink of @uplink_mtu (rule 6)."""
        return uplink_mtu if rec.mtu_given is None else min(rec.mtu_given, uplink_mtu)

    def follow_mtu(self, uplink_mtu: int) -> tuple[dict[str, int], dict[str, str]]:
        """Every served partition's TAP to mtu_for() the uplink's new MTU;
        ({name: its MTU now} for those changed, {name: why} for those whose
        TAP refused). The records change with their TAPs (rule 2)."""
        changed: dict[str, int] = {}
        failed: dict[str, str] = {}
        for name in sorted(self.parts):
            rec = self.parts[name].rec
            mtu = self.mtu_for(rec, uplink_mtu)
            if mtu == rec.mtu:
                continue
            try:
                netns.link_set(rec.ifname, rec.netns, mtu=mtu)
            except OSError as e:
                failed[name] = str(e.strerror or e)
                continue
            rec.mtu = mtu
            changed[name] = mtu
        if changed:
            self._save(*changed)
        if self.host is not None and self.host.rec.mtu != uplink_mtu:  # the host port: the uplink's, always
            try:
                netns.link_set(self.host.rec.ifname, None, mtu=uplink_mtu)
                self.host.rec.mtu = uplink_mtu
                changed[f"host port {self.host.rec.name}"] = uplink_mtu
            except OSError as e:
                failed[f"host port {self.host.rec.name}"] = str(e.strerror or e)
        return changed, failed

    def follow_functions(self, functions: adapter.PartitionFunctions) -> tuple[list[str], dict[str, str]]:
        """The uplink's functions changed: new partitions get @functions;
        served ones whose TAP offloads differ get them live (TUNSETOFFLOAD on
        the TAP descriptor the daemon holds). ([names changed], {name: why
        it could not follow live: a re-create is needed})."""
        from .dataplane.tap import set_offload

        if self.no_uso:
            functions = adapter.drop_uso(functions)
        before, self.functions = self.functions.tun_offloads, functions
        if functions.tun_offloads == before:
            return [], {}
        changed: list[str] = []
        recreate: dict[str, str] = {}
        for name in sorted(self.parts):
            part = self.parts[name]
            if part.tap_fd < 0:
                recreate[name] = "the daemon holds no descriptor of its TAP"
                continue
            try:
                set_offload(part.tap_fd, functions.tun_offloads)
            except OSError as e:
                recreate[name] = f"TUNSETOFFLOAD: {e.strerror or e}"
                continue
            changed.append(name)
        if self.host is not None and self.host.tap_fd >= 0:  # the host port follows as a partition does
            label = f"host port {self.host.rec.name}"
            try:
                set_offload(self.host.tap_fd, functions.tun_offloads)
                changed.append(label)
            except OSError as e:
                recreate[label] = f"TUNSETOFFLOAD: {e.strerror or e} (restart the daemon)"
        return changed, recreate

    # -- adopt -----------------------------------------------------------
    def adopt_all(self, rebooted: bool = False) -> None:
        """Serve again every partition the state file records (daemon restart).

        In the order that gets frames moving soonest (issue 12,
        docs/design-notes.md): the old daemon's agents are gone first (a
        TAP takes one reader); then every partition's rings and switch port,
        so the first frame an agent pumps finds its destination's port (an
        ARP request for a partition not yet in the switch goes to the wire
        only, and the kernel asks again a second later; a frame for a port
        whose agent is not yet running waits in its ring); then each TAP is
        opened and its agent started, and only then their answers awaited
        (they start side by side, not one after the other); then what can
        wait: links someone set down, the state file, the events. A
        partition that cannot be served is forgotten, with an event saying
        why. Those whose namespace is gone (every one if the host has
        @rebooted since the state was written) are not adopted (rule 5):
        one adopted from elsewhere is forgotten first, one vnetshare made
        is re-created last, once the others serve.
        """
        recs = list(self.state.partitions.values())
        gone = [rec for rec in recs if rebooted or not netns.mounted(rec.netns)]
        if gone:
            recs = [rec for rec in recs if rec not in gone]
        if not rebooted:  # after a reboot no agent of ours runs yet
            self.agents.end_stale(recs + gone)
        for rec in gone:
            if not rec.netns_created:
                self._forget(rec, None, f"the namespace it adopted ({rec.netns_source or rec.netns}) is gone"
                             + (" with the boot it was made in" if rebooted else "")
                             + ": its runtime adds it again")
        ported: list[Partition] = []
        for rec in recs:
            try:
                # ports 1..N in order (none are served yet): no O(N) search for a free one each
                ported.append(self._adopt_port(rec, len(self.parts) + 1 if len(ported) == len(self.parts)
                                               else self._free_port_id()))
            except (VnetshareError, OSError) as e:
                self._forget(rec, None, e)
        started = []
        for part in ported:
            try:
                part.tap_fd = self._open_tap(part.rec.ifname, part.rec.netns)
                if self.cfg.direct_share:
                    self.switch.set_tap(part.port_id, part.tap_fd)
                started.append((part, self.agents.start(part)))
            except (VnetshareError, OSError) as e:
                self._forget(part.rec, part, e)
        served: list[Partition] = []
        for part, starting in started:
            try:
                part.agent = self.agents.finish(part, starting)
            except (VnetshareError, OSError) as e:
                self._forget(part.rec, part, e)
                continue
            part.rec.agent_pid = part.agent.pid
            part.life.fire(Event.CREATED)
            served.append(part)
        for part in served:
            rec = part.rec
            try:
                if netns.set_up(rec.ifname, rec.netns):
                    log.warning("partition %s: %s was down; set it up", rec.name, rec.ifname)
            except OSError as e:
                log.warning("partition %s: %s", rec.name, e)
        self._save()
        for part in served:
            name, pid = part.rec.name, part.agent.pid
            self._event("partition.adopted", name, f"adopted ({part.rec.netns})", netns=part.rec.netns)
            self._event("agent.started", name, f"agent {pid} serves it", pid=pid)
        again = [rec for rec in gone if rec.netns_created]
        for rec in again:
            self._recreate(rec, "the host rebooted" if rebooted else f"its namespace {rec.netns} was gone")
        if again:
            self._save()

    def _recreate(self, rec: statefile.PartitionState, cause: str) -> None:
        """Make @rec's partition again (rule 5), its namespace gone because
        of @cause: the checks create() makes, then _make(), all or nothing,
        with its agent's old uid if it is still free (supervisor.py rule 4). Says how it
        went with an event; a failure keeps the record, unserved."""
        name = rec.name
        try:
            rec.mtu = self.mtu_for(rec, self.functions.mtu)   # rule 6: the uplink may have changed
            self._check_identity(name, rec.mac, rec.ips, rec.vlan)
            rec.ring_size = rec.ring_size or self.cfg.ring_size
            with Undo() as undo:
                old_uid = rec.agent_uid
                self.agents.adopt_uid(rec)
                undo.push("agent uid", lambda: (self.uids.release(rec.agent_uid),
                                                setattr(rec, "agent_uid", old_uid)))
                part = self._make(rec, undo)
                self._serve(part, undo)
                self.parts[name] = part
                undo.commit()
        except (VnetshareError, OSError) as e:
            why = str(e)
            self.unserved[name] = why
            self._event("partition.recreate_failed", name, f"cannot re-create it ({cause}): {why}; "
                        "its record is kept, unserved: delete it, or a new daemon tries again",
                        cause=cause, reason=why)
            return
        part.life.fire(Event.CREATED)
        self._event("partition.recreated", name, f"re-created ({cause}): {rec.ifname} {rec.mac} mtu {rec.mtu} "
                    f"{' '.join(rec.ips) or 'no address'}", cause=cause, ifname=rec.ifname, mac=rec.mac,
                    mtu=rec.mtu, ips=list(rec.ips), netns=rec.netns)
        self._event("agent.started", name, f"agent {part.agent.pid} serves it", pid=part.agent.pid)

    def _adopt_port(self, rec: statefile.PartitionState, port_id: int) -> Partition:
        """@rec's new rings and switch port, all or nothing; its TAP is
        opened (tap_fd) just before its agent starts."""
        if not os.path.exists(rec.netns):
            raise PartitionError("ENOENT", f"its namespace {rec.netns} is gone")
        with Undo() as undo:
            self.agents.adopt_uid(rec)
            undo.push("agent uid", lambda: self.uids.release(rec.agent_uid))
            rec.ring_size = rec.ring_size or self.cfg.ring_size
            a2h = create_fds(rec.ring_size)
            undo.push("a2h", a2h.close)
            h2a = create_fds(rec.ring_size)
            undo.push("h2a", h2a.close)
            part = Partition(rec, port_id, -1, a2h, h2a)
            self.switch.add_port(part.port_id, rec.mac, a2h, h2a, rec.ring_size,
                                 policy=self._policy(rec))
            self.parts[rec.name] = part
            undo.commit()
        return part

    def _forget(self, rec: statefile.PartitionState, part: Partition | None, why: Exception | str) -> None:
        """@rec cannot be adopted (@why): undo what was made for it, remove
        its pin, drop its record, say so (partition.forgotten)."""
        self._event("partition.forgotten", rec.name, f"cannot adopt it, forgetting it: {why}",
                    reason=str(why), netns=rec.netns, adopted=not rec.netns_created)
        if part is not None:
            try:
                self.switch.del_port(part.port_id)
            except OSError as e:
                log.warning("partition %s: port removal: %s", rec.name, e)
            part.close_fds()
            self.parts.pop(rec.name, None)
            self.uids.release(rec.agent_uid)
        if rec.netns_source is not None:  # our pin: nothing else will ever remove it
            try:
                netns.quietly(netns.unpin, rec.netns)
            except OSError as e:
                log.warning("partition %s: %s", rec.name, e)
        self.state.partitions.pop(rec.name, None)

    # -- delete ----------------------------------------------------------
    def delete(self, name: str) -> None:
        part = self.parts.get(name)
        rec = self.state.partitions.get(name)
        if rec is None:
            raise PartitionError("ENOENT", f"no partition named {name!r}")
        if self.unserved.pop(name, None) is not None:
            # nothing of it exists; a namespace of its name is someone else's
            self.state.partitions.pop(name, None)
            self._save(name)
            self._event("partition.deleted", name, "deleted (its record: it was not served)")
            return
        if part is not None:
            part.life.fire(Event.DELETE)
            self.agents.stop(part.agent)
            part.agent = None
            self.switch.del_port(part.port_id)
            part.close_fds()
            self.parts.pop(name, None)
            part.life.fire(Event.DELETED)
        if rec.netns_created:
            # the TAP goes with the namespace, as every link in it does with
            # `ip netns del`: the kernel's namespace cleanup unregisters them
            # in batches, one RCU grace period for many, where deleting the
            # TAP first waited for one each (20 of a delete's 35 ms)
            netns.quietly(netns.delete, name)
        else:
            netns.quietly(netns.delete_link, rec.ifname, rec.netns)
            if rec.netns_source is not None:
                netns.quietly(netns.unpin, rec.netns)
        self.uids.release(rec.agent_uid)  # its agent has ended
        self.state.partitions.pop(name, None)
        self._save(name)
        self._event("partition.deleted", name, "deleted")

    # -- the host port --------------------------------------------------
    def serve_host_port(self, rec: statefile.PartitionState, tap_fd: int, policy,
                        saved: Callable[[], None]) -> Partition:
        """Serve the daemon's host port (hostport.py) as a partition is
        served: two rings, switch port HOST_PORT_ID under @policy, an agent
        in @rec.netns with its own uid (@rec.agent_uid kept if it can be,
        else a new one), restarted if it dies; all or nothing. The TAP
        (@tap_fd) is the caller's, and is closed here from now on, on
        failure too. It is no partition: not in names(), describe() or the
        state file; @rec is the caller's, who is told by @saved() when it
        changed (a new agent's pid)."""
        if self.host is not None:
            close_fd(tap_fd)
            raise PartitionError("EEXIST", f"host port {self.host.rec.name!r} is served already")
        owner = self._mac_owner(rec.mac)  # rule 4
        if owner is not None:
            close_fd(tap_fd)
            raise PartitionError("EADDRINUSE", f"host port {rec.name!r}: MAC {rec.mac}: in use by {owner}; "
                                               "give it another with --host-port-mac")
        if rec.agent_pid and procs.is_agent(rec.agent_pid, rec.name):
            self.agents.end_stale([rec])  # a daemon killed before it could stop it
        with Undo() as undo:
            undo.push("tap fd", lambda: close_fd(tap_fd))
            try:
                if rec.agent_uid is None:
                    rec.agent_uid = self.uids.allocate()
                else:
                    self.agents.adopt_uid(rec)
            except AgentError as e:
                raise PartitionError("ENOSPC", f"host port {rec.name!r}: {e}") from None
            undo.push("agent uid", lambda: self.uids.release(rec.agent_uid))
            a2h = create_fds(rec.ring_size)
            undo.push("a2h ring", a2h.close)
            h2a = create_fds(rec.ring_size)
            undo.push("h2a ring", h2a.close)
            part = Partition(rec, HOST_PORT_ID, tap_fd, a2h, h2a)
            self.switch.add_port(HOST_PORT_ID, rec.mac, a2h, h2a, rec.ring_size, policy=policy)
            undo.push("port", lambda: self.switch.del_port(HOST_PORT_ID))
            if self.cfg.direct_share:
                self.switch.set_tap(HOST_PORT_ID, tap_fd)
            self.host = part  # before its agent: an agent that ends at once is restarted
            undo.push("host", lambda: setattr(self, "host", None))
            part.agent = self.agents.spawn(part)
            rec.agent_pid = part.agent.pid
            part.life.fire(Event.CREATED)
            self._host_saved = saved
            undo.commit()
        return part

    def stop_host_port(self) -> dict:
        """Stop serving the host port: its agent, its port, its rings; the
        TAP stays (the caller deletes it or leaves it for the next
        daemon). Returns its last counters ({} if none was served)."""
        part, self.host = self.host, None
        if part is None:
            return {}
        self.agents.stop(part.agent)
        part.agent = None
        part.rec.agent_pid = None
        try:
            last = self.switch.del_port(HOST_PORT_ID)
        except OSError as e:
            log.warning("host port %s: port removal: %s", part.rec.name, e)
            last = {}
        part.close_fds()
        self.uids.release(part.rec.agent_uid)
        return last

    def host_counters(self) -> dict:
        """The host port's counters as counters() gives a partition's; {}
        when none is served."""
        if self.host is None:
            return {}
        return dict(self.switch.port_stats(HOST_PORT_ID), agent_restarts=self.host.restarts)

    def shutdown(self) -> None:
        """Daemon exit: stop agents, close descriptors; partitions stay (rule 3)."""
        self.agents.stopping = True
        if self.host is not None:  # the daemon stops it first; not on every error path
            self.stop_host_port()
        self.agents.stop_all([part.agent for part in self.parts.values() if part.agent is not None])
        for part in self.parts.values():
            part.agent = None
            part.rec.agent_pid = None
            try:
                self.switch.del_port(part.port_id)
            except OSError as e:
                log.warning("partition %s: port removal: %s", part.rec.name, e)
            part.close_fds()
        self.parts.clear()
        self._save()
        self.uids.close()

    # -- reports ---------------------------------------------------------
    def counters(self, name: str) -> dict:
        """A partition's counters as the switch keeps them (Switch.port_stats:
        partition view, drops by reason under "drops") and agent_restarts;
        {} when unserved."""
        part = self.parts.get(name)
        if part is None:
            return {}
        return dict(self.switch.port_stats(part.port_id), agent_restarts=part.restarts)

    def all_counters(self) -> dict[str, dict]:
        """counters() of every served partition, from one switch command
        (Switch.all_port_stats): one snapshot, whatever their number."""
        by_port = self.switch.all_port_stats(len(self.parts))
        return {name: dict(by_port[part.port_id], agent_restarts=part.restarts)
                for name, part in self.parts.items() if part.port_id in by_port}

    def describe(self, name: str, with_counters: bool = True) -> dict:
        rec = self.state.partitions.get(name)
        if rec is None:
            raise PartitionError("ENOENT", f"no partition named {name!r}")
        part = self.parts.get(name)
        out = asdict(rec)
        out["adopted"] = not rec.netns_created
        if name in self.unserved:
            out["agent"] = "none (not re-created)"
            out["unserved"] = self.unserved[name]
        elif part is None:
            out["agent"] = "none"
        elif part.life.state is State.FAILED:
            out["agent"] = f"failed: {part.life.reason}"
        elif part.life.state is State.RUNNING and part.agent:
            out["agent"] = f"running (pid {part.agent.pid})"
        else:
            out["agent"] = part.life.state.value
        out["state"] = part.life.state.value if part else "unserved"
        out["functions"] = function_rows(self.functions, rec.mtu)
        flags = ", ".join(f for f, on in (("--trusted-router", rec.trusted_router),
                                          ("--allow-llc", rec.allow_llc)) if on)
        out["guard"] = ("off (--allow-ip any" + (", --allow-llc" if rec.allow_llc else "") + ")"
                        if "any" in rec.allow_ips else "on" + (f" ({flags})" if flags else ""))
        del out["tx_limit"], out["rx_limit"], out["storm_limit"]
        out.update(self.policy_json(rec))
        if with_counters:
            out["counters"] = self.counters(name)
        return out

    def fdb(self, uplink: str, partition: str | None = None, vlan: int | None = None) -> list[dict]:
        """The switch's forwarding table (Switch.fdb_table(), one command),
        each port named: {"mac", "vlan" (null: untagged), "port" (a
        partition's name, the host port's, or @uplink, the interface the
        switch learned the station on), "port_kind" ("partition",
        "host_port", "uplink"), "static" (a port's own MAC) and
        "age_seconds" (since a learned station was last seen; null if
        static)}; only @partition's port, only VLAN @vlan (0: untagged), if
        given. Static rows first, by port, then learned ones by VLAN and MAC."""
        if partition is not None and partition not in self.state.partitions:
            raise PartitionError("ENOENT", f"no partition named {partition!r}")
        names = {p.port_id: name for name, p in self.parts.items()}
        rows = []
        for r in self.switch.fdb_table(len(self.parts) + 1):
            if r["port"] is None:
                port, kind = uplink, "uplink"
            elif self.host is not None and r["port"] == self.host.port_id:
                port, kind = self.host.rec.name, "host_port"
            else:
                port, kind = names.get(r["port"], f"port {r['port']}"), "partition"
            if (partition is not None and (kind != "partition" or port != partition)) or (
                    vlan is not None and r["vlan"] != vlan):
                continue
            rows.append({"mac": r["mac"], "vlan": r["vlan"] or None, "port": port, "port_kind": kind,
                         "static": r["static"],
                         "age_seconds": None if r["age"] is None else round(r["age"], 3)})
        rows.sort(key=lambda r: (not r["static"], r["port"] if r["static"] else "", r["vlan"] or 0, r["mac"]))
        return rows

    def groups(self, uplink: str, vlan: int | None = None) -> dict:
        """The switch's multicast group table (Switch.groups(), one
        command), ports named as fdb() names them: {"snooping": bool,
        "groups": [{"vlan" (null: untagged), "group", "members":
        [{"port", "port_kind", "expires_seconds"}]}], "queriers": [{"vlan",
        "family", "address", "port", "port_kind", "expires_seconds",
        "interval_seconds"}]}; only VLAN @vlan (0: untagged), if given.
        Groups by VLAN and address, members by port."""
        table = self.switch.groups(len(self.parts))
        if table is None:
            return {"snooping": False, "groups": [], "queriers": []}
        names = {p.port_id: name for name, p in self.parts.items()}

        def port(pid: int | None) -> tuple[str, str]:
            if pid is None:
                return uplink, "uplink"
            if self.host is not None and pid == self.host.port_id:
                return self.host.rec.name, "host_port"
            return names.get(pid, f"port {pid}"), "partition"

        groups: dict[tuple[int, str], list[dict]] = {}
        for r in table["members"]:
            if vlan is not None and r["vlan"] != vlan:
                continue
            name, kind = port(r["port"])
            groups.setdefault((r["vlan"], r["group"]), []).append(
                {"port": name, "port_kind": kind, "expires_seconds": round(r["expires"], 3)})
        queriers = []
        for q in table["queriers"]:
            if vlan is not None and q["vlan"] != vlan:
                continue
            name, kind = port(q["port"])
            queriers.append({"vlan": q["vlan"] or None, "family": q["family"], "address": q["address"],
                             "port": name, "port_kind": kind, "expires_seconds": round(q["expires"], 3),
                             "interval_seconds": q["interval"]})
        rows = [{"vlan": v or None, "group": g, "members": sorted(ms, key=lambda m: m["port"])}
                for (v, g), ms in sorted(groups.items(), key=lambda kv: (kv[0][0], ipaddress.ip_address(kv[0][1]).version,
                                                                         ipaddress.ip_address(kv[0][1])))]
        queriers.sort(key=lambda q: (q["vlan"] or 0, q["family"]))
        return {"snooping": True, "groups": rows, "queriers": queriers}

    def policy_json(self, rec: statefile.PartitionState) -> dict:
        """@rec's VLAN, storm control and rates as every JSON output has
        them (config.policy_json()), the daemon's storm limit if it has none."""
        storm = self.cfg.storm_limit if rec.storm_limit is None else rec.storm_limit
        return config.policy_json(rec.vlan, storm, rec.tx_limit, rec.rx_limit)

    def names(self) -> list[str]:
        return sorted(self.state.partitions)

    def _unserved_line(self, name: str) -> str:
        return (f"partition {name!r} is not served: its re-creation failed ({self.unserved[name]}); "
                f"delete it, or restart the daemon to try again")
