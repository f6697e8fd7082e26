"""vnetshare/schema/vnetshare.json, the JSON Schema of every --json output
(docs/cli.md, "JSON output"): a valid draft 2020-12 schema, shipped in the
package, and it says what the daemon's pure shapes are (config.policy_json()).
The commands' real outputs are validated in tests/netns/test_json_schema.py."""
import json
from importlib import resources

import jsonschema
import pytest

from vnetshare.core.config import Rate, policy_json


def schema() -> dict:
    return json.loads(resources.files("vnetshare").joinpath("schema/vnetshare.json").read_text())


def validate(name: str, instance) -> None:
    jsonschema.Draft202012Validator({**schema(), "$ref": f"#/$defs/{name}"}).validate(instance)


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
