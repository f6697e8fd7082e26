"""capture.py - `vnetshare capture`: one partition's frames, live, as pcapng or lines.

    vnetshare capture NAME [-w FILE|-] [-c COUNT] [--direction in|out|both]
                           [--drops] [--snaplen N] [FILTER...]

The daemon's switch mirrors the partition's frames into a capture ring
whose consumer end the daemon passes here (hosting.Daemon._capture); this
process reads the ring and writes pcapng (-w) or prints one line per frame.
The data plane never waits for us: when we fall behind, the ring fills and
the switch counts the frames it could not copy, which we report at the end
("N frames not captured"), as tcpdump reports "dropped by kernel".

Rules:
1. The file is pcapng: one Enhanced Packet Block per frame, with its
   direction in epb_flags (inbound: the partition received it; outbound: it
   sent it) and, for a frame the switch dropped (--drops), the reason as the
   packet's comment "vnetshare-drop: REASON" (the reason is the drop's name
   in `vnetshare stats` and the metrics). tcpdump, Wireshark and scapy
   read it; Wireshark and scapy show the comment.
2. Ctrl-C, -c COUNT, the partition being deleted or the daemon stopping end
   the capture cleanly: the daemon removes the mirror when the connection
   ends, whichever side ends it.
3. Frames the ring holds when we stop are still written (up to COUNT), so a
   capture stopped after a ping has the ping.
4. Pure parts (PcapngWriter, summary()) do no I/O of their own beyond the
   file they are given, and are tested without a daemon.
5. A FILTER (the remaining words, joined, as tcpdump takes them) is
   compiled here, once, by libpcap's compiler (`tcpdump -ddd -y EN10MB`;
   tcpdump is not one of the daemon's dependencies), and the program goes
   in the request; the switch runs it on the mirror copy only and counts
   what it refuses ("N frames filtered out"). It sees the frame as the
   partition does: untagged, so `vlan` never matches (the tag exists only
   on the wire). A bad expression is tcpdump's one line and exit 2; no
   tcpdump is one line saying what to install.
"""
from __future__ import annotations

import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import BinaryIO

from ..core import config
from .client import Stream, daemon_socket
from .clitools import add_intermixed_parser, arg as _arg

LINKTYPE_ETHERNET = 1
DROP_COMMENT = "vnetshare-drop: "
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
_OPT_END, _OPT_COMMENT = 0, 1
_SHB_USERAPPL, _IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL = 4, 2, 3, 9
_EPB_FLAGS = 2
_EPB_INBOUND, _EPB_OUTBOUND = 1, 2


def _option(code: int, value: bytes) -> bytes:
    pad = -len(value) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _block(kind: int, body: bytes) -> bytes:
    n = 12 + len(body)
    return struct.pack("<II", kind, n) + body + struct.pack("<I", n)


class PcapngWriter:
    """pcapng, one section with one Ethernet interface (the partition)."""

    def __init__(self, out: BinaryIO, ifname: str, snaplen: int, description: str = ""):
        self.out = out
        shb = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)
        shb += _option(_SHB_USERAPPL, b"vnetshare capture") + _option(_OPT_END, b"")
        idb = struct.pack("<HHI", LINKTYPE_ETHERNET, 0, snaplen)
        idb += _option(_IF_NAME, ifname.encode())
        if description:
            idb += _option(_IF_DESCRIPTION, description.encode())
        idb += _option(_IF_TSRESOL, bytes([9])) + _option(_OPT_END, b"")  # nanoseconds
        out.write(_block(_SHB, shb) + _block(_IDB, idb))

    def write(self, time_ns: int, data: bytes, orig_len: int, direction: str,
              drop: str | None = None) -> None:
        body = struct.pack("<IIIII", 0, time_ns >> 32, time_ns & 0xFFFFFFFF, len(data), orig_len)
        body += data + b"\0" * (-len(data) % 4)
        flags = _EPB_INBOUND if direction == "in" else _EPB_OUTBOUND
        body += _option(_EPB_FLAGS, struct.pack("<I", flags))
        if drop:
            body += _option(_OPT_COMMENT, (DROP_COMMENT + drop).encode())
        body += _option(_OPT_END, b"")
        self.out.write(_block(_EPB, body))

    def flush(self) -> None:
        self.out.flush()


