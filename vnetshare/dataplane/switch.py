"""switch.py - the hosting daemon's data plane (native/switch.c) from Python.

The forwarding loop is C: sw_run() switches frames between the partitions'
rings and the uplink's AF_PACKET socket in a thread of its own (cffi drops
the GIL for the call). Python adds and removes ports and reads counters;
each such call is applied by the data-plane thread between bursts and
returns once applied.

Rules:
1. The Switch maps the rings and dup()s its ends of their wakeup pipes
   itself: after add_port() the caller may close its descriptors, or keep
   them to hand the agent its ends.
2. start() once; stop() is safe from any thread and idempotent; close()
   stops, then frees everything (ports included).
3. Every C failure is an OSError (NativeError) with the kernel's errno.
4. A port's policy (PortPolicy: guard identity, VLAN, storm control, rate
   limits) is a value: add_port() and set_policy() hand a copy to C, which
   applies it between rounds; a bad value raises ConfigError naming it
   before C sees it.
5. A capture (add_capture()) mirrors a port's frames into a ring whose
   consumer end the caller hands to the reader; read_capture() decodes its
   records. The switch never waits for the reader: a full ring loses frames,
   counted in the capture's own counters (del_capture()). A capture's
   filter (classic BPF, native/cbpf.h) is checked by check_filter() before
   C takes it; frames it refuses are counted as filtered.
6. The switch learns the stations of the wire (native/fdb.h); fdb_find()
   and fdb() read that table, and fdb_table() the whole forwarding table
   (ports' own MACs too), through the command queue, like the counters.
   add_port() does not: whoever gives a port its MAC asks fdb_find() first.
7. The uplink's socket can be swapped while the loop runs (attach_uplink():
   the NIC re-created, another ifindex) or let go (detach_uplink(): the NIC
   gone; frames for the wire are then dropped, counted as no_uplink), and
   the guard's MTU changed (set_mtu()), each through the command queue.
   .ifindex is the uplink it serves, None while it has none.
8. Failover: a second uplink in slot BACKUP (attach_uplink(x, BACKUP)),
   opened and kept beside the primary (slot PRIMARY); select_uplink()
   makes one of them, or neither (None), the active one in one command.
   The inactive one's frames are read and counted (rx_inactive), never
   delivered. .slots is each slot's ifindex (None: no socket), .active
   the active slot (None: neither).
"""
from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass, field

from ..core import config
from . import counters
from ._native import ffi, lib
from ._loop import NativeLoop
from ..core.config import Rate
from ..core.errors import ConfigError, check
from .ring import CONSUMER, DROP_REASONS, PRODUCER, RingFds


@dataclass(frozen=True)
class CapturedFrame:
    """One record of a capture ring (struct sw_cap_hdr and the bytes)."""

    time_ns: int        # CLOCK_REALTIME when the switch copied it
    orig_len: int       # the frame's whole length; len(data) <= it
    direction: str      # "in": the partition received it, "out": it sent it
    drop: str | None    # why the switch dropped it (CAPTURE_DROPS), or None
    data: bytes


def check_filter(bpf: list) -> object:
    """@bpf, classic BPF as [(code, jt, jf, k), ...] (config.bpf_program()),
    as a C array the validator (cbpf_check(), the kernel's rules) accepted;
    ConfigError naming the first refused instruction otherwise."""
    bpf = config.bpf_program(bpf)
    prog = ffi.new("struct cbpf_insn[]", len(bpf))
    for i, (code, jt, jf, k) in enumerate(bpf):
        prog[i].code, prog[i].jt, prog[i].jf, prog[i].k = code, jt, jf, k
    bad = ffi.new("uint32_t *")
    err = lib.cbpf_check(prog, len(bpf), bad)
    if err:
        i = bad[0]
        raise ConfigError(f"capture filter: instruction {i} {{ {bpf[i][0]:#06x}, {bpf[i][1]}, {bpf[i][2]}, "
                          f"{bpf[i][3]:#010x} }}: {ffi.string(lib.cbpf_error_name(err)).decode()}")
    return prog


def run_filter(prog: object, frame: bytes, split: int | None = None) -> int:
    """Run a program check_filter() gave on @frame (split into two pieces
    at @split, as the switch may give it); return its value (0: refused)."""
    split = len(frame) if split is None else split
    return int(lib.cbpf_run(prog, frame[:split], split, frame[split:], len(frame) - split))


