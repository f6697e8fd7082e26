"""The ring across processes: a forked child attaches by descriptor numbers.

The long runs drive both sides from the C loops (native/ring_bench.c), each
in its own process, in sleep mode: a wakeup the handshake loses leaves one
side asleep with work pending, which shows as -ETIMEDOUT, never as a hang.
"""
import errno
import os
import time

import pytest

from vnetshare import CONSUMER, PRODUCER, Ring
from vnetshare.dataplane._native import ffi, lib
from vnetshare.dataplane.ring import SIZE_DEFAULT, SIZE_MIN

from ringtools import (
    GSO_TCPV4, VNET_F_NEEDS_CSUM, Child, ChildFailed, bench_frame, frame, in_child,
    result_dict, sizes_array, vnet_hdr,
)

TIMEOUT_MS = 20000  # a run that needs this long has lost a wakeup


def _vnet(i, n):
    if n < 54:
        return vnet_hdr(num_buffers=i)
    return vnet_hdr(VNET_F_NEEDS_CSUM, GSO_TCPV4 if i % 2 else 0, hdr_len=54,
                    gso_size=1448 if i % 2 else 0, csum_start=34, csum_offset=16,
                    num_buffers=i)


FRAMES = [(frame(n, seed=i), _vnet(i, n)) for i, n in enumerate(
    [60, 1514, 14, 9000, 65535, 64, 127, 1500, 333] * 8)]


def _child_sends(fds, size):
    ring = Ring.attach(fds.end(PRODUCER), PRODUCER, size)  # only its own end, as an agent
    for f, v in FRAMES:
        while not ring.send(f, v):
            if not ring.wait(timeout=10, need=12 + len(f)):
                raise AssertionError("producer: no room for 10 s")
    return ring.stats()


def _child_receives(fds, count):
    ring = Ring(fds.end(CONSUMER), CONSUMER)
    got = []
    while len(got) < count:
        rec = ring.recv_record()
        if rec is None:
            if not ring.wait(timeout=10):
                raise AssertionError(
                    f"consumer: nothing for 10 s after {len(got)}: {ring.stats()}")
            continue
        got.append(rec)
    return got, ring.stats()


def _next(cons, recv, end, why):
    """The next non-None recv() of @cons, sleeping on it in between; fails
    with why() once the monotonic clock passes @end."""
    while (got := recv()) is None:
        left = end - time.monotonic()
        assert left > 0 and cons.wait(timeout=left), why()
    return got


def _recv_all(cons, count, timeout=10.0):
    got = []
    end = time.monotonic() + timeout
    while len(got) < count:
        got.append(_next(cons, cons.recv_record, end,
                         lambda: f"only {len(got)} of {count} records arrived: {cons.stats()}"))
    return got


@pytest.mark.parametrize("size", [SIZE_DEFAULT, 4 * SIZE_MIN])
def test_child_producer_parent_consumer(rings, size):
    ring = rings.alone(CONSUMER, size)[0]
    child = Child.start(_child_sends, ring.fds, size, timeout=30)
    try:
        got = _recv_all(ring, len(FRAMES))
    finally:
        pstats = child.join()
    assert got == [(v, f) for f, v in FRAMES]
    assert ring.recv() is None
    assert pstats["records"] == ring.stats()["records"] == len(FRAMES)
    assert pstats["bytes"] == ring.stats()["bytes"] == sum(len(f) for f, _ in FRAMES)


@pytest.mark.parametrize("size", [SIZE_DEFAULT, 4 * SIZE_MIN])
def test_parent_producer_child_consumer(rings, size):
    prod, _ = rings.alone(PRODUCER, size)
    child = Child.start(_child_receives, prod.fds, len(FRAMES), timeout=30)
    try:
        for f, v in FRAMES:
            end = time.monotonic() + 10
            while not prod.send(f, v):
                assert prod.wait(timeout=max(0.0, end - time.monotonic()), need=12 + len(f)), \
                    "no room for 10 s: the child consumer stopped"
    finally:
        got, cstats = child.join()
    assert got == [(v, f) for f, v in FRAMES]
    assert cstats["records"] == len(FRAMES)
    assert prod.stats()["records"] == len(FRAMES)


