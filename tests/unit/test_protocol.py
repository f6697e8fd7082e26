"""protocol.py: bytes to messages and back, and request validation, without sockets."""
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vnetshare import ConfigError
from vnetshare.core import protocol as p
from vnetshare.core.config import Rate
from vnetshare.core.protocol import Decoder, ProtocolError

# --- encode / decode -----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
messages = st.dictionaries(st.text(), json_values, max_size=5)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for c in points + [len(data)]:
        out.append(data[last:c])
        last = c
    return out


@settings(max_examples=300)
@given(st.lists(messages, max_size=6), st.lists(st.integers(min_value=0), max_size=20))
def test_any_chunking_decodes_the_same_messages(msgs, cuts):
    stream = b"".join(p.encode(m) for m in msgs)
    dec = Decoder()
    got = []
    for chunk in split_at(stream, cuts):
        got += dec.feed(chunk)
    assert got == msgs
    assert dec.buffered == 0


@settings(max_examples=500)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_garbage_raises_only_protocol_error(chunks):
    dec = Decoder(max_line=256)
    try:
        for c in chunks:
            for msg in dec.feed(c):
                assert isinstance(msg, dict)
    except ProtocolError as e:
        assert e.code in ("EPROTO", "EMSGSIZE")


@settings(max_examples=200)
@given(st.lists(st.sampled_from([b"{", b"}", b"[", b"]", b'"', b"\\", b"\n", b"1", b",", b":", b" ", b"\xff",
                                 b"NaN", b"true", b"\r"]), max_size=60))
def test_json_shaped_garbage_raises_only_protocol_error(tokens):
    dec = Decoder()
    try:
        dec.feed(b"".join(tokens))
    except ProtocolError:
        pass


