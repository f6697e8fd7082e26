"""verify.py - `vnetshare verify`: prove, with frames, that the running
daemon keeps a hostile partition in its place.

What it does, in order:
1. Makes two partitions with names no user can have taken (``_vfy<hex>s``,
   the sender, and ``_vfy<hex>r``, the receiver) on an access VLAN no
   partition uses (the highest free one), so that nothing they send reaches
   an existing partition: flooding stays inside that VLAN. Addresses come
   from the benchmarking range 198.18.0.0/15 and the documentation prefix
   2001:db8::/32.
2. Opens captures: on the receiver's device and, if the uplink is visible
   from here, a listener on the uplink (it only receives).
3. From the sender (an AF_PACKET socket on its device; a second one with
   PACKET_VNET_HDR for the frames whose virtio_net header asks for a
   checksum or segmentation) sends one frame of each hostile class, then a
   short storm, then the barriers. A class that needs an offload the
   sender's device lacks (the partitions get the uplink's: `vnetshare
   adapter`) is not sent and says so: without it the sender's own kernel
   completes the checksum or segments before the switch sees the frame.
4. Waits for the barriers: the switch serves a port's ring in order, so
   once the last frame is seen, every frame before it was forwarded or
   dropped. A capture that never sees its barrier makes the run fail: a
   blind capture can't pass.
5. Compares: no hostile frame seen on the receiver or the uplink, each
   counted under its reason on the sender's port (partition show); the
   legitimate frames sent alongside arrived.
6. Asks the daemon for what it must refuse (_identity_rows()): a third
   partition (``_vfy<hex>x``) with the uplink's MAC, the receiver's MAC,
   the receiver's address, 255.255.255.255, and the sender changed to the
   receiver's addresses; a partition it makes after all is a leak, and is
   deleted with the others.
7. Looks at both partitions' agents as the kernel sees them
   (_agent_rows()): each under a uid of its own, under its seccomp filter,
   with no capability, not dumpable, in its partition's network namespace;
   and a child process of verify's, under one agent's uid, tries to signal
   the other agent and to open its memory: both must be refused.
8. Deletes the partitions it made, whatever happened.

What reaches the LAN (tagged with the chosen VLAN, which a LAN switch
drops unless it is trunked there): what any new interface sends (IPv6
duplicate address detection, MLD reports, router solicitations, all
link-local), the storm frames the storm limit lets through (broadcasts of
the IEEE local experimental EtherType 0x88b5, which no host acts on), and
one unicast barrier of that EtherType to a locally administered MAC that
no one has. Every hostile frame is addressed to the receiver's MAC, so
even a daemon whose guard is broken delivers it to the receiver, never to
the wire, but the two whose class is their destination, the Cisco group
addresses (CDP/VTP/DTP's and PVST+'s): those are SNAP frames of the local
experimental EtherType, not CDP, DTP or a BPDU, which no switch acts on.
The link-layer control frames carry no operation a device knows (a MAC
control opcode 0, a slow protocols subtype 0, an EAPOL packet type 0xff),
and the DHCP messages go to the receiver, which runs no DHCP server or
client.
"""
from __future__ import annotations

import ipaddress
import json
import os
import secrets
import select
import socket
import struct
import time
from dataclasses import asdict, dataclass, field

from ..core import config
from ..linux import ethtool, netns
from .client import DaemonError, call
from ..dataplane.guard import GSO_TCPV4, NEEDS_CSUM, Vnet, link_local

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_MAC_CONTROL = 0x8808     # PAUSE, PFC
ETH_P_SLOW = 0x8809            # LACP, marker, OAM
ETH_P_EAPOL = 0x888E
ETH_P_EXPERIMENTAL = 0x88B5    # IEEE 802 local experimental 1
SOL_PACKET = 263
PACKET_VNET_HDR = 15
CSUM_FEATURE = "tx-checksum-ip-generic"    # what a TAP with TUN_F_CSUM has
TSO_FEATURE = "tx-tcp-segmentation"        # with TUN_F_TSO4
CISCO_GROUP = bytes.fromhex("01000ccccccc")   # CDP, VTP, DTP, UDLD, PAgP
PVST_GROUP = bytes.fromhex("01000ccccccd")    # PVST+ BPDUs
BROADCAST = b"\xff" * 6
NAME_PREFIX = "_vfy"
WAIT_S = 5.0                   # for the barriers
STORM_FRAMES_MIN = 200