def test_child_sees_only_flushed_records(rings):
    prod, _ = rings.alone(PRODUCER, SIZE_MIN)
    prod.send(frame(60, seed=1))
    prod.send(frame(60, seed=2), flush=False)

    def peek_all(fds):
        ring = Ring(fds, CONSUMER)
        out = []
        while (f := ring.recv()) is not None:
            out.append(f)
        return out

    assert in_child(peek_all, prod.fds, timeout=10) == [frame(60, seed=1)]
    prod.flush()
    # a new handle adopts the consumer position the last one released
    assert in_child(peek_all, prod.fds, timeout=10) == [frame(60, seed=2)]


def _hang():
    time.sleep(3600)


def _fail():
    raise RuntimeError("boom in the child")


def _die():
    os._exit(3)


@pytest.mark.parametrize("fn,message", [
    (_hang, "did not finish in time"),
    (_fail, "boom in the child"),
    (_die, "without a result"),
])
def test_a_stuck_or_failing_child_fails_the_test_and_is_reaped(fn, message):
    """The harness itself: nothing a child does can hang the run."""
    t0 = time.monotonic()
    child = Child.start(fn, timeout=0.3)
    with pytest.raises(ChildFailed, match=message):
        child.join()
    assert time.monotonic() - t0 < 5
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)  # reaped: no zombie left behind


# --- no lost wakeup: millions of records, both sides in C -----------------------
def _bench_produce(fds, size, count, sizes, burst, pause_every, pause_us, flags):
    ring = Ring(fds, PRODUCER, size)
    res = ffi.new("struct bench_result *")
    arr = sizes_array(sizes)
    rc = lib.bench_produce(ring.handle, count, arr, len(sizes), burst, pause_every,
                           pause_us, flags, TIMEOUT_MS, res)
    return rc, result_dict(res), ring.stats()


def _run_bench(rings, size, count, sizes, *, burst=32, pause_every=0, pause_us=0,
               flags=0):
    """Child produces with bench_produce(), parent consumes with bench_consume()."""
    cons = rings.alone(CONSUMER, size)[0]
    child = Child.start(_bench_produce, cons.fds, size, count, sizes, burst,
                        pause_every, pause_us, flags, timeout=TIMEOUT_MS / 1000 + 10)
    res = ffi.new("struct bench_result *")
    try:
        crc = lib.bench_consume(cons.handle, count, sizes_array(sizes), len(sizes),
                                flags, TIMEOUT_MS, res)
    finally:
        prc, pres, pstats = child.join()
    return crc, result_dict(res), cons.stats(), prc, pres, pstats


def _assert_all_arrived(count, crc, cres, prc, pres):
    assert prc == 0, f"producer: {errno.errorcode.get(-prc, prc)} after {pres['records']}"
    assert crc != -errno.ETIMEDOUT, f"consumer timed out after {cres['records']} of {count}: lost wakeup"
    assert crc == 0
    assert pres["records"] == cres["records"] == count
    assert cres["bad"] == 0, f"first bad record: {cres['first_bad']}"
    assert cres["bytes"] == pres["bytes"]


@pytest.mark.parametrize("burst,pause_every,pause_us", [
    (32, 1000, 50),   # bursts with gaps: the consumer falls asleep between them
    (1, 4096, 20),    # a flush per record: the most races with the consumer arming
])
def test_no_lost_wakeup_two_million_small_records(rings, burst, pause_every, pause_us):
    count = 2_000_000
    crc, cres, cstats, prc, pres, pstats = _run_bench(
        rings, SIZE_DEFAULT, count, [60], burst=burst, pause_every=pause_every,
        pause_us=pause_us)
    _assert_all_arrived(count, crc, cres, prc, pres)
    assert cstats["records"] == count
    assert cstats["sleeps"] > 0, "the consumer never slept: the test proved nothing"
    assert pstats["kicks"] > 0, "the producer never woke the consumer"
    assert sum(cstats["drops"].values()) == 0


