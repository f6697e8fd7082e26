"""hosting.py - the hosting daemon: owns the uplink NIC and serves partitions.

    vnetshare daemon --uplink IFACE [--offloads mirror|emulate] [--metrics [ADDR:]PORT]
                     [--host-port NAME [--take-address]]

The patent's hosting partition. At start it queries the uplink's functions
(adapter.py), opens it through AF_PACKET and runs the switch (native/switch.c)
in its own thread; the control plane is this asyncio loop: the control
socket, agent supervision, signals.

Rules:
1. One daemon per state directory and per runtime directory: an flock on
   RUNTIME_DIR/daemon.lock (it names the holder's PID) and one on the state
   directory itself; the control socket is made only under them, mode
   0600 (root only), and never over one another process listens on (the
   daemon of another uplink): that start fails first, naming its PID.
   And one daemon per NIC, whatever its socket or state directory: an
   flock on UPLINK_LOCK_DIR/NAME@NETNS.lock (the uplink's name, and the
   inode of the network namespace the name is in), taken before the NIC
   is opened; a second daemon is refused in one line naming the first's
   PID. The name is the key because the name is what the daemon serves
   (rule 6): a device re-created keeps it, a device renamed away is let
   go. Only an Ethernet device is served (adapter.py rule 7).
2. Requests are handled one at a time, in order; each answer is one JSON
   line (protocol.py). A bad request gets an error answer, never a crash,
   and leaves the daemon as it was. A streaming op (capture, events
   --follow) answers once, with descriptors if it hands any over, then owns
   the connection until either side closes it (StreamAnswer).
3. The data plane is changed only through the switch's own command queue
   (switch.py); this thread never touches its tables.
4. SIGTERM and SIGINT stop it cleanly: agents stopped, switch thread joined,
   socket removed, exit 0. Partitions stay for the next daemon (manager.py);
   the host port gives the uplink back its addresses and goes (hostport.py).
5. The data path comes first (issue 12): lock, uplink and switch, the
   partitions adopted and their agents pumping, then the host port
   (hostport.py: made, adopted or retired); only then asyncio, the
   event log, the control socket and the watchers. asyncio and events.py
   are imported then, not with this module; a signal that arrives before
   the loop runs is kept and acted on as the loop starts.
6. The daemon serves the device named --uplink, whatever its index, and
   follows it (follow_uplink(), on each kernel notification about it):
   gone (deleted, renamed away): the switch lets go of its socket, frames
   for the wire are dropped and counted (no_uplink), an event; back (a new
   device of the name: a new ifindex): a new socket swapped in through the
   switch's command queue, the functions queried again, an event; its MTU
   or features changed: the switch's MTU, the partitions' TAPs (manager.py
   rule 9) and new partitions follow, an event says what changed.
7. The service manager hears READY=1 (sdnotify.py) when the control socket
   serves, after rule 5's data path: a unit that is "active" forwards
   frames. STOPPING=1 when a signal stops it; STATUS= says what it serves.
8. --backup-uplink B (failover): B is checked, locked (rule 1), queried
   and opened at start like the uplink, in the switch's backup slot
   (switch.py rule 8); partitions get what both offer (adapter.py rule
   9). A B that is not there at start (a second NIC unplugged) does not
   stop it: the daemon serves on the uplink alone, degraded (status, the
   backup's uplink.down event), and serves B when it appears, as a B that
   came back (rule 6); a B that is there and wrong (the uplink itself, no
   Ethernet NIC, another daemon's) refuses the start. Both are followed
   (rule 6) and watched (up and down events); on each notification about
   either, and when a failback hold runs out, core/failover.py decides
   which one the switch serves, and a move is one switch command, then
   an event (uplink.failover, uplink.failback), and every partition is
   announced on the new path (gratuitous ARP, unsolicited NA, in its
   VLAN, paced: linux/announce.py rule 4) from the daemon, on the NIC.
"""
from __future__ import annotations

import array
import errno
import fcntl
import logging
import os
import resource
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable

from . import adapter, agent
from .core import apply as applyplan, config, protocol, state as statefile
from .core.errors import ConfigError, VnetshareError, message as error_message
from .linux import netns, sdnotify
from .linux.netns import NetnsError
from .manager import PartitionManager, function_rows

if TYPE_CHECKING:  # imported when the loop starts (rule 5)
    import asyncio

log = logging.getLogger("vnetshare.daemon")


class DaemonStartError(VnetshareError):
    """The daemon cannot start (uplink missing, another daemon, ...)."""


@dataclass
class StreamAnswer:
    """A streaming op's answer (rule 2): @answer is sent first, with @fds
    passed along it (SCM_RIGHTS) and then closed here; then run(reader,
    writer) owns the connection; @close runs once it ends, however it ends."""

    answer: dict
    run: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    fds: list[int] = field(default_factory=list)
    close: Callable[[], None] = lambda: None


