"""The counters' one shape (vnetshare.dataplane.counters): every C field reaches the
front ends, drops under "drops", without a hand-kept list of names."""
import pytest

from vnetshare.dataplane import counters
from vnetshare.dataplane._native import ffi
from vnetshare.dataplane.ring import DROP_REASONS
from vnetshare.dataplane.switch import GUARD_VERDICTS, _PORT_ARRAYS, _port_counters


def _fill_unique(st) -> dict:
    """Give every counter of @st its own value; return field -> value(s)."""
    seen, n = {}, 1
    for name, field in ffi.typeof(st).item.fields:
        if field.type.kind == "array":
            arr = getattr(st, name)
            seen[name] = []
            for i in range(len(arr)):
                arr[i] = n
                seen[name].append(n)
                n += 1
        else:
            setattr(st, name, n)
            seen[name] = n
            n += 1
    return seen


@pytest.mark.parametrize("ctype", ["struct sw_uplink_stats", "struct pump_stats", "struct ring_stats"])
def test_every_scalar_field_is_shown_once(ctype):
    st = ffi.new(ctype + " *")
    seen = _fill_unique(st)
    arrays = {"drops": counters.array_labels(DROP_REASONS)} if ctype == "struct ring_stats" else None
    out = counters.from_struct(st, arrays)
    shown = [v for k, v in out.items() if k != "drops"] + list(out["drops"].values())
    expected = [v for v in seen.values() if isinstance(v, int)]
    expected += [v for vs in seen.values() if isinstance(vs, list) for v in vs]
    assert sorted(shown) == sorted(expected)


def test_port_counters_drops_by_reason():
    st = ffi.new("struct sw_port_stats *")
    seen = _fill_unique(st)
    out = _port_counters(st)
    assert out["tx_frames"] == seen["tx_frames"] and out["violations"] == seen["violations"]
    assert out["disconnected"] is True
    d = out["drops"]
    assert d["uplink_tx"] == seen["drop_uplink_tx"] and d["h2a_full"] == seen["drop_h2a_full"]
    # guard verdicts that drop are reasons by their own names; pass_* are not drops
    for i, verdict in enumerate(GUARD_VERDICTS):
        if verdict.startswith("drop_"):
            assert d[verdict[len("drop_"):]] == seen["guard_drops"][i]
        else:
            assert seen["guard_drops"][i] not in d.values()
    for i, reason in enumerate(DROP_REASONS):
        assert d[f"ring_{reason}"] == seen["ring_drops"][i]
    assert {"spoof", "vlan", "mtu", "loop"} <= set(d)


def test_uplink_drop_fields_keep_their_direction():
    st = ffi.new("struct sw_uplink_stats *")
    st.rx_drop_unknown, st.tx_drop_msgsize, st.rx_frames = 3, 4, 5
    out = counters.from_struct(st)
    assert out["drops"]["rx_unknown"] == 3 and out["drops"]["tx_msgsize"] == 4
    assert out["rx_frames"] == 5 and "rx_drop_unknown" not in out


def test_an_array_without_labels_is_an_error_not_a_silent_loss():
    st = ffi.new("struct sw_port_stats *")
    with pytest.raises(KeyError, match="guard_drops"):
        counters.from_struct(st, {"ring_drops": _PORT_ARRAYS["ring_drops"]})


@pytest.mark.parametrize("field, reason", [
    ("drop_spoof", "spoof"), ("rx_drop_kernel", "rx_kernel"), ("tx_frames", None),
    ("naps", None),
])
def test_drop_name(field, reason):
    assert counters.drop_name(field) == reason


def test_arrays_are_as_long_as_their_enums():
    # cffi sizes a "[]" field in the middle of a struct wrongly; the cdef
    # says "[...]" and this catches a relapse
    st = ffi.new("struct sw_port_stats *")
    assert len(st.guard_drops) == len(GUARD_VERDICTS)
    assert len(st.ring_drops) == len(DROP_REASONS)
    assert len(ffi.new("struct ring_stats *").drops) == len(DROP_REASONS)