# -- one line per frame ---------------------------------------------------------

def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


_ICMP4 = {0: "echo reply", 3: "unreachable", 8: "echo request", 11: "time exceeded"}
_ICMP6 = {1: "unreachable", 128: "echo request", 129: "echo reply", 133: "router solicitation",
          134: "router advertisement", 135: "neighbor solicitation", 136: "neighbor advertisement",
          143: "multicast listener report v2"}


def _l4(proto: int, src: str, dst: str, data: bytes, length: int) -> str:
    if proto in (6, 17) and len(data) >= 4:
        sp, dp = struct.unpack("!HH", data[:4])
        name = "TCP" if proto == 6 else "UDP"
        return f"{src}.{sp} > {dst}.{dp}: {name}, length {length}"
    if proto in (1, 58) and data:
        kind = (_ICMP4 if proto == 1 else _ICMP6).get(data[0], f"type {data[0]}")
        return f"{src} > {dst}: ICMP{'6' if proto == 58 else ''} {kind}, length {length}"
    return f"{src} > {dst}: ip-proto-{proto}, length {length}"


def summary(data: bytes) -> str:
    """What the frame is, in the spirit of tcpdump -e: MACs, then L3/L4."""
    if len(data) < 14:
        return f"truncated frame, {len(data)} bytes"
    dst, src, etype = data[:6], data[6:12], struct.unpack("!H", data[12:14])[0]
    head = f"{_mac(src)} > {_mac(dst)}"
    l3 = data[14:]
    if etype == 0x8100 and len(l3) >= 4:
        vid = struct.unpack("!H", l3[:2])[0] & 0xFFF
        etype = struct.unpack("!H", l3[2:4])[0]
        head += f", vlan {vid}"
        l3 = l3[4:]
    try:
        if etype == 0x0800 and len(l3) >= 20:
            ihl = (l3[0] & 0xF) * 4
            length = struct.unpack("!H", l3[2:4])[0]
            src_ip = socket.inet_ntop(socket.AF_INET, l3[12:16])
            dst_ip = socket.inet_ntop(socket.AF_INET, l3[16:20])
            return f"{head}, IPv4 {_l4(l3[9], src_ip, dst_ip, l3[ihl:], length - ihl)}"
        if etype == 0x86DD and len(l3) >= 40:
            length = struct.unpack("!H", l3[4:6])[0]
            src_ip = socket.inet_ntop(socket.AF_INET6, l3[8:24])
            dst_ip = socket.inet_ntop(socket.AF_INET6, l3[24:40])
            return f"{head}, IPv6 {_l4(l3[6], src_ip, dst_ip, l3[40:], length)}"
        if etype == 0x0806 and len(l3) >= 28:
            op = struct.unpack("!H", l3[6:8])[0]
            spa = socket.inet_ntop(socket.AF_INET, l3[14:18])
            tpa = socket.inet_ntop(socket.AF_INET, l3[24:28])
            if op == 1:
                return f"{head}, ARP who-has {tpa} tell {spa}"
            if op == 2:
                return f"{head}, ARP reply {spa} is-at {_mac(l3[8:14])}"
            return f"{head}, ARP op {op}"
    except (OSError, ValueError):
        pass
    return f"{head}, ethertype {etype:#06x}, length {len(data)}"