def test_no_lost_wakeup_mixed_sizes_verified(rings):
    count = 200_000
    sizes = [60, 1514, 22, 9000, 64, 127, 65535, 128, 1500, lib.RING_FRAME_MAX, 65]
    crc, cres, cstats, prc, pres, pstats = _run_bench(
        rings, SIZE_DEFAULT, count, sizes, burst=7, pause_every=777, pause_us=30,
        flags=lib.BENCH_VERIFY)
    _assert_all_arrived(count, crc, cres, prc, pres)
    assert cstats["sleeps"] > 0
    assert pstats["kicks"] > 0
    assert cstats["pads"] == pstats["pads"] > 0


def test_no_lost_wakeup_both_sides_sleep_on_a_small_ring(rings):
    """A ring that fills: the producer sleeps on the space eventfd and the
    consumer on the data eventfd, over and over."""
    count = 300_000
    sizes = [60, 1514, 9000, 22, 4000, 128]
    crc, cres, cstats, prc, pres, pstats = _run_bench(
        rings, SIZE_MIN, count, sizes, burst=16, flags=lib.BENCH_VERIFY)
    _assert_all_arrived(count, crc, cres, prc, pres)
    assert pstats["full"] > 0 and pstats["sleeps"] > 0, "the producer never slept"
    assert cstats["kicks"] > 0, "the consumer never woke the producer"
    assert cstats["sleeps"] > 0


def test_no_lost_wakeup_slow_consumer_wakes_sleeping_producer(rings):
    """The consumer is Python (slow), so the C producer keeps finding the
    ring full and sleeping; every record must still arrive, in order."""
    count = 100_000
    sizes = [60, 1514, 300, 22, 9000]
    cons = rings.alone(CONSUMER, SIZE_MIN)[0]
    child = Child.start(_bench_produce, cons.fds, SIZE_MIN, count, sizes, 8, 0, 0,
                        lib.BENCH_VERIFY, timeout=TIMEOUT_MS / 1000 + 10)
    bad = []
    try:
        end = time.monotonic() + TIMEOUT_MS / 1000
        seq = 0
        while seq < count:
            f = _next(cons, cons.recv, end,
                      lambda: f"nothing after record {seq} of {count}: lost wakeup")
            if f != bench_frame(seq, sizes[seq % len(sizes)]):
                bad.append(seq)
            seq += 1
    finally:
        prc, pres, pstats = child.join()
    assert prc == 0
    assert bad == []
    assert pres["records"] == count
    assert cons.recv() is None
    assert pstats["sleeps"] > 0, "the producer never slept: the test proved nothing"
    assert cons.stats()["kicks"] > 0


def _pong(a_fds, b_fds, count):
    rx, tx = Ring(a_fds, CONSUMER), Ring(b_fds, PRODUCER)
    res = ffi.new("struct bench_result *")
    rc = lib.bench_pong(rx.handle, tx.handle, count, 0, TIMEOUT_MS, res)
    return rc, result_dict(res), rx.stats(), tx.stats()


def test_no_lost_wakeup_ping_pong(rings):
    """Each side sleeps until the other answers: one lost wakeup stalls both
    for good. A round trip is short, so the window between a side's last
    check and its sleep is hit over and over."""
    count = 50_000
    tx, _ = rings.alone(PRODUCER, SIZE_MIN)   # ring a: parent -> child
    rx, _ = rings.alone(CONSUMER, SIZE_MIN)   # ring b: child -> parent
    child = Child.start(_pong, tx.fds, rx.fds, count, timeout=TIMEOUT_MS / 1000 + 10)
    res = ffi.new("struct bench_result *")
    try:
        rc = lib.bench_ping(tx.handle, rx.handle, count, 60, 0, TIMEOUT_MS, ffi.NULL, res)
    finally:
        prc, pres, pong_rx, pong_tx = child.join()
    assert rc != -errno.ETIMEDOUT, f"stalled after {res.records} round trips: lost wakeup"
    assert rc == 0 and prc == 0
    assert res.records == pres["records"] == count
    assert res.bad == 0
    assert rx.stats()["sleeps"] > 0 and pong_rx["sleeps"] > 0, "nobody slept: the test proved nothing"
    assert tx.stats()["kicks"] > 0 and pong_tx["kicks"] > 0