# --- frames ------------------------------------------------------------------
# Built by hand, so the daemon host needs no packet library; the unit tests
# compare each with scapy's dissection.

def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(dst: bytes, src: bytes, ethertype: int, payload: bytes, vlan: int | None = None) -> bytes:
    tag = struct.pack("!HH", ETH_P_8021Q, vlan) if vlan is not None else b""
    return dst + src + tag + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0,
                      ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:] + payload


def udp4(sport: int, dport: int, payload: bytes, check: int = 0) -> bytes:
    """A UDP header and @payload; @check in its checksum field (0: none, IPv4)."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), check) + payload


def tcp4(sport: int, dport: int, seq: int, payload: bytes, check: int = 0) -> bytes:
    """A 20-byte TCP header (ACK, PSH) and @payload; @check in its checksum field."""
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x18, 65535, check, 0) + payload


def pseudo4(src: str, dst: str, proto: int, length: int) -> int:
    """The IPv4 pseudo-header sum, not complemented: what a sender leaves in
    the L4 checksum field when it asks for the rest (NEEDS_CSUM)."""
    return ~_csum(ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
                  + struct.pack("!BBH", 0, proto, length)) & 0xFFFF


def ipv6_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv6 packet of one UDP datagram, checksummed (mandatory over IPv6)."""
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    msg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    csum = _csum(s + d + struct.pack("!I3xB", len(msg), 17) + msg) or 0xFFFF
    msg = msg[:6] + struct.pack("!H", csum) + msg[8:]
    return struct.pack("!IHBB", 6 << 28, len(msg), 17, 64) + s + d + msg


def bootp(op: int, chaddr: bytes, msg_type: int, ciaddr: str = "0.0.0.0",
          options: bytes = b"") -> bytes:
    """A DHCP message (RFC 2131): BOOTP header, magic cookie, message type,
    @options (raw), end."""
    hdr = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", op, 1, 6, 0, 0x7E57, 0, 0,
                      ipaddress.IPv4Address(ciaddr).packed, bytes(4), bytes(4), bytes(4),
                      chaddr, b"", b"")
    return hdr + b"\x63\x82\x53\x63" + bytes([53, 1, msg_type]) + options + b"\xff"


def snap(dst: bytes, src: bytes, payload: bytes) -> bytes:
    """An 802.3 frame (a length, not an EtherType) with LLC/SNAP carrying
    the local experimental EtherType: no protocol any device speaks."""
    body = b"\xaa\xaa\x03" + bytes(3) + struct.pack("!H", ETH_P_EXPERIMENTAL) + payload
    return dst + src + struct.pack("!H", len(body)) + body


def arp_reply(sha: bytes, spa: str, tha: bytes, tpa: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 2, sha, ipaddress.IPv4Address(spa).packed,
                       tha, ipaddress.IPv4Address(tpa).packed)


def ipv6_icmp(src: str, dst: str, icmp_type: int, body: bytes) -> bytes:
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    msg = struct.pack("!BBH", icmp_type, 0, 0) + body
    pseudo = s + d + struct.pack("!I3xB", len(msg), 58)
    msg = msg[:2] + struct.pack("!H", _csum(pseudo + msg)) + msg[4:]
    return struct.pack("!IHBB", 6 << 28, len(msg), 58, 255) + s + d + msg


