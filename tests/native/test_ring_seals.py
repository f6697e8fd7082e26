"""Seals: neither side can resize a ring under the other's mapping, and
attach refuses a memfd that could be resized or that is not a ring."""
import errno
import fcntl
import os
import struct

import pytest

from vnetshare import CONSUMER, PRODUCER, NativeError, Ring, RingEnd
from vnetshare.dataplane.ring import SIZE_MIN

from ringtools import (
    DATA_OFF, MAGIC, OFF_CONS, OFF_DATA_SIZE, OFF_HDR_SIZE, OFF_MAGIC, OFF_PROD,
    OFF_VERSION, frame,
)

RING_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
TOTAL = DATA_OFF + SIZE_MIN


def _errno_of(fn, *args):
    with pytest.raises(OSError) as e:
        fn(*args)
    return e.value.errno


def test_ring_memfd_carries_the_seals(rings):
    prod, _ = rings.pair(SIZE_MIN)
    assert fcntl.fcntl(prod.fds.memfd, fcntl.F_GET_SEALS) & RING_SEALS == RING_SEALS
    assert os.fstat(prod.fds.memfd).st_size == TOTAL


@pytest.mark.parametrize("new_size", [0, DATA_OFF, TOTAL - 4096, TOTAL - 1, TOTAL + 1, 2 * TOTAL])
def test_resizing_the_ring_fails_with_eperm(rings, new_size):
    prod, cons = rings.pair(SIZE_MIN)
    fd = prod.fds.memfd
    assert _errno_of(os.ftruncate, fd, new_size) == errno.EPERM
    assert os.fstat(fd).st_size == TOTAL
    # the ring still works for both sides
    assert prod.send(frame(1514))
    assert cons.recv() == frame(1514)


def test_growing_by_writing_or_allocating_past_the_end_fails(rings):
    prod, _ = rings.pair(SIZE_MIN)
    fd = prod.fds.memfd
    assert _errno_of(os.pwrite, fd, b"x", TOTAL) == errno.EPERM
    assert _errno_of(os.posix_fallocate, fd, TOTAL, 4096) == errno.EPERM
    assert os.fstat(fd).st_size == TOTAL


@pytest.mark.parametrize("seal", [fcntl.F_SEAL_WRITE, fcntl.F_SEAL_SHRINK, 0x10, 0])
def test_seals_cannot_change_any_more(rings, seal):
    """F_SEAL_SEAL: no seal can be added (and Linux has no way to remove one)."""
    prod, _ = rings.pair(SIZE_MIN)
    fd = prod.fds.memfd
    before = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    assert _errno_of(fcntl.fcntl, fd, fcntl.F_ADD_SEALS, seal) == errno.EPERM
    assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) == before
    # a peer that got the descriptor by fork or SCM_RIGHTS has the same file
    dup = os.dup(fd)
    try:
        assert fcntl.fcntl(dup, fcntl.F_GET_SEALS) == before
        assert _errno_of(os.ftruncate, dup, 0) == errno.EPERM
    finally:
        os.close(dup)


def _fake_ring(seals=RING_SEALS, allow_sealing=True, length=TOTAL, **fields):
    """A memfd laid out like a ring, with chosen header fields and seals."""
    flags = os.MFD_CLOEXEC | (os.MFD_ALLOW_SEALING if allow_sealing else 0)
    fd = os.memfd_create("fake-ring", flags)
    os.ftruncate(fd, length)
    hdr = {"magic": MAGIC, "version": 1, "hdr_size": DATA_OFF, "data_size": SIZE_MIN,
           "prod": 0, "cons": 0}
    hdr.update(fields)
    os.pwrite(fd, struct.pack("<Q", hdr["magic"]), OFF_MAGIC)
    os.pwrite(fd, struct.pack("<I", hdr["version"]), OFF_VERSION)
    os.pwrite(fd, struct.pack("<I", hdr["hdr_size"]), OFF_HDR_SIZE)
    os.pwrite(fd, struct.pack("<Q", hdr["data_size"]), OFF_DATA_SIZE)
    os.pwrite(fd, struct.pack("<Q", hdr["prod"]), OFF_PROD)
    os.pwrite(fd, struct.pack("<Q", hdr["cons"]), OFF_CONS)
    if seals and allow_sealing:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


