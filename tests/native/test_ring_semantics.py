"""The ring in one process: what a producer sends is what a consumer gets."""
import errno
import re

import pytest

import vnetshare
from vnetshare import CONSUMER, PRODUCER, ConfigError, NativeError, Ring, create_fds
from vnetshare.dataplane._native import ffi, lib
from vnetshare.dataplane.ring import FRAME_MAX, FRAME_MIN, SIZE_DEFAULT, SIZE_MAX, SIZE_MIN

from ringtools import (
    DATA_OFF, GSO_TCPV4, GSO_TCPV6, MAGIC, OFF_CONS, OFF_DATA_SIZE, OFF_MAGIC, OFF_PROD,
    REC_HDR, REC_MAX, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_LEN, RawRing, frame,
    rec_size, vnet_hdr,
)

SIZE_CLASSES = [FRAME_MIN, 60, 64, 65, 127, 128, 1500, 1514, 9000, 65535, FRAME_MAX]


def drain(cons):
    out = []
    while (rec := cons.recv_record()) is not None:
        out.append(rec)
    return out


def test_round_trip_keeps_bytes_and_vnet_header(rings):
    prod, cons = rings.pair(SIZE_MIN)
    f = frame(1514, seed=7)
    v = vnet_hdr(VNET_F_NEEDS_CSUM, GSO_TCPV4, hdr_len=54, gso_size=1448,
                 csum_start=34, csum_offset=16, num_buffers=1)

    assert prod.send(f, v) is True
    assert cons.recv_record() == (v, f)
    assert cons.recv() is None

    assert prod.stats()["records"] == cons.stats()["records"] == 1
    assert prod.stats()["bytes"] == cons.stats()["bytes"] == 1514


def test_empty_ring_returns_none(rings):
    prod, cons = rings.pair(SIZE_MIN)
    assert cons.recv() is None
    assert cons.recv_record() is None
    assert not cons.ready()
    assert cons.stats()["records"] == 0


def test_shared_layout_is_the_abi(rings):
    """What a peer built elsewhere relies on: magic, size, positions, records
    at the offsets of ring_abi.h."""
    prod, cons = rings.pair(SIZE_MIN)
    raw = RawRing(prod.fds.memfd, SIZE_MIN)
    assert raw.u64(OFF_MAGIC) == MAGIC
    assert raw.u64(OFF_DATA_SIZE) == SIZE_MIN
    f = frame(101, seed=3)
    prod.send(f, vnet_hdr(VNET_F_DATA_VALID))
    assert raw.u64(OFF_PROD) == rec_size(101) == 192
    assert REC_HDR.unpack(raw.read(DATA_OFF, 16)) == (VNET_LEN + 101, 0, VNET_LEN, 0)
    assert raw.read(DATA_OFF + 16, VNET_LEN) == vnet_hdr(VNET_F_DATA_VALID)
    assert raw.read(DATA_OFF + 28, 101) == f
    assert raw.u64(OFF_CONS) == 0
    assert cons.recv() == f
    assert raw.u64(OFF_CONS) == 192


def test_full_ring_refuses_then_takes_again_after_drain(rings):
    prod, cons = rings.pair(SIZE_MIN)
    f = frame(60)
    per_ring = SIZE_MIN // rec_size(60)  # 128-byte records, no PAD needed
    for i in range(per_ring):
        assert prod.send(frame(60, seed=i)), f"record {i} of {per_ring} refused"

    assert prod.send(f) is False
    assert prod.send(f) is False
    assert prod.stats()["full"] == 2
    assert prod.stats()["records"] == per_ring

    assert cons.recv() == frame(60, seed=0)
    assert prod.send(frame(60, seed=per_ring)) is True
    got = [rec[1] for rec in drain(cons)]
    assert got == [frame(60, seed=i) for i in range(1, per_ring + 1)]
    assert prod.send(f) is True
    assert prod.stats()["full"] == 2


