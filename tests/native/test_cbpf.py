"""The capture filter's classic BPF interpreter (native/cbpf.c), through
vnetshare.dataplane.switch.check_filter() and run_filter().

The validator refuses each class of bad program and names the instruction
(next to a good program it accepts); the interpreter agrees with libpcap's
own (tcpdump -r FILE EXPR, which runs libpcap's bpf_filter()) on a set of
frames for the programs tcpdump -ddd compiles, whole and split as the
switch hands frames over; and with the kernel's (the same program attached
with SO_ATTACH_FILTER to an AF_PACKET socket on a veth of the sandbox).
Only that last test needs root.
"""
import ctypes
import select
import socket
import struct
import subprocess
import time

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from vnetshare.core.errors import ConfigError
from vnetshare.dataplane.switch import check_filter, run_filter
from vnetshare.frontends.capture import compile_filter

RET_MATCH, RET_NONE = (6, 0, 0, 262144), (6, 0, 0, 0)
LD_ETHERTYPE = (0x28, 0, 0, 12)


@pytest.mark.parametrize("prog, index, reason", [
    ([LD_ETHERTYPE, (0x15, 0, 1, 0x800), RET_MATCH, (0x99, 0, 0, 0), RET_NONE], 3, "unknown opcode"),
    ([LD_ETHERTYPE, (0x15, 0, 3, 0x800), RET_MATCH, RET_NONE], 1, "jump out of range"),
    ([LD_ETHERTYPE, (0x05, 0, 0, 2), RET_MATCH, RET_NONE], 1, "jump out of range"),   # JA past the end
    ([(0x02, 0, 0, 16), RET_MATCH], 0, "scratch memory index out of range"),           # ST M[16]
    ([(0x61, 0, 0, 99), RET_MATCH], 0, "scratch memory index out of range"),           # LDX M[99]
    ([LD_ETHERTYPE, (0x34, 0, 0, 0), RET_MATCH], 1, "division by zero"),               # A /= 0
    ([LD_ETHERTYPE, (0x94, 0, 0, 0), RET_MATCH], 1, "division by zero"),               # A %= 0
    ([LD_ETHERTYPE, (0x64, 0, 0, 32), RET_MATCH], 1, "shift by 32 or more"),
    ([LD_ETHERTYPE, (0x87, 0, 0, 0)], 1, "does not end in a return"),
    ([(0x0e, 0, 0, 0)], 0, "unknown opcode"),                                          # RET X: the kernel refuses it
])
def test_the_validator_refuses_each_class_naming_the_instruction(prog, index, reason):
    with pytest.raises(ConfigError) as e:
        check_filter(prog)
    assert f"instruction {index} " in str(e.value) and reason in str(e.value), str(e.value)
    # positive control: the same program, fixed, is accepted
    check_filter([LD_ETHERTYPE, (0x15, 0, 1, 0x800), RET_MATCH, RET_NONE])


@pytest.mark.parametrize("n", [0, 4097])
def test_the_validator_refuses_a_program_of_no_or_too_many_instructions(n):
    with pytest.raises(ConfigError, match=f"{n} instructions: must be 1 to 4096"):
        check_filter([RET_MATCH] * n)
    check_filter([(0x87, 0, 0, 0)] * 4095 + [RET_MATCH])  # 4096 is the most


