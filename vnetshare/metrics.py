"""metrics.py - the daemon's counters for Prometheus, read at scrape time.

    vnetshare daemon --uplink IFACE --metrics [ADDR:]PORT
    curl -s 127.0.0.1:PORT/metrics

A prometheus_client collector (SnapshotCollector) turns one
Daemon.snapshot() into metric families on each scrape; Exporter serves it
over HTTP with prometheus_client's own handler, from the bounded server of
metrics_server.py. Nothing is formatted by hand and nothing is kept
between scrapes.

Rules:
1. One snapshot per scrape, taken in the daemon's loop thread (in_loop())
   and waited for at most SNAPSHOT_TIMEOUT_S. If it fails or times out, the
   scrape says vnetshare_up 0 (and the build info) and nothing else: no
   stale numbers.
2. Names follow Prometheus' naming guide: the vnetshare_ prefix, base units
   (bytes, seconds, frames), counters end in _total, receive and transmit
   are separate metrics, no label that says a metric's type. A partition's
   receive and transmit are its own view, as in `vnetshare stats`
   (transmit = what it sent); the uplink's are the wire's.
3. Drop reasons come from the snapshot: every key of a "drops" dict is one
   series of vnetshare_{partition,uplink}_drops_total{reason}, zeros
   included, named as `vnetshare stats` names it. A new reason in the C
   struct appears here with no change.
4. Any other field is exported only as PARTITION_FIELDS or UPLINK_FIELDS
   say: its name and whether it is a counter or a gauge. A field in neither
   is left out, never guessed (a gauge exported as a counter breaks
   rate()); tests/native/test_metrics_collector.py fails for a field of the C structs
   that is in neither, so whoever adds one decides.
5. The uplink has its own families, vnetshare_uplink_*{uplink=IFNAME}, not
   partition="uplink": its counters are the wire's view (a frame a
   partition sends to the LAN is transmit for both), so summing over
   `partition` would count it twice; its drop reasons are others; and
   "uplink" is a valid partition name. The switch loop's own counters are
   vnetshare_switch_*.
6. A configured limit is a gauge only while it is set: no series means no
   limit (as kube-state-metrics does for a container without limits), so
   dividing a rate by its limit never divides by a 0 that means "none".
   Bit rates are exported in bytes (the base unit).
7. vnetshare_partition_info{partition, vlan, label_KEY...} 1 carries the
   VLAN ("none": untagged) and the partition's labels, a key made a valid
   label name as kube-state-metrics does (cni.container ->
   label_cni_container; a clash gets _conflictN, in key order). Join it on
   `partition` to group by them.
8. The daemon's host port (hostport.py) is no partition: its counters are
   the partition fields (PARTITION_FIELDS) as vnetshare_host_port_*
   {host_port=NAME}, and its drops vnetshare_host_port_drops_total, so
   summing over `partition` sums the tenants.
9. Failover: vnetshare_uplink_active{uplink, role} is 1 for the uplink
   the switch serves and 0 for the other, from the snapshot's "uplinks";
   the moves count under vnetshare_uplink_moves_total.
"""
from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from . import __version__
from .metrics_server import MetricsServer

log = logging.getLogger("vnetshare.metrics")

SNAPSHOT_TIMEOUT_S = 2.0  # a control loop busy for longer is itself the news: up 0


@dataclass(frozen=True)
class Field:
    """How one scalar counter of the snapshot is exported (rule 4)."""

    kind: str  # "counter" or "gauge"
    name: str  # without vnetshare_ and, for a counter, without _total
    doc: str