async def until_closed(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    """A StreamAnswer's run() that only waits for the client to hang up."""
    while await reader.read(4096):
        pass


def _send_with_fds(writer: asyncio.StreamWriter, data: bytes, fds: list[int]) -> None:
    """@data with @fds, on a stream whose transport has nothing buffered
    (after drain()): one sendmsg() on the socket, the rest (if the socket
    buffer took less, which a fresh connection never does) through @writer."""
    fd = os.dup(writer.get_extra_info("socket").fileno())
    sock = socket.socket(fileno=fd)  # the same description: stays non-blocking
    try:
        sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    finally:
        sock.close()
    if sent < len(data):
        writer.write(data[sent:])


class Daemon:
    def __init__(self, cfg: config.DaemonConfig):
        self.cfg = cfg
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.switch = None
        self.manager: PartitionManager | None = None
        self.info = None
        self.functions = None
        self.events = None  # events.EventLog once the loop runs (rule 5): `vnetshare events`, the log
        self._early_events: list[tuple] = []  # (time, kind, partition, message, details) until then
        self._early_watch: dict[int, Callable[[], None]] = {}  # agents' pidfds, until the loop runs
        self._early_signal: int | None = None
        self.watcher = None
        self._lock_fd = -1
        self._state_dir_fd = -1
        self._uplink_lock_fd = -1
        self._backup_lock_fd = -1
        self.backup_info = None  # adapter.UplinkInfo of --backup-uplink: the last known (rule 8)
        self.backup_link = None  # events.LinkState of --backup-uplink while the loop runs
        self._backup_served = False  # --backup-uplink has been served (a socket in the backup slot) once
        self.active: str | None = "primary"  # failover.PRIMARY / BACKUP / None: what the switch serves
        self.active_since = time.time()
        self._usable_since: dict[str, float | None] = {"primary": None, "backup": None}
        self._reselect_at: asyncio.TimerHandle | None = None  # a failback hold runs out then
        self._announcing: asyncio.Future | None = None
        self._backup_unusable: int | None = None  # the ifindex an uplink.unusable was emitted for
        self._gone: tuple[int, float] | None = None  # (ifindex, monotonic time) the NIC went
        self._unusable: int | None = None  # the ifindex an uplink.unusable was emitted for
        self._follow_retry: asyncio.TimerHandle | None = None  # follow_uplink() failed: again then
        self.started = time.time()
        self.notifier = sdnotify.Notifier()  # $NOTIFY_SOCKET, taken from the environment (rule 7)
        self.ready = False
        self.exporter = None  # metrics.Exporter while --metrics serves /metrics
        self.host_port = None  # hostport.HostPort once the partitions are served
        # capture id -> (partition, the reason it must end: set once, then its stream ends)
        self.captures: dict[int, tuple[str, asyncio.Future]] = {}

    # -- start -----------------------------------------------------------
    def _lock(self) -> None:
        """Rule 1's locks (both directories made if missing), then the pin
        directory, a shared mount."""
        os.makedirs(self.cfg.runtime_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.cfg.state_dir, mode=0o700, exist_ok=True)
        fd = os.open(self.cfg.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DaemonStartError(f"another daemon (pid {other}) already runs on "
                                   f"{self.cfg.runtime_dir}") from None
        dfd = os.open(self.cfg.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(dfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(dfd)
            os.close(fd)
            raise DaemonStartError(f"another daemon already keeps its state in {self.cfg.state_dir}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd, self._state_dir_fd = fd, dfd
        # where adopted namespaces are pinned (manager.create): its own mount
        netns.share_dir(self.cfg.pin_dir)

    def _uplink_lock_path(self, name: str | None = None) -> str:
        ns = os.stat("/proc/thread-self/ns/net").st_ino
        return os.path.join(self.cfg.uplink_lock_dir, f"{name or self.cfg.uplink}@{ns}.lock")

    def _lock_uplink(self) -> None:
        """Rule 1: one daemon per NIC, the backup's too (rule 8); the lock
        says whose (PID, socket)."""
        os.makedirs(self.cfg.uplink_lock_dir, mode=0o755, exist_ok=True)
        for attr, name, what in (("_uplink_lock_fd", self.cfg.uplink, "uplink"),
                                 ("_backup_lock_fd", self.cfg.backup_uplink, "backup uplink")):
            if name is None:
                continue
            fd = os.open(self._uplink_lock_path(name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid, _, sock = os.pread(fd, 4096, 0).decode(errors="replace").partition("\n")
                os.close(fd)
                raise DaemonStartError(
                    f"{what} {name}: another daemon (pid {pid.strip() or '?'}"
                    + (f", control socket {sock.strip()}" if sock.strip() else "")
                    + ") already serves it; one daemon per NIC") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n{self.cfg.socket}\n".encode(), 0)
            setattr(self, attr, fd)

    def _check_socket(self) -> None:
        """Rule 1: if a process listens on the control socket already (a
        daemon, of this uplink or another), this one does not start: the
        socket would be taken from under it. Before the locks, whose
        messages would not say what the daemon of another NIC needs."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            s.connect(self.cfg.socket)
            pid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
        except OSError:  # none there (ENOENT), a stale one (ECONNREFUSED): ours to make
            return
        finally:
            s.close()
        raise DaemonStartError(
            f"control socket {self.cfg.socket}: process {pid} listens on it already (one daemon per "
            f"NIC; the daemon of another NIC needs its own socket, runtime-dir and state-dir: flags, "
            f"or the [uplinks.{self.cfg.uplink}] table of the config file)")

    def _start_metrics(self) -> None:
        """--metrics: bind and serve /metrics first, so an address in use
        fails the start with nothing made to undo; until the loop serves,
        a scrape says vnetshare_up 0 (metrics.py, rule 1)."""
        if self.cfg.metrics is None:
            return
        from . import metrics

        where = config.format_address(self.cfg.metrics)
        try:
            self.exporter = metrics.Exporter(self.cfg.metrics, metrics.in_loop(self))
        except OSError as e:
            raise DaemonStartError(f"metrics address {where}: {e.strerror or e}") from None
        log.info("metrics: http://%s/metrics", where)

    async def _stop_metrics(self) -> None:
        """Stop serving /metrics while the loop still runs, so a scrape in
        progress gets its snapshot rather than waiting for a stopped loop."""
        if self.exporter is not None:
            await self.loop.run_in_executor(None, self.exporter.close)

    def _unlock(self) -> None:
        for attr in ("_backup_lock_fd", "_uplink_lock_fd", "_lock_fd"):
            fd = getattr(self, attr)
            if fd >= 0:
                os.ftruncate(fd, 0)
                os.close(fd)
                setattr(self, attr, -1)
        if self._state_dir_fd >= 0:
            os.close(self._state_dir_fd)
            self._state_dir_fd = -1

    def _query_uplink(self) -> None:
        """The uplink as it is (adapter.query): before anything is made, so
        a daemon told a NIC that is not there (or is no Ethernet NIC) leaves
        nothing behind (no lock, no socket, no directory)."""
        try:
            self.info = adapter.check_uplink(adapter.query(self.cfg.uplink))
        except OSError as e:
            raise DaemonStartError(error_message(e)) from None  # no "[Errno N]"
        except ConfigError as e:
            raise DaemonStartError(str(e)) from None

    def _open_uplink(self) -> None:
        from .dataplane.switch import BACKUP, Switch

        if self.info is None:
            self._query_uplink()
        if self.cfg.backup_uplink is not None:
            try:
                self.backup_info = adapter.check_uplink(adapter.query(self.cfg.backup_uplink))
            except OSError as e:
                if e.errno != errno.ENODEV:
                    raise DaemonStartError(f"--backup-uplink: {error_message(e)}") from None
                # not there (a second NIC unplugged): start on the uplink alone, degraded; follow_backup()
                # serves it when it appears (rule 8)
                log.warning("backup uplink %s: not there: serving on %s alone until it appears",
                            self.cfg.backup_uplink, self.cfg.uplink)
            except ConfigError as e:
                raise DaemonStartError(f"--backup-uplink: {e}") from None
            if self.backup_info is not None and self.backup_info.ifindex == self.info.ifindex:
                raise DaemonStartError(f"backup uplink {self.cfg.backup_uplink!r}: is the same NIC as uplink "
                                       f"{self.cfg.uplink!r} (ifindex {self.info.ifindex})")
        self.functions = adapter.derive(self._effective(), self.cfg.offloads)
        self.switch = Switch(self.cfg.uplink, coalesce_usecs=self.cfg.coalesce_usecs,
                             max_ports=self.cfg.max_partitions + (self.cfg.host_port is not None),
                             direct_pct=self.cfg.direct_share, mtu=self.functions.mtu,
                             fdb_age_s=self.cfg.fdb_age, mac_conflict=self.cfg.mac_conflict,
                             mcast_snooping=self.cfg.mcast_snooping == "on")
        if self.backup_info is not None:
            try:
                self.switch.attach_uplink(self.backup_info.ifindex, BACKUP)
            except OSError as e:
                self.switch.close()
                raise DaemonStartError(f"backup uplink {self.cfg.backup_uplink}: its socket: "
                                       f"{e.strerror or e}") from None
            self._backup_served = True
            log.info("backup uplink %s: mtu %d; partitions get what both offer (mtu %d); failback %s%s",
                     self.cfg.backup_uplink, self.backup_info.mtu, self.functions.mtu, self.cfg.failback,
                     f" after {self.cfg.failback_hold:g} s" if self.cfg.failback == "hold" else "")
        self.switch.start()
        log.info("uplink %s: mtu %d, speed %s, offloads to partitions: %s (%s mode), "
                 "coalescing %s", self.cfg.uplink, self.info.mtu, self.info.speed or "?",
                 ",".join(adapter.offload_names(self.functions.tun_offloads)) or "none", self.cfg.offloads,
                 f"adaptive, up to {self.cfg.coalesce_usecs} us" if self.cfg.coalesce_usecs else "off")

    # -- the NIC changes (rule 6) ----------------------------------------
    def follow_uplink(self) -> None:
        """Serve the device named --uplink as it is now (rule 6): called on
        each kernel notification about it (events.Watcher's on_link), and
        once as the loop starts. Idempotent: it compares what the kernel
        says with what the switch serves, and acts on the difference."""
        name = self.cfg.uplink
        info = self._query_present(name)
        served = self.switch.slots[0]
        if served is not None and (info is None or info.ifindex != served):
            self.switch.detach_uplink()
            self._gone = (served, time.monotonic())
            self._emit("uplink.gone", None, f"uplink {name} (ifindex {served}) is gone: frames for the "
                       f"wire are dropped (no_uplink) until a device named {name} is back",
                       ifname=name, ifindex=served)
        if info is None or (self.switch.slots[0] is None and not self._rebind(info)):
            return
        before = self._effective()
        self.info = info
        self._follow_functions(before, self._effective())

    @staticmethod
    def _query_present(name: str) -> adapter.UplinkInfo | None:
        """adapter.query(@name), or None while no device has that name."""
        try:
            return adapter.query(name)
        except NetnsError as e:
            if e.errno != errno.ENODEV:
                raise
            return None

    def _effective(self) -> adapter.UplinkInfo:
        """What partitions get their functions from: the uplink's info, or
        with a backup what both offer (rule 8, adapter.common())."""
        return adapter.common(self.info, self.backup_info)

    # -- failover (rule 8) -----------------------------------------------
    def follow_backup(self) -> None:
        """The backup uplink as follow_uplink() follows the uplink (rule 6):
        gone, its socket let go of; back, a new one in the backup slot;
        its MTU or features changed, the partitions' functions follow."""
        from .dataplane.switch import BACKUP

        name = self.cfg.backup_uplink
        info = self._query_present(name)
        served = self.switch.slots[BACKUP]
        if served is not None and (info is None or info.ifindex != served):
            self.switch.detach_uplink(BACKUP)
            self._emit("uplink.gone", None, f"backup uplink {name} (ifindex {served}) is gone",
                       ifname=name, ifindex=served, role="backup")
        if info is None:
            return
        if self.switch.slots[BACKUP] is None:
            why = adapter.unusable(info)
            if why is None:
                try:
                    self.switch.attach_uplink(info.ifindex, BACKUP)
                except OSError as e:
                    why = f"its socket: {e.strerror or e}"
            if why is not None:
                if self._backup_unusable != info.ifindex:
                    self._backup_unusable = info.ifindex
                    self._emit("uplink.unusable", None, f"backup uplink {name} (ifindex {info.ifindex}): not "
                               f"served: {why}", ifname=name, ifindex=info.ifindex, reason=why, role="backup")
                return
            self._backup_unusable = None
            self._emit("uplink.rebound", None, f"backup uplink {name}: served{' again' * self._backup_served}, "
                       f"through ifindex {info.ifindex}", ifname=name, new_ifindex=info.ifindex, mac=info.mac,
                       mtu=info.mtu, role="backup")
        self._backup_served = True
        before = self._effective()
        self.backup_info = info
        self._follow_functions(before, self._effective())

    def _link_state(self, role: str) -> dict:
        """{"up", "operstate"} of the uplink of @role, from its LinkState."""
        link = self.backup_link if role == "backup" else (self.watcher.link if self.watcher else None)
        if link is None:
            return {"up": None, "operstate": "unknown"}
        try:
            return link.look()
        except OSError as e:
            return {"up": None, "operstate": f"unknown ({e.strerror or e})"}

    def reselect(self) -> None:
        """Serve the uplink core/failover.py says (rule 8): on each link
        notification of either uplink, and when a failback hold runs out."""
        from .core import failover
        from .dataplane.switch import BACKUP, PRIMARY

        if self.cfg.backup_uplink is None:
            return
        if self._reselect_at is not None:
            self._reselect_at.cancel()
            self._reselect_at = None
        now = time.monotonic()
        slots = {failover.PRIMARY: PRIMARY, failover.BACKUP: BACKUP}
        states = {role: self._link_state(role) for role in failover.ROLES}
        usable = {role: self.switch.slots[slots[role]] is not None and bool(states[role]["up"])
                  for role in failover.ROLES}
        for role, ok in usable.items():
            if not ok:
                self._usable_since[role] = None
            elif self._usable_since[role] is None:
                self._usable_since[role] = now
        d = failover.decide(self.active, usable, self._usable_since[failover.PRIMARY], now,
                            self.cfg.failback, self.cfg.failback_hold)
        if d.recheck is not None and self.loop is not None:
            self._reselect_at = self.loop.call_later(max(d.recheck - now, 0.0), self._reselect_soon)
        if d.target == self.active:
            return
        was, self.active = self.active, d.target
        self.switch.select_uplink(None if d.target is None else slots[d.target])
        self.active_since = time.time()
        names = {failover.PRIMARY: self.cfg.uplink, failover.BACKUP: self.cfg.backup_uplink, None: None}
        frm, to = names[was], names[d.target]
        why = d.reason + (f" ({states[was]['operstate']})" if was is not None and not usable[was] else "")
        self._emit(f"uplink.{d.kind}", None,
                   f"uplink {frm or 'none'} -> {to or 'none'}: {why}"
                   + ("" if to else ": frames for the wire are dropped (no_uplink) until one is up"),
                   **{"from": frm, "to": to, "reason": d.reason, "role": d.target,
                      "moves": self.switch.uplink_stats()["uplink_moves"]})
        if to is not None:
            self._announce_all(to)

    def _reselect_soon(self) -> None:
        self._reselect_at = None
        try:
            self.reselect()
        except Exception as e:  # noqa: BLE001 - the daemon goes on serving what it has
            log.warning("failover: %s", e)

    def announcements(self) -> list[bytes]:
        """Every served partition's announcements (rule 8): a gratuitous ARP
        per IPv4 address, an unsolicited NA per IPv6 address and for its
        link-local one, from its MAC, in its VLAN; and the host port's, for
        the addresses it has."""
        from .dataplane.guard import link_local
        from .linux import announce

        out: list[bytes] = []
        for name in sorted(self.manager.parts):
            rec = self.manager.parts[name].rec
            out += announce.frames(rec.mac, [*rec.ips, str(link_local(rec.mac))], vlan=rec.vlan)
        host = self.host_port.describe() if self.host_port is not None else None
        if host is not None:  # the host port too: the host's addresses on it, as they are now
            try:
                out += announce.frames(host["mac"], netns.addresses(host["name"]))
            except (NetnsError, OSError) as e:
                log.warning("host port %s: its addresses: %s", host["name"], e)
        return out

    def _announce_all(self, ifname: str) -> None:
        """Announce every partition on @ifname, the new path, paced, in the
        loop (linux/announce.py rule 4); a newer move ends an older run."""
        import asyncio

        from .linux import announce

        if self._announcing is not None:
            self._announcing.cancel()
        todo = self.announcements()

        async def run() -> None:
            t0 = time.monotonic()
            try:
                sent, refused = await announce.send_paced(ifname, todo)
            except OSError as e:
                log.warning("announcing %d partition(s) on %s: %s", len(self.manager.parts), ifname,
                            e.strerror or e)
                return
            ms = (time.monotonic() - t0) * 1e3
            self._emit("uplink.announced", None, f"uplink {ifname}: {len(self.manager.parts)} partition(s) "
                       f"announced, {sent} frame(s) in {ms:.1f} ms" + (f", {refused} refused" if refused else ""),
                       ifname=ifname, partitions=len(self.manager.parts), frames=sent, refused=refused,
                       ms=round(ms, 1))

        self._announcing = asyncio.ensure_future(run())

    def uplinks(self) -> list[dict]:
        """Both uplinks as `adapter`, `status` and the metrics show them:
        role, ifname, ifindex served, active, link state; the active one's
        since (Unix time) and the switch's moves."""
        from .dataplane.switch import BACKUP, PRIMARY

        out = []
        for role, name, slot in (("primary", self.cfg.uplink, PRIMARY), ("backup", self.cfg.backup_uplink, BACKUP)):
            if name is None:
                continue
            st = self._link_state(role)
            out.append({"role": role, "ifname": name, "ifindex": self.switch.slots[slot],
                        "active": self.active == role, "up": st["up"], "operstate": st["operstate"]})
        return out

    def _rebind(self, info: adapter.UplinkInfo) -> bool:
        """A device named --uplink is back: a new socket on it, swapped
        into the switch (rule 6); False (and one event per device) if it
        cannot be served."""
        name = self.cfg.uplink
        why = adapter.unusable(info)
        if why is None:
            try:
                self.switch.attach_uplink(info.ifindex)
            except OSError as e:
                why = f"its socket: {e.strerror or e}"
        if why is not None:
            if self._unusable != info.ifindex:
                self._unusable = info.ifindex
                self._emit("uplink.unusable", None, f"uplink {name} (ifindex {info.ifindex}): not served: {why}",
                           ifname=name, ifindex=info.ifindex, reason=why)
            return False
        self._unusable = None
        old, since = self._gone or (None, None)
        self._gone = None
        seconds = None if since is None else round(time.monotonic() - since, 3)
        self.manager.uplink_mac = info.mac.lower() if info.mac else None
        if self.host_port is not None:
            self.host_port.uplink_back()
        self._emit("uplink.rebound", None, f"uplink {name}: served again, through ifindex {info.ifindex} "
                   f"(was {old})" + (f", {seconds:.3f} s after it went" if seconds is not None else ""),
                   ifname=name, old_ifindex=old, new_ifindex=info.ifindex, mac=info.mac, mtu=info.mtu,
                   seconds=seconds)
        return True

    def _follow_functions(self, before: adapter.UplinkInfo, info: adapter.UplinkInfo) -> None:
        """The uplink's MTU and features as @info says, where they were as
        @before said: the switch, the partitions, new partitions follow."""
        name = self.cfg.uplink
        if info.mtu != before.mtu:
            try:
                self.switch.set_mtu(info.mtu)
            except (ConfigError, OSError) as e:
                log.warning("uplink %s: the switch keeps MTU %d: %s", name, self.switch.mtu, e)
            changed, failed = self.manager.follow_mtu(info.mtu)
            what = ", ".join(f"{n} {m}" for n, m in changed.items())
            self._emit("uplink.mtu", None, f"uplink {name}: MTU {before.mtu} -> {info.mtu}; "
                       + (f"partitions' MTU now: {what}" if what else "no partition's MTU changed")
                       + "".join(f"; {n} refused: {why}" for n, why in failed.items()),
                       ifname=name, old=before.mtu, new=info.mtu, partitions=changed, failed=failed)
        features = adapter.feature_changes(before, info)
        flags = self.manager.functions.tun_offloads
        changed, recreate = self.manager.follow_functions(adapter.derive(info, self.cfg.offloads))
        self.functions = self.manager.functions
        if not features:
            return
        after = self.functions.tun_offloads
        offloads = {"before": adapter.offload_names(flags), "after": adapter.offload_names(after)}
        moved = ", ".join(f"{n} {'on' if on else 'off'}" for n, (_was, on) in features.items())
        if after == flags:
            effect = "partitions' offloads unchanged"
        else:
            effect = (f"partitions' offloads {'|'.join(offloads['before']) or 'none'} -> "
                      f"{'|'.join(offloads['after']) or 'none'}, {len(changed)} partition(s) changed live"
                      + (f"; re-create {', '.join(recreate)} to follow ({'; '.join(recreate.values())})"
                         if recreate else ""))
        self._emit("uplink.offloads", None, f"uplink {name}: features changed: {moved}; {effect}",
                   ifname=name, features={n: list(v) for n, v in features.items()}, offloads=offloads,
                   partitions=changed, recreate=recreate)

    def _follow_soon(self) -> None:
        """follow_uplink(), retried every second while it fails; with a
        backup (rule 8), the move first (the data path before the
        functions), then both followed, then the move again (a device back
        may now serve)."""
        if self._follow_retry is not None:
            self._follow_retry.cancel()
            self._follow_retry = None
        try:
            self.reselect()
            self.follow_uplink()
            if self.cfg.backup_uplink is not None:
                self.follow_backup()
                self.reselect()
        except Exception as e:  # noqa: BLE001 - the daemon goes on serving what it has
            log.warning("uplink %s: following it failed: %s (retrying in 1 s)", self.cfg.uplink, e)
            self._follow_retry = self.loop.call_later(1.0, self._follow_soon)

    def _check_agents(self) -> None:
        """The agent can run and its uids can be had (agent.py rules 1
        and 2), or the daemon does not start: one line, nothing adopted."""
        try:
            agent.require_agent()
            agent.check_ids_mapped(*self.cfg.agent_uids)
        except agent.AgentError as e:
            raise DaemonStartError(str(e)) from None

    def _load_state(self) -> tuple[statefile.State, bool]:
        """The state to serve, and whether the host has rebooted since it
        was written (its boot id is another: every namespace it names is
        gone). A state the runtime dir still holds (a vnetshare from before
        they were apart) is moved to the state dir first."""
        old = self.cfg.old_state_path
        if old is not None:
            moved = statefile.migrate(old, self.cfg.state_path)
            if moved is not None:
                log.warning("moved the state of %d partition(s) from %s to %s (it outlives a reboot there)",
                            moved, os.path.dirname(old), self.cfg.state_dir)
            elif os.path.exists(old):
                log.warning("ignoring %s: the state is in %s", old, self.cfg.state_path)
        st = statefile.load(self.cfg.state_path)
        if st.partitions and st.uplink and st.uplink != self.cfg.uplink:
            raise DaemonStartError(
                f"the state in {self.cfg.state_path} has {len(st.partitions)} partition(s) on uplink "
                f"{st.uplink!r}: start with --uplink {st.uplink} or delete them first")
        if len(st.partitions) > self.cfg.max_partitions:
            raise DaemonStartError(
                f"the state in {self.cfg.state_path} has {len(st.partitions)} partitions, more than "
                f"--max-partitions {self.cfg.max_partitions}: start with --max-partitions "
                f"{len(st.partitions)} or more")
        first, last = self.cfg.agent_uids
        if len(st.partitions) > last - first + 1:
            raise DaemonStartError(
                f"the state in {self.cfg.state_path} has {len(st.partitions)} partitions, more than "
                f"the {last - first + 1} uids of --agent-uids {first}-{last}: give a range of "
                f"{len(st.partitions)} or more")
        st.uplink = self.cfg.uplink
        st.offloads = self.cfg.offloads
        boot = statefile.boot_id()
        rebooted = bool(st.partitions) and None not in (st.boot_id, boot) and st.boot_id != boot
        st.boot_id = boot
        return st, rebooted

    # -- control socket --------------------------------------------------
    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import asyncio

        dec = protocol.Decoder()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                try:
                    msgs = dec.feed(data)
                except protocol.ProtocolError as e:
                    writer.write(protocol.encode(protocol.error_from(e)))
                    break
                for msg in msgs:
                    answer = self.handle(msg)
                    if isinstance(answer, StreamAnswer):
                        await self._stream(answer, reader, writer)
                        return
                    writer.write(protocol.encode(answer))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _stream(self, st: StreamAnswer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Rule 2's streaming op: the answer (and descriptors), then st.run."""
        import asyncio

        try:
            await writer.drain()
            data = protocol.encode(st.answer)
            if st.fds:
                _send_with_fds(writer, data, st.fds)
            else:
                writer.write(data)
            for fd in st.fds:
                os.close(fd)
            st.fds = []
            await writer.drain()
            await st.run(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            for fd in st.fds:
                os.close(fd)
            try:
                st.close()
            except Exception:  # noqa: BLE001 - the daemon goes on
                log.exception("closing a stream failed")

    def handle(self, msg) -> dict | StreamAnswer:
        """One request -> one answer, or a StreamAnswer (rule 2)."""
        try:
            op, args = protocol.validate_request(msg)
            return self._dispatch(op, args)
        except (VnetshareError, OSError) as e:  # PartitionError, ConfigError, NativeError, ...
            return protocol.error_from(e)
        except Exception as e:  # noqa: BLE001 - a bug must not kill the daemon
            log.exception("request %r failed", msg)
            return protocol.error("EIO", f"internal error: {e!r}")

    def snapshot(self) -> dict:
        """Every counter the daemon has, at one moment: the `stats` answer,
        what `vnetshare stats`, the metrics and the event watcher read.

        partitions: {name: counters} (Switch.port_stats, plus agent_restarts);
        uplink: Switch.uplink_stats() plus "ifname"; policy: {name:
        config.policy_json() plus "mac"}; labels: {name: {key: value}}; host_port:
        HostPort.describe() and its "counters" (a partition's), or None; daemon: pid,
        version, uplink, started (Unix time), mac_conflict (the mode). Call
        it in the loop's thread.
        """
        from . import __version__

        m = self.manager
        parts, policy, labels = {}, {}, {}
        served = m.all_counters()
        for name in m.names():
            parts[name] = served.get(name, {})
            rec = m.state.partitions[name]
            policy[name] = dict(m.policy_json(rec), mac=rec.mac)
            labels[name] = dict(rec.labels)
        uplink = dict(self.switch.uplink_stats(), ifname=self.cfg.uplink)
        host = self.host_port.describe() if self.host_port is not None else None
        if host is not None:
            host["counters"] = m.host_counters()
        return {"partitions": parts, "uplink": uplink, "policy": policy, "labels": labels, "host_port": host,
                "uplinks": self.uplinks(),
                "daemon": {"pid": os.getpid(), "version": __version__, "uplink": self.cfg.uplink,
                           "started": self.started, "mac_conflict": self.cfg.mac_conflict}}

    def status(self) -> dict:
        """The `daemon.status` answer (`vnetshare status`): who serves what
        since when, and the data path's state: the switch's thread, the
        uplink's link state (up: administratively up with a carrier)."""
        from . import __version__

        link = self.watcher.link if self.watcher is not None else None
        try:
            uplink_state = link.look() if link is not None else {"up": None, "operstate": "unknown"}
        except OSError as e:
            uplink_state = {"up": None, "operstate": f"unknown ({e.strerror or e})"}
        error = self.switch.error
        return {"pid": os.getpid(), "version": __version__, "started": self.started,
                "uplink": self.cfg.uplink, "uplink_mac": self.info.mac,
                "uplink_up": uplink_state["up"], "uplink_operstate": uplink_state["operstate"],
                "switch": "running" if self.switch.running else "stopped",
                "switch_error": str(error) if error is not None else None,
                "partitions": len(self.manager.names()), "served": len(self.manager.parts),
                "socket": self.cfg.socket, "state_dir": self.cfg.state_dir,
                "host_port": self.host_port.describe() if self.host_port is not None else None,
                **self._failover_status()}

    def _failover_status(self) -> dict:
        """What `status` and `adapter` say of both uplinks (rule 8)."""
        names = {"primary": self.cfg.uplink, "backup": self.cfg.backup_uplink, None: None}
        return {"uplinks": self.uplinks(), "active_uplink": names[self.active], "active_since": self.active_since,
                "uplink_moves": self.switch.uplink_stats()["uplink_moves"], "failback": self.cfg.failback,
                "failback_hold": self.cfg.failback_hold}

    def _status_line(self) -> str:
        """STATUS= for the service manager (rule 7)."""
        return f"serving {len(self.manager.names())} partition(s) on uplink {self.cfg.uplink}"

    # -- capture ---------------------------------------------------------
    def _capture(self, args: dict) -> StreamAnswer:
        """`vnetshare capture`: a capture ring whose consumer end goes to the
        client. The switch writes into it until the client hangs up (or
        half-closes: then it gets the capture's counters), the partition is
        deleted, or the daemon stops."""
        import asyncio

        from .dataplane import switch as sw
        from .dataplane.ring import CONSUMER, create_fds
        from .manager import PartitionError

        name = args["name"]
        part = self.manager.parts.get(name)
        if part is None:
            if name in self.manager.state.partitions:
                raise PartitionError("EAGAIN", f"partition {name!r} is not served now")
            raise PartitionError("ENOENT", f"no partition named {name!r}")
        flags = {"in": sw.CAP_RX, "out": sw.CAP_TX, "both": sw.CAP_RX | sw.CAP_TX}[args["direction"]]
        if args["drops"]:
            flags |= sw.CAP_DROPS
        size = config.CAPTURE_RING_SIZE
        fds = create_fds(size)
        try:
            cap_id = self.switch.add_capture(part.port_id, flags, args["snaplen"], fds, size,
                                             bpf=args.get("filter"))
        except (OSError, ConfigError) as e:
            fds.close()
            if isinstance(e, OSError) and e.errno == errno.ENOSPC:
                raise PartitionError("ENOSPC", f"partition {name!r}: too many captures (at most "
                                               f"{sw.PORT_CAPTURES_MAX} on a partition and "
                                               f"{sw.CAPTURES_MAX} in all)") from None
            raise
        end = fds.end(CONSUMER)
        give = [os.dup(fd) for fd in end]
        fds.close()  # the switch holds its own dup()s and mapping
        ended: asyncio.Future = asyncio.get_running_loop().create_future()
        self.captures[cap_id] = (name, ended)
        what = "drops" if args["drops"] else "frames"
        filter_text = args.get("filter_text") or ("(a BPF program)" if args.get("filter") else None)
        log.info("partition %s: capture %d started (%s %s, snaplen %d%s)", name, cap_id, args["direction"],
                 what, args["snaplen"], f", filter {filter_text!r}" if filter_text else "")
        final: dict = {}

        def stop() -> dict:
            if self.captures.pop(cap_id, None) is not None:
                final.update(self.switch.del_capture(cap_id))
                log.info("partition %s: capture %d ended: %d frames, %d not captured, %d filtered out",
                         name, cap_id, final["frames"], final["lost"], final["filtered"])
            return final

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            hangup = asyncio.ensure_future(until_closed(reader, writer))
            try:
                await asyncio.wait({hangup, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                hangup.cancel()
            why = ended.result() if ended.done() else "stopped"
            writer.write(protocol.encode({"done": dict(stop(), reason=why)}))
            await writer.drain()

        answer = protocol.ok(capture={"id": cap_id, "partition": name, "ring_size": size,
                                      "snaplen": args["snaplen"], "direction": args["direction"],
                                      "drops": args["drops"], "filter": filter_text})
        return StreamAnswer(answer, run, fds=give, close=stop)

    def _end_captures(self, name: str | None, why: str = "partition deleted") -> None:
        """The partition (None: every one) goes: its captures end, their
        clients told @why."""
        for part_name, ended in list(self.captures.values()):
            if (name is None or part_name == name) and not ended.done():
                ended.set_result(why)

    async def _end_all_captures(self) -> None:
        """Daemon stop: every capture ends and its client is told, within a
        second (Python 3.12's server.wait_closed() waits for connections)."""
        import asyncio

        self._end_captures(None, "daemon stopping")
        for _ in range(100):
            if not self.captures:
                return
            await asyncio.sleep(0.01)

    def _dispatch(self, op: str, args: dict) -> dict | StreamAnswer:
        m = self.manager
        if op == "partition.create":
            return protocol.ok(partition=m.create(args))
        if op == "partition.set":
            part = m.set(args)
            return protocol.ok(changes=part.pop("changes"), partition=part)
        if op == "partition.delete":
            self._end_captures(args["name"])
            m.delete(args["name"])
            return protocol.ok()
        if op == "apply":
            return self._apply(args)
        if op == "partition.list":
            return protocol.ok(partitions=[m.describe(n, with_counters=False) for n in m.names()])
        if op == "partition.show":
            return protocol.ok(partition=m.describe(args["name"]))
        if op == "adapter":
            return protocol.ok(
                uplink={"ifname": self.info.ifname, "mtu": self.info.mtu, "speed": self.info.speed,
                        "duplex": self.info.duplex, "mac": self.info.mac, "features": self.info.features,
                        "ifindex": self.switch.slots[0]},
                backup=None if self.backup_info is None else
                {"ifname": self.backup_info.ifname, "mtu": self.backup_info.mtu, "speed": self.backup_info.speed,
                 "duplex": self.backup_info.duplex, "mac": self.backup_info.mac,
                 "features": self.backup_info.features, "ifindex": self.switch.slots[1]},
                mode=self.cfg.offloads, functions=function_rows(m.functions), **self._failover_status())
        if op == "stats":
            return protocol.ok(**self.snapshot())
        if op == "capture":
            return self._capture(args)
        if op == "events":
            if not args["follow"]:
                return protocol.ok(events=self.events.history())
            follower = self.events.follow()  # subscribed now: nothing falls between
            return StreamAnswer(protocol.ok(events=self.events.history()), follower.run, close=follower.close)
        if op == "fdb":
            # the wire's stations are named by the NIC that serves it now
            wire = {"backup": self.cfg.backup_uplink}.get(self.active) or self.cfg.uplink
            return protocol.ok(fdb=m.fdb(wire, args["partition"], args["vlan"]))
        if op == "groups":
            wire = {"backup": self.cfg.backup_uplink}.get(self.active) or self.cfg.uplink
            return protocol.ok(**m.groups(wire, args["vlan"]))
        if op == "daemon.status":
            return protocol.ok(**self.status())
        raise protocol.ProtocolError(f"op {op!r}: not supported", code="EOPNOTSUPP")

    def _apply(self, args: dict) -> dict:
        """The apply op (core/apply.py): every entry checked and the plan
        made before anything changes; then the manager's own delete, set
        and create for each step, one after another. A step that fails is
        all or nothing itself (manager rule 1) and is named in "failed";
        the others go on. The creates go to the manager's create_many(),
        which makes the next partitions while an agent gets ready. The
        state is written once at the end (manager rule 2: it still
        describes what exists when the answer goes out)."""
        m = self.manager
        entries = applyplan.check(args["partitions"])
        plan = applyplan.plan(entries, [list(e) for e in args["partitions"]], m.state.partitions,
                              m.SETTABLE, args["prune"])
        done: list[dict] = [{"name": n, "action": "unchanged"} for n in plan.unchanged]
        failed: list[dict] = []
        steps = ([("deleted", n, None) for n in plan.delete]
                 + [("changed", c["name"], c) for c in plan.change]
                 + [("created", c["name"], c) for c in plan.create])
        if args["dry_run"]:
            done += [{"name": n, "action": f"would be {what}"} | ({"fields": sorted(set(a) - {"name"})}
                                                                  if what == "changed" else {})
                     for what, n, a in steps]
            return protocol.ok(done=done, failed=[], dry_run=True)
        with m.saving_once():
            for what, name, a in steps:
                if what == "created":
                    continue
                try:
                    if what == "deleted":
                        self._end_captures(name)
                        m.delete(name)
                    else:
                        m.set(a)
                except (VnetshareError, OSError) as e:
                    failed.append({"name": name, "action": {"deleted": "delete", "changed": "set"}[what],
                                   "error": protocol.error_from(e)["error"]})
                    continue
                done.append({"name": name, "action": what}
                            | ({"fields": sorted(set(a) - {"name"})} if what == "changed" else {}))
            not_made = m.create_many(plan.create)  # their agents start side by side
        for a in plan.create:
            e = not_made.get(a["name"])
            if e is None:
                done.append({"name": a["name"], "action": "created"})
            else:
                failed.append({"name": a["name"], "action": "create", "error": protocol.error_from(e)["error"]})
        return protocol.ok(done=done, failed=failed, dry_run=False)

    # -- run -------------------------------------------------------------
    def _emit(self, kind: str, partition: str | None, message: str, **details) -> None:
        """The manager's on_event: into the event log, or kept (with its
        time) until the log exists (rule 5)."""
        if self.events is None:
            self._early_events.append((time.time(), kind, partition, message, details))
        else:
            self.events.emit(kind, partition, message, **details)
        if self.ready and kind in ("partition.created", "partition.deleted"):
            self.notifier.status(self._status_line())

    def _watch_fd(self, fd: int, cb: Callable[[], None]) -> None:
        if self.loop is None:
            self._early_watch[fd] = cb
        else:
            self.loop.add_reader(fd, cb)

    def _unwatch_fd(self, fd: int) -> None:
        if self.loop is None:
            self._early_watch.pop(fd, None)
        else:
            self.loop.remove_reader(fd)

    def _early_stop(self, sig: int, _frame) -> None:
        self._early_signal = sig

    def _serve_partitions(self) -> None:
        """The data path (rule 5): every recorded partition adopted, its
        agent pumping, before anything else is made."""
        state, rebooted = self._load_state()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._early_stop)
        self.manager = PartitionManager(
            self.switch, self.functions, state, self.cfg,
            on_agent_fd=self._watch_fd, on_agent_fd_remove=self._unwatch_fd, on_event=self._emit,
            uplink_mac=self.info.mac,
        )
        try:
            self.manager.adopt_all(rebooted)
            self._start_host_port()
        except BaseException:
            self._stop_host_port()
            self.manager.shutdown()
            raise
        # the uplink's MTU may have changed while no daemon ran (rule 6)
        changed, failed = self.manager.follow_mtu(self.functions.mtu)
        if changed or failed:
            self._emit("uplink.mtu", None, f"uplink {self.cfg.uplink}: MTU {self.functions.mtu}; partitions' "
                       f"MTU now: {', '.join(f'{n} {m}' for n, m in changed.items()) or 'unchanged'}"
                       + "".join(f"; {n} refused: {why}" for n, why in failed.items()),
                       ifname=self.cfg.uplink, old=None, new=self.functions.mtu, partitions=changed,
                       failed=failed)

    def _start_host_port(self) -> None:
        """--host-port (hostport.py): made or adopted once the partitions
        are served; without it, a recorded one is retired."""
        from .hostport import HostPort

        self.host_port = HostPort(self.cfg, self.manager, self.info.mac, self.functions, self._emit)
        self.host_port.start()

    def _stop_host_port(self) -> None:
        """Give back what the host port took and remove it; a failure is
        logged (the record keeps what is left for the next daemon)."""
        if self.host_port is None:
            return
        try:
            self.host_port.stop()
        except (VnetshareError, OSError) as e:
            log.error("host port: %s", e)

    async def _main(self) -> None:
        import asyncio

        from . import events

        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._on_signal, sig)
        self.events = events.EventLog()  # lifecycle events: `vnetshare events`, the log
        for t, kind, partition, message, details in self._early_events:
            self.events.add(events.make(kind, partition, message, now=t, **details))
        self._early_events.clear()
        for fd, cb in self._early_watch.items():
            self.loop.add_reader(fd, cb)
        self._early_watch.clear()
        try:
            os.makedirs(os.path.dirname(self.cfg.socket) or ".", mode=0o755, exist_ok=True)
            try:
                os.unlink(self.cfg.socket)  # stale: we hold the lock, no daemon owns it
            except FileNotFoundError:
                pass
            old = os.umask(0o177)
            try:
                server = await asyncio.start_unix_server(self._serve_client, path=self.cfg.socket)
            finally:
                os.umask(old)
        except BaseException:
            self.manager.shutdown()
            raise
        os.chmod(self.cfg.socket, 0o600)
        self.events.emit("daemon.started", None, f"ready: control socket {self.cfg.socket}, "
                         f"{len(self.manager.names())} partition(s)", uplink=self.cfg.uplink,
                         partitions=len(self.manager.names()))
        self.ready = True
        self.notifier.ready(self._status_line())
        if self._early_signal is not None:
            self._on_signal(self._early_signal)
        try:
            if self.cfg.backup_uplink is not None:  # watched with the uplink: followed, its up and down events
                self.backup_link = events.LinkState(self.cfg.backup_uplink)
            self.watcher = events.Watcher(self.events, self.snapshot, events.LinkState(self.cfg.uplink),
                                          notify_fd=self.switch.notify_fd(), rearm=self.switch.rearm_notes,
                                          on_link=self._follow_soon, backup=self.backup_link)
            self.watcher.start(self.loop)
            self._follow_soon()  # what changed between the start and the watcher's first look
            await self.stop_event.wait()
        finally:
            if self.watcher is not None:
                self.watcher.stop()  # closes both links
            elif self.backup_link is not None:
                self.backup_link.close()
            self.backup_link = None
            for handle in (self._reselect_at, self._announcing):
                if handle is not None:
                    handle.cancel()
            if self._follow_retry is not None:
                self._follow_retry.cancel()
            await self.events.end_followers()  # before the server waits for its connections
            await self._end_all_captures()
            server.close()
            await server.wait_closed()
            try:
                os.unlink(self.cfg.socket)
            except FileNotFoundError:
                pass
            await self._stop_metrics()
            self._stop_host_port()
            self.manager.shutdown()

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        self.events.emit("daemon.stopping", None, f"{name}: stopping", signal=name)
        self.notifier.stopping(f"{name}: stopping")
        self.stop_event.set()

    def _raise_fd_limit(self) -> None:
        """About 16 descriptors a partition (TAP, rings, the switch's dups):
        the soft RLIMIT_NOFILE up to what --max-partitions needs, within the
        hard limit (nothing here uses select())."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 256 + 16 * self.cfg.max_partitions
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        if want > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    def run(self) -> int:
        self.notifier.status(f"starting on uplink {self.cfg.uplink}")
        self._raise_fd_limit()
        self._check_agents()
        self._check_socket()
        self._query_uplink()
        self._lock()
        try:
            self._lock_uplink()
            self._start_metrics()
            self._open_uplink()
            try:
                self._serve_partitions()
                import asyncio

                asyncio.run(self._main())
            finally:
                if self.manager is not None and not self.manager.stopping:
                    self._stop_host_port()
                    self.manager.shutdown()  # the loop did not get to it
                self.switch.stop()
                self.switch.close()
        finally:
            if self.exporter is not None:
                self.exporter.close()  # if _main did not get to it
            self._unlock()
        log.info("stopped")
        return 0


def run_daemon(cfg: config.DaemonConfig) -> int:
    """`vnetshare daemon`: run until SIGTERM/SIGINT. Start errors raise."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="vnetshare-daemon[%(process)d]: %(message)s")
    return Daemon(cfg).run()