def neighbour_advert(target: str, tlla: bytes) -> bytes:
    """ICMPv6 NA body: override + solicited flags, target, target link-layer option."""
    return struct.pack("!I", 0x60000000) + ipaddress.IPv6Address(target).packed + b"\x02\x01" + tlla


def router_advert(prefix: str) -> bytes:
    """ICMPv6 RA body: hop limit 64, lifetime 1800 s, one on-link/autonomous prefix option."""
    net = ipaddress.IPv6Network(prefix)
    pio = struct.pack("!BBBBIII16s", 3, 4, net.prefixlen, 0xC0, 86400, 14400, 0,
                      net.network_address.packed)
    return struct.pack("!BBHII", 64, 0, 1800, 0, 0) + pio


# --- captures ----------------------------------------------------------------

def _untag(frame: bytes) -> bytes:
    if len(frame) >= 18 and frame[12:14] == struct.pack("!H", ETH_P_8021Q):
        return frame[:12] + frame[16:]
    return frame


class Capture:
    """Receives every frame on @ifname (in @ns); send nothing."""

    def __init__(self, ifname: str, ns: str | None):
        def open_socket() -> socket.socket:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((ifname, 0))
            s.setblocking(False)
            return s
        self.sock = netns.run_in(ns, open_socket)
        self.frames: list[bytes] = []

    def drain_until(self, barrier: bytes, deadline: float) -> bool:
        """Collect frames until one starts with @barrier; False at @deadline."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not select.select([self.sock], [], [], left)[0]:
                continue
            while True:
                try:
                    data = _untag(self.sock.recv(65536))
                except BlockingIOError:
                    break
                self.frames.append(data)
                if data.startswith(barrier):
                    return True

    def seen(self, frame: bytes) -> int:
        return sum(1 for f in self.frames if f.startswith(_untag(frame)))

    def close(self) -> None:
        self.sock.close()


# --- the run -----------------------------------------------------------------

@dataclass
class Check:
    check: str
    expected: str
    reason: str | None = None        # the drop counter that must move
    frames: list[bytes] = field(default_factory=list, repr=False)
    vnet: Vnet | None = field(default=None, repr=False)   # sent with this virtio_net header
    needs: str | None = field(default=None, repr=False)   # a feature of the sender's device
    receiver: int = 0
    uplink: int | None = None
    counted: int = 0
    verdict: str = ""

    def row(self) -> dict:
        out = asdict(self)
        for private in ("frames", "vnet", "needs"):
            out.pop(private)
        return out


def _free_vlan(parts: list[dict]) -> int:
    used = {p.get("vlan") or 0 for p in parts}
    return next(v for v in range(config.VLAN_MAX, 0, -1) if v not in used)


def _mac(text: str) -> bytes:
    return config.mac_bytes(text)


def _plan(s: dict, r: dict, storm_n: int) -> tuple[list[Check], list[bytes], bytes, bytes]:
    """The frames to send: (checks, the storm, receiver barrier, uplink barrier)."""
    smac, rmac = _mac(s["mac"]), _mac(r["mac"])
    s4, r4 = (ipaddress.ip_interface(a).ip for a in (s["ips"][0], r["ips"][0]))
    s6_ll, r6 = str(link_local(s["mac"])), str(ipaddress.ip_interface(r["ips"][1]).ip)
    s6 = str(ipaddress.ip_interface(s["ips"][1]).ip)
    tag = secrets.token_bytes(8)

    def marked(what: str) -> bytes:
        return b"vnetshare-verify " + tag + b" " + what.encode()

    def udp_to_r(src: str, sport: int, dport: int, what: str, mac: bytes = smac) -> bytes:
        return eth(rmac, mac, ETH_P_IP, ipv4(src, str(r4), 17, udp4(sport, dport, marked(what))))

    forged_mac = bytes([0x02]) + secrets.token_bytes(5)
    s4_, r4_ = str(s4), str(r4)
    offloaded = udp4(40000, 40001, marked("offloaded"))
    offloaded = udp4(40000, 40001, marked("offloaded"), pseudo4(s4_, r4_, 17, len(offloaded)))
    mss = s["mtu"] - 40

    def tcp_to_r(what: str) -> bytes:
        """3 segments' worth of TCP, its checksum left to the device."""
        data = marked(what).ljust(2 * mss + 100, b".")
        return eth(rmac, smac, ETH_P_IP, ipv4(s4_, r4_, 6, tcp4(40000, 40001, 1, data,
                                                               pseudo4(s4_, r4_, 6, 20 + len(data)))))
    arp = eth(rmac, smac, ETH_P_ARP, arp_reply(smac, s4_, rmac, r4_))
    checks = [
        Check("legitimate unicast (control)", "delivered", None,
              [udp_to_r(str(s4), 40000, 40001, "control")]),
        Check("forged source MAC", "dropped", "spoof",
              [udp_to_r(str(s4), 40000, 40001, "mac", mac=forged_mac)]),
        Check("forged IPv4 source", "dropped", "ip_spoof",
              [udp_to_r(str(r4), 40000, 40001, "ipv4")]),
        Check("ARP reply for another's address", "dropped", "arp_spoof",
              [eth(rmac, smac, ETH_P_ARP, arp_reply(smac, str(r4), rmac, str(r4)))]),
        Check("neighbour advertisement for another's address", "dropped", "nd_spoof",
              [eth(rmac, smac, ETH_P_IPV6, ipv6_icmp(s6_ll, "ff02::1", 136, neighbour_advert(r6, smac)))]),
        Check("router advertisement", "dropped", "ra",
              [eth(rmac, smac, ETH_P_IPV6, ipv6_icmp(s6_ll, "ff02::1", 134, router_advert("2001:db8:bad::/64")))]),
        Check("DHCP server message (offer)", "dropped", "dhcp_server",
              [udp_to_r(str(s4), 67, 68, "dhcp")]),
        Check("DHCP offer from another port (1067 -> 68)", "dropped", "dhcp_server",
              [eth(rmac, smac, ETH_P_IP, ipv4(str(s4), str(r4), 17, udp4(
                  1067, 68, bootp(2, rmac, 2) + marked("dhcp-1067"))))]),
        Check("DHCPv6 advertise from another port (1547 -> 546)", "dropped", "dhcp_server",
              [eth(rmac, smac, ETH_P_IPV6, ipv6_udp(s6, r6, 1547, 546,
                                                    b"\x02\x7e\x57\x00" + marked("dhcp6-1547")))]),
        Check("DHCP discover with another's hardware address", "dropped", "dhcp_spoof",
              [eth(rmac, smac, ETH_P_IP, ipv4(str(s4), str(r4), 17, udp4(
                  68, 67, bootp(1, rmac, 1) + marked("dhcp-chaddr"))))]),
        Check("DHCP release of another's address", "dropped", "dhcp_spoof",
              [eth(rmac, smac, ETH_P_IP, ipv4(str(s4), str(r4), 17, udp4(
                  68, 67, bootp(1, smac, 7, ciaddr=str(r4), options=bytes([54, 4]) + r4.packed)
                  + marked("dhcp-release"))))]),
        Check("to the Cisco group (CDP, VTP, DTP)", "dropped", "cisco_group",
              [snap(CISCO_GROUP, smac, marked("cisco-cdp"))]),
        Check("to the PVST+ group (BPDUs)", "dropped", "cisco_group",
              [snap(PVST_GROUP, smac, marked("cisco-pvst"))]),
        Check("MAC control (EtherType 0x8808, PAUSE)", "dropped", "mac_control",
              [eth(rmac, smac, ETH_P_MAC_CONTROL, b"\x00\x00" + marked("mac-control"))]),
        Check("slow protocols (EtherType 0x8809, LACP)", "dropped", "mac_control",
              [eth(rmac, smac, ETH_P_SLOW, b"\x00" + marked("slow-protocols"))]),
        Check("EAPOL (802.1X)", "dropped", "eapol",
              [eth(rmac, smac, ETH_P_EAPOL, b"\x02\xff" + struct.pack("!H", 40) + marked("eapol"))]),
        Check("802.3 length frame (LLC/SNAP)", "dropped", "llc",
              [snap(rmac, smac, marked("llc"))]),
        Check("802.1Q-tagged frame", "dropped", "vlan",
              [eth(rmac, smac, ETH_P_IP, ipv4(str(s4), str(r4), 17, udp4(40000, 40001, marked("tag"))), vlan=7)]),
        # the virtio_net header is part of the frame: a checksum lands 2
        # bytes of the sender's choosing where it says, GSO cuts the frame
        Check("checksum-offloaded datagram (control)", "delivered", None,
              [eth(rmac, smac, ETH_P_IP, ipv4(s4_, r4_, 17, offloaded))],
              Vnet(NEEDS_CSUM, 0, 0, 0, 34, 6), CSUM_FEATURE),
        Check("a checksum asked for over the ARP sender address", "dropped", "csum_offset",
              [arp + bytes(60 - len(arp))], Vnet(NEEDS_CSUM, 0, 0, 0, 30, 0), CSUM_FEATURE),
        Check("a checksum asked for over the IPv4 source", "dropped", "csum_offset",
              [udp_to_r(s4_, 40000, 40001, "csum-source")], Vnet(NEEDS_CSUM, 0, 0, 0, 28, 0), CSUM_FEATURE),
        Check("GSO frame of MTU-sized segments (control)", "delivered", None,
              [tcp_to_r("gso")], Vnet(NEEDS_CSUM, GSO_TCPV4, 54, mss, 34, 16), TSO_FEATURE),
        Check("GSO frame with gso_size 1", "dropped", "gso",
              [tcp_to_r("gso-1")], Vnet(NEEDS_CSUM, GSO_TCPV4, 54, 1, 34, 16), TSO_FEATURE),
    ]
    storm = [eth(BROADCAST, smac, ETH_P_EXPERIMENTAL, marked(f"storm {i:06d}")) for i in range(storm_n)]
    r_barrier = udp_to_r(str(s4), 40000, 40001, "barrier")
    u_barrier = eth(bytes([0x02]) + secrets.token_bytes(5), smac, ETH_P_EXPERIMENTAL, marked("barrier"))
    return checks, storm, r_barrier, u_barrier