def read_capture(frame: bytes) -> CapturedFrame:
    """Decode one capture record's frame (Ring.recv() of a capture ring)."""
    if len(frame) < CAP_HDR:
        raise ValueError(f"capture record of {len(frame)} bytes: shorter than its header")
    h = ffi.cast("struct sw_cap_hdr *", ffi.from_buffer(frame))
    drop = CAPTURE_DROPS[h.drop] if h.drop < len(CAPTURE_DROPS) else f"unknown_{h.drop}"
    return CapturedFrame(int(h.time_ns), int(h.orig_len), "in" if h.dir == CAP_RX else "out",
                         drop, frame[CAP_HDR:])

VLAN_MAX = lib.SW_VLAN_MAX
TPACKET_V2 = lib.UPLINK_TPACKET_V2
TPACKET_V3 = lib.UPLINK_TPACKET_V3
VIOLATION_NEVER = lib.SW_VIOLATION_NEVER
PORTS_DEFAULT = lib.SW_PORTS_DEFAULT
PORTS_LIMIT = lib.SW_PORTS_LIMIT
CAP_RX = lib.SW_CAP_RX        # frames the partition received
CAP_TX = lib.SW_CAP_TX        # frames it sent that the switch forwarded
CAP_DROPS = lib.SW_CAP_DROPS  # instead: the frames the switch dropped for it
CAP_HDR = ffi.sizeof("struct sw_cap_hdr")
SNAPLEN_MAX = lib.RING_FRAME_MAX - CAP_HDR
assert SNAPLEN_MAX == config.SNAPLEN_MAX, "config.py and switch.h differ"
assert (PORTS_DEFAULT, PORTS_LIMIT) == (config.PARTITIONS_MAX_DEFAULT, config.PARTITIONS_MAX_LIMIT), \
    "config.py and switch.h differ"
assert lib.FDB_AGE_DEFAULT_S == config.FDB_AGE_DEFAULT and lib.FDB_AGE_MAX_S == config.FDB_AGE_MAX, \
    "config.py and fdb.h differ"
MAC_CONFLICT = {"yield": lib.SW_MAC_CONFLICT_YIELD, "keep": lib.SW_MAC_CONFLICT_KEEP}
assert tuple(MAC_CONFLICT) == config.MAC_CONFLICT_MODES, "config.py and switch.h differ"
CAPTURES_MAX = lib.SW_CAPTURES_MAX
PRIMARY, BACKUP = 0, 1  # uplink slots (rule 8)
assert lib.SW_UPLINKS == 2
PORT_CAPTURES_MAX = lib.SW_PORT_CAPTURES_MAX

#: Names of the guard's verdicts (enum guard_verdict order).
GUARD_VERDICTS = tuple(
    ffi.string(lib.guard_verdict_name(i)).decode() for i in range(lib.GUARD__MAX)
)
_PORT_ARRAYS = {
    "guard_drops": counters.array_labels(GUARD_VERDICTS),
    "ring_drops": counters.array_labels(DROP_REASONS, "ring_"),
}
#: A capture record's drop reason (enum sw_drop) as the counters' "drops"
#: name it; None for a forwarded frame.
CAPTURE_DROPS = (None,) + tuple(
    ffi.string(lib.sw_drop_name(i)).decode() for i in range(1, lib.SW_DROP_GUARD)
) + _PORT_ARRAYS["guard_drops"]


_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1