def line(time_ns: int, direction: str, data: bytes, orig_len: int, drop: str | None) -> str:
    """One printed line: local time, direction, summary, and the drop reason."""
    t = time.strftime("%H:%M:%S", time.localtime(time_ns // 1_000_000_000))
    text = f"{t}.{time_ns % 1_000_000_000 // 1000:06d} {direction:<3} {summary(data)}"
    if orig_len > len(data):
        text += f" [{len(data)} of {orig_len} bytes]"
    if drop:
        text += f"  DROPPED: {drop}"
    return text


# -- the filter -----------------------------------------------------------------

def compile_filter(expr: str, tcpdump: str = "tcpdump") -> list[list[int]]:
    """@expr, a tcpdump filter expression, as classic BPF for Ethernet
    frames: [[code, jt, jf, k], ...] (rule 5). ConfigError with tcpdump's
    message for a bad expression; Failure when tcpdump is missing."""
    from .exits import Failure
    from ..core.errors import ConfigError

    path = shutil.which(tcpdump)
    if path is None:
        raise Failure("EOPNOTSUPP", "a capture filter is compiled by tcpdump, which is not installed "
                                    "(install the tcpdump package: apt-get install tcpdump)")
    p = subprocess.run([path, "-ddd", "-y", "EN10MB", "--", expr], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        why = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("reading from")]
        msg = why[-1].removeprefix("tcpdump: ") if why else f"tcpdump exited with {p.returncode}"
        raise ConfigError(f"capture filter {expr!r}: {msg}")
    try:
        words = [[int(w) for w in ln.split()] for ln in p.stdout.splitlines() if ln.strip()]
        n = words[0][0]
        prog = words[1:]
        if len(prog) != n or any(len(i) != 4 for i in prog):
            raise ValueError
    except (ValueError, IndexError):
        raise ConfigError(f"capture filter {expr!r}: tcpdump -ddd printed no program: "
                          f"{p.stdout[:80]!r}") from None
    return prog


# -- the command ----------------------------------------------------------------

def add_parser(sub) -> None:
    c = add_intermixed_parser(sub, "capture", help="capture a partition's frames live (pcapng, or lines)",
                       description="Mirror one partition's frames from the switch, with no restart "
                                   "and nothing to pay when no capture runs. Root only.")
    c.add_argument("name", type=_arg(config.partition_name), metavar="NAME", help="the partition to capture")
    c.add_argument("-w", dest="write", metavar="FILE|-",
                   help="write pcapng to FILE, or to standard output with -w - "
                        "(vnetshare capture NAME -w - | tcpdump -r -); default: print one line a frame")
    c.add_argument("-c", dest="count", type=_arg(_count), metavar="COUNT",
                   help="stop after COUNT frames")
    c.add_argument("--direction", default="both", type=_arg(config.capture_direction),
                   metavar="in|out|both", help="frames it received (in), sent (out), or both (default)")
    c.add_argument("--drops", action="store_true",
                   help="capture the frames the switch dropped for it instead, each with its reason")
    c.add_argument("--snaplen", "-s", default=0, type=_arg(config.snaplen), metavar="N",
                   help=f"bytes kept of each frame (default and 0: {config.SNAPLEN_MAX}, the whole frame)")
    c.add_argument("filter", nargs="*", default=[], metavar="FILTER",
                   help="a tcpdump filter expression (pcap-filter(7); its words are joined, as tcpdump "
                        "does), e.g. 'icmp' or 'tcp port 80': only matching frames are captured; "
                        "compiled by tcpdump, run by the switch on the copy only")


def _count(value: str) -> int:
    from ..core.errors import ConfigError

    try:
        n = int(value, 10)
    except ValueError:
        raise ConfigError(f"count {value!r}: not a number") from None
    if n < 1:
        raise ConfigError(f"count {value!r}: must be 1 or more")
    return n


class _Stop(Exception):
    pass


def main(args) -> int:
    from ..dataplane.ring import CONSUMER, Ring, RingEnd
    from ..dataplane.switch import read_capture

    path = daemon_socket(args.socket)
    expr = " ".join(args.filter).strip()
    bpf = compile_filter(expr) if expr else None
    out_file: BinaryIO | None = None
    if args.write == "-":
        out_file = sys.stdout.buffer
    elif args.write:
        try:
            out_file = open(args.write, "wb")
        except OSError as e:
            raise OSError(e.errno, f"cannot write {args.write}: {e.strerror}") from None
    stream = Stream(path, "capture", max_fds=3, name=args.name, direction=args.direction,
                    drops=args.drops, snaplen=args.snaplen, filter=bpf, filter_text=expr or None)
    captured = 0
    final: dict = {}
    old_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if len(stream.fds) != 3:
            raise OSError(0, f"the daemon passed {len(stream.fds)} descriptors, not 3")
        info = stream.answer["capture"]
        ring = Ring.attach(RingEnd(*stream.fds), CONSUMER, info["ring_size"])
        writer = None
        if out_file is not None:
            writer = PcapngWriter(out_file, f"vnetshare:{args.name}", info["snaplen"],
                                  f"vnetshare partition {args.name}, direction {args.direction}"
                                  + (", drops" if args.drops else ""))
            writer.flush()
        what = "dropped frames" if args.drops else "frames"
        print(f"capturing {what} of partition {args.name} ({args.direction})"
              + (f" matching {expr!r}" if expr else "") + ", Ctrl-C to stop",
              file=sys.stderr, flush=True)

        def drain() -> int:
            """Write what the ring holds. Ctrl-C and SIGTERM wait until it is
            done: a frame taken from the ring is always written (a signal
            between recv() and write() lost it)."""
            nonlocal captured
            n = 0
            held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            try:
                while args.count is None or captured < args.count:
                    rec = ring.recv()
                    if rec is None:
                        break
                    f = read_capture(rec)
                    if writer is not None:
                        writer.write(f.time_ns, f.data, f.orig_len, f.direction, f.drop)
                    else:
                        print(line(f.time_ns, f.direction, f.data, f.orig_len, f.drop))
                    captured += 1
                    n += 1
                if n:
                    (writer or sys.stdout).flush()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
            return n

        daemon_done = False
        try:
            while args.count is None or captured < args.count:
                if drain():
                    continue
                if ring.arm():
                    try:
                        ready, _, _ = select.select([ring.fileno(), stream.sock], [], [], 1.0)
                    finally:
                        ring.disarm()
                    if stream.sock in ready:  # the daemon ends it (partition deleted, daemon stops)
                        daemon_done = True
                        break
        except KeyboardInterrupt:
            pass
        # rule 2/3: tell the daemon, take its counters, write what the ring still holds
        try:
            if not daemon_done:
                stream.sock.shutdown(socket.SHUT_WR)
            stream.sock.settimeout(5.0)
            for msg in stream.messages():
                if "done" in msg:
                    final = msg["done"]
                    break
        except (OSError, ValueError):
            pass
        try:
            drain()
        except KeyboardInterrupt:
            pass
        ring.close()
    except BrokenPipeError:  # `| head`: the reader left; the daemon ends the capture
        return 0
    finally:
        signal.signal(signal.SIGTERM, old_term)
        stream.close()
        if out_file is not None and out_file is not sys.stdout.buffer:
            out_file.close()
    print(f"{captured} frame{'s' if captured != 1 else ''} captured", file=sys.stderr)
    filtered = final.get("filtered", 0)
    if expr:
        print(f"{filtered} frame{'s' if filtered != 1 else ''} filtered out", file=sys.stderr)
    lost = final.get("lost", 0)
    if lost:
        print(f"{lost} frame{'s' if lost != 1 else ''} not captured (the reader fell behind)", file=sys.stderr)
    if final.get("reason") == "partition deleted":
        print(f"partition {args.name} was deleted", file=sys.stderr)
    elif final.get("reason") == "daemon stopping":
        print("the daemon stopped", file=sys.stderr)
    elif not final:
        print("the daemon ended the capture", file=sys.stderr)
    return 0
