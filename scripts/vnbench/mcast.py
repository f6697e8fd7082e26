"""mcast: a multicast stream to a group one partition joined among N, the
switch's CPU against the same stream unicast to that partition.

The switch alone (vnetshare.dataplane.switch.Switch, in this process, its
thread's CPU clock): its uplink is vnb-mup, a veth whose peer vnb-mpe in
this namespace is the LAN's source (no IPv6 on either end: no chatter);
N ports (--many; 100 with --quick) with rings as the daemon makes them
(not trusted routers), no agents: the member (port 2) with a 4 MiB H2A
ring, the others with the smallest. The member's ring gets a real IGMPv2
report for 239.1.2.3 first, as its kernel would send it, so the group
table has it. Then FRAMES UDP frames of 64 bytes come from the wire (an
AF_PACKET socket on vnb-mpe, paced; what the uplink's RX ring could not
hold while the switch was busy the kernel drops, which costs the switch
nothing), and the switch thread's CPU time until the member's ring stops
growing is divided by the frames the member got:
  unicast   to the member's MAC
  group     to 239.1.2.3 (01:00:5e:01:02:03): the member only, by the
            group table (a walk of its members, not of the ports)
  flood     the same with a switch made with snooping off: every port
            (copies past a port's flood share are dropped and counted,
            which costs less than a copy)
The stream comes from the LAN as an IPTV or market-data feed does; from a
partition, a group's frames go to the wire as well, which unicast to a
partition does not.
Median of --reps. Rows mcast_<stream>_ns_per_frame and
ratio_mcast_group_vs_unicast (target: about what unicast costs).
"""
from __future__ import annotations

import socket
import statistics
import time

from vnetshare import CONSUMER, PRODUCER, Ring, create_fds
from vnetshare.dataplane.ring import SIZE_MIN
from vnetshare.dataplane.guard import GuardPolicy
from vnetshare.dataplane.switch import PortPolicy, Switch
from vnetshare.linux import netns

from .common import Plan, say
from .paths import Made

UP, PEER = "vnb-mup", "vnb-mpe"
FRAMES = 10_000
BIG = 1 << 22
GROUP_MAC, GROUP = "01:00:5e:01:02:03", "239.1.2.3"
LAN_MAC = "02:00:5e:10:ff:64"


def _mac(i: int) -> str:
    return f"02:00:5e:10:{i >> 8:02x}:{i & 255:02x}"


def _frame(dst_mac: str, dst_ip: str) -> bytes:
    """A 64-byte UDP frame from the LAN's source (vnb-mpe)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return bytes(Ether(src=LAN_MAC, dst=dst_mac) / IP(src="198.18.1.100", dst=dst_ip) / UDP(sport=9, dport=5000)
                 / (b"x" * 22))


def _report() -> bytes:
    from scapy.contrib.igmp import IGMP
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    return bytes(Ether(src=_mac(2), dst=GROUP_MAC)
                 / IP(src="198.18.1.2", dst=GROUP, ttl=1, options=[b"\x94\x04\x00\x00"])
                 / IGMP(type=0x16, gaddr=GROUP))


def _policy(i: int) -> PortPolicy:
    """A partition's port as the daemon makes it: not a trusted router
    (those get every group), any address (no agent configures one)."""
    return PortPolicy(guard=GuardPolicy(mac=_mac(i), l3_any=True))


def _thread_cpu_s(clock: int) -> float:
    return time.clock_gettime(clock)


def _one(nports: int, frame: bytes, snooping: bool) -> float:
    """ns of switch CPU per frame of one stream."""
    sw = Switch(UP, mcast_snooping=snooping, max_ports=nports + 1)
    fds = []
    try:
        sw.start()
        member = None
        for i in range(1, nports + 1):
            size = BIG if i == 2 else SIZE_MIN
            a2h, h2a = create_fds(size), create_fds(size)
            fds += [a2h, h2a]
            sw.add_port(i, _mac(i), a2h, h2a, size, policy=_policy(i))
            if i == 2:
                member = (Ring.attach(a2h, PRODUCER), Ring.attach(h2a, CONSUMER))
        member[0].send(_report())
        deadline = time.monotonic() + 10
        while snooping and not (sw.groups() or {}).get("members") and time.monotonic() < deadline:
            time.sleep(0.01)
        clock = time.pthread_getcpuclockid(sw._thread.ident)  # the switch thread's CPU time, ns
        t0 = _thread_cpu_s(clock)
        out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        try:
            out.bind((PEER, 0))
            for k in range(FRAMES):
                out.send(frame)
                if k % 64 == 63:  # paced
                    time.sleep(0)
        finally:
            out.close()
        got, last, quiet = 0, -1, time.monotonic()
        while got < FRAMES and time.monotonic() - quiet < 1.0:
            while member[1].recv() is not None:
                got += 1
            if got != last:
                last, quiet = got, time.monotonic()
            time.sleep(0.002)
        cpu = _thread_cpu_s(clock) - t0
        if got < FRAMES // 100:  # a flood to many is slower than the sender: the kernel drops the rest
            raise RuntimeError(f"the member got {got} of {FRAMES} frames")
        return cpu / got * 1e9
    finally:
        sw.close()
        for f in fds:
            f.close()


def bench_mcast(made: Made, plan: Plan, errors: list[str]) -> list[dict]:
    nports = plan.many
    netns.veth_pair(made.root_link(UP), PEER)
    for ifname in (UP, PEER):
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w") as f:
            f.write("1")
        netns.link_set(ifname, up=True)
    streams = {"unicast": (_frame(_mac(2), "198.18.1.2"), True),
               "group": (_frame(GROUP_MAC, GROUP), True),
               "flood": (_frame(GROUP_MAC, GROUP), False)}
    res: dict[str, list[float]] = {k: [] for k in streams}
    for rep in range(plan.reps):
        for name, (frame, snooping) in streams.items():
            say(f"mcast: {name}, 1 member among {nports} partitions, rep {rep + 1}")
            try:
                res[name].append(_one(nports, frame, snooping))
            except RuntimeError as e:
                errors.append(f"mcast {name}: {e}")
    rows = [{"name": f"mcast_{k}_ns_per_frame", "value": round(statistics.median(v)), "unit": "ns of switch CPU"}
            for k, v in res.items() if v]
    by = {r["name"]: r["value"] for r in rows}
    if by.get("mcast_unicast_ns_per_frame") and by.get("mcast_group_ns_per_frame"):
        rows.append({"name": "ratio_mcast_group_vs_unicast",
                     "value": round(by["mcast_group_ns_per_frame"] / by["mcast_unicast_ns_per_frame"], 3),
                     "unit": f"x unicast, 1 of {nports}"})
    if by.get("mcast_unicast_ns_per_frame") and by.get("mcast_flood_ns_per_frame"):
        rows.append({"name": "ratio_mcast_flood_vs_unicast",
                     "value": round(by["mcast_flood_ns_per_frame"] / by["mcast_unicast_ns_per_frame"], 3),
                     "unit": f"x unicast, snooping off, {nports} ports"})
    return rows
