"""ring_read_fd / ring_write_fd: a message descriptor straight into records and back.

A SOCK_SEQPACKET socketpair stands in for the TAP (one frame per read or
write, led by its 12-byte vnet header); the TAP itself is tested as root in
tests/netns.
"""
import errno
import fcntl
import os
import socket

import pytest

from vnetshare.dataplane._native import ffi, lib

from ringtools import VNET_LEN, frame, vnet_hdr

SIZE = 1 << 20


@pytest.fixture
def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (a, b):
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    yield a, b
    a.close()
    b.close()


def read_fd(ring, fd, max_=64):
    n = ffi.new("unsigned int *")
    rc = lib.ring_read_fd(ring.handle, fd, max_, n)
    return rc, n[0]


def write_fd(ring, fd, max_=64):
    n = ffi.new("unsigned int *")
    rc = lib.ring_write_fd(ring.handle, fd, max_, n)
    return rc, n[0]


def test_read_fd_lands_each_message_as_one_record(rings, pair):
    prod, cons = rings.pair(SIZE)
    a, b = pair
    msgs = [vnet_hdr(gso_type=1, gso_size=1448, hdr_len=54) + frame(65535, 1)] + \
           [bytes(VNET_LEN) + frame(n, n) for n in (60, 1514, 9000)]
    for m in msgs:
        a.send(m)
    rc, n = read_fd(prod, b.fileno())
    assert (rc, n) == (0, 4)  # ran dry
    prod.flush()
    got = [cons.recv_record() for _ in msgs]
    assert [v + f for v, f in got] == msgs
    assert cons.recv() is None


def test_read_fd_stops_at_max_and_when_full(rings, pair):
    prod, cons = rings.pair(256 * 1024)
    a, b = pair
    for i in range(8):
        a.send(bytes(VNET_LEN) + frame(60, i))
    assert read_fd(prod, b.fileno(), max_=3) == (-errno.EAGAIN, 3)
    # the ring reserves room for the largest record per read: a 256 KiB ring
    # takes a few before it is full
    rc, n = read_fd(prod, b.fileno(), max_=64)
    assert rc in (0, -errno.ENOBUFS) and n >= 1
    prod.flush()
    assert len([r for r in iter(cons.recv, None)]) == 3 + n


def test_read_fd_drops_short_messages_and_counts_them(rings, pair):
    prod, cons = rings.pair(SIZE)
    a, b = pair
    a.send(b"\0" * (VNET_LEN + 13))  # one byte short of an Ethernet header
    good = bytes(VNET_LEN) + frame(64, 7)
    a.send(good)
    assert read_fd(prod, b.fileno()) == (0, 1)
    prod.flush()
    assert prod.stats()["short_reads"] == 1
    assert cons.recv() == good[VNET_LEN:]


def test_write_fd_sends_vnet_header_and_frame(rings, pair):
    prod, cons = rings.pair(SIZE)
    a, b = pair
    sent = []
    for i, n in enumerate((60, 1500, 65535)):
        v = vnet_hdr(flags=1, csum_start=34, csum_offset=16) if i == 1 else bytes(VNET_LEN)
        f = frame(n, i)
        assert prod.send(f, v)
        sent.append(v + f)
    assert write_fd(cons, a.fileno()) == (0, 3)
    assert [b.recv(70000) for _ in sent] == sent
    assert cons.stats()["records"] == 3


def test_write_fd_keeps_the_record_when_the_fd_is_full(rings, pair):
    prod, cons = rings.pair(SIZE)
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    frames = [frame(1500, i) for i in range(200)]
    for f in frames:
        assert prod.send(f, flush=False)
    prod.flush()
    rc, n = write_fd(cons, a.fileno(), max_=1000)
    assert rc == -errno.EAGAIN and 0 < n < 200
    got = [b.recv(70000)[VNET_LEN:] for _ in range(n)]
    rc, m = write_fd(cons, a.fileno(), max_=1000)  # the rest, nothing lost or doubled
    got += [b.recv(70000)[VNET_LEN:] for _ in range(m)]
    while len(got) < 200:
        rc, m = write_fd(cons, a.fileno(), max_=1000)
        got += [b.recv(70000)[VNET_LEN:] for _ in range(m)]
    assert got == frames
    assert cons.stats()["records"] == 200


def test_fd_calls_refuse_the_wrong_side(rings, pair):
    prod, cons = rings.pair(SIZE)
    a, _ = pair
    assert read_fd(cons, a.fileno())[0] == -errno.EINVAL
    assert write_fd(prod, a.fileno())[0] == -errno.EINVAL


def _fill(sock):
    """Send on @sock until it refuses: the next write_fd() meets EAGAIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    while True:
        try:
            sock.send(bytes(VNET_LEN) + frame(1500))
        except BlockingIOError:
            return


def _drain(sock):
    got = []
    while True:
        try:
            got.append(sock.recv(70000)[VNET_LEN:])
        except BlockingIOError:
            return got


def test_write_fd_retries_count_a_bad_record_once(rings, pair):
    """A refused write rewinds to the record, not past the dropped one before it."""
    cons, raw = rings.alone("consumer", SIZE)
    a, b = pair
    pos = raw.put_frame(0, frame(60, seed=1), vnet_hdr(flags=0x40))  # bad vnet flags
    pos = raw.put_frame(pos, frame(60, seed=2))
    raw.prod = pos
    _fill(a)
    for _ in range(3):
        assert write_fd(cons, a.fileno()) == (-errno.EAGAIN, 0)
    st = cons.stats()
    assert st["drops"]["vnet_flags"] == 1 and st["violations"] == 1
    _drain(b)
    assert write_fd(cons, a.fileno()) == (0, 1)
    assert _drain(b) == [frame(60, seed=2)]
    assert cons.stats()["violations"] == 1 and cons.stats()["records"] == 1


def test_write_fd_retries_count_a_pad_once(rings):
    """An honest producer's PAD is counted once however often the fd refuses."""
    prod, cons = rings.pair(lib.RING_SIZE_MIN)
    big = frame(60000)
    while prod.send(big):  # fill, then drain, to bring both positions near the end
        pass
    while cons.recv() is not None:
        pass
    assert cons.stats()["pads"] == 0
    prod.send(big)  # does not fit before the end: a PAD, then the record at 0
    assert prod.stats()["pads"] == 1
    r, w = os.pipe2(os.O_NONBLOCK)
    try:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
        fill = bytes(65536)
        while True:  # full: the next writev says EAGAIN
            try:
                os.write(w, fill)
            except BlockingIOError:
                if len(fill) == 1:
                    break
                fill = fill[: len(fill) // 2]
        for _ in range(3):
            assert write_fd(cons, w) == (-errno.EAGAIN, 0)
        assert cons.stats()["pads"] == 1
        while True:
            try:
                os.read(r, 1 << 20)
            except BlockingIOError:
                break
        assert write_fd(cons, w) == (0, 1)
        assert os.read(r, 1 << 20)[VNET_LEN:] == big
        assert cons.stats()["pads"] == 1
    finally:
        os.close(r)
        os.close(w)
