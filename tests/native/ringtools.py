"""ringtools.py - helpers for the ring tests: records, a hostile peer, forks.

The layout constants below are the ABI of native/ring_abi.h written out by
hand on purpose: a partition agent built elsewhere sees exactly these offsets,
so the tests check the contract, not whatever the build happens to say.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import time
import traceback
from dataclasses import dataclass

from vnetshare.dataplane._native import ffi, lib

# --- the shared layout (ring_abi.h) ------------------------------------------
MAGIC = 0x31474E4952534E56  # "VNSRING1"
OFF_MAGIC = 0
OFF_VERSION = 8
OFF_HDR_SIZE = 12
OFF_DATA_SIZE = 16
OFF_PROD = 128
OFF_PROD_WAITING = 136
OFF_CONS = 256
OFF_CONS_WAITING = 264
DATA_OFF = 4096

ALIGN = 64
REC_HDR = struct.Struct("<IHHQ")  # len, flags, vnet_len, reserved
VNET = struct.Struct("<BBHHHHH")  # flags, gso_type, hdr_len, gso_size,
#                                   csum_start, csum_offset, num_buffers
REC_HDR_LEN = REC_HDR.size  # 16
VNET_LEN = VNET.size  # 12
ETH_HLEN = 14
FRAME_MAX = lib.RING_FRAME_MAX
LEN_MAX = lib.RING_LEN_MAX
REC_PAD = 0x0001

VNET_F_NEEDS_CSUM = 1
VNET_F_DATA_VALID = 2
GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_UDP_L4, GSO_ECN = 0, 1, 3, 4, 5, 0x80

assert REC_HDR_LEN == 16 and VNET_LEN == lib.RING_VNET_HDR_LEN == 12
assert DATA_OFF == lib.RING_CTRL_SIZE and ALIGN == lib.RING_ALIGN


def align64(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def rec_size(frame_len: int) -> int:
    """Ring bytes a record carrying a frame of @frame_len bytes occupies."""
    return align64(REC_HDR_LEN + VNET_LEN + frame_len)


REC_MAX = rec_size(FRAME_MAX)


def vnet_hdr(flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0,
             csum_offset=0, num_buffers=0) -> bytes:
    return VNET.pack(flags, gso_type, hdr_len, gso_size, csum_start,
                     csum_offset, num_buffers)


def frame(n: int, seed: int = 0) -> bytes:
    """A frame of @n bytes: Ethernet header, then bytes that depend on @seed
    and on the offset, so a misplaced or mixed-up byte shows."""
    assert n >= ETH_HLEN
    eth = b"\xff" * 6 + bytes([0x02, 0, 0, 0, seed >> 8 & 0xFF, seed & 0xFF]) + b"\x88\xb5"
    body = bytes((seed * 31 + i) & 0xFF for i in range(min(n - ETH_HLEN, 512)))
    if n - ETH_HLEN > 512:
        body = (body * ((n - ETH_HLEN) // 512 + 1))[: n - ETH_HLEN]
        # make every 512-byte block differ, so a block in the wrong place shows
        body = bytearray(body)
        for blk in range(0, len(body), 512):
            body[blk] = (blk >> 9) & 0xFF
        body = bytes(body)
    return eth + body


def record(frame_bytes: bytes, vnet: bytes = bytes(VNET_LEN), *, length=None,
           flags=0, vnet_len=VNET_LEN) -> bytes:
    """Bytes of one record as a producer lays it out (header, vnet, frame),
    with any header field overridable to make a bad one."""
    if length is None:
        length = len(vnet) + len(frame_bytes)
    return REC_HDR.pack(length, flags, vnet_len, 0) + vnet + frame_bytes


# --- a peer that writes the shared memory directly -----------------------------
def _position(off: int) -> property:
    """RawRing's view of a ring position in the control page, read and
    written raw (a write wraps as the C side's u64 would)."""
    return property(lambda self: self.u64(off), lambda self, pos: self.put_u64(off, pos))


class RawRing:
    """The memfd of a ring, read and written with pread/pwrite: what a hostile
    (or just buggy) partition agent can do to it."""

    def __init__(self, memfd: int, size: int):
        self.fd = memfd
        self.size = size
        self.mask = size - 1

    def read(self, off: int, n: int) -> bytes:
        return os.pread(self.fd, n, off)

    def write(self, off: int, data: bytes) -> None:
        assert os.pwrite(self.fd, data, off) == len(data)

    def u64(self, off: int) -> int:
        return struct.unpack("<Q", self.read(off, 8))[0]

    def u32(self, off: int) -> int:
        return struct.unpack("<I", self.read(off, 4))[0]

    def put_u64(self, off: int, value: int) -> None:
        """Write @value as a u64 at @off, wrapped as the C side's u64 would."""
        self.write(off, struct.pack("<Q", value & (2**64 - 1)))

    prod = _position(OFF_PROD)
    cons = _position(OFF_CONS)

    def write_data(self, pos: int, data: bytes) -> None:
        """Write @data at ring position @pos (masked), no wrap."""
        off = pos & self.mask
        assert off + len(data) <= self.size, "test bug: write crosses the end"
        self.write(DATA_OFF + off, data)

    def read_data(self, pos: int, n: int) -> bytes:
        off = pos & self.mask
        return self.read(DATA_OFF + off, n)

    def data_area(self) -> bytes:
        return self.read(DATA_OFF, self.size)

    def put(self, pos: int, rec: bytes) -> int:
        """Write record bytes at @pos; return the position after it."""
        self.write_data(pos, rec)
        return pos + align64(len(rec)) if len(rec) >= REC_HDR_LEN else pos + ALIGN

    def put_frame(self, pos: int, frame_bytes: bytes, vnet: bytes = bytes(VNET_LEN)) -> int:
        return self.put(pos, record(frame_bytes, vnet))

    def put_pad(self, pos: int) -> int:
        off = pos & self.mask
        self.write_data(pos, REC_HDR.pack(self.size - off - REC_HDR_LEN, REC_PAD, 0, 0))
        return pos + self.size - off


# --- validation, as the consumer must apply it (native/ring.h, "Trust") --------
def vnet_ok(v: bytes, frame_len: int) -> bool:
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, _ = VNET.unpack(v)
    gso = gso_type & ~GSO_ECN
    if flags & ~(VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID):
        return False
    if gso not in (GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4):
        return False
    if gso == GSO_NONE and gso_type & GSO_ECN:
        return False
    if gso != GSO_NONE and gso_size == 0:
        return False
    if hdr_len > frame_len:
        return False
    if flags & VNET_F_NEEDS_CSUM and csum_start + csum_offset + 2 > frame_len:
        return False
    return True


# --- the bench loops' frames (ring_bench.h) -----------------------------------
_PATTERN = bytes(range(256)) * (FRAME_MAX // 256 + 2)
BENCH_ETH = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01\x88\xb5"


def bench_frame(seq: int, n: int) -> bytes:
    """Frame @seq of @n bytes as bench_produce() writes it with BENCH_VERIFY."""
    start = (seq + 22) & 0xFF
    return BENCH_ETH + struct.pack("<Q", seq) + _PATTERN[start:start + n - 22]


def result_dict(res) -> dict:
    return {k: getattr(res, k) for k in ("records", "bytes", "elapsed_ns", "bad", "first_bad")}


def sizes_array(sizes):
    return ffi.new("uint32_t[]", list(sizes))


# --- running one side in a child process --------------------------------------
class ChildFailed(AssertionError):
    pass


@dataclass
class Child:
    """A forked child running one function; its return value comes back
    pickled through a pipe. The child always leaves through os._exit."""

    pid: int
    rfd: int
    deadline: float
    done: bool = False
    status: int | None = None

    @classmethod
    def start(cls, fn, *args, timeout: float = 30.0) -> "Child":
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                os.close(rfd)
                try:
                    out = ("ok", fn(*args))
                except BaseException:
                    out = ("err", traceback.format_exc())
                data = pickle.dumps(out)
                view = memoryview(data)
                while view:
                    view = view[os.write(wfd, view):]
                code = 0
            finally:
                os._exit(code)
        os.close(wfd)
        return cls(pid, rfd, time.monotonic() + timeout)

    def join(self):
        """Wait for the child's result; kill it if it overruns its time."""
        chunks = []
        grace = 5.0
        try:
            while True:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    grace = 0.0
                    raise ChildFailed(f"child {self.pid} did not finish in time")
                r, _, _ = select.select([self.rfd], [], [], left)
                if not r:
                    continue
                chunk = os.read(self.rfd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            self.reap(grace)
        if not chunks:
            raise ChildFailed(f"child {self.pid} died without a result "
                              f"(wait status {self.status:#x})")
        status, value = pickle.loads(b"".join(chunks))
        if status != "ok":
            raise ChildFailed(f"child {self.pid} raised:\n{value}")
        return value

    def reap(self, grace: float = 5.0) -> None:
        """Collect the child; kill it if it has not exited within @grace s."""
        if self.done:
            return
        self.done = True
        os.close(self.rfd)
        end = time.monotonic() + grace
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                return
            if time.monotonic() > end:
                # stuck: the parent is failing or gave up; it must not linger
                os.kill(self.pid, signal.SIGKILL)
                _, self.status = os.waitpid(self.pid, 0)
                return
            time.sleep(0.001)


def in_child(fn, *args, timeout: float = 30.0):
    """Run fn(*args) in a forked child and return its (picklable) result."""
    return Child.start(fn, *args, timeout=timeout).join()
