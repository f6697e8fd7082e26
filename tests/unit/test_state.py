"""state.py: the state file round-trips, is written atomically and 0600, and a
damaged file is an error naming the path."""
import json
import os
import stat

import pytest

from vnetshare.core import state as st
from vnetshare.core.errors import VnetshareError
from vnetshare.core.state import PartitionState, State, StateError


def sample() -> State:
    return State(
        uplink="eth1",
        offloads="emulate",
        partitions={
            "web": PartitionState(name="web", netns="/run/netns/web", netns_created=True, ifname="eth0",
                                  mac="02:00:00:00:00:01", mtu=1500, ips=["10.0.0.2/24", "fd00::2/64"],
                                  gateway="10.0.0.1", agent_pid=4242, agent_uid=1879048200, ring_size=1 << 22),
            "ctr": PartitionState(name="ctr", netns="/proc/77/ns/net", netns_created=False, ifname="tap0",
                                  mac="02:00:00:00:00:02", mtu=9000),
        },
    )


def test_missing_file_is_empty_state(tmp_path):
    s = st.load(str(tmp_path / "state.json"))
    assert s == State() and s.partitions == {} and s.uplink is None and s.offloads == "mirror"


def test_round_trip(tmp_path):
    path = str(tmp_path / "state.json")
    st.save(path, sample())
    assert st.load(path) == sample()


def test_files_are_0600_json_a_head_and_one_per_partition(tmp_path):
    path = tmp_path / "state.json"
    st.save(str(path), sample())
    assert sorted(os.listdir(tmp_path)) == ["partitions", "state.json"]
    assert sorted(os.listdir(tmp_path / "partitions")) == ["ctr.json", "web.json"]
    assert stat.S_IMODE((tmp_path / "partitions").stat().st_mode) == 0o700
    for f in (path, tmp_path / "partitions" / "web.json", tmp_path / "partitions" / "ctr.json"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert json.loads(path.read_text()) == {"version": 2, "uplink": "eth1", "offloads": "emulate"}
    assert st.VERSION == 2
    assert json.loads((tmp_path / "partitions" / "web.json").read_text())["agent_pid"] == 4242


def test_save_replaces_and_leaves_no_temp_file(tmp_path):
    path = str(tmp_path / "state.json")
    st.save(path, sample())
    empty = State(uplink="eth1")
    st.save(path, empty)
    assert st.load(path) == empty
    assert sorted(os.listdir(tmp_path)) == ["partitions", "state.json"]
    assert os.listdir(tmp_path / "partitions") == []


def test_failed_save_keeps_old_file_and_no_temp(tmp_path):
    path = str(tmp_path / "state.json")
    st.save(path, sample())
    bad = sample()
    bad.partitions["web"].mtu = object()  # not JSON: the write fails before the rename
    with pytest.raises(TypeError):
        st.save(path, bad)
    assert st.load(path) == sample()
    assert sorted(os.listdir(tmp_path)) == ["partitions", "state.json"]
    assert sorted(os.listdir(tmp_path / "partitions")) == ["ctr.json", "web.json"]


@pytest.mark.parametrize("state", [State(), sample()], ids=["empty", "partitions"])
def test_save_into_missing_dir_fails(tmp_path, state):
    with pytest.raises(FileNotFoundError):
        st.save(str(tmp_path / "nope" / "state.json"), state)
    assert not (tmp_path / "nope").exists()


def test_unknown_keys_are_ignored(tmp_path):
    path = tmp_path / "state.json"
    raw = st.to_dict(sample())
    raw["future_top"] = {"x": 1}
    raw["partitions"]["web"]["future_field"] = [1, 2]
    path.write_text(json.dumps(raw))
    assert st.load(str(path)) == sample()
    st.save(str(path), sample())  # version 2: the same in the head and in a record
    head = json.loads(path.read_text())
    path.write_text(json.dumps({**head, "future_top": 1}))
    web = tmp_path / "partitions" / "web.json"
    web.write_text(json.dumps({**json.loads(web.read_text()), "future_field": [1, 2]}))
    assert st.load(str(path)) == sample()


def test_version_1_is_read_and_the_next_save_writes_version_2(tmp_path):
    """A daemon upgraded over a version 1 state adopts every partition; its
    first save (adopt_all's, a full one) moves them into their files, and a
    save naming one partition never drops the others while the head still
    holds them (a new process knows no file yet: it saves in full)."""
    path = tmp_path / "state.json"
    path.write_text(json.dumps(st.to_dict(sample())))
    assert json.loads(path.read_text())["version"] == 1
    s = st.load(str(path))
    assert s == sample()
    st._encoders.clear()  # a new daemon process
    s.partitions["web"].mtu = 1400
    st.save(str(path), s, changed=["web"])  # not trusted: nothing written by this process yet
    assert json.loads(path.read_text()) == {"version": 2, "uplink": "eth1", "offloads": "emulate"}
    again = st.load(str(path))
    assert again == s and set(again.partitions) == {"web", "ctr"}


def test_optional_partition_fields_default(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 1, "partitions": {"a": {
        "name": "a", "netns": "/run/netns/a", "netns_created": True, "ifname": "eth0",
        "mac": "02:00:00:00:00:01", "mtu": 1500}}}))
    p = st.load(str(path)).partitions["a"]
    assert p.ips == [] and p.gateway is None and p.agent_pid is None and p.ring_size == 4 << 20
    assert p.agent_uid is None  # a record from before agents had their own: the daemon gives one


