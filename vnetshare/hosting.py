"""hosting.py - the hosting daemon: owns the uplink NIC and serves partitions.

    vnetshare daemon --uplink IFACE [--offloads mirror|emulate]

The patent's hosting partition. At start it queries the uplink's functions
(adapter.py), opens it through AF_PACKET and runs the switch (native/switch.c)
in its own thread; the control plane is this asyncio loop: the control
socket, agent supervision, signals.

Rules:
1. One daemon per state directory: an flock on DIR/daemon.lock; the
   control socket is made only under that lock, mode 0600 (root only).
2. Requests are handled one at a time, in order; each answer is one JSON
   line (protocol.py). A bad request gets an error answer, never a crash,
   and leaves the daemon as it was.
3. The data plane is changed only through the switch's own command queue
   (switch.py); this thread never touches its tables.
4. SIGTERM and SIGINT stop it cleanly: agents stopped, switch thread joined,
   socket removed, exit 0. Partitions stay for the next daemon (manager.py).
"""
from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import sys

from . import adapter
from .core import config, protocol, state as statefile
from .core.errors import ConfigError, VnetshareError
from .linux import netns
from .manager import PartitionManager, function_rows

log = logging.getLogger("vnetshare.daemon")


class DaemonStartError(VnetshareError):
    """The daemon cannot start (uplink missing, another daemon, ...)."""


class Daemon:
    def __init__(self, cfg: config.DaemonConfig):
        self.cfg = cfg
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.switch = None
        self.manager: PartitionManager | None = None
        self.info = None
        self.functions = None
        self._lock_fd = -1

    # -- start -----------------------------------------------------------
    def _lock(self) -> None:
        os.makedirs(self.cfg.state_dir, mode=0o700, exist_ok=True)
        fd = os.open(self.cfg.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DaemonStartError(f"another daemon (pid {other}) already runs on {self.cfg.state_dir}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        # where adopted namespaces are pinned (manager.create): its own mount
        netns.share_dir(os.path.join(self.cfg.state_dir, config.NETNS_PIN_DIR))

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _open_uplink(self) -> None:
        from .dataplane.switch import Switch

        try:
            self.info = adapter.query(self.cfg.uplink)
        except (ConfigError, OSError) as e:
            raise DaemonStartError(str(e)) from None
        self.functions = adapter.derive(self.info, self.cfg.offloads)
        self.switch = Switch(self.cfg.uplink, coalesce_usecs=self.cfg.coalesce_usecs)
        self.switch.start()
        log.info("uplink %s: mtu %d, speed %s, offloads to partitions: %s (%s mode), "
                 "coalescing %s", self.cfg.uplink, self.info.mtu, self.info.speed or "?",
                 ",".join(adapter.offload_names(self.functions.tun_offloads)) or "none", self.cfg.offloads,
                 f"adaptive, up to {self.cfg.coalesce_usecs} us" if self.cfg.coalesce_usecs else "off")

    def _load_state(self) -> statefile.State:
        st = statefile.load(self.cfg.state_path)
        if st.partitions and st.uplink and st.uplink != self.cfg.uplink:
            raise DaemonStartError(
                f"the state in {self.cfg.state_path} has {len(st.partitions)} partition(s) on uplink "
                f"{st.uplink!r}: start with --uplink {st.uplink} or delete them first")
        st.uplink = self.cfg.uplink
        st.offloads = self.cfg.offloads
        return st

    # -- control socket --------------------------------------------------
    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
                    writer.write(protocol.encode(self.handle(msg)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def handle(self, msg) -> dict:
        """One request -> one answer (rule 2)."""
        try:
            op, args = protocol.validate_request(msg)
            return self._dispatch(op, args)
        except (VnetshareError, OSError) as e:  # PartitionError, ConfigError, NativeError, ...
            return protocol.error_from(e)
        except Exception as e:  # noqa: BLE001 - a bug must not kill the daemon
            log.exception("request %r failed", msg)
            return protocol.error("EIO", f"internal error: {e!r}")

    def _dispatch(self, op: str, args: dict) -> dict:
        m = self.manager
        if op == "partition.create":
            return protocol.ok(partition=m.create(args))
        if op == "partition.set":
            return protocol.ok(partition=m.set(args))
        if op == "partition.delete":
            m.delete(args["name"])
            return protocol.ok()
        if op == "partition.list":
            return protocol.ok(partitions=[m.describe(n, with_counters=False) for n in m.names()])
        if op == "partition.show":
            return protocol.ok(partition=m.describe(args["name"]))
        if op == "adapter":
            return protocol.ok(
                uplink={"ifname": self.info.ifname, "mtu": self.info.mtu, "speed": self.info.speed,
                        "duplex": self.info.duplex, "mac": self.info.mac, "features": self.info.features},
                mode=self.cfg.offloads, functions=function_rows(m.functions))
        if op == "stats":
            return protocol.ok(partitions={n: m.counters(n) for n in m.names()},
                               uplink=self.switch.uplink_stats())
        if op == "daemon.status":
            return protocol.ok(pid=os.getpid(), uplink=self.cfg.uplink, partitions=len(m.names()))
        raise protocol.ProtocolError(f"op {op!r}: not supported", code="EOPNOTSUPP")

    # -- run -------------------------------------------------------------
    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._on_signal, sig)
        state = self._load_state()
        self.manager = PartitionManager(
            self.switch, self.functions, state, self.cfg,
            on_agent_fd=lambda fd, cb: self.loop.add_reader(fd, cb),
            on_agent_fd_remove=lambda fd: self.loop.remove_reader(fd),
        )
        try:
            self.manager.adopt_all()
        except BaseException:
            self.manager.shutdown()
            raise
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
        os.chmod(self.cfg.socket, 0o600)
        log.info("ready: control socket %s, %d partition(s)", self.cfg.socket, len(self.manager.names()))
        try:
            await self.stop_event.wait()
        finally:
            server.close()
            await server.wait_closed()
            try:
                os.unlink(self.cfg.socket)
            except FileNotFoundError:
                pass
            self.manager.shutdown()

    def _on_signal(self, sig: int) -> None:
        log.info("%s: stopping", signal.Signals(sig).name)
        self.stop_event.set()

    def run(self) -> int:
        self._lock()
        try:
            self._open_uplink()
            try:
                asyncio.run(self._main())
            finally:
                self.switch.stop()
                self.switch.close()
        finally:
            self._unlock()
        log.info("stopped")
        return 0


def run_daemon(cfg: config.DaemonConfig) -> int:
    """`vnetshare daemon`: run until SIGTERM/SIGINT. Start errors raise."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="vnetshare-daemon[%(process)d]: %(message)s")
    return Daemon(cfg).run()
