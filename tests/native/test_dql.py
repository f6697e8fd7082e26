"""native/dql.h through cffi: the byte limit on what a pump takes from its
TAP, one test per rule (grows on starvation, shrinks by the least slack of a
window, stays within its bounds)."""
from hypothesis import given, settings, strategies as st

from vnetshare.dataplane._native import ffi, lib

MS = 1_000_000  # ns
KIB = 1024


def limit(lo=64 * KIB, hi=4096 * KIB, hold=100 * MS, now=0):
    d = ffi.new("struct dql *")
    lib.dql_init(d, lo, hi, hold, now)
    return d


def test_starts_at_the_default_within_bounds():
    assert limit().limit == lib.DQL_START_DEFAULT
    assert limit(lo=1024 * KIB).limit == 1024 * KIB
    assert limit(hi=128 * KIB).limit == 128 * KIB
    assert limit(lo=512 * KIB, hi=1).max_limit == 512 * KIB  # a ceiling below the floor is the floor


def test_room_below_the_limit_only():
    d = limit()
    assert lib.dql_room(d, 0) and lib.dql_room(d, d.limit - 1)
    assert not lib.dql_room(d, d.limit) and not lib.dql_room(d, d.limit + 1)


def test_starvation_grows_it_by_half_up_to_the_ceiling():
    d = limit(hi=600 * KIB)
    lib.dql_starved(d, 1)
    assert d.limit == 384 * KIB and d.grown == 1
    lib.dql_starved(d, 2)
    assert d.limit == 576 * KIB
    lib.dql_starved(d, 3)
    assert d.limit == 600 * KIB  # capped
    lib.dql_starved(d, 4)
    assert d.limit == 600 * KIB and d.grown == 4


def test_slack_is_taken_off_once_the_window_ends():
    d = limit()
    lib.dql_slack(d, 100 * KIB, 10 * MS)
    lib.dql_slack(d, 40 * KIB, 50 * MS)   # the least excess of the window
    lib.dql_slack(d, 90 * KIB, 99 * MS)
    assert d.limit == 256 * KIB and d.shrunk == 0  # the window has not ended
    lib.dql_slack(d, 70 * KIB, 100 * MS)
    assert d.limit == (256 - 40) * KIB and d.shrunk == 1
    lib.dql_slack(d, 80 * KIB, 150 * MS)  # a new window, from 100 ms
    assert d.limit == (256 - 40) * KIB
    lib.dql_slack(d, 80 * KIB, 200 * MS)
    assert d.limit == (256 - 40 - 80) * KIB


def test_slack_stops_at_the_floor():
    d = limit(lo=200 * KIB)
    lib.dql_slack(d, 1 << 40, 100 * MS)
    assert d.limit == 200 * KIB


def test_starvation_starts_a_new_slack_window():
    d = limit()
    lib.dql_slack(d, 10 * KIB, 10 * MS)
    lib.dql_starved(d, 90 * MS)  # 384 KiB, the 10 KiB forgotten
    lib.dql_slack(d, 100 * KIB, 150 * MS)
    assert d.limit == 384 * KIB  # 60 ms into the new window
    lib.dql_slack(d, 100 * KIB, 190 * MS)
    assert d.limit == 284 * KIB


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 1 << 30), st.integers(0, 50 * MS)), max_size=200))
def test_any_sequence_stays_within_its_bounds(events):
    d, now = limit(), 0
    for starved, used, dt in events:
        now += dt
        if starved:
            lib.dql_starved(d, now)
        else:
            lib.dql_slack(d, used, now)
        assert d.min_limit <= d.limit <= d.max_limit
