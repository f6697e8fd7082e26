"""native/fdb.c through cffi: the table of stations learned on the wire, its rules one by one."""
import os

import pytest
from hypothesis import given, settings, strategies as st

from vnetshare.dataplane._native import ffi, lib

S = 1_000_000_000  # ns per second
T0 = 1000 * S      # a clock that is well past 0 (0 is never a time)


class Table:
    """One struct fdb, freed after the test."""

    def __init__(self, size=64, age_s=300, seed=0):
        self.f = ffi.new("struct fdb *")
        self.rc = lib.fdb_init(self.f, size, age_s * S, seed)

    def learn(self, mac: bytes, vlan: int, now: int) -> tuple[bool, bytes, int]:
        added = ffi.new("int *")
        e = lib.fdb_learn(self.f, mac, vlan, now, added)
        return bool(added[0]), bytes(e.mac), int(e.vlan)

    def find(self, mac: bytes, vlan: int, now: int):
        e = lib.fdb_find(self.f, mac, vlan, now)
        if e == ffi.NULL:
            return None
        info = ffi.new("struct fdb_info *")
        lib.fdb_describe(e, now, info)
        return int(info.vlan), int(info.age_ns)

    def dump(self, now: int, room: int = 1 << 16) -> list[tuple[bytes, int, int]]:
        out = ffi.new("struct fdb_info[]", room)
        total = ffi.new("unsigned int *")
        n = lib.fdb_dump(self.f, now, out, room, total)
        assert n == min(total[0], room)
        return [(bytes(out[i].mac), int(out[i].vlan), int(out[i].age_ns)) for i in range(n)]

    def stats(self, now: int) -> dict:
        st = ffi.new("struct fdb_stats *")
        lib.fdb_get_stats(self.f, now, st)
        return {k: int(getattr(st, k)) for k in ("entries", "learned", "evicted", "size")}

    def close(self):
        lib.fdb_fini(self.f)


@pytest.fixture
def table():
    made = []

    def make(**kw):
        t = Table(**kw)
        assert t.rc == 0
        made.append(t)
        return t
    yield make
    for t in made:
        t.close()


def mac(i: int) -> bytes:
    return bytes([0x02, 0, 0, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])


GW = bytes.fromhex("525400123456")


def test_init_takes_a_power_of_two_size_and_a_bounded_age():
    for size, age in ((15, 300), (3 << 10, 300), (lib.FDB_SIZE_MAX * 2, 300), (8, 300),
                      (64, lib.FDB_AGE_MAX_S + 1)):
        t = Table(size=size, age_s=age)
        assert t.rc == -22, (size, age)
        t.close()
    t = Table(size=0, age_s=0)      # the defaults
    assert t.rc == 0 and t.stats(T0)["size"] == lib.FDB_SIZE_DEFAULT
    assert t.f.age_ns == lib.FDB_AGE_DEFAULT_S * S
    t.close()


def test_a_station_is_learned_per_vlan_and_refreshed(table):
    t = table()
    assert t.learn(GW, 0, T0) == (True, GW, 0)
    assert t.learn(GW, 0, T0 + S) == (False, GW, 0)           # the same one, refreshed
    assert t.learn(GW, 10, T0 + 2 * S) == (True, GW, 10)      # another VLAN: its own entry
    assert t.find(GW, 0, T0 + 3 * S) == (0, 2 * S)
    assert t.find(GW, 10, T0 + 3 * S) == (10, S)
    assert t.find(GW, -1, T0 + 3 * S) == (10, S)              # any VLAN: the most recently seen
    assert t.find(GW, 20, T0 + 3 * S) is None
    assert t.find(mac(1), -1, T0 + 3 * S) is None
    assert t.stats(T0 + 3 * S) == {"entries": 2, "learned": 2, "evicted": 0, "size": 64}