def _row(check: str, expected: str, verdict: str, reason: str | None = None) -> dict:
    """A row of a check that sends no frame (the control plane, the agents)."""
    return {"check": check, "expected": expected, "reason": reason, "receiver": None, "uplink": None,
            "counted": None, "verdict": verdict}


def _refused(sock: str, op: str, made: list[str], codes: tuple[str, ...], **args) -> str:
    """The verdict on asking the daemon for what it must refuse: "ok" if it
    answered one of @codes, else what went wrong (a partition it made after
    all goes into @made, for run() to delete)."""
    try:
        call(sock, op, **args)
    except DaemonError as e:
        return "ok" if e.code in codes else f"FAIL: refused, but as {e.code}: {e}"
    if op == "partition.create":
        made.append(args["name"])
    return "LEAK: accepted"


def _identity_rows(sock: str, status: dict, s: dict, r: dict, spare: str, made: list[str]) -> list[dict]:
    """A partition's MAC and addresses are its own (issue 20, items 2 and 3):
    the daemon refuses to give the uplink's MAC, the receiver's MAC or its
    address to another partition, an address no host may have, and a change
    of the sender to the receiver's address. @spare is a name nobody has."""
    r4 = r["ips"][0]
    r6 = next((a for a in r["ips"] if ":" in a), None)
    vlan = {"vlan": r["vlan"]} if r.get("vlan") else {}
    rows = []
    if status.get("uplink_mac"):
        rows.append(_row("a partition with the uplink's MAC", "refused (EADDRINUSE)",
                         _refused(sock, "partition.create", made, ("EADDRINUSE",), name=spare,
                                  mac=status["uplink_mac"], **vlan)))
    rows.append(_row("a partition with another partition's MAC", "refused (EADDRINUSE)",
                     _refused(sock, "partition.create", made, ("EADDRINUSE",), name=spare, mac=r["mac"],
                              **vlan)))
    rows.append(_row("a partition with another's address, same VLAN", "refused (EADDRINUSE)",
                     _refused(sock, "partition.create", made, ("EADDRINUSE",), name=spare, ips=[r4], **vlan)))
    rows.append(_row("a partition with the address 255.255.255.255", "refused (EINVAL)",
                     _refused(sock, "partition.create", made, ("EINVAL",), name=spare,
                              ips=["255.255.255.255/32"], **vlan)))
    verdict = _refused(sock, "partition.set", made, ("EADDRINUSE",), name=s["name"],
                       ips=[r4] + ([r6] if r6 else []))
    if verdict.startswith("LEAK"):     # it took them: give the sender its own back
        call(sock, "partition.set", name=s["name"], ips=s["ips"])
    rows.append(_row("the sender set to the receiver's addresses", "refused (EADDRINUSE)", verdict))
    return rows


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _as_uid_try(uid: int, victim: int) -> list[str]:
    """What a process of @uid may do to the process @victim: a child of ours
    takes @uid and tries to signal it (signal 0) and to open its memory;
    every "allowed" in the answer is a hole."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:    # the child: no Python cleanup, only os._exit
        out = []
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            try:
                os.kill(victim, 0)
                out.append("signal allowed")
            except PermissionError:
                pass
            try:
                os.close(os.open(f"/proc/{victim}/mem", os.O_RDONLY))
                out.append("memory readable")
            except PermissionError:
                pass
        except BaseException as e:  # noqa: BLE001 - told to the parent, never raised in a fork
            out.append(f"the probe failed: {e}")
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data or b'["the probe said nothing"]')


def _agent_rows(sock: str, s: dict, r: dict) -> list[dict]:
    """Agents apart from each other (issue 20, item 6): the sender's and the
    receiver's agents, as the kernel sees them in /proc."""
    agents = []
    for p in (s, r):
        info = call(sock, "partition.show", name=p["name"])["partition"]
        pid, uid = info.get("agent_pid"), info.get("agent_uid")
        if not pid or not uid or not os.path.exists(f"/proc/{pid}"):
            return [_row("the partitions' agents", "running, each its own uid",
                         f"FAIL: no running agent with a uid for {p['name']} (pid {pid}, uid {uid})")]
        agents.append((p, pid, uid, _proc_status(pid)))
    (_, pa, ua, sa), (_, pb, ub, sb) = agents

    def ids(st: dict, key: str) -> set[int]:
        return {int(x) for x in st.get(key, "").split()}
    own = all(ids(st, "Uid") == {u} and ids(st, "Gid") == {u} for _, _, u, st in agents)
    rows = [_row("agents run under their own uids", "two uids, neither root nor nobody",
                 "ok" if own and ua != ub and not {ua, ub} & {0, 65534}
                 else f"FAIL: uids {sa.get('Uid')} and {sb.get('Uid')}")]
    bad = [f"pid {pid}: {k} {st.get(k)}" for _, pid, _, st in agents for k, want in
           (("Seccomp", "2"), ("NoNewPrivs", "1"), ("CapEff", "0" * 16), ("CapPrm", "0" * 16))
           if st.get(k) != want]
    bad += [f"pid {pid}: dumpable" for _, pid, _, _ in agents if os.stat(f"/proc/{pid}/status").st_uid != 0]
    rows.append(_row("agents confined", "seccomp filter, no privileges, not dumpable",
                     "ok" if not bad else "FAIL: " + "; ".join(bad)))
    wrong = [p["name"] for p, pid, _, _ in agents
             if os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat(p["netns"]).st_ino]
    rows.append(_row("agents in their partitions' namespaces", "not the host's",
                     "ok" if not wrong else "FAIL: not in the namespace of " + ", ".join(wrong)))
    holes = [f"as {ua} against {pb}: {h}" for h in _as_uid_try(ua, pb)]
    holes += [f"as {ub} against {pa}: {h}" for h in _as_uid_try(ub, pa)]
    rows.append(_row("one agent's uid signals or reads the other", "refused (EPERM, EACCES)",
                     "ok" if not holes else "LEAK: " + "; ".join(holes)))
    return rows