@pytest.mark.parametrize("content, why", [
    (b"{not json", "Expecting property name"),
    (b"\xff\xfe", "codec can't decode"),
    (b"[]", "not a JSON object"),
    (b"{}", "version None, this vnetshare reads versions 1 and 2"),
    (b'{"version": 3}', "version 3, this vnetshare reads versions 1 and 2"),
    (b'{"version": true}', "version True"),
    (b'{"version": 1, "uplink": 5}', "'uplink' must be a string or null"),
    (b'{"version": 1, "offloads": "turbo"}', "'offloads' is 'turbo'"),
    (b'{"version": 1, "partitions": []}', "'partitions' must be an object"),
    (b'{"version": 1, "partitions": {"a": 1}}', "partition 'a': not an object"),
    (b'{"version": 1, "partitions": {"a": {"name": "a"}}}', "partition 'a': missing 'netns'"),
    (b'{"version": 1, "partitions": {"a": {"name": "b", "netns": "/x", "netns_created": true, "ifname": "e",'
     b' "mac": "02:00:00:00:00:01", "mtu": 1500}}}', "recorded under another name ('b')"),
    (b'{"version": 1, "partitions": {"a": {"name": "a", "netns": "/x", "netns_created": 1, "ifname": "e",'
     b' "mac": "02:00:00:00:00:01", "mtu": 1500}}}', "'netns_created' has the wrong type (int)"),
    (b'{"version": 1, "partitions": {"a": {"name": "a", "netns": "/x", "netns_created": true, "ifname": "e",'
     b' "mac": "02:00:00:00:00:01", "mtu": true}}}', "'mtu' has the wrong type (bool)"),
    (b'{"version": 1, "partitions": {"a": {"name": "a", "netns": "/x", "netns_created": true, "ifname": "e",'
     b' "mac": "02:00:00:00:00:01", "mtu": 1500, "ips": [1]}}}', "'ips' must be a list of strings"),
    (b'{"version": 1, "partitions": {"a": {"name": "a", "netns": "/x", "netns_created": true, "ifname": "e",'
     b' "mac": "02:00:00:00:00:01", "mtu": 1500, "agent_uid": "7"}}}', "'agent_uid' has the wrong type (str)"),
    (b'{"version": 1, "partitions": {"a": {"name": "a", "netns": "/x", "netns_created": true, "ifname": "e",'
     b' "mac": "02:00:00:00:00:01", "mtu": 1500, "agent_uid": 0}}}', "'agent_uid' 0 is not 1 to 2147483647"),
    (b'{"version": 1, "partitions": {"a": {"name": "a", "netns": "/x", "netns_created": true, "ifname": "e",'
     b' "mac": "02:00:00:00:00:01", "mtu": 1500, "agent_uid": 4294967295}}}', "'agent_uid' 4294967295 is not"),
])
def test_corrupt_file_names_path_and_problem(tmp_path, content, why):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateError) as e:
        st.load(str(path))
    assert str(e.value).startswith(f"state file {path}: ")
    assert why in str(e.value)
    assert isinstance(e.value, VnetshareError)


def test_a_damaged_partition_file_names_its_path_and_other_files_are_not_records(tmp_path):
    path = tmp_path / "state.json"
    st.save(str(path), sample())
    pdir = tmp_path / "partitions"
    (pdir / ".vnetshare-x.tmp").write_text("{half")   # a save cut short
    (pdir / "README").write_text("not a record")
    assert st.load(str(path)) == sample()
    (pdir / "web.json").write_text('{"name": "other"}')
    with pytest.raises(StateError) as e:
        st.load(str(path))
    assert str(e.value).startswith(f"state file {pdir / 'web.json'}: partition 'web': ")
    assert "missing 'netns'" in str(e.value)


def test_a_named_save_writes_only_that_partition(tmp_path, monkeypatch):
    """Rule 5: once a full save went through, save(changed=[NAME]) writes
    NAME's file (or removes it) and nothing else: the cost of a create does
    not grow with the partitions that exist."""
    s = st.State(uplink="u0")
    for i in range(50):
        s.partitions[f"p{i}"] = st.PartitionState(name=f"p{i}", netns=f"/run/netns/p{i}", netns_created=True,
                                                     ifname="eth0", mac=f"02:00:00:00:01:{i:02x}", mtu=1500)
    path = str(tmp_path / "state.json")
    st.save(path, s)
    written, looked = [], []
    real_write, real_dict = st.write_atomic, st.partition_dict
    monkeypatch.setattr(st, "write_atomic", lambda p, *a, **k: (written.append(os.path.basename(p)),
                                                                 real_write(p, *a, **k)))
    monkeypatch.setattr(st, "partition_dict", lambda p: (looked.append(p.name), real_dict(p))[1])
    s.partitions["p50"] = st.PartitionState(name="p50", netns="/run/netns/p50", netns_created=True,
                                             ifname="eth0", mac="02:00:00:00:01:50", mtu=1500)
    st.save(path, s, changed=["p50"])
    assert written == ["p50.json"] and looked == ["p50"]
    del s.partitions["p7"]
    st.save(path, s, changed=["p7"])
    assert written == ["p50.json"] and not (tmp_path / "partitions" / "p7.json").exists()
    s.offloads = "emulate"
    st.save(path, s, changed=[])
    assert written == ["p50.json", "state.json"]
    assert st.load(path) == s