PARTITION_FIELDS: dict[str, Field] = {
    "tx_frames": Field("counter", "partition_transmit_frames",
                       "Frames the partition sent that the switch forwarded (to partitions, the uplink or both)."),
    "tx_bytes": Field("counter", "partition_transmit_bytes", "Bytes of the frames in transmit_frames."),
    "rx_frames": Field("counter", "partition_receive_frames",
                       "Frames the switch delivered to the partition (into its ring, or straight to its TAP)."),
    "rx_bytes": Field("counter", "partition_receive_bytes", "Bytes of the frames in receive_frames."),
    "rx_direct": Field("counter", "partition_receive_direct_frames",
                       "Frames of receive_frames the switch wrote to the partition's TAP itself (its ring was "
                       "empty)."),
    "tx_to_wire": Field("counter", "partition_transmit_uplink_frames",
                        "Frames of transmit_frames the switch handed to the uplink."),
    "tx_throttled": Field("counter", "partition_transmit_throttled",
                          "Times its transmit stopped at its rate limit (its frames waited; not a drop)."),
    "violations": Field("counter", "partition_ring_violations",
                        "Ring violations on its transmit ring (the ring_* drop reasons); past a limit the "
                        "switch disconnects it."),
    "ring_skipped_bytes": Field("counter", "partition_ring_skipped_bytes",
                                "Bytes of its transmit ring skipped after untrustworthy headers."),
    "disconnected": Field("gauge", "partition_disconnected",
                          "1 once the switch disconnected it for ring violations, else 0."),
    "agent_restarts": Field("counter", "partition_agent_restarts",
                            "Times the daemon restarted its agent after the agent died."),
    "captures": Field("gauge", "partition_captures", "Captures (vnetshare capture) running on it now."),
    "mac_conflicts": Field("counter", "partition_mac_conflict_frames",
                           "Frames from the uplink whose source was the partition's MAC: a station on the LAN "
                           "has it too."),
    "mac_conflict": Field("gauge", "partition_mac_conflict",
                          "1 while a station on the LAN uses the partition's MAC (seen within the FDB's "
                          "ageing time), else 0."),
}
# the rings' gauges: one family each, label ring="a2h" (what the partition
# sends: agent to hosting) or "h2a" (what it receives)
RING_USED = {"a2h_used": "a2h", "h2a_used": "h2a"}
RING_SIZE = "ring_bytes"

UPLINK_FIELDS: dict[str, Field] = {
    "rx_frames": Field("counter", "uplink_receive_frames", "Frames received from the wire."),
    "rx_bytes": Field("counter", "uplink_receive_bytes", "Bytes of the frames in receive_frames."),
    "rx_delivered": Field("counter", "uplink_receive_deliveries",
                          "Received frames put into partitions' rings (a broadcast counts once per partition)."),
    "tx_frames": Field("counter", "uplink_transmit_frames", "Frames sent to the wire."),
    "tx_bytes": Field("counter", "uplink_transmit_bytes", "Bytes of the frames in transmit_frames."),
    "tx_calls": Field("counter", "uplink_transmit_calls", "sendmmsg() calls that sent them."),
    "socket_errors": Field("counter", "uplink_socket_errors",
                           "Errors the uplink's socket reported (the link down or gone)."),
    "attached": Field("gauge", "uplink_attached",
                      "1 while the switch has a socket on the uplink; 0 while its NIC is gone."),
    "rebinds": Field("counter", "uplink_rebinds",
                     "Sockets the switch opened on the uplink after the first: its NIC re-created."),
    "uplink_moves": Field("counter", "uplink_moves",
                          "Times the switch moved to the other uplink (failover, failback, or none while both "
                          "were down)."),
    "active_slot": Field("gauge", "uplink_active_slot",
                         "The uplink the switch serves: 0 the primary, 1 the backup, 2 neither (both down)."),
    "rounds": Field("counter", "switch_rounds", "Forwarding rounds of the switch thread."),
    "sleeps": Field("counter", "switch_sleeps", "Times the switch thread slept, waiting for frames."),
    "naps": Field("counter", "switch_naps", "Coalescing naps the switch thread took between busy rounds."),
    "commands": Field("counter", "switch_commands", "Control commands the switch applied."),
    "ports": Field("gauge", "switch_ports", "Ports the switch serves now: the partitions' and the host port."),
    "polls": Field("counter", "switch_polls",
                   "Polls for an answer the switch thread made before sleeping, after a lone frame."),
    "poll_hits": Field("counter", "switch_poll_hits", "Polls that found the answer, so the switch thread did not sleep."),
    "flood_scoped": Field("counter", "switch_flood_copies_skipped",
                          "Flood copies not made: group frames (from the wire or a partition) only routers or "
                          "the address's owner need, for a port that is neither."),
    "fdb_entries": Field("gauge", "uplink_fdb_stations",
                         "Stations the switch learned on the wire and still knows (seen within the ageing time)."),
    "fdb_learned": Field("counter", "uplink_fdb_learned_stations",
                         "Stations learned on the wire: new ones, or back after they aged out."),
    "fdb_evicted": Field("counter", "uplink_fdb_evicted_stations",
                         "Stations forgotten before their time for want of room in the switch's table."),
    "mcast_reports": Field("counter", "switch_mcast_reports",
                           "IGMP and MLD reports and leaves the switch snooped, from partitions and the wire."),
    "mcast_queries": Field("counter", "switch_mcast_queries", "IGMP and MLD queries the switch saw."),
    "mcast_scoped": Field("counter", "switch_mcast_copies_skipped",
                          "Copies of multicast frames not made thanks to snooping: partitions that did not "
                          "join the group."),
    "mcast_groups": Field("gauge", "mcast_groups",
                          "Multicast groups with a member partition now, all VLANs (IGMP/MLD snooping)."),
    "mcast_full": Field("counter", "switch_mcast_table_full",
                        "Joins the switch's group table had no room for (their groups flood)."),
}
UPLINK_NAME = "ifname"  # the uplink's label, not a counter
# the host port (hostport.py): the partition's fields, vnetshare_host_port_*{host_port=NAME} (rule 8)
HOST_PORT_PREFIX = "host_port_"

