"""agent.py - the partition agent: the patent's virtual hosted device driver, daemon side.

One agent process serves one partition: native/agent.c, built with the
package as vnetshare/_bin/vnetshare-agent. The daemon starts it with one end
of a socketpair (--fd N) and sends, in one message, a JSON hello
(hello_message()) and the descriptors (SCM_RIGHTS) in the order pack_fds()
gives: the partition's TAP, then the agent's end of each ring (A2H as
producer, H2A as consumer): the memfd, the pipe end it sleeps on, the pipe
end that wakes the daemon (never the daemon's ends: native/ring.h,
"Descriptors"); last the partition's network namespace. This module is what
the daemon needs of it: the command line, the hand-off, and the agent's uid.

Rules:
1. The C agent is the only agent. If its binary is missing or not
   executable, the daemon does not start and a create fails, each with one
   line (AgentError): there is no fallback that runs without the seccomp
   allow-list (docs/design-notes.md, "No unconfined fallback").
2. Each agent runs under its own uid and gid (the same number) from the
   daemon's --agent-uids (config.agent_uids()), so no agent may signal,
   trace or read another: UidPool hands a uid to one partition at a time,
   the partition's record keeps it through agent and daemon restarts, and
   deleting the partition frees it.
3. A uid in use is held by a lock on its file in a directory that every
   daemon of the host shares (config.AGENT_UID_DIR): two daemons never hand
   out the same uid. A uid the user database names is never handed out.
4. The agent joins the partition's network namespace (the last descriptor)
   before it drops privileges, and drops them before it maps a ring: a
   compromised agent holds its own partition's descriptors, in its own
   partition's namespace, and nothing else.
"""
from __future__ import annotations

import errno
import fcntl
import grp
import logging
import os
import pwd
from typing import TYPE_CHECKING, Callable

from .core.errors import VnetshareError

if TYPE_CHECKING:   # the ring needs the C build; --version and the docs generator do not
    from .dataplane.ring import RingFds

log = logging.getLogger("vnetshare.agent")

# The C agent, built and installed with the package (setup.py).
C_AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "vnetshare-agent")
# Another agent binary to run instead (tests: a missing or non-executable one).
C_AGENT_ENV = "VNETSHARE_AGENT_BIN"
# Test hook, never set in production: VNETSHARE_AGENT_SELFTEST=NAME[:CALL][,...]
# makes the first agent this daemon starts for partition NAME make CALL
# (socket, the default; kill, ptrace, process_vm_readv, open) after its
# "ready" (native/agent.c): the seccomp filter must kill it.
SELFTEST_ENV = "VNETSHARE_AGENT_SELFTEST"
SELFTEST_CALLS = ("socket", "kill", "ptrace", "process_vm_readv", "open")
_selftest_fired: set[str] = set()

MAX_FDS = 16        # native/agent.c AGENT_MAX_FDS
HELLO_MAX = 65536   # native/agent.c AGENT_HELLO_MAX
HANDOFF_FDS = 8     # TAP + 3 per ring + netns


class AgentError(VnetshareError):
    """The agent cannot be run, or no uid is left for one."""


def pack_fds(tap_fd: int, a2h: RingFds, h2a: RingFds, netns_fd: int) -> list[int]:
    """The descriptors the daemon sends an agent, in hand-off order."""
    from .dataplane.ring import CONSUMER, PRODUCER

    return [tap_fd, *a2h.end(PRODUCER), *h2a.end(CONSUMER), netns_fd]


def agent_path() -> str:
    """The agent binary the daemon runs: C_AGENT, or $VNETSHARE_AGENT_BIN."""
    return os.environ.get(C_AGENT_ENV) or C_AGENT


def c_agent() -> str | None:
    """The agent's path if it can run (an executable file), else None."""
    path = agent_path()
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def require_agent() -> str:
    """The agent's path; AgentError, one line, if it cannot run (rule 1)."""
    path = c_agent()
    if path is None:
        raise AgentError(f"the agent {agent_path()} is missing or not executable: reinstall vnetshare "
                         "(its build makes it); partitions run no other agent")
    return path


def command(fd: int, name: str) -> list[str]:
    """The command line of a new agent (AgentError if it cannot run)."""
    return [require_agent(), "--fd", str(fd), "--name", name]


def _selftest_call(name: str) -> str | None:
    """The test hook's call for partition @name, once per daemon."""
    for item in os.environ.get(SELFTEST_ENV, "").split(","):
        who, _, call = item.partition(":")
        if who == name and name not in _selftest_fired:
            _selftest_fired.add(name)  # once: the restarted agent must serve
            return call or "socket"
    return None


