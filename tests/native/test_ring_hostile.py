"""A hostile peer writes the ring's shared memory directly (os.pwrite).

The daemon's side must catch each bad position, length, flag and vnet header,
count it under its own reason, never crash or loop, and go on serving the
well-formed records written after it (native/ring.h, "Trust").
"""
import errno
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vnetshare import CONSUMER, DROP_REASONS, PRODUCER, Ring
from vnetshare.dataplane._native import ffi, lib
from vnetshare.dataplane.ring import SIZE_MIN

from ringtools import (
    ALIGN, GSO_ECN, GSO_TCPV4, GSO_TCPV6, GSO_UDP, GSO_UDP_L4, LEN_MAX, REC_HDR,
    REC_PAD, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_LEN, RawRing, align64,
    frame, rec_size, record, vnet_hdr, vnet_ok,
)

SIZE = SIZE_MIN
GOOD_VNET = vnet_hdr(VNET_F_NEEDS_CSUM, GSO_TCPV4, hdr_len=54, gso_size=1448,
                     csum_start=34, csum_offset=16)


class Agent:
    """A partition agent that writes records and positions by hand."""

    def __init__(self, cons: Ring, raw: RawRing):
        self.cons = cons
        self.raw = raw
        self.pos = 0  # where the agent writes next
        self.seed = 100

    def write(self, rec: bytes, span: int | None = None) -> int:
        """Write @rec at the agent's position; return its position. The
        position then moves by @span (default: the record's aligned size)."""
        at = self.pos
        self.raw.write_data(at, rec)
        self.pos += align64(len(rec)) if span is None else span
        return at

    def good(self, n: int = 60, vnet: bytes = GOOD_VNET):
        """Write a well-formed record (after a PAD if it would cross the end)."""
        if (self.pos & self.raw.mask) + rec_size(n) > self.raw.size:
            self.pos = self.raw.put_pad(self.pos)
        self.seed += 1
        f = frame(n, seed=self.seed)
        self.write(record(f, vnet))
        return vnet, f

    def publish(self, prod: int | None = None) -> None:
        self.raw.prod = self.pos if prod is None else prod

    def advance_to(self, off: int) -> None:
        """Move the agent and the consumer to data offset @off, with good
        records, so that a bad record can be placed there."""
        while self.pos & self.raw.mask != off:
            cur = self.pos & self.raw.mask
            chunk = min((off - cur) % self.raw.size, self.raw.size - cur, 32768)
            self.write(record(bytes(chunk - 28)))
            self.publish()
            assert self.cons.recv() == bytes(chunk - 28)
        assert self.cons.recv() is None

    def expect_good_after(self) -> None:
        """The consumer serves a well-formed record written after the bad."""
        want = self.good(1514)
        self.publish()
        assert self.cons.recv_record() == want
        assert self.cons.recv() is None


@pytest.fixture
def agent(rings):
    cons, raw = rings.alone(CONSUMER, SIZE)
    a = Agent(cons, raw)
    # some traffic first, so the positions are not at their start values
    for n in (60, 1500, 333):
        want = a.good(n)
        a.publish()
        assert cons.recv_record() == want
    return a


def drops(ring) -> dict:
    st = ring.stats()
    # the running total the switch checks per burst agrees with the reasons
    assert st["violations"] == sum(st["drops"].values()), st
    return {k: v for k, v in st["drops"].items() if v}


# --- bad producer positions ----------------------------------------------------
POSITIONS = {
    "pos_backwards": lambda a: a.pos - 64,
    "pos_backwards_far": lambda a: a.pos - 4096,
    "pos_beyond_size": lambda a: a.pos + SIZE + ALIGN,
    "pos_beyond_size_far": lambda a: a.pos + 64 * SIZE,
    "pos_misaligned": lambda a: a.pos + 100,
    "pos_misaligned_by_one": lambda a: a.pos + 1,
}


