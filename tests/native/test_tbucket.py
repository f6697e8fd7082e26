"""native/tbucket.h through cffi: the token bucket's rules, one test each."""
from hypothesis import given, settings, strategies as st

from vnetshare.dataplane._native import ffi, lib

S = 1_000_000_000  # ns per second
U64 = (1 << 64) - 1


def bucket(rate, burst, now=0):
    tb = ffi.new("struct tbucket *")
    lib.tbucket_init(tb, rate, burst, now)
    return tb


def passes(tb, n, now):
    """Frames of @n units that pass at @now, until one does not."""
    k = 0
    while lib.tbucket_take(tb, n, now):
        k += 1
        assert k < 10_000
    return k


def test_no_rate_is_no_limit():
    tb = bucket(0, 0)
    assert all(lib.tbucket_take(tb, 1 << 40, 0) for _ in range(100))
    assert lib.tbucket_wait_ns(tb, 0) == 0


def test_starts_full_and_passes_exactly_the_burst_of_packets():
    tb = bucket(100, 10, now=5 * S)
    assert passes(tb, 1, 5 * S) == 10


def test_refill_at_the_rate_capped_at_the_burst():
    tb = bucket(100, 10)
    assert passes(tb, 1, 0) == 10
    assert passes(tb, 1, S // 20) == 5            # 50 ms at 100/s
    assert passes(tb, 1, 100 * S) == 10           # long idle: full, not more


def test_big_frame_passes_when_full_then_debt_is_paid_in_time():
    tb = bucket(1000, 100)                       # bits: 1000 b/s, 100 b burst
    assert lib.tbucket_take(tb, 800, 0)          # larger than the burst
    assert not lib.tbucket_ok(tb, 0)
    wait = lib.tbucket_wait_ns(tb, 0)            # 700 bits of debt at 1000 b/s
    assert wait == 700 * S // 1000 + 1
    assert not lib.tbucket_ok(tb, wait - 1)
    assert lib.tbucket_ok(tb, wait)


def test_time_going_backwards_refills_nothing():
    tb = bucket(100, 10, now=S)
    assert passes(tb, 1, S) == 10
    assert passes(tb, 1, 0) == 0


def test_set_keeps_level_clamps_and_lifts():
    tb = bucket(100, 10)
    assert passes(tb, 1, 0) == 10
    lib.tbucket_set(tb, 1000, 10, 0)             # a faster rate: still empty now
    assert passes(tb, 1, 0) == 0
    assert passes(tb, 1, S // 100) == 10         # 10 ms at 1000/s
    lib.tbucket_set(tb, 1000, 3, S)              # full (10) clamped to the new burst
    assert passes(tb, 1, S) == 3
    lib.tbucket_set(tb, 0, 0, S)                 # lifted
    assert lib.tbucket_ok(tb, S) and lib.tbucket_wait_ns(tb, S) == 0
    lib.tbucket_set(tb, 100, 5, S)               # set where there was none: full
    assert passes(tb, 1, S) == 5


@settings(max_examples=300, deadline=None)
@given(rate=st.integers(1, U64), burst=st.integers(1, U64), n=st.integers(0, U64),
       t=st.lists(st.integers(0, U64), min_size=1, max_size=8))
def test_extremes_never_overflow(rate, burst, n, t):
    tb = bucket(rate, burst)
    for now in t:
        ok = lib.tbucket_take(tb, n, now)
        w = lib.tbucket_wait_ns(tb, now)
        assert (w == 0) == bool(lib.tbucket_ok(tb, now)), (ok, w)


@settings(max_examples=200, deadline=None)
@given(rate=st.integers(1, 10_000), burst=st.integers(1, 1000), size=st.integers(1, 5000),
       steps=st.lists(st.integers(0, S // 10), min_size=1, max_size=50))
def test_what_passes_is_bounded_by_burst_plus_rate_times_time_plus_one_frame(rate, burst, size, steps):
    tb = bucket(rate, burst)
    now, sent = 0, 0
    for dt in steps:
        now += dt
        while lib.tbucket_take(tb, size, now):
            sent += size
    assert sent <= burst + rate * now // S + 1 + size