def _drops(sock: str, name: str) -> dict[str, int]:
    return call(sock, "partition.show", name=name)["partition"]["counters"].get("drops", {})


def run(sock: str, sender_allow_ips: list[str] | None = None) -> tuple[bool, list[dict], dict]:
    """Run the checks against the daemon at @sock; (all good, rows, facts).

    @sender_allow_ips creates the sender with these --allow-ip values: with
    ["any"] its address guard is off and verify must report the leaks (how
    its own test proves that it can fail)."""
    status = call(sock, "daemon.status")
    parts = call(sock, "partition.list")["partitions"]
    hexid = secrets.token_hex(3)
    names = (f"{NAME_PREFIX}{hexid}s", f"{NAME_PREFIX}{hexid}r")
    vlan = _free_vlan(parts)
    net4 = ipaddress.IPv4Network(f"198.18.{secrets.randbelow(256)}.0/24")
    net6 = ipaddress.IPv6Network(f"2001:db8:{secrets.randbelow(65536):x}::/64")
    made: list[str] = []
    caps: list[Capture] = []
    facts = {"sender": names[0], "receiver": names[1], "vlan": vlan, "uplink": status.get("uplink")}
    try:
        info = []
        for i, name in enumerate(names):
            extra = {"allow_ips": sender_allow_ips} if sender_allow_ips and i == 0 else {}
            ans = call(sock, "partition.create", name=name, ips=[f"{net4[i + 1]}/24", f"{net6[i + 1]}/64"],
                       vlan=vlan, **extra)
            made.append(name)
            info.append(ans["partition"])
        s, r = info
        storm_n = (max(STORM_FRAMES_MIN, 4 * config.storm_burst(s["storm_limit_pps"]))
                   if s["storm_limit_pps"] else 0)
        facts["storm_limit_pps"] = s["storm_limit_pps"]
        checks, storm, r_barrier, u_barrier = _plan(s, r, storm_n)
        rcap = Capture(r["ifname"], r["netns"])
        caps.append(rcap)
        ucap = None
        uplink = status.get("uplink")
        if uplink and any(link.ifname == uplink for link in netns.links()):
            ucap = Capture(uplink, None)
            caps.append(ucap)
        before = _drops(sock, s["name"])
        feats = netns.run_in(s["netns"], ethtool.query, s["ifname"]).features
        sent = [c for c in checks if c.needs is None or feats.get(c.needs)]

        def send_all() -> None:
            tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            vx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            try:
                tx.bind((s["ifname"], 0))
                vx.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
                vx.bind((s["ifname"], 0))
                for c in sent[1:] + sent[:1]:  # the control goes last of the checks
                    for f in c.frames:
                        if c.vnet is None:
                            tx.send(f)
                        else:
                            vx.send(c.vnet.pack() + f)
                for f in storm:
                    tx.send(f)
                tx.send(r_barrier)
                tx.send(u_barrier)
            finally:
                tx.close()
                vx.close()
        netns.run_in(s["netns"], send_all)
        deadline = time.monotonic() + WAIT_S
        r_ok = rcap.drain_until(r_barrier, deadline)
        u_ok = ucap.drain_until(u_barrier, deadline) if ucap else None
        after = _drops(sock, s["name"])
        ok = True
        for c in checks:
            if c not in sent:
                c.uplink = None
                c.verdict = (f"n/a: the partitions have no {c.needs} (the uplink's offloads: "
                             "vnetshare adapter), their kernel finishes such frames itself")
                continue
            c.receiver = sum(rcap.seen(f) for f in c.frames)
            c.uplink = sum(ucap.seen(f) for f in c.frames) if ucap else None
            c.counted = after.get(c.reason, 0) - before.get(c.reason, 0) if c.reason else 0
            if c.reason is None:
                good = c.receiver == len(c.frames)
                c.verdict = "ok" if good else "FAIL: the legitimate frame did not arrive"
            else:
                leaked = c.receiver or c.uplink
                good = not leaked and c.counted >= len(c.frames)
                c.verdict = ("ok" if good else "LEAK: seen " + (
                    "by the receiver" if c.receiver else "on the uplink") if leaked
                    else f"FAIL: not counted under {c.reason}")
            ok &= good
        rows = [c.row() for c in checks]
        if storm:
            got = sum(rcap.seen(f) for f in storm)
            counted = after.get("storm", 0) - before.get("storm", 0)
            good = 0 < got < len(storm) and counted > 0 and got + counted >= len(storm)
            rows.append({"check": f"broadcast storm ({len(storm)} frames)",
                         "expected": f"limited to {s['storm_limit_pps']}/s", "reason": "storm",
                         "receiver": got, "uplink": sum(ucap.seen(f) for f in storm) if ucap else None,
                         "counted": counted,
                         "verdict": "ok" if good else "FAIL: the storm was not limited"
                         if got >= len(storm) else "FAIL: no storm frame arrived, or none was counted"})
            ok &= good
        apart = _identity_rows(sock, status, s, r, f"{NAME_PREFIX}{hexid}x", made) + _agent_rows(sock, s, r)
        ok &= all(row["verdict"] == "ok" for row in apart)
        rows += apart
        for where, seen in (("receiver", r_ok), ("uplink", u_ok)):
            if seen is None:
                continue
            rows.append({"check": f"capture on the {where} saw its barrier", "expected": "seen",
                         "reason": None, "receiver": None, "uplink": None, "counted": None,
                         "verdict": "ok" if seen else "FAIL: the capture saw nothing: it proves nothing"})
            ok &= bool(seen)
        return ok, rows, facts
    finally:
        for c in caps:
            c.close()
        for name in made:
            try:
                call(sock, "partition.delete", name=name)
            except (DaemonError, OSError):
                pass


def main(sock: str, as_json: bool = False, sender_allow_ips: list[str] | None = None) -> int:
    ok, rows, facts = run(sock, sender_allow_ips)
    if as_json:
        print(json.dumps({"ok": ok, "facts": facts, "checks": rows}, indent=1))
        return 0 if ok else 1

    def cell(v) -> str:
        return "-" if v is None else str(v)
    head = ["CHECK", "EXPECTED", "RECEIVER", "UPLINK", "COUNTED", "VERDICT"]
    table = [[r["check"], r["expected"] + (f" ({r['reason']})" if r.get("reason") else ""),
              cell(r["receiver"]), cell(r["uplink"]), cell(r["counted"]), r["verdict"]] for r in rows]
    widths = [max(len(x[i]) for x in [head] + table) for i in range(len(head))]
    print(f"vnetshare verify: sender {facts['sender']}, receiver {facts['receiver']}, "
          f"VLAN {facts['vlan']}, uplink {facts['uplink'] or '?'}")
    for line in [head] + table:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())
    print("verify: " + ("all checks passed" if ok else "FAILED"))
    return 0 if ok else 1