@pytest.mark.parametrize("case", sorted(POSITIONS))
def test_bad_producer_position_is_ignored_and_counted_once(agent, case):
    reason = case.removesuffix("_far").removesuffix("_by_one")
    cons = agent.cons
    start = agent.pos
    agent.good(60)  # a record is there: a bad position must not expose it
    agent.pos = start
    agent.publish(POSITIONS[case](agent))

    for _ in range(5):  # polled many ways, counted once
        assert cons.recv() is None
        assert not cons.ready()
        assert cons.wait(timeout=0) is False
    assert drops(cons) == {reason: 1}
    assert cons.stats()["records"] == 3

    agent.expect_good_after()
    assert drops(cons) == {reason: 1}


def test_each_new_bad_position_counts_again(agent):
    cons = agent.cons
    for i in range(1, 4):
        agent.publish(agent.pos + i)  # misaligned, a different value each time
        assert cons.recv() is None
        assert cons.recv() is None
        assert drops(cons) == {"pos_misaligned": i}
    agent.expect_good_after()


def test_position_far_ahead_is_ignored(agent):
    """2**63 ahead looks like "behind" in signed 64-bit arithmetic: either way
    it must be ignored, counted once, and never make the consumer read."""
    cons = agent.cons
    agent.publish(agent.pos + 2**63)
    assert cons.recv() is None
    assert cons.recv() is None
    counted = drops(cons)
    assert sum(counted.values()) == 1 and set(counted) <= {"pos_backwards", "pos_beyond_size"}
    agent.expect_good_after()


# --- bad records -------------------------------------------------------------------
def _rec(n=60, vnet=bytes(VNET_LEN), **kw):
    return record(frame(n, seed=7), vnet, **kw)


def _vnet_case(**kw):
    """A record of a 200-byte frame whose vnet header has the fields @kw."""
    return lambda a: a.write(_rec(200, vnet_hdr(**kw)))


def _past_published(a):
    a.write(_rec(1000), span=512)  # the record is 1088 bytes, 512 published


def _past_end(a):
    a.advance_to(SIZE - 128)  # 128 bytes before the end of the data area
    # header says 1088 bytes: within what is published, not within the area
    a.write(_rec(1000)[:128], span=2048)


def _pad_past_published(a):
    a.advance_to(0)
    a.raw.write_data(a.pos, REC_HDR.pack(SIZE - 16, REC_PAD, 0, 0))
    a.pos += 256  # the PAD claims the whole area, 256 bytes are published


# case -> (reason, writer, the record is skipped alone: a good header)
RECORDS = {
    "len_over_max": ("len_over_max", lambda a: a.write(_rec(60, length=LEN_MAX + 1), span=128), False),
    "len_over_max_u32": ("len_over_max", lambda a: a.write(_rec(60, length=0xFFFFFFFF), span=128), False),
    "len_too_short": ("len_too_short", lambda a: a.write(_rec(60, length=VNET_LEN + 13)), False),
    "len_zero": ("len_too_short", lambda a: a.write(_rec(60, length=0)), False),
    "len_past_published": ("len_past_published", _past_published, False),
    "pad_past_published": ("len_past_published", _pad_past_published, False),
    "len_past_end": ("len_past_end", _past_end, False),
    "flags_unknown": ("bad_flags", lambda a: a.write(_rec(60, flags=0x0002)), False),
    "flags_high": ("bad_flags", lambda a: a.write(_rec(60, flags=0x8000)), False),
    "flags_pad_and_unknown": ("bad_flags", lambda a: a.write(_rec(60, flags=REC_PAD | 0x0100)), False),
    "vnet_len_zero": ("bad_vnet_len", lambda a: a.write(_rec(60, vnet_len=0)), False),
    "vnet_len_10": ("bad_vnet_len", lambda a: a.write(_rec(60, vnet_len=10)), False),
    "vnet_len_huge": ("bad_vnet_len", lambda a: a.write(_rec(60, vnet_len=0xFFFF)), False),
    "vnet_flags_rsc": ("vnet_flags", _vnet_case(flags=4), True),
    "vnet_flags_high": ("vnet_flags", _vnet_case(flags=0x80 | VNET_F_DATA_VALID), True),
    "gso_udp_ufo": ("vnet_gso_type", _vnet_case(gso_type=GSO_UDP, gso_size=1400, hdr_len=42), True),
    "gso_type_2": ("vnet_gso_type", _vnet_case(gso_type=2, gso_size=1400), True),
    "gso_type_6": ("vnet_gso_type", _vnet_case(gso_type=6, gso_size=1400), True),
    "gso_ecn_without_gso": ("vnet_gso_type", _vnet_case(gso_type=GSO_ECN), True),
    "gso_udp_ufo_ecn": ("vnet_gso_type", _vnet_case(gso_type=GSO_UDP | GSO_ECN, gso_size=1400), True),
    "gso_tcpv4_size_0": ("vnet_gso_size", _vnet_case(gso_type=GSO_TCPV4, hdr_len=54), True),
    "gso_tcpv6_ecn_size_0": ("vnet_gso_size", _vnet_case(gso_type=GSO_TCPV6 | GSO_ECN), True),
    "gso_udp_l4_size_0": ("vnet_gso_size", _vnet_case(gso_type=GSO_UDP_L4, hdr_len=42), True),
    "hdr_len_past_frame": ("vnet_hdr_len", _vnet_case(gso_type=GSO_TCPV4, gso_size=1448, hdr_len=201), True),
    "hdr_len_max": ("vnet_hdr_len", _vnet_case(gso_type=GSO_TCPV6, gso_size=1448, hdr_len=0xFFFF), True),
    "csum_past_frame": ("vnet_csum", _vnet_case(flags=VNET_F_NEEDS_CSUM, csum_start=190, csum_offset=9), True),
    "csum_u16_overflow": ("vnet_csum", _vnet_case(flags=VNET_F_NEEDS_CSUM, csum_start=0xFFFF, csum_offset=0xFFFF), True),
    "csum_start_past_frame": ("vnet_csum", _vnet_case(flags=VNET_F_NEEDS_CSUM, csum_start=250, csum_offset=0), True),
}