def hello_message(name: str, ring_size: int, coalesce_usecs: int | None, uid: int,
                  byte_limit: bool | None = None) -> dict:
    """The JSON half of the hand-off message (the descriptors: pack_fds());
    the agent runs as @uid, and as the group of the same number; @byte_limit:
    the dynamic byte limit on what it takes from its TAP (native/dql.h) on
    or off, None for the agent's default."""
    msg = {"name": name, "ring_size": ring_size, "coalesce_usecs": coalesce_usecs, "uid": uid, "gid": uid}
    if byte_limit is not None:
        msg["a2h_limit"] = int(byte_limit)
    call = _selftest_call(name)
    if call is not None:
        msg["seccomp_selftest"] = call
    return msg


# -- the agents' uids (rules 2 and 3) ------------------------------------------

def in_user_db(uid: int) -> bool:
    """A user or group of this number exists (passwd, group: NSS)."""
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
            return True
        except KeyError:
            pass
    return False


def mapped(first: int, last: int, map_path: str) -> bool:
    """Every id from @first to @last is mapped in a /proc/PID/{uid,gid}_map."""
    with open(map_path) as f:
        spans = sorted((int(inside), int(inside) + int(count) - 1)
                       for inside, _outside, count in (line.split() for line in f))
    want = first
    for lo, hi in spans:
        if lo <= want <= hi:
            want = hi + 1
            if want > last:
                return True
    return False


class UidPool:
    """The uids of one daemon's agents: FIRST to LAST, each handed to one
    partition at a time and held by a lock on DIR/UID (rule 3).

    Handed out in turn (the next free one after the last given, wrapping),
    as pids are: a freed uid comes back last, not first.
    """

    def __init__(self, first: int, last: int, lock_dir: str,
                 taken: Callable[[int], bool] = in_user_db):
        self.first, self.last = first, last
        self.lock_dir = lock_dir
        self._taken = taken
        self._held: dict[int, int] = {}  # uid -> the descriptor whose lock holds it
        self._next = first
        try:
            os.makedirs(lock_dir, mode=0o700, exist_ok=True)
        except OSError as e:
            raise AgentError(f"agent uid lock directory {lock_dir}: {e.strerror}") from None

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def describe(self) -> str:
        return f"{self.first}-{self.last}"

    def __contains__(self, uid: object) -> bool:
        return uid in self._held

    def _lock(self, uid: int) -> int | None:
        """The descriptor of DIR/UID, locked by us; None if another holds it."""
        path = os.path.join(self.lock_dir, str(uid))
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            # its last holder may have unlinked it between our open and our
            # lock (release()): then the lock is on a file nobody finds
            mine = os.fstat(fd)
            try:
                now = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for whoever looks
                return fd
            os.close(fd)

    def claim(self, uid: int) -> bool:
        """Hold @uid (a record's, on adoption): False if it is outside the
        range, held already (by us or another daemon)."""
        if not self.first <= uid <= self.last or uid in self._held:
            return False
        fd = self._lock(uid)
        if fd is None:
            return False
        self._held[uid] = fd
        if uid >= self._next:  # the turn goes on after the records' uids
            self._next = uid + 1 if uid < self.last else self.first
        return True

    def allocate(self) -> int:
        """A free uid, now held; AgentError if there is none."""
        uid = self._next
        for _ in range(self.size):
            if uid not in self._held and not self._taken(uid):
                fd = self._lock(uid)
                if fd is not None:
                    self._held[uid] = fd
                    self._next = uid + 1 if uid < self.last else self.first
                    return uid
            uid = uid + 1 if uid < self.last else self.first
        raise AgentError(f"no free agent uid: all {self.size} of --agent-uids {self.describe()} are in "
                         f"use ({len(self._held)} by this daemon's partitions, the others by other "
                         "daemons or the user database); start the daemon with a larger range")

    def release(self, uid: int | None) -> None:
        """Free @uid (its partition is gone); nothing if we do not hold it."""
        fd = self._held.pop(uid, None)
        if fd is None:
            return
        try:
            os.unlink(os.path.join(self.lock_dir, str(uid)))
        except FileNotFoundError:
            pass
        os.close(fd)

    def close(self) -> None:
        """Let every uid go with the daemon (the files stay: a new daemon
        takes them again)."""
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()


def check_ids_mapped(first: int, last: int, proc: str = "/proc/self") -> None:
    """AgentError unless every id of @first-@last is a uid and a gid this
    user namespace maps (a daemon in a container with a user namespace)."""
    for kind in ("uid", "gid"):
        try:
            ok = mapped(first, last, f"{proc}/{kind}_map")
        except OSError as e:
            if e.errno == errno.ENOENT:  # a kernel without user namespaces maps everything
                continue
            raise
        if not ok:
            raise AgentError(f"--agent-uids {first}-{last}: not all mapped in this user namespace "
                             f"({proc}/{kind}_map); give a range inside it")
