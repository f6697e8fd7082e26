"""core/apply.py: the file's entries, their checks and the plan (no daemon)."""
from __future__ import annotations

import pytest

from vnetshare.core import apply as ap
from vnetshare.core.config import Rate
from vnetshare.core.state import PartitionState


def _rec(name: str, ips: list[str], **kw) -> PartitionState:
    return PartitionState(name=name, netns=f"/run/netns/{name}", netns_created=True, ifname="eth0",
                          mac="02:00:5e:00:00:01", mtu=1500, ips=ips, **kw)


def test_toml_and_json_give_the_same_entries():
    toml = '[[partition]]\nname = "web"\nips = ["10.0.0.2/24"]\nlabels = { app = "x" }\n'
    json_ = '{"partitions": [{"name": "web", "ips": ["10.0.0.2/24"], "labels": {"app": "x"}}]}'
    assert ap.parse(toml, "toml") == ap.parse(json_, "json") == [
        {"name": "web", "ips": ["10.0.0.2/24"], "labels": {"app": "x"}}]
    assert ap.parse("[]", "json") == [] and ap.parse("", "toml") == []


@pytest.mark.parametrize("text, fmt, why", [
    ('[[partitions]]\nname = "a"\n', "toml", "unknown key 'partitions' at the top"),
    ('{"partition": []}', "json", "unknown key 'partition' at the top"),
    ('{"partitions": [1]}', "json", "'partitions' must be a list of partitions"),
    ("name = ", "toml", "not valid TOML"),
])
def test_a_file_that_is_not_a_list_of_partitions_is_named(text, fmt, why):
    with pytest.raises(ap.ApplyError, match=why):
        ap.parse(text, fmt)


def test_every_bad_entry_is_named_by_index_name_and_field():
    with pytest.raises(ap.ApplyError) as e:
        ap.check([{"name": "a", "ips": ["10.0.0.2/24"]}, {"name": "b", "mtu": "big"}, {"ips": []},
                  {"name": "a"}, {"name": "c", "colour": "red"}])
    assert str(e.value) == ("partition 1 ('b'): field 'mtu' must be an integer or null, not \"big\"; "
                            "partition 2: missing field 'name'; "
                            "partition 3 ('a'): name given twice (also partition 0); "
                            "partition 4 ('c'): unknown field 'colour'")


def test_plan_creates_changes_what_set_can_and_prunes_only_when_asked():
    entries = ap.check([{"name": "a", "ips": ["10.0.0.2/24"]},
                        {"name": "b", "ips": ["10.0.0.3/24"], "tx_limit": ["10mbit"]},
                        {"name": "c", "ips": ["10.0.0.4/24"]}])
    declared = [["name", "ips"], ["name", "ips", "tx_limit"], ["name", "ips"]]
    records = {"a": _rec("a", ["10.0.0.2/24"]), "b": _rec("b", ["10.0.0.9/24"]), "old": _rec("old", [])}
    p = ap.plan(entries, declared, records, ("ips", "tx_limit"), prune=False)
    assert p.unchanged == ["a"] and p.delete == [] and [c["name"] for c in p.create] == ["c"]
    assert p.change == [{"name": "b", "ips": ["10.0.0.3/24"], "tx_limit": entries[1]["tx_limit"]}]
    assert isinstance(p.change[0]["tx_limit"], Rate)
    assert ap.plan(entries, declared, records, ("ips", "tx_limit"), prune=True).delete == ["old"]


def test_a_field_left_out_is_not_compared_and_one_set_cannot_change_is_an_error():
    entries = ap.check([{"name": "a", "ips": ["10.0.0.2/24"]}])
    records = {"a": _rec("a", ["10.0.0.2/24"], mtu_given=1400)}
    assert ap.plan(entries, [["name", "ips"]], records, ("ips",), prune=False).unchanged == ["a"]
    entries = ap.check([{"name": "a", "mtu": 1500}])
    with pytest.raises(ap.ApplyError, match=r"partition 0 \('a'\): field 'mtu' is 1500 here and 1400 in the "
                                            r"partition, and `partition set` cannot change it"):
        ap.plan(entries, [["name", "mtu"]], records, ("ips",), prune=False)
    # once set learns a field, apply changes it
    assert ap.plan(entries, [["name", "mtu"]], records, ("ips", "mtu"), prune=False).change == [
        {"name": "a", "mtu": 1500}]


def test_the_docs_example_file_is_accepted():
    import pathlib
    import re

    page = (pathlib.Path(__file__).parents[2] / "docs" / "tenants.md").read_text()
    text = re.search(r"```toml\n(\[\[partition\]\].*?)```", page, re.S).group(1)
    entries = ap.check(ap.parse(text, "toml"))
    assert [e["name"] for e in entries] == ["web", "db"] and entries[1]["vlan"] == 7