def test_every_drop_reason_has_a_bad_record_or_position():
    covered = {reason for reason, _, _ in RECORDS.values()} | {
        k.removesuffix("_far").removesuffix("_by_one") for k in POSITIONS}
    assert covered == set(DROP_REASONS)


@pytest.mark.parametrize("case", sorted(RECORDS))
def test_bad_record_is_dropped_counted_and_the_next_one_served(agent, case):
    reason, write_bad, _ = RECORDS[case]
    cons = agent.cons
    write_bad(agent)
    before = cons.stats()["records"]
    agent.publish()

    for _ in range(3):
        assert cons.recv() is None
    assert drops(cons) == {reason: 1}
    assert cons.stats()["records"] == before

    agent.expect_good_after()
    assert drops(cons) == {reason: 1}


# (a record past the published range has nothing published after it)
@pytest.mark.parametrize("case", sorted(k for k, v in RECORDS.items() if v[0] != "len_past_published"))
def test_what_a_bad_record_takes_with_it(agent, case):
    """A bad vnet header costs its record alone; a header that cannot be
    trusted costs everything published with it (the consumer cannot know
    where the next record starts), counted in skipped_bytes."""
    reason, write_bad, alone = RECORDS[case]
    cons = agent.cons
    write_bad(agent)
    after = agent.good(100)
    agent.publish()
    if alone:
        assert cons.recv_record() == after
        assert cons.stats()["skipped_bytes"] == 0
    else:
        assert cons.recv() is None
        assert cons.stats()["skipped_bytes"] > 0
    assert drops(cons) == {reason: 1}
    agent.expect_good_after()


@pytest.mark.parametrize("vnet", [
    vnet_hdr(VNET_F_NEEDS_CSUM, csum_start=198, csum_offset=0),   # checksum ends at the frame end
    vnet_hdr(VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID, csum_start=100, csum_offset=98),
    vnet_hdr(0, GSO_TCPV4, hdr_len=200, gso_size=1),             # header is the whole frame
    vnet_hdr(0, GSO_TCPV6 | GSO_ECN, hdr_len=74, gso_size=1440),
    vnet_hdr(0, GSO_UDP_L4, hdr_len=42, gso_size=1472),
    vnet_hdr(VNET_F_DATA_VALID, num_buffers=0xFFFF),
], ids=["csum_at_end", "csum_both_flags", "hdr_len_whole", "tcpv6_ecn", "udp_l4", "num_buffers"])
def test_boundary_vnet_headers_are_accepted(agent, vnet):
    want = agent.good(200, vnet)
    agent.publish()
    assert agent.cons.recv_record() == want
    assert drops(agent.cons) == {}


