#!/usr/bin/env python3
"""callgrind_switch.py - instructions the switch spends per frame, for A/B of switch code.

Wall-clock figures on this shared 2-vCPU machine move by 10-20 % between
runs; instruction counts do not. This drives native/switch.c in-process
(no agents, no TAPs: the test plays each partition's ring ends itself)
and has callgrind count only what sw_run() executes (--toggle-collect),
so two builds of the switch compare exactly.

Workloads (N frames of 64-byte UDP each, written to port 1's A2H ring):
  unicast   port 1 -> port 2 (known MAC): the lookup and one delivery
  flood     port 1 -> broadcast: the ports-side flood (ports 2, 3 and the wire)
  wire      the LAN sends N broadcasts: the wire-side flood (ports 1, 2, 3)
  group     port 1 -> 239.1.2.3, a group nobody joined: the snooping
            lookup, then the ports-side flood (no querier heard)

Run as root inside the sandbox, with the build under test importable:
  ./scripts/sandbox.sh python3 scripts/callgrind_switch.py [--frames N] [WORKLOAD ...]
It prints one line per workload: instructions in sw_run per frame. The
few hundred instructions of setup, stats polls and idle rounds are spread
over N frames (20,000 by default: under 1 % of a frame's cost).
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

WORKLOADS = ("unicast", "flood", "wire", "group")
MACS = {1: "02:00:00:00:00:01", 2: "02:00:00:00:00:02", 3: "02:00:00:00:00:03"}
LAN_MAC = "02:00:00:00:00:64"
RING_SIZE = 64 << 20        # 200,000 frames of 110 bytes fit its flood share


def _udp64(src_mac: str, dst_mac: str, dst_ip: str = "10.9.0.2") -> bytes:
    """A 64-byte UDP datagram 10.9.0.1 -> @dst_ip in an Ethernet frame
    (scapy would do; the venv a bench builds may not have it)."""
    payload = bytes(64)
    udp = struct.pack("!HHHH", 9, 9, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     socket.inet_aton("10.9.0.1"), socket.inet_aton(dst_ip))
    words = sum(struct.unpack("!10H", ip))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    ip = ip[:10] + struct.pack("!H", ~words & 0xFFFF) + ip[12:]
    mac = lambda m: bytes.fromhex(m.replace(":", ""))
    return mac(dst_mac) + mac(src_mac) + b"\x08\x00" + ip + udp


def _run(workload: str, frames: int) -> None:
    """The child under valgrind: one switch, three ports, @frames frames."""
    from vnetshare import CONSUMER, PRODUCER, Ring, create_fds
    from vnetshare.dataplane.switch import Switch

    subprocess.run(["ip", "link", "add", "cg0", "type", "veth", "peer", "name", "cglan"], check=True)
    sw, rings = None, {}
    try:
        subprocess.run(["ip", "link", "set", "cglan", "address", LAN_MAC], check=True)
        for dev in ("cg0", "cglan"):
            subprocess.run(["ip", "link", "set", dev, "up"], check=True)
        sw = Switch("cg0")
        sw.start()
        for port in (1, 2, 3):
            # room for every copy within the flood share (half a ring):
            # nothing drains these rings while the frames go through
            a2h, h2a = create_fds(), create_fds(RING_SIZE)
            sw.add_port(port, MACS[port], a2h, h2a)
            rings[port] = (Ring.attach(a2h, PRODUCER), Ring.attach(h2a, CONSUMER))
        if workload == "wire":
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            s.bind(("cglan", 0))
            frame = _udp64(LAN_MAC, "ff:ff:ff:ff:ff:ff")
            for i in range(frames):
                while True:
                    try:
                        s.send(frame)
                        break
                    except BlockingIOError:
                        time.sleep(0.001)
                if i % 256 == 255:      # the uplink's socket buffer: let it drain
                    _wait(sw, lambda: sw.uplink_stats()["rx_frames"] >= i + 1 - 1024)
            receiver = 1
        else:
            if workload == "group":
                frame = _udp64(MACS[1], "01:00:5e:01:02:03", "239.1.2.3")
            else:
                frame = _udp64(MACS[1], MACS[2] if workload == "unicast" else "ff:ff:ff:ff:ff:ff")
            prod = rings[1][0]
            for _ in range(frames):
                while not prod.send(frame, flush=False):
                    prod.flush()
                    time.sleep(0.01)
            prod.flush()
            receiver = 2
        _wait(sw, lambda: sw.port_stats(receiver)["rx_frames"] >= frames)
    finally:
        if sw is not None:
            sw.close()
        for prod, cons in rings.values():
            prod.close()
            cons.close()
        subprocess.run(["ip", "link", "del", "cg0"], check=False)


def _wait(sw, cond, timeout: float = 600.0) -> None:
    """Until cond() (it reads @sw's counters), or the switch's error."""
    end = time.monotonic() + timeout
    while sw.running and not cond():
        if time.monotonic() > end:
            raise SystemExit("callgrind_switch: the frames did not arrive in time")
        time.sleep(0.05)
    if not sw.running:
        raise SystemExit(f"callgrind_switch: the switch stopped: {sw.error}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=20000, help="per workload (at most 200,000)")
    ap.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    ap.add_argument("workloads", nargs="*", metavar="WORKLOAD", help=" | ".join(WORKLOADS))
    args = ap.parse_args()
    if not 1 <= args.frames <= 200000:
        ap.error(f"--frames {args.frames}: must be 1 to 200000")
    for w in args.workloads:
        if w not in WORKLOADS:
            ap.error(f"workload {w!r}: must be one of {', '.join(WORKLOADS)}")
    if args.child:
        _run(args.child, args.frames)
        return 0
    for w in args.workloads or WORKLOADS:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "cg.out")
            subprocess.run(["valgrind", "--tool=callgrind", "--toggle-collect=sw_run",
                            f"--callgrind-out-file={out}", sys.executable, __file__,
                            "--frames", str(args.frames), "--child", w],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(out) as f:
                m = re.search(r"^summary:\s+(\d+)", f.read(), re.M)
            total = int(m.group(1))
            print(f"{w:8} {total / args.frames:8.1f} instructions per frame in sw_run "
                  f"({total} for {args.frames} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