def test_the_encoder_writes_what_to_dict_says_and_follows_every_change(tmp_path):
    """Rule 5: kept texts never go stale: a change anywhere in a record (a
    list, a label, a rate), a new and a removed partition all show."""
    from vnetshare.core.config import Rate

    s = st.State(uplink="u0", offloads="mirror")
    for i in range(5):
        s.partitions[f"p{i}"] = st.PartitionState(name=f"p{i}", netns=f"/run/netns/p{i}", netns_created=True,
                                                     ifname="eth0", mac=f"02:00:00:00:00:0{i}", mtu=1500,
                                                     ips=[f"10.0.0.{i}/24"])
    path = tmp_path / "st.json"

    def same():
        st.save(str(path), s)  # a full save: every record compared with its file
        assert st.load(str(path)) == s

    same()
    s.partitions["p1"].ips.append("fd00::1/64")
    same()
    s.partitions["p2"].labels["cni.container"] = "abc"
    same()
    s.partitions["p3"].tx_limit = Rate(bits_per_sec=8000, bits_burst=8000)
    same()
    del s.partitions["p4"]
    s.partitions["p9"] = st.PartitionState(name="p9", netns="/x", netns_created=False, ifname="eth1",
                                              mac="02:00:00:00:00:09", mtu=9000, ips=[])
    same()
    st.save(str(path), s)
    assert st.load(str(path)) == s


def test_remove_takes_the_head_and_the_records_and_nothing_else(tmp_path):
    path = tmp_path / "state.json"
    st.save(str(path), sample())
    (tmp_path / "daemon.lock").write_text("")
    st.remove(str(path))
    assert os.listdir(tmp_path) == ["daemon.lock"]
    assert st.load(str(path)) == State()
    st.remove(str(path))  # twice: nothing to do


def test_the_head_says_which_boot_wrote_it(tmp_path):
    path = tmp_path / "state.json"
    s = sample()
    s.boot_id = "0f6e4d1c-6b0f-4d0e-9a53-2c1e8f0b7d11"
    st.save(str(path), s)
    assert json.loads(path.read_text())["boot_id"] == s.boot_id
    assert st.load(str(path)).boot_id == s.boot_id
    path.write_text(json.dumps({"version": 2, "boot_id": 7}))
    with pytest.raises(StateError, match="'boot_id' must be a string or null"):
        st.load(str(path))
    boot = st.boot_id()
    assert boot is not None and len(boot) == 36 and boot == st.boot_id()  # this boot's, the same each time


def test_migrate_moves_a_state_and_never_overwrites_one(tmp_path):
    """Rule 6: an old runtime dir's state moves whole to the state dir; when
    the state dir has one already, neither is touched."""
    old, new = tmp_path / "run" / "state.json", tmp_path / "lib" / "state.json"
    old.parent.mkdir()
    new.parent.mkdir()
    (old.parent / "daemon.lock").write_text("")
    st.save(str(old), sample())
    assert st.migrate(str(old), str(new)) == 2
    assert st.load(str(new)) == sample()
    assert os.listdir(old.parent) == ["daemon.lock"]  # the records gone, the rest left
    assert st.migrate(str(old), str(new)) is None  # nothing left to move
    st.save(str(old), State(uplink="eth9"))
    assert st.migrate(str(old), str(new)) is None  # the state dir's is the state
    assert st.load(str(new)) == sample() and st.load(str(old)) == State(uplink="eth9")


def test_the_mtu_given_is_kept_and_an_older_record_keeps_its_own(tmp_path):
    """mtu_given None: the partition follows the uplink's MTU (manager.py
    rule 9); a record from before the field: its MTU was its own choice."""
    s = sample()
    s.partitions["web"].mtu_given = None
    s.partitions["ctr"].mtu_given = 1400
    s.partitions["ctr"].mtu = 1400
    path = str(tmp_path / "state.json")
    st.save(path, s)
    again = st.load(path)
    assert again.partitions["web"].mtu_given is None and again.partitions["ctr"].mtu_given == 1400
    old = tmp_path / "old" / "state.json"
    old.parent.mkdir()
    old.write_text(json.dumps({"version": 1, "partitions": {"a": {
        "name": "a", "netns": "/run/netns/a", "netns_created": True, "ifname": "eth0",
        "mac": "02:00:00:00:00:01", "mtu": 1500}}}))
    assert st.load(str(old)).partitions["a"].mtu_given == 1500