# rule 6: policy keys (config.policy_json(), after the direction) -> (name, scale, doc)
LIMIT_FIELDS = {
    "limit_bps": ("limit_bytes_per_second", 1 / 8, "bytes per second"),
    "burst_bytes": ("limit_burst_bytes", 1, "the bucket's depth in bytes"),
    "limit_pps": ("limit_frames_per_second", 1, "frames per second"),
    "burst_frames": ("limit_burst_frames", 1, "the bucket's depth in frames"),
}
DIRECTIONS = {"tx": ("transmit", "sends", "over it, frames wait"),
              "rx": ("receive", "receives", "over it, frames are dropped")}

_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")


def label_names(keys: Iterable[str]) -> dict[str, str]:
    """Partition label keys -> Prometheus label names (rule 7)."""
    out: dict[str, str] = {}
    taken: dict[str, int] = {}
    for key in sorted(keys):
        name = "label_" + _LABEL_BAD.sub("_", key)
        if name in taken:
            taken[name] += 1
            name = f"{name}_conflict{taken[name] - 1}"
        else:
            taken[name] = 1
        out[key] = name
    return out


class _Families:
    """Metric families by name, made on first use, kept in that order."""

    def __init__(self):
        self.by_name: dict[str, Metric] = {}

    def add(self, kind: str, name: str, doc: str, labels: dict[str, str], value: float) -> None:
        fam = self.by_name.get(name)
        if fam is None:
            cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            fam = self.by_name[name] = cls("vnetshare_" + name, doc, labels=list(labels))
        fam.add_metric(list(labels.values()), float(value))

    def field(self, f: Field, labels: dict[str, str], value) -> None:
        self.add(f.kind, f.name, f.doc, labels, value)


def families(snap: dict) -> list[Metric]:
    """Every metric of one snapshot (Daemon.snapshot()'s shape), but
    vnetshare_up and the build info. Raises on a malformed snapshot."""
    out = _Families()
    parts, policy, labels = snap["partitions"], snap.get("policy", {}), snap.get("labels", {})
    out.add("gauge", "partitions", "Partitions the daemon has.", {}, len(parts))
    info = InfoMetricFamily("vnetshare_partition", "A partition's VLAN (none: untagged) and labels "
                            "(label_KEY, the key's other characters made _).", labels=["partition"])
    for name in sorted(parts):
        part = {"partition": name}
        pol = policy.get(name, {})
        tags = labels.get(name, {})
        names = label_names(tags)
        info.add_metric([name], dict({"vlan": str(pol.get("vlan") or "none")},
                                     **{names[k]: v for k, v in tags.items()}))
        counters = parts[name]
        for key, value in counters.items():
            if key in PARTITION_FIELDS:
                out.field(PARTITION_FIELDS[key], part, int(value))
        for key, ring in RING_USED.items():
            if key in counters:
                out.add("gauge", "partition_ring_used_bytes",
                        "Bytes now in one of its rings: a2h (what it sends), h2a (what it receives).",
                        dict(part, ring=ring), counters[key])
                if RING_SIZE in counters:
                    out.add("gauge", "partition_ring_size_bytes", "Data size of each of its rings.",
                            dict(part, ring=ring), counters[RING_SIZE])
        for reason, n in counters.get("drops", {}).items():
            out.add("counter", "partition_drops", "Frames of the partition the switch dropped, by reason "
                    "(as vnetshare stats names them).", dict(part, reason=reason), n)
        if pol.get("storm_limit_pps"):
            out.add("gauge", "partition_storm_limit_frames_per_second",
                    "Broadcast and multicast frames per second the partition may send; no series: no limit.",
                    part, pol["storm_limit_pps"])
        for key, (direction, verb, over) in DIRECTIONS.items():
            for fkey, (suffix, scale, doc) in LIMIT_FIELDS.items():
                value = pol.get(f"{key}_{fkey}")
                if value:
                    out.add("gauge", f"partition_{direction}_{suffix}", f"Rate limit on what the partition "
                            f"{verb}, {doc} ({over}); no series: no limit.", part, value * scale)
    host = snap.get("host_port")
    if host:
        where = {"host_port": str(host["name"])}
        counters = host.get("counters", {})
        for key, value in counters.items():
            f = PARTITION_FIELDS.get(key)
            if f is not None:
                out.add(f.kind, HOST_PORT_PREFIX + f.name[len("partition_"):],
                        f.doc.replace("the partition", "the host port").replace("The partition", "The host port"),
                        where, int(value))
        for reason, n in counters.get("drops", {}).items():
            out.add("counter", HOST_PORT_PREFIX + "drops", "Frames of the host port the switch dropped, by "
                    "reason (as vnetshare stats names them).", dict(where, reason=reason), n)
    up = snap.get("uplink", {})
    if up:
        where = {"uplink": str(up.get(UPLINK_NAME, ""))}
        for key, value in up.items():
            f = UPLINK_FIELDS.get(key)
            if f is not None:
                out.field(f, {} if f.name.startswith("switch_") else where, int(value))
        for reason, n in up.get("drops", {}).items():
            out.add("counter", "uplink_drops", "Frames of the wire side the switch dropped, by reason "
                    "(rx_: received, tx_: to send).", dict(where, reason=reason), n)
    for u in snap.get("uplinks", []):  # rule 9
        out.add("gauge", "uplink_active", "1 for the uplink the switch serves, 0 for the other (failover).",
                {"uplink": u["ifname"], "role": u["role"]}, int(bool(u["active"])))
    fams = list(out.by_name.values())
    if info.samples:
        fams.insert(1, info)
    return fams


