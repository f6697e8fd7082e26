"""Property tests: random sizes and interleavings against a Python model.

The model is a deque of records plus the capacity rule of ring.h: a record
takes align64(16 + 12 + frame) bytes, plus a PAD up to the end of the data
area when it would cross it; it fits iff the bytes in use plus that stay
within the ring. The consumer's released position is the end of the last
record it returned.
"""
import time
from collections import deque

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vnetshare import CONSUMER, PRODUCER, Ring
from vnetshare.dataplane.ring import FRAME_MAX, FRAME_MIN, SIZE_MIN

from ringtools import Child, GSO_TCPV4, VNET_F_NEEDS_CSUM, frame, rec_size, vnet_hdr


class Model:
    def __init__(self, size):
        self.size = size
        self.own = 0  # producer's write position
        self.cons = 0  # consumer's released position
        self.unflushed = deque()  # (frame, vnet, end position)
        self.published = deque()
        self.pads = 0

    def send(self, f, v, flush):
        rec = rec_size(len(f))
        off = self.own % self.size
        pad = self.size - off if off + rec > self.size else 0
        if self.own - self.cons + pad + rec > self.size:
            return False
        self.pads += pad > 0
        self.own += pad + rec
        self.unflushed.append((f, v, self.own))
        if flush:
            self.flush()
        return True

    def flush(self):
        self.published.extend(self.unflushed)
        self.unflushed.clear()

    def recv(self):
        if not self.published:
            return None
        f, v, end = self.published.popleft()
        self.cons = end
        return v, f


def _advance(prod, cons, model, off):
    """Move both (empty) sides to offset @off with filler records."""
    while model.own % model.size != off:
        chunk = min((off - model.own) % model.size, 32768)
        f = bytes(chunk - 28)
        assert model.send(f, bytes(12), True) and prod.send(f)
        assert cons.recv_record() == model.recv()
    assert model.pads == 0


def _vnet(seq, n):
    if seq % 3 == 0 and n >= 54:
        return vnet_hdr(VNET_F_NEEDS_CSUM, GSO_TCPV4, hdr_len=54, gso_size=1448,
                        csum_start=34, csum_offset=16, num_buffers=seq & 0xFFFF)
    return vnet_hdr(num_buffers=seq & 0xFFFF)


frame_sizes = st.one_of(
    st.integers(FRAME_MIN, 200),
    st.integers(FRAME_MIN, 9100),
    st.sampled_from([60, 64, 65, 127, 128, 1500, 1514, 9000, 65535, FRAME_MAX]),
)
# a burst: k frames of one size, flushed at the end or each
_send = st.tuples(st.just("send"), frame_sizes, st.integers(1, 24), st.booleans())
_recv = st.tuples(st.just("recv"), st.integers(1, 24))
ops = st.lists(
    st.one_of(_send, _recv, st.tuples(st.just("flush"))),
    min_size=10,
    max_size=80,
)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(size=st.sampled_from([SIZE_MIN, SIZE_MIN, 2 * SIZE_MIN, 4 * SIZE_MIN]),
       back=st.integers(1, 4096), ops=ops)
def test_random_interleavings_match_the_model(size, back, ops):
    model = Model(size)
    with Ring.create(PRODUCER, size) as prod, Ring(prod.fds, CONSUMER, size) as cons:
        # start @back units of 64 bytes before the end of the data area, so
        # short runs wrap too
        _advance(prod, cons, model, (size - 64 * back) % size)
        p0, c0 = prod.stats(), cons.stats()
        seq = refused = 0
        for op in ops:
            if op[0] == "send":
                n, k, flush_each = op[1:]
                for i in range(k):
                    flush = flush_each or i == k - 1
                    f, v = frame(n, seed=seq), _vnet(seq, n)
                    want = model.send(f, v, flush)
                    assert prod.send(f, v, flush=flush) is want, \
                        f"send of {n} bytes: model says {want} (in use {model.own - model.cons})"
                    seq += want
                    refused += not want
            elif op[0] == "recv":
                for _ in range(op[1]):
                    assert cons.recv_record() == model.recv()
            else:
                prod.flush()
                model.flush()
        prod.flush()
        model.flush()
        while (rec := model.recv()) is not None:
            assert cons.recv_record() == rec
        assert cons.recv_record() is None

        pst, cst = prod.stats(), cons.stats()
        assert pst["records"] - p0["records"] == cst["records"] - c0["records"] == seq
        assert pst["bytes"] == cst["bytes"]
        assert pst["full"] == refused
        assert pst["pads"] == cst["pads"] == model.pads
        assert sum(cst["drops"].values()) == sum(pst["drops"].values()) == 0
        event(f"wrapped: {model.pads > 0}, refused: {refused > 0}")


def _produce(fds, size, sizes, flush_every):
    ring = Ring(fds, PRODUCER, size)
    for seq, n in enumerate(sizes):
        f = frame(n, seed=seq)
        end = time.monotonic() + 10
        while not ring.send(f, _vnet(seq, n), flush=(seq + 1) % flush_every == 0):
            ring.flush()
            if not ring.wait(timeout=max(0.0, end - time.monotonic()), need=12 + n):
                raise AssertionError(f"no room for record {seq} in 10 s")
    ring.flush()
    return ring.stats()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(size=st.sampled_from([SIZE_MIN, 4 * SIZE_MIN]),
       sizes=st.lists(st.one_of(st.integers(FRAME_MIN, 2000), st.integers(FRAME_MIN, 9100)),
                      min_size=1, max_size=300),
       flush_every=st.integers(1, 40))
def test_across_fork_every_byte_arrives_in_order(size, sizes, flush_every):
    with Ring.create(CONSUMER, size) as cons:
        child = Child.start(_produce, cons.fds, size, sizes, flush_every, timeout=30)
        got = []
        try:
            end = time.monotonic() + 20
            while len(got) < len(sizes):
                rec = cons.recv_record()
                if rec is None:
                    assert cons.wait(timeout=max(0.0, end - time.monotonic())), \
                        f"{len(got)} of {len(sizes)} records arrived"
                    continue
                got.append(rec)
        finally:
            pstats = child.join()
        assert got == [(_vnet(i, n), frame(n, seed=i)) for i, n in enumerate(sizes)]
        assert cons.recv() is None
        assert pstats["pads"] == cons.stats()["pads"]