def _uint(what: str, value: object, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ConfigError(f"{what} {value!r}: must be an integer from 0 to {top}")
    return value


@dataclass(frozen=True)
class PortPolicy:
    """What a port may do (struct sw_port_policy).

    guard: a vnetshare.dataplane.guard.GuardPolicy (the port's identity for the L2/L3
    guard), or None: a MAC-only guard, L3 checks off, trusted router (for
    data-plane tests). vlan: 0 untagged, 1 to VLAN_MAX an access VLAN.
    storm_pps/storm_burst: broadcast and multicast it may send (0: no
    limit). tx, rx: Rate limits; over tx a frame waits in the A2H ring,
    over rx it is dropped.
    """

    guard: object = None
    vlan: int = 0
    storm_pps: int = 0
    storm_burst: int = 0
    tx: Rate = field(default_factory=Rate)
    rx: Rate = field(default_factory=Rate)

    def __post_init__(self) -> None:
        _uint("vlan", self.vlan, VLAN_MAX)
        _uint("storm_pps", self.storm_pps, _U32)
        _uint("storm_burst", self.storm_burst, _U32)
        if self.storm_pps and not self.storm_burst:
            raise ConfigError(f"storm_pps {self.storm_pps}: needs a storm_burst above 0")
        for name in ("tx", "rx"):
            if not isinstance(getattr(self, name), Rate):
                raise ConfigError(f"{name} {getattr(self, name)!r}: must be a Rate")

    def to_c(self, mac):
        """A new ``struct sw_port_policy *`` for the port of @mac."""
        raw = config.mac_bytes(mac)
        pol = ffi.new("struct sw_port_policy *")
        if self.guard is None:
            pol.guard.mac = list(raw)
            pol.guard.flags = lib.GUARD_F_L3_ANY | lib.GUARD_F_TRUSTED_ROUTER
        else:
            g = self.guard.to_c()
            if bytes(g.mac) != raw:
                raise ConfigError(f"guard MAC {self.guard.mac}: the port's MAC is "
                                  f"{config.mac(mac)}")
            pol.guard = g[0]
        pol.vlan = self.vlan
        pol.storm_pps = self.storm_pps
        pol.storm_burst = self.storm_burst
        for c, rate in ((pol.tx, self.tx), (pol.rx, self.rx)):
            c.bits_per_sec, c.bits_burst = rate.bits_per_sec, rate.bits_burst
            c.pkts_per_sec, c.pkts_burst = rate.pkts_per_sec, rate.pkts_burst
        return pol


def _station(info) -> dict:
    """A struct fdb_info as fdb() lists it."""
    return {"mac": bytes(info.mac).hex(":"), "vlan": int(info.vlan), "age": info.age_ns / 1e9}


def _port_counters(st) -> dict:
    out = counters.from_struct(st, _PORT_ARRAYS)
    out["disconnected"] = bool(out["disconnected"])
    return out


class Switch(NativeLoop):
    """The data plane on one uplink: ports are partitions' ring pairs.

    @uplink: interface name or index, in this thread's network namespace.
    Keyword settings (0 = default): burst_frames, burst_bytes (per port per
    round), uplink_burst, mtu (non-GSO limit, default the uplink's),
    violation_limit (ring violations before a port is disconnected;
    VIOLATION_NEVER), tpacket (TPACKET_V2 default, or TPACKET_V3),
    block_size, block_nr, frame_size, block_tov_ms (RX ring), promisc;
    coalesce_usecs (the nap between busy rounds, native/coalesce.h; None
    for its default, 0 for off); max_ports (PORTS_DEFAULT; add_port() past
    it is ENOSPC); direct_pct (percent of one core a port's direct writes
    may take, set_tap(); 0 for the default); fdb_size (stations of the
    wire it learns at most, a power of two; 0: fdb.h's default), fdb_age_s
    (seconds until a quiet station is forgotten; 0: 300), mac_conflict
    ("yield" or "keep": who gets a MAC a port and the wire both use).
    """

    def __init__(self, uplink: str | int, *, burst_frames: int = 0, burst_bytes: int = 0,
                 uplink_burst: int = 0, mtu: int = 0, violation_limit: int = 0,
                 tpacket: int = 0, block_size: int = 0, block_nr: int = 0,
                 frame_size: int = 0, block_tov_ms: int = 0, promisc: bool = False,
                 coalesce_usecs: int | None = None, max_ports: int = 0, direct_pct: int = 0,
                 fdb_size: int = 0, fdb_age_s: int = 0, mac_conflict: str = "yield",
                 mcast_snooping: bool = True):
        super().__init__()
        _uint("max_ports", max_ports, PORTS_LIMIT)
        _uint("direct_pct", direct_pct, 100)
        _uint("fdb_size", fdb_size, lib.FDB_SIZE_MAX)
        _uint("fdb_age_s", fdb_age_s, config.FDB_AGE_MAX)
        config.mac_conflict(mac_conflict)
        if isinstance(uplink, str):
            try:
                ifindex = socket.if_nametoindex(uplink)
            except OSError:
                raise ConfigError(f"uplink {uplink!r}: no such interface") from None
        else:
            ifindex = int(uplink)
        cfg = ffi.new("struct sw_config *")
        cfg.burst_frames = burst_frames
        cfg.burst_bytes = burst_bytes
        cfg.uplink_burst = uplink_burst
        cfg.mtu = mtu
        cfg.violation_limit = violation_limit
        cfg.max_ports = max_ports
        cfg.direct_pct = direct_pct
        cfg.fdb_size = fdb_size
        cfg.fdb_age_s = fdb_age_s
        cfg.mac_conflict = MAC_CONFLICT[mac_conflict]
        cfg.mcast_off = 0 if mcast_snooping else 1
        cfg.uplink.version = tpacket
        cfg.uplink.block_size = block_size
        cfg.uplink.block_nr = block_nr
        cfg.uplink.frame_size = frame_size
        cfg.uplink.block_tov_ms = block_tov_ms
        cfg.uplink.flags = lib.UPLINK_F_PROMISC if promisc else 0
        out = ffi.new("struct sw **")
        check(lib.sw_create(out, ifindex, cfg), f"sw_create on uplink {uplink}")
        self._sw = out[0]
        self.max_ports = max_ports or PORTS_DEFAULT
        self.slots: list[int | None] = [ifindex, None]
        self.active: int | None = PRIMARY
        if coalesce_usecs is not None:
            rc = lib.sw_set_coalesce(self._sw, coalesce_usecs)
            if rc < 0:
                self.close()
                check(rc, f"sw_set_coalesce({coalesce_usecs})")

    # life cycle ------------------------------------------------------------
    @property
    def handle(self):
        if self._sw is None:
            raise ValueError("switch is closed")
        return self._sw

    _what = "switch"

    def _run_native(self) -> int:
        return lib.sw_run(self._sw)

    def start(self, name: str | None = None) -> None:
        """Run the forwarding loop in a daemon thread."""
        self.handle  # a closed switch can't start
        super().start(name)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and wait for it; raises the loop's own error, if any."""
        if self._sw is None:
            return
        check(lib.sw_stop(self._sw), "sw_stop")
        self._join(timeout)
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def close(self) -> None:
        """Stop, then free the switch, its ports and the uplink socket."""
        if self._sw is None:
            return
        try:
            self.stop()
        finally:
            if not self.running:
                lib.sw_destroy(self._sw)
                self._sw = None

    def __enter__(self) -> "Switch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ports -----------------------------------------------------------------
    def add_port(self, port_id: int, mac, a2h: RingFds, h2a: RingFds, ring_size: int = 0,
                 policy: PortPolicy | None = None) -> None:
        """Serve a partition: its MAC and its A2H / H2A rings (the switch's
        ends are used), under @policy (None: PortPolicy(), no limits)."""
        pol = (policy or PortPolicy()).to_c(mac)
        check(
            lib.sw_port_add(self.handle, port_id, pol, a2h.end(CONSUMER).to_c(),
                            h2a.end(PRODUCER).to_c(), ring_size),
            f"add port {port_id}",
        )

    def set_policy(self, port_id: int, mac, policy: PortPolicy) -> None:
        """Change a port's policy live (applied between rounds; buckets keep
        their level). Another @mac than the port's gives it that MAC
        (EEXIST if another port has it)."""
        check(lib.sw_port_set_policy(self.handle, port_id, policy.to_c(mac)),
              f"set policy of port {port_id}")

    def set_tap(self, port_id: int, tap_fd: int) -> None:
        """Let the switch write frames for the port to its TAP itself while
        the port's H2A ring is empty (sw_port_set_tap(): one hop fewer). The
        switch keeps a dup() of @tap_fd; -1 stops it."""
        check(lib.sw_port_set_tap(self.handle, port_id, tap_fd), f"set the TAP of port {port_id}")

    def del_port(self, port_id: int) -> dict:
        """Stop serving a port; return its last counters."""
        st = ffi.new("struct sw_port_stats *")
        check(lib.sw_port_del(self.handle, port_id, st), f"delete port {port_id}")
        return _port_counters(st)

    def port_stats(self, port_id: int) -> dict:
        """Counters of a port, partition view (tx = it sent, rx = it got),
        drops by reason under "drops" (vnetshare.dataplane.counters)."""
        st = ffi.new("struct sw_port_stats *")
        check(lib.sw_port_stats(self.handle, port_id, st), f"stats of port {port_id}")
        return _port_counters(st)

    def all_port_stats(self, expect: int = 0) -> dict[int, dict]:
        """Every port's counters, {port_id: port_stats()}, in one command:
        one snapshot between two rounds, whatever the number of ports.
        @expect: about how many ports there are (room is made for a few
        more; if there are more still, it asks once more with room for all)."""
        room = min(expect + 16, self.max_ports)
        while True:
            ids = ffi.new("uint32_t[]", room)
            st = ffi.new("struct sw_port_stats[]", room)
            n = ffi.new("unsigned int *")
            check(lib.sw_all_port_stats(self.handle, ids, st, room, n), "stats of all ports")
            if n[0] <= room:
                return {int(ids[i]): _port_counters(st + i) for i in range(n[0])}
            room = min(n[0] + 16, self.max_ports)

    # captures ----------------------------------------------------------------
    def add_capture(self, port_id: int, flags: int, snaplen: int, ring: RingFds, ring_size: int = 0,
                    bpf: list | None = None) -> int:
        """Mirror port @port_id into @ring (its producer end is used; the
        caller keeps the descriptors); return the capture's id.
        @flags: CAP_RX and/or CAP_TX, plus CAP_DROPS for dropped frames
        instead of forwarded ones. @snaplen: bytes kept of each frame.
        @bpf: a filter, [(code, jt, jf, k), ...] (check_filter()), or None."""
        if not flags & (CAP_RX | CAP_TX) or flags & ~(CAP_RX | CAP_TX | CAP_DROPS):
            raise ConfigError(f"capture flags {flags:#x}: need CAP_RX and/or CAP_TX (and maybe CAP_DROPS)")
        _uint("snaplen", snaplen, SNAPLEN_MAX)
        prog = check_filter(bpf) if bpf is not None else ffi.NULL
        out = ffi.new("uint32_t *")
        check(lib.sw_capture_add(self.handle, port_id, flags, max(snaplen, lib.RING_ETH_HLEN),
                                 prog, len(bpf) if bpf is not None else 0,
                                 ring.end(PRODUCER).to_c(), ring_size, out),
              f"capture of port {port_id}")
        return int(out[0])

    def del_capture(self, cap_id: int) -> dict:
        """Stop capture @cap_id; every record it wrote is published by now.
        Returns its counters: frames, bytes, lost (ring full), filtered
        (refused by its filter)."""
        st = ffi.new("struct sw_capture_stats *")
        check(lib.sw_capture_del(self.handle, cap_id, st), f"delete capture {cap_id}")
        return counters.from_struct(st)

    # notes: the event watcher's wakeup -----------------------------------------
    def notify_fd(self) -> int:
        """An eventfd the switch writes on a port's first policy drop (guard,
        storm, another VLAN), the start of its MAC conflict or its
        disconnection since rearm_notes(); read it to clear it. The switch's
        own: never close it."""
        return lib.sw_notify_fd(self.handle)

    def rearm_notes(self) -> None:
        """Let every port notify again; call it before reading counters."""
        check(lib.sw_notes_rearm(self.handle), "rearm notes")

    def uplink_stats(self) -> dict:
        """Wire-side counters and loop counters; drops under "drops"."""
        st = ffi.new("struct sw_uplink_stats *")
        check(lib.sw_uplink_stats(self.handle, st), "uplink stats")
        return counters.from_struct(st)

    # the stations of the wire (rule 6) -----------------------------------------
    def fdb_find(self, mac) -> dict | None:
        """The station on the wire with @mac, as fdb() lists it (its most
        recently seen VLAN), or None if the switch has not seen it (or it
        was quiet for the ageing time)."""
        out = ffi.new("struct fdb_info *")
        rc = lib.sw_fdb_find(self.handle, config.mac_bytes(mac), out)
        if rc == -errno.ENOENT:
            return None
        check(rc, f"look up {config.mac(mac) if isinstance(mac, str) else mac.hex(':')} in the FDB")
        return _station(out)

    def fdb(self, expect: int = 0) -> list[dict]:
        """Every station the switch learned on the wire and still knows, in
        one command: {"mac", "vlan" (0: untagged), "age" (seconds since it
        was last seen)}. @expect: about how many there are (as all_port_stats())."""
        room = expect + 64
        while True:
            out = ffi.new("struct fdb_info[]", room)
            n = ffi.new("unsigned int *")
            check(lib.sw_fdb_dump(self.handle, out, room, n), "dump the FDB")
            if n[0] <= room:
                return [_station(out + i) for i in range(n[0])]
            room = n[0] + 64

    def fdb_table(self, expect: int = 0) -> list[dict]:
        """The forwarding table in one command (sw_fdb_table()): each port's
        own MAC, {"mac", "vlan" (0: untagged), "port": its id, "static": True,
        "age": None}, then each station learned on the wire, with "port" None
        (the uplink), "static" False and "age" (seconds since it was last
        seen). @expect: about how many rows there are."""
        room = expect + 64
        while True:
            out = ffi.new("struct sw_fdb_row[]", room)
            n = ffi.new("unsigned int *")
            check(lib.sw_fdb_table(self.handle, out, room, n), "read the forwarding table")
            if n[0] <= room:
                break
            room = n[0] + 64
        rows = []
        for i in range(n[0]):
            r = out[i]
            static = bool(r.flags & lib.SW_FDB_STATIC)
            rows.append({"mac": bytes(r.mac).hex(":"), "vlan": int(r.vlan),
                         "port": None if r.port_id == lib.SW_FDB_PORT_UPLINK else int(r.port_id),
                         "static": static, "age": None if static else r.age_ns / 1e9})
        return rows

    # multicast groups (IGMP/MLD snooping, native/mcast.h) -------------------------
    def groups(self, expect: int = 0) -> dict | None:
        """The group table in one command (sw_mcast_table()), or None with
        snooping off: {"members": [{"vlan", "group" (an address string),
        "port": its id, "expires": seconds}], "queriers": [{"vlan",
        "family" ("ipv4" or "ipv6"), "address", "port" (None: the uplink),
        "expires", "interval": the membership interval its queries set,
        seconds}]}. @expect: about how many memberships there are."""
        room, qroom = expect + 64, 64
        while True:
            rows = ffi.new("struct mcast_row[]", room)
            qrows = ffi.new("struct mcast_querier_row[]", qroom)
            n, nq = ffi.new("unsigned int *"), ffi.new("unsigned int *")
            rc = lib.sw_mcast_table(self.handle, rows, room, n, qrows, qroom, nq)
            if rc == -errno.EOPNOTSUPP:
                return None
            check(rc, "read the multicast group table")
            if n[0] < room and nq[0] < qroom:
                break
            room, qroom = room * 2, qroom * 2

        def addr(raw, v6):
            return str(ipaddress.IPv6Address(bytes(raw)) if v6 else ipaddress.IPv4Address(bytes(raw)[:4]))

        members = [{"vlan": int(r.vlan), "group": addr(r.addr, r.v6), "port": int(r.port),
                    "expires": r.expires_ms / 1000} for r in (rows[i] for i in range(n[0]))]
        queriers = [{"vlan": int(q.vlan), "family": "ipv6" if q.v6 else "ipv4",
                     "address": addr(q.addr, q.v6),
                     "port": None if q.port == lib.MCAST_PORT_WIRE else int(q.port),
                     "expires": q.expires_ms / 1000, "interval": q.gmi_ms / 1000}
                    for q in (qrows[i] for i in range(nq[0]))]
        return {"members": members, "queriers": queriers}

    # the uplink (rules 7 and 8) -------------------------------------------------
    @property
    def ifindex(self) -> int | None:
        """The ifindex of the uplink the switch serves (the active slot's),
        None while it has none."""
        return None if self.active is None else self.slots[self.active]

    def attach_uplink(self, uplink: str | int, slot: int = PRIMARY) -> None:
        """Serve the wire through a new socket on @uplink (a name or an
        index, in this thread's namespace), in place of the one @slot has,
        if any; the old one is closed once the switch let go of it."""
        ifindex = socket.if_nametoindex(uplink) if isinstance(uplink, str) else int(uplink)
        check(lib.sw_uplink_attach(self.handle, slot, ifindex), f"attach uplink {uplink}")
        self.slots[slot] = ifindex

    def detach_uplink(self, slot: int = PRIMARY) -> None:
        """Let go of @slot's uplink (its NIC is gone): while it is the
        active one, frames for the wire are dropped and counted until
        attach_uplink()."""
        check(lib.sw_uplink_detach(self.handle, slot), "detach uplink")
        self.slots[slot] = None

    def select_uplink(self, slot: int | None) -> None:
        """Make @slot (PRIMARY, BACKUP) the active uplink, or None: none
        (frames for the wire dropped as no_uplink), from the next round."""
        check(lib.sw_uplink_select(self.handle, lib.SW_UPLINK_NONE if slot is None else slot),
              f"select uplink slot {slot}")
        self.active = slot

    def set_mtu(self, mtu: int) -> None:
        """The MTU the guard holds partitions' non-GSO frames to, from the
        next round on (the uplink's changed)."""
        _uint("mtu", mtu, lib.RING_FRAME_MAX - lib.RING_ETH_HLEN)
        if mtu < lib.SW_MTU_MIN:
            raise ConfigError(f"mtu {mtu}: must be at least {lib.SW_MTU_MIN}")
        check(lib.sw_set_mtu(self.handle, mtu), f"set MTU {mtu}")

    @property
    def mtu(self) -> int:
        out = ffi.new("uint32_t *")
        check(lib.sw_mtu(self.handle, out), "sw_mtu")
        return out[0]