def test_an_entry_ages_out_and_comes_back_as_new(table):
    t = table(age_s=5)
    t.learn(GW, 0, T0)
    assert t.find(GW, -1, T0 + 5 * S - 1) == (0, 5 * S - 1)
    assert t.find(GW, -1, T0 + 5 * S) is None                  # exactly the ageing time: gone
    assert t.stats(T0 + 5 * S)["entries"] == 0 and t.dump(T0 + 5 * S) == []
    assert t.learn(GW, 0, T0 + 6 * S) == (True, GW, 0)         # back: learned again
    assert t.stats(T0 + 6 * S) == {"entries": 1, "learned": 2, "evicted": 0, "size": 64}


def test_the_table_never_grows_and_says_what_it_forgot(table):
    t = table(size=16)
    for i in range(1000):
        t.learn(mac(i), 0, T0 + i)
    st = t.stats(T0 + 1000)
    assert st["entries"] == 16 and st["learned"] == 1000
    assert st["evicted"] == 1000 - 16
    assert len(t.dump(T0 + 1000)) == 16


def test_a_flood_of_forged_sources_evicts_quiet_stations_not_a_busy_one(table):
    t = table(size=64)
    quiet = mac(0xABCDE)
    t.learn(quiet, 0, T0)
    now = T0
    for i in range(20_000):
        now += 1
        t.learn(bytes([0x02]) + os.urandom(5), 0, now)
        if i % 2 == 0:
            now += 1
            t.learn(GW, 0, now)                    # the gateway talks all the time
    assert t.find(GW, 0, now) is not None, "the busy station was evicted by the flood"
    assert t.find(quiet, 0, now) is None, "the flood evicted nothing: the table is not full?"
    assert t.stats(now)["evicted"] > 10_000


def test_a_reused_slot_is_never_taken_for_its_old_station(table):
    t = table(size=16)
    t.learn(GW, 0, T0)                                      # the table's last entry now
    for i in range(200):                                    # every slot reused, GW's too
        t.learn(mac(i), 0, T0 + 1 + i)
    assert t.find(GW, -1, T0 + 300) is None
    added, got, _ = t.learn(GW, 0, T0 + 300)
    assert added and got == GW                              # a new entry, with GW's address
    assert t.find(GW, 0, T0 + 300) == (0, 0)


def test_dump_lists_live_entries_with_their_age(table):
    t = table(age_s=10)
    t.learn(mac(1), 0, T0)
    t.learn(mac(2), 7, T0 + 4 * S)
    t.learn(mac(3), 0, T0 + 8 * S)
    got = sorted(t.dump(T0 + 12 * S))                       # mac(1) is 12 s old: aged out
    assert got == [(mac(2), 7, 8 * S), (mac(3), 0, 4 * S)]
    assert t.dump(T0 + 12 * S, room=1) and len(t.dump(T0 + 12 * S, room=1)) == 1


KEYS = [(mac(i), v) for i in range(6) for v in (0, 3)]


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, len(KEYS) - 1), st.integers(0, 3 * S)), max_size=60),
       seed=st.integers(0, (1 << 64) - 1))
def test_agrees_with_a_dictionary(steps, seed):
    """With room for every key, the table is a dictionary of last-seen
    times whose entries vanish after the ageing time."""
    t = Table(size=1024, age_s=5, seed=seed)
    try:
        model: dict[tuple[bytes, int], int] = {}
        now = T0
        for k, dt in steps:
            now += dt
            key = KEYS[k]
            added, got_mac, got_vlan = t.learn(key[0], key[1], now)
            live = key in model and now - model[key] < 5 * S
            assert (got_mac, got_vlan) == key and added == (not live)
            model[key] = now
            for m, v in KEYS:
                seen = model.get((m, v))
                want = (v, now - seen) if seen is not None and now - seen < 5 * S else None
                assert t.find(m, v, now) == want
        live = {k for k, seen in model.items() if now - seen < 5 * S}
        assert {(m, v) for m, v, _ in t.dump(now)} == live
        assert t.stats(now)["evicted"] == 0
    finally:
        t.close()