def _frames() -> list[bytes]:
    mac = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    v4 = dict(src="10.0.0.1", dst="10.0.0.2")
    v6 = dict(src="fd00::1", dst="fd00::2")
    pkts = [
        Ether(**mac) / IP(**v4) / ICMP(),
        Ether(**mac) / IP(**v4) / ICMP(type=0) / (b"x" * 1400),
        Ether(**mac) / IP(**v4) / UDP(sport=1234, dport=53) / b"q",
        Ether(**mac) / IP(**v4) / UDP(sport=5000, dport=80) / b"u",
        Ether(**mac) / IP(**v4) / TCP(sport=80, dport=40000, flags="SA"),
        Ether(**mac) / IP(**v4) / TCP(sport=40000, dport=80, flags="S") / (b"y" * 1400),  # 1514 B
        Ether(**mac) / IP(**v4) / TCP(sport=40000, dport=443, flags="A"),
        Ether(**mac) / IP(options=b"\x01" * 8, **v4) / TCP(sport=1, dport=80),          # IHL 7
        Ether(**mac) / IP(frag=100, proto=6, **v4) / (b"\x00\x50" * 10),                 # non-first fragment
        Ether(**mac) / IPv6(**v6) / TCP(sport=1, dport=80),
        Ether(**mac) / IPv6(**v6) / UDP(sport=1, dport=53),
        Ether(**mac) / IPv6(**v6) / b"\x80\x00\x00\x00",
        Ether(**mac) / ARP(psrc="10.0.0.1", pdst="10.0.0.2"),
        Ether(**mac) / Dot1Q(vlan=10) / IP(**v4) / UDP(sport=1, dport=53),
        Ether(**mac) / Dot1Q(vlan=20) / IP(**v4) / ICMP(),
        Ether(src="02:00:00:00:00:09", dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / (b"z" * 50),
    ]
    frames = [bytes(p) for p in pkts]
    # cut short: a filter reads past them (a load out of bounds: no match)
    frames += [frames[5][:40], frames[5][:14 + 20 + 1], frames[9][:60], frames[0][:13], b""]
    return frames


def _pcap(frames: list[bytes]) -> bytes:
    """A pcap file (Ethernet) of @frames, each whole (caplen = len)."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", i, 0, len(f), len(f)) + f
    return out


def _unpcap(data: bytes) -> list[bytes]:
    frames, off = [], 24
    while off < len(data):
        caplen = struct.unpack_from("<IIII", data, off)[2]
        frames.append(data[off + 16:off + 16 + caplen])
        off += 16 + caplen
    return frames


EXPRESSIONS = [
    "icmp", "tcp port 80", "udp and not port 53", "vlan 10", "vlan and icmp", "ip6 and tcp", "arp",
    "ether host 02:00:00:00:00:09", "ip[6:2] & 0x1fff != 0", "tcp[tcpflags] & tcp-syn != 0",
    "greater 200", "less 60", "net 10.0.0.0/8 and (tcp or udp)", "ether broadcast",
    "tcp[2:2] > 1000 and tcp[2:2] % 3 = 1",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_the_interpreter_agrees_with_libpcap(expr, tmp_path):
    frames = _frames()
    src, out = tmp_path / "in.pcap", tmp_path / "out.pcap"
    src.write_bytes(_pcap(frames))
    td = subprocess.run(["tcpdump", "-r", str(src), "-w", str(out), expr], capture_output=True, text=True,
                        timeout=30)
    assert td.returncode == 0, td.stderr
    libpcap = _unpcap(out.read_bytes())
    prog = check_filter(compile_filter(expr))
    ours = [f for f in frames if run_filter(prog, f)]
    assert ours == libpcap, (expr, len(ours), len(libpcap))
    assert 0 < len(ours) < len(frames) or expr in ("less 60",), (expr, len(ours))  # each sorts them


def test_a_frame_split_anywhere_gets_the_same_answer():
    frames = _frames()
    for expr in ("tcp port 80", "vlan 10", "ip[6:2] & 0x1fff != 0"):
        prog = check_filter(compile_filter(expr))
        for f in frames:
            whole = run_filter(prog, f)
            assert {run_filter(prog, f, at) for at in range(len(f) + 1)} == {whole}, (expr, f[:20])


def test_a_load_past_the_frame_is_no_match_not_a_read():
    prog = check_filter([(0x20, 0, 0, 10), RET_MATCH])          # A = P[10:4]
    assert run_filter(prog, bytes(14)) == 262144
    assert run_filter(prog, bytes(13)) == 0 and run_filter(prog, bytes(13), 5) == 0
    ind = check_filter([(0x01, 0, 0, 0xFFFFFFF0), (0x50, 0, 0, 0x20), RET_MATCH])  # P[X + 0x20], wraps to 0x10
    assert run_filter(ind, bytes(17)) == 262144 and run_filter(ind, bytes(16)) == 0


SO_ATTACH_FILTER, ETH_P_ALL, PACKET_OUTGOING = 26, 0x0003, 4


def _attach(sock: socket.socket, prog: list) -> ctypes.Array:
    """SO_ATTACH_FILTER @prog on @sock; returns the buffer, to keep alive."""
    buf = (ctypes.c_ubyte * (8 * len(prog)))()
    for i, (code, jt, jf, k) in enumerate(prog):
        struct.pack_into("=HBBI", buf, 8 * i, code, jt, jf, k)
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    return buf


@pytest.mark.root
def test_the_interpreter_agrees_with_the_kernel_on_a_veth():
    # the kernel takes an 802.1Q tag out of a received frame before a socket
    # filter runs (libpcap compiles `vlan` specially for a live Linux socket):
    # tagged frames and `vlan` expressions are libpcap's test above
    frames = [f for f in _frames() if len(f) >= 14 and f[12:14] != b"\x81\x00"]
    exprs = [e for e in EXPRESSIONS if "vlan" not in e]
    subprocess.run(["ip", "link", "add", "cbpfa", "type", "veth", "peer", "name", "cbpfb"], check=True)
    try:
        for dev in ("cbpfa", "cbpfb"):
            with open(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6", "w") as f:
                f.write("1")  # no router solicitations of their own
            subprocess.run(["ip", "link", "set", dev, "up"], check=True)
        tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        tx.bind(("cbpfa", 0))
        for expr in exprs:
            bpf = compile_filter(expr)
            # filtered: created with no protocol (it gets nothing), filter on, then bound
            filt = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            keep = _attach(filt, bpf)
            filt.bind(("cbpfb", ETH_P_ALL))
            every = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            every.bind(("cbpfb", ETH_P_ALL))
            try:
                for f in frames:
                    tx.send(f)
                # the unfiltered socket seeing the last frame: both queues are complete
                seen, deadline = [], time.monotonic() + 10
                while len([f for f in seen if f in frames]) < len(frames):
                    assert time.monotonic() < deadline, (expr, len(seen))
                    if select.select([every], [], [], 0.5)[0]:
                        data, addr = every.recvfrom(65536)
                        if addr[2] != PACKET_OUTGOING:
                            seen.append(data)
                kernel = []
                while select.select([filt], [], [], 0)[0]:
                    data, addr = filt.recvfrom(65536)
                    if addr[2] != PACKET_OUTGOING and data in frames:
                        kernel.append(data)
            finally:
                filt.close()
                every.close()
                del keep
            prog = check_filter(bpf)
            ours = [f for f in frames if run_filter(prog, f)]
            assert ours == kernel, (expr, len(ours), len(kernel))
            assert 0 < len(ours) < len(frames) or expr == "less 60", (expr, len(ours))
        tx.close()
    finally:
        subprocess.run(["ip", "link", "del", "cbpfa"], check=False)