# the default, and the smallest power of two that holds two of the largest records
@pytest.mark.parametrize("size", [SIZE_DEFAULT, 1 << (2 * REC_MAX - 1).bit_length()])
@pytest.mark.parametrize("n", SIZE_CLASSES)
def test_every_size_class_arrives_intact(rings, size, n):
    prod, cons = rings.pair(size)
    if n >= 54:
        v = vnet_hdr(VNET_F_NEEDS_CSUM, GSO_TCPV6, hdr_len=54, gso_size=1440,
                     csum_start=34, csum_offset=16, num_buffers=n & 0xFFFF)
    else:
        v = vnet_hdr(VNET_F_DATA_VALID)
    sent = [frame(n, seed=i) for i in range(3)]
    for f in sent:
        assert prod.send(f, v)
    assert drain(cons) == [(v, f) for f in sent]
    assert cons.stats()["bytes"] == 3 * n


@pytest.mark.parametrize("size", [
    pytest.param(s, marks=pytest.mark.xfail(
        s < 2 * REC_MAX, strict=True,
        reason="known bug: a ring smaller than two of the largest records cannot "
               "always take the largest frame (RING_SIZE_MIN < 2 * RING_REC_MAX)"))
    for s in (SIZE_MIN, 2 * SIZE_MIN, 4 * SIZE_MIN)
])
def test_empty_ring_takes_the_largest_frame_wherever_it_stands(rings, size):
    """An empty ring of any allowed size must take any valid frame, whatever
    its position (ring_read_fd() reserves RING_LEN_MAX for every frame)."""
    prod, cons = rings.pair(size)
    raw = RawRing(prod.fds.memfd, size)
    big = frame(FRAME_MAX, seed=1)
    small = frame(FRAME_MIN)  # a 64-byte record: moves the position by 64
    offsets = sorted({0, 64, size // 2 - 64, size // 2, size // 2 + 64,
                      max(0, size - REC_MAX - 64), max(0, size - REC_MAX),
                      size - REC_MAX + 64 if size > REC_MAX else 128, size - 64}
                     | set(range(0, size, 16384)))
    pos = 0
    for off in offsets:
        while pos % size != off:
            assert prod.send(small)
            assert cons.recv() == small
            pos += 64
        assert prod.ready(VNET_LEN + FRAME_MAX), f"empty ring at offset {off}: no room"
        assert prod.send(big), f"empty ring at offset {off} refused a {FRAME_MAX}-byte frame"
        assert cons.recv() == big
        pos = raw.prod
    assert prod.stats()["full"] == 0


def test_wraparound_writes_pads_and_keeps_order(rings):
    prod, cons = rings.pair(SIZE_MIN)
    sizes = [61, 1001, 1515, 333, 9001, 77, 4093, 14]
    sent, got = [], []
    seq = 0
    # keep a few records in flight, so records land at every offset and wrap
    while seq < 2000:
        f = frame(sizes[seq % len(sizes)], seed=seq)
        if prod.send(f):
            sent.append(f)
            seq += 1
        else:
            got.append(cons.recv())
        if seq % 5 == 0:
            got.append(cons.recv())
    got = [g for g in got if g is not None] + [rec[1] for rec in drain(cons)]

    assert got == sent
    written = prod.stats()["pads"]
    assert written > 0
    assert cons.stats()["pads"] == written
    assert sum(map(len, sent)) > 10 * SIZE_MIN  # it really went round


def test_records_are_invisible_until_flush(rings):
    prod, cons = rings.pair(SIZE_MIN)
    a, b = frame(60, seed=1), frame(1500, seed=2)
    assert prod.send(a, flush=False)
    assert prod.send(b, flush=False)
    assert cons.recv() is None
    assert not cons.ready()
    assert prod.stats()["records"] == 2  # produced, not yet published

    prod.flush()
    assert cons.ready()
    assert cons.recv() == a
    assert cons.recv() == b
    assert cons.recv() is None
    prod.flush()  # nothing new: harmless
    assert cons.recv() is None


def test_roles_are_enforced(rings):
    prod, cons = rings.pair(SIZE_MIN)
    with pytest.raises(NativeError) as e:
        cons.send(frame(60))
    assert e.value.errno == errno.EINVAL
    with pytest.raises(NativeError) as e:
        prod.recv()
    assert e.value.errno == errno.EINVAL
    assert lib.ring_role(prod.handle) == lib.RING_PRODUCER
    assert lib.ring_role(cons.handle) == lib.RING_CONSUMER