@pytest.fixture
def fake(rings):
    """Make fake rings with the wakeup pipes of a real one; closes what it made."""
    real, _ = rings.alone(CONSUMER, SIZE_MIN)
    made = []

    def attach(role=CONSUMER, size=0, **kw):
        fd = _fake_ring(**kw)
        made.append(fd)
        return Ring(RingEnd(fd, *list(real.fds.end(role))[1:]), role, size)

    yield attach
    for fd in made:
        os.close(fd)


def _attach_errno(attach, **kw):
    with pytest.raises(NativeError) as e:
        attach(**kw).close()
    return e.value.errno


def test_a_well_made_fake_attaches(fake):
    """The control: with every field right, attach works, so each refusal
    below is for the one thing that differs."""
    ring = fake()
    assert ring.size == SIZE_MIN
    ring.close()
    fake(role=PRODUCER).close()


@pytest.mark.parametrize("kw", [
    {"seals": 0},
    {"allow_sealing": False},  # no MFD_ALLOW_SEALING: only F_SEAL_SEAL
    {"seals": fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL},
    {"seals": fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL},
    {"seals": fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW},
], ids=["unsealed", "sealing_not_allowed", "no_grow_seal", "no_shrink_seal", "no_seal_seal"])
def test_attach_refuses_a_memfd_that_could_be_resized(fake, kw):
    assert _attach_errno(fake, **kw) == errno.EPERM


@pytest.mark.parametrize("kw", [
    {"magic": 0},
    {"magic": MAGIC ^ 1},
    {"version": 2},
    {"hdr_size": 8192},
    {"data_size": 2 * SIZE_MIN},
    {"data_size": 0},
], ids=["magic_zero", "magic_bad", "version", "hdr_size", "data_size", "data_size_zero"])
def test_attach_refuses_a_bad_control_block(fake, kw):
    assert _attach_errno(fake, **kw) == errno.EPROTO


@pytest.mark.parametrize("role,kw", [
    (CONSUMER, {"cons": 100}),                      # own position misaligned
    (PRODUCER, {"prod": 100}),
    (PRODUCER, {"cons": 64 + 1, "prod": 128}),      # peer's position misaligned
    (PRODUCER, {"prod": 2 * SIZE_MIN, "cons": 0}),  # more than a ring in use
], ids=["cons_misaligned", "prod_misaligned", "peer_misaligned", "over_full"])
def test_attach_refuses_positions_it_cannot_adopt(fake, role, kw):
    assert _attach_errno(fake, role=role, **kw) == errno.EPROTO


@pytest.mark.parametrize("length", [DATA_OFF, DATA_OFF + SIZE_MIN + 4096, DATA_OFF + SIZE_MIN // 2])
def test_attach_refuses_a_memfd_of_a_wrong_size(fake, length):
    assert _attach_errno(fake, length=length) == errno.EINVAL


def test_attach_refuses_a_plain_file(tmp_path, rings):
    real, _ = rings.alone(CONSUMER, SIZE_MIN)
    path = tmp_path / "not-a-memfd"
    path.write_bytes(bytes(TOTAL))
    fd = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(NativeError) as e:
            Ring(RingEnd(fd, *list(real.fds.end(CONSUMER))[1:]), CONSUMER)
        assert e.value.errno == errno.EINVAL
    finally:
        os.close(fd)


def test_config_mirrors_the_abi_size_limits():
    from vnetshare.core import config
    from vnetshare.dataplane import ring

    assert (config.RING_SIZE_MIN, config.RING_SIZE_MAX) == (ring.SIZE_MIN, ring.SIZE_MAX)