def test_encode_is_one_compact_line():
    line = p.encode({"op": "partition.show", "name": "wéb\nx"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert b" " not in line
    assert json.loads(line) == {"op": "partition.show", "name": "wéb\nx"}


def test_several_lines_in_one_chunk_and_a_partial_one():
    dec = Decoder()
    assert dec.feed(b'{"a":1}\n{"b":2}\n{"c"') == [{"a": 1}, {"b": 2}]
    assert dec.buffered == 4
    assert dec.feed(b":3}\n") == [{"c": 3}]
    assert dec.buffered == 0


def test_blank_lines_and_crlf_are_tolerated():
    assert Decoder().feed(b'\n  \r\n{"a":1}\r\n') == [{"a": 1}]


@pytest.mark.parametrize("line, why", [
    (b"[1,2]\n", "must be a JSON object, not list"),
    (b'"op"\n', "must be a JSON object, not str"),
    (b"{nope}\n", "malformed message"),
    (b'{"a":NaN}\n', "malformed message"),
    (b'{"a":"\xff"}\n', "malformed message"),
    (b"x" * 1001 + b"\n", "longer than"),
], ids=["list", "str", "not-json", "nan", "not-utf8", "too-long"])
def test_bad_lines(line, why):
    dec = Decoder(max_line=1000)
    with pytest.raises(ProtocolError, match=why) as e:
        dec.feed(line)
    assert isinstance(e.value, ConfigError)
    assert e.value.code == ("EMSGSIZE" if why == "longer than" else "EPROTO")


def test_deep_nesting_is_a_protocol_error_not_a_crash():
    with pytest.raises(ProtocolError, match="malformed"):
        Decoder(max_line=200000).feed(b"[" * 50000 + b"]" * 50000 + b"\n")


def test_long_line_refused_before_its_newline_arrives():
    dec = Decoder(max_line=100)
    dec.feed(b"{" + b" " * 99)
    with pytest.raises(ProtocolError, match="longer than 100 bytes") as e:
        dec.feed(b" ")
    assert e.value.code == "EMSGSIZE"


def test_line_of_exactly_max_line_is_accepted():
    body = b'{"a":"' + b"x" * 92 + b'"}'
    assert len(body) == 100
    assert Decoder(max_line=100).feed(body + b"\n") == [{"a": "x" * 92}]


def test_default_limit_is_4m():
    # an apply of some thousand partitions is one line (core/apply.py)
    assert p.MAX_LINE == 4 * 1024 * 1024
    dec = Decoder()
    with pytest.raises(ProtocolError, match="longer than 4194304"):
        dec.feed(b"x" * (4 * 1024 * 1024 + 1))


def test_decoder_stays_broken_after_an_error():
    dec = Decoder()
    with pytest.raises(ProtocolError):
        dec.feed(b"garbage\n")
    with pytest.raises(ProtocolError):
        dec.feed(b'{"a":1}\n')


def test_byte_by_byte_feed():
    stream = p.encode({"op": "stats"}) + p.encode({"ok": True, "x": [1, 2]})
    dec = Decoder()
    got = []
    for i in range(len(stream)):
        got += dec.feed(stream[i:i + 1])
    assert got == [{"op": "stats"}, {"ok": True, "x": [1, 2]}]


# --- shapes ----------------------------------------------------------------------

def test_shapes():
    assert p.request("partition.delete", name="web") == {"op": "partition.delete", "name": "web"}
    assert p.ok(partitions=[]) == {"ok": True, "partitions": []}
    assert p.error("EEXIST", "partition 'web' exists") == {
        "ok": False, "error": {"code": "EEXIST", "message": "partition 'web' exists"}}


def test_error_from():
    assert p.error_from(ProtocolError("x", "EOPNOTSUPP"))["error"] == {"code": "EOPNOTSUPP", "message": "x"}
    assert p.error_from(ConfigError("MTU 1: below"))["error"] == {"code": "EINVAL", "message": "MTU 1: below"}
    assert p.error_from(FileExistsError(17, "netns 'web': exists"))["error"] == {
        "code": "EEXIST", "message": "netns 'web': exists"}
    assert p.error_from(RuntimeError("boom"))["error"]["code"] == "EIO"


# --- validate_request ---------------------------------------------------------------

def test_create_minimal_gets_defaults():
    op, args = p.validate_request({"op": "partition.create", "name": "web"})
    assert op == "partition.create"
    assert args == {"name": "web", "ips": [], "gateway": None, "routes": [], "mac": None, "mtu": None,
                    "ifname": None, "netns": None, "labels": None, **POLICY_DEFAULTS}


def test_create_full_is_normalised():
    op, args = p.validate_request(p.request(
        "partition.create", name="web", ips=["10.0.0.2/24", "FD00::2/64"], gateway="10.0.0.1",
        routes=["10.1.0.0/16 via 10.0.0.9", "default via FD00::1", "192.0.2.0/24"],
        mac="02-AA-BB-CC-DD-EE", mtu=1400, ifname="eth1", netns="/run/netns/ctr",
        labels={"cni.network": "vnsnet"}))
    assert args == {"name": "web", "ips": ["10.0.0.2/24", "fd00::2/64"], "gateway": "10.0.0.1",
                    "routes": ["10.1.0.0/16 via 10.0.0.9", "::/0 via fd00::1", "192.0.2.0/24"],
                    "mac": "02:aa:bb:cc:dd:ee", "mtu": 1400, "ifname": "eth1", "netns": "/run/netns/ctr",
                    "labels": {"cni.network": "vnsnet"}, **POLICY_DEFAULTS}


@pytest.mark.parametrize("fields, words", [
    ({"routes": ["10.1.0.0/16 via 10.0.0.9"]}, ["route", "no IPv4 address"]),
    ({"ips": ["10.0.0.2/24"], "routes": ["default"]}, ["'default'", "needs `via GATEWAY`"]),
    ({"ips": ["10.0.0.2/24"], "routes": ["10.1.0.0/16 via fd00::1"]}, ["IPv6", "IPv4"]),
    ({"ips": ["10.0.0.2/24"], "routes": ["10.1.0.0/16 dev eth0"]}, ["not DST or DST via GATEWAY"]),
    ({"routes": "10.1.0.0/16"}, ["'routes'", "a list"]),
    ({"labels": {"bad key": "x"}}, ["'bad key'", "letters, digits"]),
    ({"labels": {"k": 5}}, ["'k'", "printable string"]),
    ({"labels": ["k=v"]}, ["'labels'", "an object"]),
])
def test_create_routes_and_labels_refused(fields, words):
    with pytest.raises(p.ProtocolError) as e:
        p.validate_request(p.request("partition.create", name="web", **fields))
    assert e.value.code == "EINVAL"
    for w in words:
        assert w in str(e.value), (w, str(e.value))


POLICY_DEFAULTS = {"allow_ips": [], "trusted_router": False, "allow_llc": False, "vlan": None,
                   "storm_limit": None, "tx_burst": None, "tx_limit": None, "rx_burst": None,
                   "rx_limit": None}


def test_create_policy_is_normalised():
    _, args = p.validate_request(p.request(
        "partition.create", name="r", allow_ips=["10.9.0.0/16", "FD00::/64"], trusted_router=True,
        vlan="10", storm_limit="2kpps", tx_limit=["200mbit", "10kpps"], tx_burst=["1mb"],
        rx_limit=["1gbit"]))
    assert args["allow_ips"] == ["10.9.0.0/16", "fd00::/64"] and args["trusted_router"] is True
    assert args["vlan"] == 10 and args["storm_limit"] == 2000
    assert args["tx_limit"] == Rate(200_000_000, 8 * 1024 * 1024, 10_000, 100)
    assert args["rx_limit"].bits_per_sec == 10**9 and args["rx_limit"].bits_burst >= 10**7


def test_set_fields_left_out_are_unchanged_and_none_removes():
    _, args = p.validate_request({"op": "partition.set", "name": "r"})
    assert args == {"name": "r", "ips": None, "gateway": None, "routes": None, "mtu": None, "mac": None,
                    "labels": None, "allow_ips": None, "trusted_router": None,
                    "allow_llc": None, "vlan": None, "storm_limit": None, "tx_burst": None, "tx_limit": None, "rx_burst": None,
                    "rx_limit": None}
    _, args = p.validate_request({"op": "partition.set", "name": "r", "vlan": "none",
                                  "tx_limit": ["none"], "storm_limit": "none", "ips": []})
    assert args["vlan"] == 0 and args["tx_limit"] == Rate() and args["storm_limit"] == 0
    assert args["ips"] == []


def test_set_changes_what_create_sets():
    """partition.set: gateway and routes (their reach is the manager's: it
    knows the addresses), MTU, MAC, labels as a merge (null removes), and a
    burst alone (a new depth for the rate the partition has)."""
    _, args = p.validate_request({"op": "partition.set", "name": "r", "gateway": "10.1.0.1",
                                  "routes": ["10.9.0.0/16 via 10.1.0.1", "default via fd00::1"], "mtu": 1400,
                                  "mac": "02:AA:00:00:00:01", "labels": {"team": "web", "old": None},
                                  "rx_burst": ["2mb"]})
    assert args["gateway"] == "10.1.0.1" and args["mtu"] == 1400 and args["mac"] == "02:aa:00:00:00:01"
    assert args["routes"] == ["10.9.0.0/16 via 10.1.0.1", "::/0 via fd00::1"]
    assert args["labels"] == {"team": "web", "old": None}
    assert args["rx_burst"] == ["2mb"] and args["rx_limit"] is None
    _, args = p.validate_request({"op": "partition.set", "name": "r", "gateway": "none", "routes": []})
    assert args["gateway"] == "none" and args["routes"] == []
    for bad, why in (({"gateway": "banana"}, "gateway 'banana'"), ({"mtu": 20}, "MTU 20: below"),
                     ({"mac": "01:00:00:00:00:01"}, "multicast"), ({"labels": {"a b": None}}, "label 'a b'"),
                     ({"routes": ["default"]}, "needs `via GATEWAY`")):
        with pytest.raises(ProtocolError, match=why) as e:
            p.validate_request({"op": "partition.set", "name": "r", **bad})
        assert e.value.code == "EINVAL"


def test_fdb_request():
    assert p.validate_request({"op": "fdb"}) == ("fdb", {"partition": None, "vlan": None})
    assert p.validate_request({"op": "fdb", "partition": "web", "vlan": "none"}) == (
        "fdb", {"partition": "web", "vlan": 0})
    with pytest.raises(ProtocolError, match="VLAN 5000"):
        p.validate_request({"op": "fdb", "vlan": 5000})


@pytest.mark.parametrize("fields, why", [
    ({"vlan": 4095}, "VLAN 4095: must be 1-4094"),
    ({"vlan": "ten"}, "VLAN 'ten': not a number"),
    ({"allow_ips": ["10.0.0.1/8"]}, "--allow-ip '10.0.0.1/8': has host bits set"),
    ({"allow_ips": ["any", "10.0.0.0/8"]}, "--allow-ip any: turns the address guard off"),
    ({"allow_ips": ["224.0.0.0/4"]}, "multicast"),
    ({"tx_limit": ["200mbps"]}, "--tx-limit '200mbps': unit 'mbps' is not one of"),
    ({"tx_limit": ["1mbit", "2mbit"]}, "a second bit rate"),
    ({"rx_limit": ["0kbit"]}, "out of range"),
    ({"rx_limit": ["1kpps"], "rx_burst": ["1mb"]}, "there is no bit rate for it"),
    ({"storm_limit": "-5"}, "storm limit '-5'"),
    ({"storm_limit": True}, "field 'storm_limit' must be"),
    ({"trusted_router": "yes"}, "field 'trusted_router' must be a boolean"),
    ({"allow_llc": 1}, "field 'allow_llc' must be a boolean"),
])
@pytest.mark.parametrize("op", ["partition.create", "partition.set"])
def test_bad_policy_values_name_the_value(op, fields, why):
    with pytest.raises(ProtocolError, match=re.escape(why)) as e:
        p.validate_request({"op": op, "name": "r", **fields})
    assert e.value.code == "EINVAL"


@pytest.mark.parametrize("op", ["partition.list", "adapter", "stats", "daemon.status"])
def test_no_field_ops(op):
    assert p.validate_request({"op": op}) == (op, {})


@pytest.mark.parametrize("op", ["partition.delete", "partition.show"])
def test_name_ops(op):
    assert p.validate_request({"op": op, "name": "db"}) == (op, {"name": "db"})
    with pytest.raises(ProtocolError, match=f"{op}: missing field 'name'"):
        p.validate_request({"op": op})


@pytest.mark.parametrize("msg, code, why", [
    ({"op": "partition.explode"}, "EOPNOTSUPP", "unknown op 'partition.explode'"),
    ({}, "EINVAL", "field 'op': missing"),
    ({"op": 3}, "EINVAL", "field 'op': missing or not a string"),
    ([], "EINVAL", "must be a JSON object"),
    ({"op": "stats", "verbose": True}, "EINVAL", "stats: unknown field 'verbose'"),
    ({"op": "partition.create"}, "EINVAL", "missing field 'name'"),
    ({"op": "partition.create", "name": 5}, "EINVAL", "field 'name' must be a string, not 5"),
    ({"op": "partition.create", "name": "a", "mtu": "1500"}, "EINVAL", "field 'mtu' must be an integer or null"),
    ({"op": "partition.create", "name": "a", "mtu": True}, "EINVAL", "field 'mtu' must be an integer or null, not true"),
    ({"op": "partition.create", "name": "a", "ips": "10.0.0.2/24"}, "EINVAL", "field 'ips' must be a list"),
    ({"op": "partition.create", "name": "a", "ips": [1]}, "EINVAL", "field 'ips' must be a list of strings"),
    ({"op": "partition.create", "name": "a", "ips": None}, "EINVAL", "field 'ips' must be a list, not null"),
    ({"op": "partition.create", "name": "a b"}, "EINVAL", "partition name 'a b': use 1-15"),
    ({"op": "partition.create", "name": "a", "ips": ["10.0.0.300/24"]}, "EINVAL", "address '10.0.0.300/24'"),
    ({"op": "partition.create", "name": "a", "mac": "01:00:00:00:00:01"}, "EINVAL", "MAC '01:00:00:00:00:01'"),
    ({"op": "partition.create", "name": "a", "mtu": 20}, "EINVAL", "MTU 20: below"),
    ({"op": "partition.create", "name": "a", "ifname": "a/b"}, "EINVAL", "interface name 'a/b'"),
    ({"op": "partition.create", "name": "a", "netns": "ctr"}, "EINVAL", "netns path 'ctr': must be absolute"),
    ({"op": "partition.create", "name": "a", "gateway": "10.0.0.1"}, "EINVAL",
     "gateway '10.0.0.1': the partition has no IPv4 address"),
    ({"op": "partition.create", "name": "a", "ips": ["fd00::2/64"], "gateway": "10.0.0.1"}, "EINVAL",
     "no IPv4 address"),
])
def test_invalid_requests(msg, code, why):
    with pytest.raises(ProtocolError, match=why.replace("(", r"\(").replace(".", r"\.")) as e:
        p.validate_request(msg)
    assert e.value.code == code


def test_every_op_has_a_table_entry():
    assert set(p.OPS) == {"partition.create", "partition.set", "partition.delete", "partition.list",
                          "partition.show", "adapter", "stats", "daemon.status", "capture", "events", "fdb",
                          "groups", "apply"}


def test_groups_request_takes_a_vlan_or_none():
    assert p.validate_request({"op": "groups"}) == ("groups", {"vlan": None})
    assert p.validate_request({"op": "groups", "vlan": 10}) == ("groups", {"vlan": 10})
    with pytest.raises(p.ProtocolError, match="4095"):
        p.validate_request({"op": "groups", "vlan": 4095})


def test_capture_request_defaults_and_values():
    op, args = p.validate_request({"op": "capture", "name": "web"})
    assert (op, args) == ("capture", {"name": "web", "direction": "both", "drops": False, "snaplen": 65537,
                                      "filter": None, "filter_text": None})
    _, args = p.validate_request({"op": "capture", "name": "web", "direction": "in", "drops": True, "snaplen": 96})
    assert (args["direction"], args["drops"], args["snaplen"]) == ("in", True, 96)


@pytest.mark.parametrize("fields, why", [
    ({"direction": "up"}, "direction 'up'"),
    ({"snaplen": 13}, "snaplen 13"),
    ({"snaplen": 70000}, "snaplen 70000"),
    ({"drops": "yes"}, "field 'drops' must be a boolean"),
    ({"count": 3}, "unknown field 'count'"),
])
def test_bad_capture_requests_name_the_value(fields, why):
    with pytest.raises(ProtocolError, match=why) as e:
        p.validate_request({"op": "capture", "name": "web", **fields})
    assert e.value.code == "EINVAL"


def test_create_refuses_a_burst_without_its_limit():
    with pytest.raises(ProtocolError, match="field 'tx_burst' needs 'tx_limit'") as e:
        p.validate_request({"op": "partition.create", "name": "r", "tx_burst": ["1mb"]})
    assert e.value.code == "EINVAL"


def test_events_request():
    assert p.validate_request({"op": "events"}) == ("events", {"follow": False})
    assert p.validate_request({"op": "events", "follow": True}) == ("events", {"follow": True})
    for bad, why in (({"follow": 1}, "field 'follow' must be a boolean, not 1"),
                     ({"lines": 5}, "events: unknown field 'lines'")):
        with pytest.raises(ProtocolError, match=why) as e:
            p.validate_request({"op": "events", **bad})
        assert e.value.code == "EINVAL"


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(["op", "name", "ips", "mtu", "mac", "gateway", "netns", "ifname", "x",
                                        "allow_ips", "vlan", "storm_limit", "tx_limit", "tx_burst",
                                        "rx_limit", "trusted_router", "allow_llc"]),
                       json_values, max_size=6))
def test_validate_request_raises_only_protocol_error(msg):
    if "op" in msg and isinstance(msg["op"], str):
        msg["op"] = "partition.create"
    try:
        op, args = p.validate_request(msg)
    except ProtocolError as e:
        assert e.code in ("EINVAL", "EOPNOTSUPP")
    else:
        assert op == "partition.create" and set(args) == set(p.OPS[op])