# --- garbage --------------------------------------------------------------------
# records laid back to back from the consumer's start, mostly plausible
_plausible_len = st.integers(VNET_LEN + 14, 300) | st.integers(VNET_LEN + 14, 9100)
_zero_vnet = st.just(bytes(VNET_LEN))
chained = st.tuples(
    _plausible_len | _plausible_len | st.integers(0, LEN_MAX + 64) | st.integers(0, 2**32 - 1),
    st.sampled_from([0] * 12 + [REC_PAD, 2, 0x8000]),  # flags
    st.sampled_from([VNET_LEN] * 12 + [0, 10]),  # vnet_len
    _zero_vnet | _zero_vnet | st.just(GOOD_VNET) | st.binary(min_size=12, max_size=12),
)
_chain_end = st.tuples(st.just("chain"), st.integers(0, 63))  # end of the k-th chained record
positions = st.one_of(
    _chain_end, _chain_end, _chain_end,
    st.tuples(st.just("at"), st.integers(0, 2 * SIZE // ALIGN).map(lambda u: u * ALIGN)),
    st.tuples(st.just("at"), st.integers(0, 2 * SIZE)),
    st.tuples(st.just("at"), st.integers(0, 2**64 - 1)),
)


def _lay(buf: bytearray, chain) -> list:
    """Write the headers of @chain back to back from offset 0; return the
    positions where they end."""
    off, ends = 0, [0]
    for length, flags, vnet_len, vnet in chain:
        if off + 28 > SIZE:
            break
        buf[off:off + 28] = REC_HDR.pack(length, flags, vnet_len, 0) + vnet
        if flags & REC_PAD:
            off = SIZE
        elif VNET_LEN <= length <= LEN_MAX:
            off += rec_size(length - VNET_LEN)
        else:
            off += ALIGN
        ends.append(min(off, SIZE))
    return ends


def _accepts(peer: int, p: int) -> bool:
    """Would the rules accept @p after @peer, all consumed (ring.h, Trust 1)?"""
    return p % ALIGN == 0 and (p - peer) % 2**64 <= SIZE


def _check_record(buf: bytes, rec, lo: int, hi: int) -> None:
    """@rec came from positions [lo, hi) of @buf: it must be well-formed."""
    pos = rec.pos
    off = pos % SIZE
    length, flags, vnet_len, _ = REC_HDR.unpack_from(buf, off)
    assert lo <= pos and pos + rec_size(length - VNET_LEN) <= hi
    assert flags == 0 and vnet_len == VNET_LEN
    assert VNET_LEN + 14 <= length <= LEN_MAX
    assert off + rec_size(length - VNET_LEN) <= SIZE
    vnet = bytes(ffi.buffer(ffi.addressof(rec, "vnet"), VNET_LEN))
    assert vnet == buf[off + 16:off + 28]
    assert rec.frame_len == length - VNET_LEN
    assert vnet_ok(vnet, rec.frame_len)
    got = ffi.unpack(ffi.cast("char *", rec.frame), rec.frame_len)
    assert got == buf[off + 28:off + 28 + rec.frame_len]
    assert bytes(rec.l2) == got[:14]


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, 2**32 - 1), chain=st.lists(chained, max_size=30),
       scattered=st.lists(st.tuples(st.integers(0, SIZE // ALIGN - 1), chained), max_size=10),
       prods=st.lists(positions, min_size=1, max_size=6))
def test_garbage_never_crashes_hangs_or_leaks_a_bad_record(seed, chain, scattered, prods):
    buf = bytearray(random.Random(seed).randbytes(SIZE))
    for slot, (length, flags, vnet_len, vnet) in scattered:
        buf[slot * ALIGN:slot * ALIGN + 28] = REC_HDR.pack(length, flags, vnet_len, 0) + vnet
    ends = _lay(buf, chain)
    buf = bytes(buf)
    prods = [ends[v % len(ends)] if kind == "chain" else v for kind, v in prods]

    with Ring.create(CONSUMER, SIZE) as cons:
        raw = RawRing(cons.fds.memfd, SIZE)
        raw.write(4096, buf)
        rec = ffi.new("struct ring_rec *")
        peer = 0
        for p in prods:
            raw.prod = p
            lo = peer
            if _accepts(peer, p):
                peer = p
            for _ in range(SIZE // ALIGN + 2):
                rc = lib.ring_peek(cons.handle, rec)
                if rc != 0:
                    break
                _check_record(buf, rec, lo, peer)
                assert lib.ring_release(cons.handle) == 0
            else:
                pytest.fail("the consumer keeps returning records: it loops")
            assert rc == -errno.EAGAIN  # nothing more, and no error
            assert lib.ring_release(cons.handle) == 0
            assert raw.cons == peer, "the consumer took a position the rules refuse, or the reverse"
        # afterwards, a good record at the consumer's position goes through
        agent = Agent(cons, raw)
        agent.pos = peer
        want = agent.good(1514)
        agent.publish()
        assert cons.recv_record() == want


# --- a hostile consumer, against the daemon's producer ---------------------------
def test_bad_consumer_positions_are_ignored_and_never_overwrite(rings):
    prod, raw = rings.alone(PRODUCER, SIZE)
    sent = []
    while prod.send(f := frame(60, seed=len(sent))):
        sent.append(f)
    assert len(sent) == SIZE // 128
    snapshot = raw.data_area()

    def refused(cons_pos, reason, count=1):
        raw.cons = cons_pos
        for _ in range(3):
            assert prod.send(frame(60, seed=999)) is False
            assert not prod.ready(VNET_LEN + 60)
        assert prod.stats()["drops"][reason] == count, reason
        assert raw.data_area() == snapshot, "the producer overwrote unconsumed records"

    refused(SIZE + ALIGN, "pos_beyond_size")      # more than was ever published
    refused(2 * SIZE, "pos_beyond_size", 2)
    refused(1, "pos_misaligned")
    refused(127, "pos_misaligned", 2)

    raw.cons = 4 * 128  # a real consumer took 4 records: 4 fit again
    for i in range(4):
        assert prod.send(f := frame(60, seed=1000 + i))
        sent.append(f)
    assert prod.send(frame(60)) is False
    snapshot = raw.data_area()

    refused(2 * 128, "pos_backwards")
    refused(0, "pos_backwards", 2)
    refused(2**64 - ALIGN, "pos_backwards", 3)  # -64: far behind
    refused(2**63, "pos_beyond_size", 3)
    assert sum(prod.stats()["drops"].values()) == 8

    # an honest consumer attached now (at the last good position) gets every
    # record from there, intact and in order
    raw.cons = 4 * 128
    cons = rings.attach(prod.fds, CONSUMER)
    got = []
    while (f := cons.recv()) is not None:
        got.append(f)
    assert got == sent[4:]


def test_consumer_may_not_claim_unpublished_records(rings):
    prod, raw = rings.alone(PRODUCER, SIZE)
    while prod.send(frame(60)):
        pass
    raw.cons = SIZE // 2  # honest: half consumed
    n = 0
    while prod.send(frame(60, seed=n), flush=False):  # written, not published
        n += 1
    assert n == SIZE // 2 // 128
    published = raw.prod
    snapshot = raw.data_area()
    raw.cons = published + 128  # claims a record it cannot have seen
    assert prod.send(frame(60)) is False
    assert prod.stats()["drops"]["pos_beyond_size"] == 1
    assert raw.data_area() == snapshot


def test_control_block_identity_is_never_reread(rings):
    """data_size is written once; the consumer keeps its own copy, so a
    partition rewriting it cannot widen the area the consumer reads."""
    cons, raw = rings.alone(CONSUMER, SIZE)
    raw.write(16, struct.pack("<Q", 1 << 40))
    raw.write(0, b"garbage!")
    agent = Agent(cons, raw)
    agent.advance_to(SIZE - 128)
    agent.expect_good_after()  # wraps with a PAD: the size used is still SIZE
    assert cons.size == SIZE
