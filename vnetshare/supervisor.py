"""supervisor.py - the partitions' agents: started, watched, restarted, stopped.

The manager (manager.py) makes and removes partitions; this module runs
the one agent process each has (agent.py: its command line, hand-off and
uid pool): it starts an agent with the partition's descriptors and waits
for its "ready", watches its pidfd, starts a new one when it ends, stops it
when its partition goes or the daemon stops, ends the agents a killed
daemon left behind, and holds the agents' uids.

Rules:
1. The daemon keeps every descriptor of a live partition (TAP, rings), so
   a dead agent is replaced with the same ones and traffic resumes; how
   often is the lifecycle's (core/lifecycle.py rule 2), and each restart
   is an agent.died then agent.restarted or agent.failed event.
2. Agents are the daemon's children and end with it (stop_all(): each told
   first by the EOF of its socket, then each waited for); a daemon killed
   without stopping them leaves them to the next one, which ends them
   (end_stale()) before its own agents open the TAPs.
3. Only this module's own processes are signalled, by PID, and only after
   checking /proc/PID/cmdline names our agent for that partition
   (procs.is_agent()).
4. Each partition's agent has the uid its record keeps (agent.py rules 2
   and 3): given when the partition is made (uids.allocate()), the same for
   every agent started for it (after one died, and by a new daemon),
   freed with the partition. A record whose uid this daemon cannot have
   (outside --agent-uids, another daemon's, another record's) gets a new
   one on adoption (adopt_uid()), with a log line.
5. Start and answer are two steps (start(), finish()): many agents start
   side by side and are then awaited, so their start-up overlaps (adoption,
   apply); spawn() is both for one.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import select
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Callable

from .agent import AgentError, UidPool, command as agent_command, hello_message, pack_fds
from .core import config
from .core.errors import VnetshareError
from .core.lifecycle import Event
from .linux import netns, procs

log = logging.getLogger("vnetshare.manager")

AGENT_START_TIMEOUT = 10.0


class PartitionError(OSError, VnetshareError):
    """A partition operation failed, with a real errno (.errno), whose name
    (.code) is what the client is answered with (protocol.error_from)."""

    def __init__(self, code: str, message: str):
        super().__init__(getattr(errno, code), message)
        self.code = code

    def __str__(self) -> str:
        return self.strerror


@dataclass
class Agent:
    """A running agent process and the daemon's end of its socketpair."""

    proc: subprocess.Popen
    sock: socket.socket
    pidfd: int
    started: float

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Starting:
    """An agent start() started: its process and the daemon's end, until
    finish() has its answer."""

    proc: subprocess.Popen
    sock: socket.socket


def close_fd(fd: int) -> None:
    """close(@fd), an error ignored (the descriptor is gone either way);
    manager.py uses it too."""
    try:
        os.close(fd)
    except OSError:
        pass