def test_wrong_side_cannot_publish_a_position(rings):
    """Publishing is one side's job: a producer handle must not write the
    consumer's position, nor a consumer handle the producer's."""
    prod, cons = rings.pair(SIZE_MIN)
    raw = RawRing(prod.fds.memfd, SIZE_MIN)
    assert prod.send(frame(60), flush=False)
    assert lib.ring_release(prod.handle) == -errno.EINVAL
    assert raw.cons == 0
    prod.flush()

    rec = ffi.new("struct ring_rec *")
    assert lib.ring_peek(cons.handle, rec) == 0  # peeked, not yet released
    with pytest.raises(NativeError) as e:
        cons.flush()
    assert e.value.errno == errno.EINVAL
    assert raw.prod == rec_size(60)
    assert lib.ring_release(cons.handle) == 0
    assert raw.cons == rec_size(60)


@pytest.mark.parametrize("bad", [0, 1000, 3 * SIZE_MIN, SIZE_MIN // 2, 2 * SIZE_MAX, -SIZE_MIN])
def test_bad_ring_size_is_a_config_error_naming_it(bad):
    for make in (lambda: Ring.create(PRODUCER, bad), lambda: create_fds(bad)):
        with pytest.raises(ConfigError, match=rf"(?<![\w-]){re.escape(str(bad))}(?!\d)"):
            make()


def test_bad_frame_and_vnet_sizes_are_config_errors_naming_them(rings):
    prod, cons = rings.pair(SIZE_MIN)
    with pytest.raises(ConfigError, match=r"\b13\b"):
        prod.send(bytes(13))
    with pytest.raises(ConfigError, match=rf"\b{FRAME_MAX + 1}\b"):
        prod.send(bytes(FRAME_MAX + 1))
    with pytest.raises(ConfigError, match=r"\b11\b"):
        prod.send(frame(60), bytes(11))
    with pytest.raises(ConfigError, match="sender"):
        Ring(prod.fds, "sender")
    assert prod.stats()["records"] == 0


def test_attach_with_the_wrong_size_fails(rings):
    prod, _ = rings.pair(SIZE_MIN)
    for wrong in (2 * SIZE_MIN, SIZE_DEFAULT):
        with pytest.raises(NativeError) as e:
            Ring(prod.fds, CONSUMER, wrong)
        assert e.value.errno == errno.EINVAL
    with pytest.raises(ConfigError, match="12345"):
        Ring(prod.fds, CONSUMER, 12345)
    # size 0: take it from the memfd
    cons = rings.attach(prod.fds, CONSUMER)
    assert cons.size == SIZE_MIN


def test_stats_name_every_drop_reason(rings):
    prod, cons = rings.pair(SIZE_MIN)
    expected = {
        "pos_misaligned", "pos_backwards", "pos_beyond_size", "bad_flags",
        "len_over_max", "len_too_short", "bad_vnet_len", "len_past_published",
        "len_past_end", "vnet_flags", "vnet_gso_type", "vnet_gso_size",
        "vnet_hdr_len", "vnet_csum",
    }
    assert set(vnetshare.DROP_REASONS) == expected
    assert len(vnetshare.DROP_REASONS) == lib.RING_DROP__MAX
    assert lib.ring_drop_name(lib.RING_DROP__MAX) == ffi.NULL
    for side in (prod, cons):
        st = side.stats()
        assert set(st["drops"]) == set(vnetshare.DROP_REASONS)
        assert all(v == 0 for v in st["drops"].values())
        for key in ("records", "bytes", "pads", "full", "kicks", "sleeps",
                    "skipped_bytes", "short_reads"):
            assert st[key] == 0


def test_closed_ring_refuses_use(rings):
    prod, _ = rings.pair(SIZE_MIN)
    prod.close()
    with pytest.raises(ValueError):
        prod.send(frame(60))
    prod.close()  # twice is fine


def test_wait_times_out_on_an_empty_ring_and_wakes_on_data(rings):
    prod, cons = rings.pair(SIZE_MIN)
    assert cons.wait(timeout=0.01) is False
    prod.send(frame(60))
    assert cons.wait(timeout=5) is True
    assert cons.recv() == frame(60)
    # a full ring: the producer's wait times out until the consumer drains
    while prod.send(frame(60)):
        pass
    assert prod.wait(timeout=0.01, need=VNET_LEN + 60) is False
    cons.recv()
    assert prod.wait(timeout=5, need=VNET_LEN + 60) is True