class SnapshotCollector(Collector):
    """Rule 1: one snapshot per scrape from @snapshot (a callable that
    returns Daemon.snapshot()'s dict or raises), up 0 if it fails."""

    def __init__(self, snapshot: Callable[[], dict]):
        self._snapshot = snapshot
        self._failing: str | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        build = InfoMetricFamily("vnetshare_build", "The running vnetshare's version.")
        build.add_metric([], {"version": __version__})
        up = GaugeMetricFamily("vnetshare_up", "1 if this scrape read the daemon's counters, else 0.")
        try:
            fams = families(self._snapshot())
        except Exception as e:  # noqa: BLE001 - any failure is a scrape with up 0, not an HTTP 500
            self._note(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
            up.add_metric([], 0)
            return [up, build]
        self._note(None)
        up.add_metric([], 1)
        return [up, build] + fams

    def _note(self, failure: str | None) -> None:
        """Log when scrapes start failing and when they recover, not every one."""
        with self._lock:
            was, self._failing = self._failing, failure
        if failure and not was:
            log.warning("metrics: vnetshare_up 0: no snapshot: %s", failure)
        elif was and not failure:
            log.info("metrics: vnetshare_up 1 again")


def in_loop(daemon, timeout: float = SNAPSHOT_TIMEOUT_S) -> Callable[[], dict]:
    """A snapshot source for SnapshotCollector: @daemon.snapshot() run in
    its loop thread (Daemon.snapshot's rule), waited for up to @timeout s.
    Raises if the daemon is not serving (no loop yet, or stopped)."""

    def take() -> dict:
        loop = daemon.loop
        if loop is None or daemon.manager is None or loop.is_closed():
            raise RuntimeError("the daemon is not serving (starting or stopping)")
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(daemon.snapshot())
                except BaseException as e:  # noqa: BLE001 - handed to the scrape
                    fut.set_exception(e)

        loop.call_soon_threadsafe(run)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"the daemon's loop did not answer within {timeout:g} s") from None

    return take


class Exporter:
    """/metrics over HTTP on @addr (ADDR, PORT): the collector and the
    process' own metrics (process_*: CPU, memory, descriptors), in a
    registry of their own, served by metrics_server.MetricsServer (a fixed
    number of threads, a cap on connections, deadlines for slow clients).
    Binds at once: a port in use raises OSError."""

    def __init__(self, addr: tuple[str, int], snapshot: Callable[[], dict]):
        self.registry = CollectorRegistry()
        self.registry.register(SnapshotCollector(snapshot))
        ProcessCollector(registry=self.registry)
        self.server: MetricsServer | None = MetricsServer(addr, self.registry)
        self.addr = self.server.address

    def close(self) -> None:
        """Stop serving and wait for the scrapes in progress; again: nothing."""
        if self.server is None:
            return
        server, self.server = self.server, None
        server.close()
