"""vnetshare/schema/vnetshare.json, the JSON Schema of every --json output
(docs/cli.md, "JSON output"): a valid draft 2020-12 schema, shipped in the
package, and it says what the daemon's pure shapes are (config.policy_json()).
The commands' real outputs are validated in tests/netns/test_json_schema.py."""
import jsonschema
import pytest

from schemacheck import schema, schema_errors, validator
from vnetshare.core.config import Rate, policy_json


def validate(name: str, instance) -> None:
    validator(name).validate(instance)


def test_the_schema_is_draft_2020_12_and_names_a_definition_per_command():
    s = schema()
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for command, name in s["x-commands"].items():
        assert name.split()[0] in s["$defs"], command


def test_a_policy_is_numbers_with_units_and_null_for_none():
    pol = policy_json(0, 0, Rate(bits_per_sec=10**8, bits_burst=8 * 65536), Rate(pkts_per_sec=1000, pkts_burst=64))
    assert pol == {"vlan": None, "storm_limit_pps": None,
                   "tx_limit_bps": 10**8, "tx_burst_bytes": 65536, "tx_limit_pps": None, "tx_burst_frames": None,
                   "rx_limit_bps": None, "rx_burst_bytes": None, "rx_limit_pps": 1000, "rx_burst_frames": 64}
    validate("policy", pol)
    for bad in (dict(pol, vlan=0), dict(pol, tx_limit_bps="100mbit"), dict(pol, storm_limit_pps=0)):
        with pytest.raises(jsonschema.ValidationError):
            validate("policy", bad)


def test_an_fdb_row_static_has_no_age_and_a_learned_one_is_the_uplinks():
    validate("fdb", [{"mac": "02:00:00:00:00:01", "vlan": None, "port": "web", "port_kind": "partition",
                      "static": True, "age_seconds": None},
                     {"mac": "02:00:00:00:00:02", "vlan": 10, "port": "eth1", "port_kind": "uplink",
                      "static": False, "age_seconds": 1.5}])
    for bad in ({"mac": "02:00:00:00:00:01", "vlan": None, "port": "web", "port_kind": "partition",
                 "static": True, "age_seconds": 3.0},
                {"mac": "02:00:00:00:00:01", "vlan": 0, "port": "web", "port_kind": "partition",
                 "static": True, "age_seconds": None}):
        with pytest.raises(jsonschema.ValidationError):
            validate("fdb_row", bad)


def _verify_row(**kw) -> dict:
    row = {"check": "a frame with another partition's source MAC", "expected": "dropped", "reason": "spoof",
           "receiver": 0, "uplink": 0, "counted": 1, "verdict": "ok"}
    return {**row, **kw}


def test_verify_rows_say_what_was_seen_and_a_verdict_of_four_kinds():
    rep = {"ok": False, "facts": {"sender": "vns-verify-1s", "receiver": "vns-verify-1r", "vlan": 4094,
                                  "uplink": "eth1", "storm_limit_pps": 1000},
           "checks": [_verify_row(), _verify_row(receiver=1, verdict="LEAK: seen by the receiver"),
                      _verify_row(receiver=None, uplink=None, counted=None, reason=None,
                                  verdict="n/a: the partitions have no tx-checksum-ip-generic"),
                      _verify_row(check="agents confined", receiver=None, uplink=None, counted=None, reason=None,
                                  verdict="FAIL: pid 7: Seccomp 0")]}
    assert schema_errors("verify", rep) == []
    for bad in (_verify_row(verdict="fine"), _verify_row(verdict="ok, mostly"), _verify_row(counted=-1),
                {k: v for k, v in _verify_row().items() if k != "reason"}, _verify_row(extra=1)):
        assert schema_errors("verify_row", bad), bad
    assert schema_errors("verify", {**rep, "facts": {**rep["facts"], "vlan": 0}})


def test_a_lab_demo_row_is_a_path_a_known_test_and_its_outcome():
    rep = {"ok": True, "checks": [{"path": "lab-a -> lab-b", "test": "ping IPv4", "ok": True,
                                   "detail": "5/5 replies, avg 0.061 ms"},
                                  {"path": "lab", "test": "setup", "ok": False, "detail": "no such device"}]}
    assert schema_errors("lab_demo", rep) == []
    for bad in ({"path": "x", "test": "ping IPv5", "ok": True, "detail": ""},
                {"path": "x", "test": "setup", "ok": "yes", "detail": ""},
                {"path": "x", "test": "setup", "ok": True}):
        assert schema_errors("lab_demo", {"ok": True, "checks": [bad]}), bad