class Supervisor:
    """The agents of one daemon's partitions and host port.

    A partition here is what the manager holds for it (manager.Partition):
    .rec (its record: name, netns, ring_size, agent_uid, agent_pid), .tap_fd,
    .a2h, .h2a, .agent, .life and .restarts.
    @watch(fd, callback) and @unwatch(fd): the daemon's loop reading an
    agent's pidfd; @event: the manager's on_event; @served(name, agent):
    (the partition @agent serves, the function that saves its record), or
    None if it serves none now (deleted, replaced).
    """

    def __init__(self, cfg: config.DaemonConfig,
                 watch: Callable[[int, Callable[[], None]], None] | None = None,
                 unwatch: Callable[[int], None] | None = None,
                 event: Callable[..., None] | None = None,
                 served: Callable[[str, Agent], tuple[Any, Callable[[], None]] | None] | None = None):
        self.cfg = cfg
        self._watch = watch or (lambda fd, cb: None)
        self._unwatch = unwatch or (lambda fd: None)
        self._event = event or (lambda kind, partition, message, **details: None)
        self._served = served or (lambda name, agent: None)
        self.stopping = False  # the daemon stops: an agent that ends is not replaced
        self.uids = UidPool(*cfg.agent_uids, cfg.agent_uid_dir)

    # -- start and stop ------------------------------------------------------
    def spawn(self, part) -> Agent:
        """Start an agent, hand it the descriptors, wait until it pumps."""
        return self.finish(part, self.start(part))

    def start(self, part) -> Starting:
        """Start an agent and hand it the descriptors; finish() waits for
        its answer (rule 5)."""
        name = part.rec.name
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            proc = subprocess.Popen(agent_command(theirs.fileno(), name), pass_fds=[theirs.fileno()],
                                    stdin=subprocess.DEVNULL, close_fds=True)
        except (OSError, AgentError) as e:
            ours.close()
            theirs.close()
            if isinstance(e, AgentError):  # no unconfined fallback (agent.py rule 1)
                raise PartitionError("ENOENT", f"partition {name!r}: {e}") from None
            raise
        theirs.close()
        ns_fd = -1
        try:
            hello = hello_message(name, part.rec.ring_size, self.cfg.coalesce_usecs, part.rec.agent_uid,
                                  byte_limit=self.cfg.tap_byte_limit == "auto")
            ns_fd = netns.open_fd(part.rec.netns)  # it joins the partition's namespace
            fds = pack_fds(part.tap_fd, part.a2h, part.h2a, ns_fd)
            socket.send_fds(ours, [json.dumps(hello).encode()], fds)
        except BaseException as e:
            self.abandon(Starting(proc, ours))
            if isinstance(e, OSError):
                raise PartitionError("EIO", f"partition {name!r}: agent start failed: {e}") from None
            raise
        finally:
            if ns_fd >= 0:
                os.close(ns_fd)
        return Starting(proc, ours)

    @staticmethod
    def abandon(starting: Starting) -> None:
        """An agent start() started and nobody will finish(): killed, reaped."""
        starting.proc.kill()
        starting.proc.wait()
        starting.sock.close()

    def finish(self, part, starting: Starting) -> Agent:
        """Wait until the agent start() started pumps; watch its end."""
        proc, ours = starting.proc, starting.sock
        try:
            ours.settimeout(AGENT_START_TIMEOUT)
            reply = json.loads(ours.recv(4096) or b"{}")
            if not isinstance(reply, dict) or reply.get("ready") is not True:
                why = reply.get("error") if isinstance(reply, dict) else None
                raise PartitionError("EIO", f"partition {part.rec.name!r}: the agent did not start"
                                     + (f": {why}" if isinstance(why, str) else ""))
            ours.settimeout(None)
            pidfd = os.pidfd_open(proc.pid)
        except BaseException as e:
            self.abandon(starting)
            if isinstance(e, (OSError, ValueError)) and not isinstance(e, PartitionError):
                raise PartitionError("EIO", f"partition {part.rec.name!r}: agent start failed: {e}") from None
            raise
        agent = Agent(proc, ours, pidfd, time.monotonic())
        self._watch(pidfd, lambda: self.exited(part.rec.name, agent))
        return agent

    def stop(self, agent: Agent | None) -> None:
        """End @agent (EOF on its socket, then by PID: procs.stop())."""
        if agent is None:
            return
        self._unwatch(agent.pidfd)
        agent.sock.close()  # EOF tells it to stop
        procs.stop(agent.proc, grace=3, wait_first=3)
        close_fd(agent.pidfd)

    def stop_all(self, agents: list[Agent]) -> None:
        """The daemon stops (rule 2): every agent told first, then each
        waited for; none is replaced from now on."""
        self.stopping = True
        for agent in agents:
            self._unwatch(agent.pidfd)
            agent.sock.close()
        for agent in agents:
            self.stop(agent)

    # -- an agent ended (rule 1) -------------------------------------------
    def exited(self, name: str, agent: Agent) -> None:
        """The pidfd of @agent became readable: it ended."""
        self._unwatch(agent.pidfd)
        close_fd(agent.pidfd)
        agent.sock.close()
        code = agent.proc.wait()
        found = self._served(name, agent)
        if self.stopping or found is None:
            return
        part, saved = found
        part.agent = None
        how, status, sig = procs.exit_description(code)
        again = part.life.agent_died(time.monotonic())
        self._event("agent.died", name, f"agent {agent.pid} ended ({how})"
                    + (", starting a new one" if again else ""),
                    pid=agent.pid, exit_status=status, signal=sig)
        if not again:
            self._event("agent.failed", name, part.life.reason, reason=part.life.reason)
            return
        try:
            part.agent = self.spawn(part)
            part.restarts += 1
            part.rec.agent_pid = part.agent.pid
            part.life.fire(Event.AGENT_STARTED)
            saved()
            self._event("agent.restarted", name, f"agent {part.agent.pid} serves it "
                        f"(restart {part.restarts})", pid=part.agent.pid, restarts=part.restarts)
        except (VnetshareError, OSError) as e:
            part.life.fire(Event.GAVE_UP, f"agent restart failed: {e}")
            self._event("agent.failed", name, part.life.reason, reason=part.life.reason)

    # -- a killed daemon's agents (rules 2 and 3) -----------------------------
    @staticmethod
    def end_stale(recs: list, timeout: float = 3.0) -> None:
        """The agents of a daemon that died without stopping them (SIGKILL:
        PR_SET_PDEATHSIG is on its way), ended and waited for: their TAP
        must be free for the new agents. By PID, after procs.is_agent()."""
        pidfds = []
        for rec in recs:
            if rec.agent_pid and procs.is_agent(rec.agent_pid, rec.name):
                try:
                    fd = os.pidfd_open(rec.agent_pid)
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                    pidfds.append(fd)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for fd in pidfds:
            try:
                select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            finally:
                os.close(fd)

    # -- uids (rule 4) ---------------------------------------------------------
    def adopt_uid(self, rec) -> None:
        """@rec's agent keeps its uid, or gets a new one if this daemon
        cannot have it (rule 4); AgentError if none is free."""
        old = rec.agent_uid
        if old is None:
            why = "its record has none (made before agents had their own)"
        elif not self.uids.first <= old <= self.uids.last:
            why = f"{old} is outside --agent-uids {self.uids.describe()}"
        elif old in self.uids:
            why = f"{old} is another partition's"
        elif self.uids.claim(old):
            return
        else:
            why = f"another daemon holds {old}"
        rec.agent_uid = self.uids.allocate()
        log.warning("partition %s: its agent gets uid %d: %s", rec.name, rec.agent_uid, why)
