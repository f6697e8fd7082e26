"""The partition lifecycle table (lifecycle.py) and the manager's undo stack.

The manager is driven with fakes for the kernel (netns, TAP), the switch
and the agents: no root. Every step of create() is made to fail in turn,
and whatever the steps before it made must be gone afterwards, in reverse
order, with no descriptor left open and no state entry.
"""
from __future__ import annotations

import errno
import os
import threading

import pytest

from vnetshare.core import lifecycle as lc
from vnetshare import manager as mgr
from vnetshare.core.config import DaemonConfig
from vnetshare.core.state import State as StateFile


# -- the table -------------------------------------------------------------------

def test_a_partition_lives_through_the_table():
    life = lc.Lifecycle()
    assert life.state is lc.State.CREATING
    assert life.fire(lc.Event.CREATED) is lc.State.RUNNING
    assert life.agent_died(now=0.0) and life.state is lc.State.RESTARTING
    assert life.fire(lc.Event.AGENT_STARTED) is lc.State.RUNNING
    assert life.fire(lc.Event.DELETE) is lc.State.DELETING
    assert life.fire(lc.Event.DELETED) is lc.State.GONE


@pytest.mark.parametrize("state", list(lc.State))
@pytest.mark.parametrize("event", list(lc.Event))
def test_every_pair_outside_the_table_is_refused(state, event):
    if (state, event) in lc.TRANSITIONS:
        assert lc.next_state(state, event) is lc.TRANSITIONS[(state, event)]
    else:
        with pytest.raises(lc.LifecycleError) as e:
            lc.next_state(state, event)
        assert state.value in str(e.value) and event.value in str(e.value)


def test_gone_is_final_and_delete_is_legal_from_every_live_state():
    assert not [e for (s, e) in lc.TRANSITIONS if s is lc.State.GONE]
    for s in (lc.State.RUNNING, lc.State.RESTARTING, lc.State.FAILED):
        assert lc.next_state(s, lc.Event.DELETE) is lc.State.DELETING


def test_an_agent_dying_too_often_fails_the_partition():
    life = lc.Lifecycle(policy=lc.RestartPolicy(window=30.0, limit=5))
    life.fire(lc.Event.CREATED)
    for i in range(5):
        assert life.agent_died(now=float(i))
        life.fire(lc.Event.AGENT_STARTED)
    assert not life.agent_died(now=5.0)
    assert life.state is lc.State.FAILED and "6 times in 30 s" in life.reason
    assert life.fire(lc.Event.DELETE) is lc.State.DELETING


def test_deaths_outside_the_window_are_forgotten():
    life = lc.Lifecycle(policy=lc.RestartPolicy(window=30.0, limit=2))
    life.fire(lc.Event.CREATED)
    for t in (0.0, 40.0, 80.0, 120.0):  # one death every 40 s: never two in 30 s
        assert life.agent_died(now=t)
        life.fire(lc.Event.AGENT_STARTED)
    assert life.state is lc.State.RUNNING


# -- the manager's undo stack, with fakes ---------------------------------------------

class Boom(OSError):
    pass


_here = threading.local()


class World:
    """What the fakes made and unmade, in order; fails the step named @fail."""

    def __init__(self, fail: str | None, once: bool = False):
        self.fail = fail
        self.once = once  # fail the first such step only
        self.live: list[str] = []
        self.log: list[str] = []

    def step(self, what: str, makes: str | None = None):
        if what == self.fail:
            if self.once:
                self.fail = None
            raise Boom(5, f"injected failure at {what}")
        if makes:
            self.live.append(makes)
            self.log.append(f"+{makes}")

    def unmake(self, thing: str) -> None:
        if thing in self.live:
            self.live.remove(thing)
            self.log.append(f"-{thing}")


class FakeSwitch:
    def __init__(self, world: World):
        self.world = world

    def add_port(self, port_id, mac, a2h, h2a, ring_size, policy=None):
        self.world.step("add_port", f"port{port_id}")
        self.policy = policy

    def set_tap(self, port_id, tap_fd):
        self.world.step("set_tap")

    def set_policy(self, port_id, mac, policy):
        self.world.step("set_policy")
        self.policy = policy

    def del_port(self, port_id):
        self.world.unmake(f"port{port_id}")
        return {}

    def port_stats(self, port_id):
        return {}

    def fdb_find(self, mac):
        return None  # no station on the wire has it

    wire: list = []

    def fdb(self, expect=0):
        return self.wire


class FakeFunctions:
    mtu = 1500
    tun_offloads = 0
    rows = ()


STEPS = ["netns.create", "open_tap", "configure", "create_fds",
         "add_port", "spawn_agent", "save"]


@pytest.fixture
def world_manager(monkeypatch, tmp_path):
    def make(fail):
        w = World(fail)
        ns = mgr.netns
        monkeypatch.setattr(ns, "exists", lambda name: False)
        monkeypatch.setattr(ns, "create", lambda name: (w.step("netns.create", f"netns:{name}"), f"/run/netns/{name}")[1])

        def create_and(name, inside):
            w.step("netns.create", f"netns:{name}")
            _here.made = []   # what inside() makes (create_many runs several at once)
            try:
                return f"/run/netns/{name}", inside()
            except BaseException:  # the namespace goes, and what was made in it
                for thing in reversed(_here.made):
                    w.unmake(thing)
                w.unmake(f"netns:{name}")
                raise
            finally:
                del _here.made

        monkeypatch.setattr(ns, "create_and", create_and)
        monkeypatch.setattr(ns, "delete", lambda name: w.unmake(f"netns:{name}"))
        monkeypatch.setattr(ns, "links", lambda path=None: [])
        monkeypatch.setattr(ns, "link_set", lambda *a, **k: w.step("link_set"))
        monkeypatch.setattr(ns, "lo_up", lambda *a, **k: None)
        monkeypatch.setattr(ns, "sysctl", lambda *a, **k: None)
        monkeypatch.setattr(ns, "add_address", lambda *a, **k: w.step("add_address"))
        monkeypatch.setattr(ns, "add_default_route", lambda *a, **k: w.step("add_default_route"))
        monkeypatch.setattr(ns, "configure", lambda *a, **k: w.step("configure"))
        monkeypatch.setattr(ns, "delete_link", lambda ifname, path: w.unmake(f"tap:{ifname}"))

        def open_tap(ifname, path, **kw):
            w.step("open_tap", f"tap:{ifname}")
            if hasattr(_here, "made"):
                _here.made.append(f"tap:{ifname}")
            return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)

        real_create_fds = mgr.create_fds
        calls = []

        def create_fds(size):
            calls.append(size)
            if len(calls) == 2:  # the second ring: the first must be undone
                w.step("create_fds")
            return real_create_fds(size)

        def spawn(self, part):
            w.step("spawn_agent", "agent")
            return type("A", (), {"pid": 4242})()

        def save(self, *names):
            w.step("save")

        monkeypatch.setattr(mgr, "open_tap", open_tap)
        monkeypatch.setattr(mgr, "create_fds", create_fds)
        monkeypatch.setattr(mgr.Supervisor, "spawn", spawn)
        monkeypatch.setattr(mgr.Supervisor, "stop", lambda self, a: a and w.unmake("agent"))
        monkeypatch.setattr(mgr.PartitionManager, "_save", save)
        cfg = DaemonConfig(uplink="up0", state_dir=str(tmp_path), ring_size=256 * 1024,
                           agent_uid_dir=str(tmp_path / "agent-uids"))
        return w, mgr.PartitionManager(FakeSwitch(w), FakeFunctions(), StateFile(), cfg)

    return make


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_create_with_nothing_failing_makes_everything(world_manager):
    w, m = world_manager(None)
    out = m.create({"name": "p1", "ips": ["192.0.2.1/24"], "gateway": "192.0.2.254"})
    assert out["state"] == "running" and out["agent"] == "running (pid 4242)"
    assert w.live == ["netns:p1", "tap:eth0", "port1", "agent"]
    m.parts["p1"].close_fds()


@pytest.mark.parametrize("fail", STEPS)
def test_a_failed_create_undoes_every_step_before_it_in_reverse(world_manager, fail):
    w, m = world_manager(fail)
    before = _fds()
    with pytest.raises(Boom):
        m.create({"name": "p1", "ips": ["192.0.2.1/24"], "gateway": "192.0.2.254"})
    assert w.live == [], w.log
    made = [e[1:] for e in w.log if e[0] == "+"]
    unmade = [e[1:] for e in w.log if e[0] == "-"]
    assert unmade == list(reversed(made)), w.log
    assert m.parts == {} and m.state.partitions == {}
    assert _fds() == before, "a descriptor was left open"
    if STEPS.index(fail) > STEPS.index("open_tap"):  # a late failure really exercised the stack
        assert "netns:p1" in made and "tap:eth0" in made


# -- many at once (apply: create_many) ---------------------------------------------

@pytest.mark.parametrize("fail", ["configure", "add_port", "agent_start", "agent_ready"])
def test_a_batch_whose_second_create_fails_undoes_that_one_alone(world_manager, monkeypatch, fail):
    """apply's creates overlap (create_many: namespaces made ahead in
    threads, agents awaited after later ones started): p2 fails at @fail;
    what was made for it is undone in reverse, p1 and p3 are made and
    announced, p2 is named with its error and holds no uid or descriptor."""
    w, m = world_manager(None)
    monkeypatch.setattr(m, "CREATE_OVERLAP", 1)   # p1's answer awaited after p2's and p3's starts
    events = []
    m._event = lambda kind, partition, message, **d: events.append((kind, partition))
    ports: dict[int, str] = {}

    def configure(ifname, path, **kw):
        w.step(f"configure:{ifname}")

    def add_port(port_id, mac, *a, **k):
        name = "p" + mac[-1]
        w.step(f"add_port:{name}", f"port:{name}")
        ports[port_id] = name

    class Started:
        def __init__(self, name):
            self.name, self.pid = name, 4000 + int(name[1:])

    def start(self, part):
        w.step(f"agent_start:{part.rec.name}", f"agent:{part.rec.name}")
        return Started(part.rec.name)

    def finish(self, part, starting):
        if w.fail == f"agent_ready:{part.rec.name}":
            w.unmake(f"agent:{part.rec.name}")   # finish() abandons the agent that did not answer
            raise mgr.PartitionError("EIO", "injected failure at agent_ready: the agent did not start")
        return starting

    monkeypatch.setattr(mgr.netns, "configure", configure)
    monkeypatch.setattr(m.switch, "add_port", add_port)
    monkeypatch.setattr(m.switch, "del_port", lambda port_id: w.unmake(f"port:{ports.pop(port_id)}"))
    monkeypatch.setattr(mgr.Supervisor, "start", start)
    monkeypatch.setattr(mgr.Supervisor, "finish", finish)
    monkeypatch.setattr(mgr.Supervisor, "stop", lambda self, a: a and w.unmake(f"agent:{a.name}"))
    w.fail = f"{fail}:" + ("e2" if fail == "configure" else "p2")
    before = _fds()
    failed = m.create_many([{"name": f"p{i}", "ifname": f"e{i}", "mac": f"02:00:00:00:00:0{i}",
                             "ips": [f"192.0.2.{i}/24"]} for i in (1, 2, 3)])
    assert list(failed) == ["p2"] and "injected failure" in str(failed["p2"])
    assert sorted(m.parts) == sorted(m.state.partitions) == ["p1", "p3"]
    assert sorted(w.live) == sorted(f"{k}:{x}" for x in ("p1", "p3") for k in ("netns", "port", "agent")) \
        + ["tap:e1", "tap:e3"], w.log
    p2 = [e for e in w.log if e[1:] in ("netns:p2", "tap:e2", "port:p2", "agent:p2")]
    made = [e[1:] for e in p2 if e[0] == "+"]
    assert "netns:p2" in made and [e[1:] for e in p2 if e[0] == "-"] == list(reversed(made)), w.log
    assert [e for e in events if e[0] == "partition.created"] == [("partition.created", "p1"),
                                                                   ("partition.created", "p3")]
    assert sorted(m.uids._held) == sorted(m.parts[n].rec.agent_uid for n in ("p1", "p3"))
    for name in ("p1", "p3"):
        m.parts[name].close_fds()
        m.uids.release(m.parts[name].rec.agent_uid)
    assert _fds() == before, "a descriptor was left open"


def test_a_batch_refuses_a_mac_a_station_on_the_wire_has(world_manager, monkeypatch):
    """create_many asks the wire's stations once, when it begins (rule 4):
    the one whose MAC a station has is refused, named, the others made."""
    w, m = world_manager(None)
    monkeypatch.setattr(mgr.Supervisor, "start", lambda self, part: type("A", (), {"pid": 4242})())
    monkeypatch.setattr(mgr.Supervisor, "finish", lambda self, part, starting: starting)
    m.switch.wire = [{"mac": "02:00:00:00:00:02", "vlan": 0, "age": 3.0}]
    failed = m.create_many([{"name": f"p{i}", "mac": f"02:00:00:00:00:0{i}"} for i in (1, 2, 3)])
    assert list(failed) == ["p2"] and failed["p2"].errno == errno.EADDRINUSE
    assert "MAC 02:00:00:00:00:02: in use by a station on the wire (untagged, seen 3 s ago)" in str(failed["p2"])
    assert sorted(m.parts) == ["p1", "p3"]
    for name in ("p1", "p3"):
        m.parts[name].close_fds()


# -- re-creation after a reboot (manager.py rule 5) ------------------------------

def _record(name: str, mac: str, ip: str, created: bool = True) -> "mgr.statefile.PartitionState":
    return mgr.statefile.PartitionState(
        name=name, netns=f"/run/netns/{name}" if created else f"/run/vnetshare/netns/{name}",
        netns_created=created, ifname="eth0", mac=mac, mtu=1500, ips=[ip], gateway="192.0.2.254",
        netns_source=None if created else "/proc/1/ns/net", agent_uid=0x70000000 + int(name[1:]))


@pytest.mark.parametrize("fail", [s for s in STEPS if s != "save"])
def test_a_failed_recreation_undoes_its_steps_keeps_its_record_and_the_next_is_made(
        world_manager, monkeypatch, fail):
    """After a reboot (every namespace gone) p1 fails at @fail, p2 comes
    back: what p1's re-creation made is undone in reverse, its record stays
    (unserved, with its old agent uid) and the events say which is which;
    the adopted p3 is forgotten, its pin removed."""
    w, m = world_manager(None)
    events = []
    m._event = lambda kind, partition, message, **d: events.append((kind, partition))
    unpinned = []
    monkeypatch.setattr(mgr.netns, "unpin", lambda path, what=None: unpinned.append(path))
    p1 = _record("p1", "02:00:00:00:00:01", "192.0.2.1/24")
    p2 = _record("p2", "02:00:00:00:00:02", "192.0.2.2/24")
    p3 = _record("p3", "02:00:00:00:00:03", "192.0.2.3/24", created=False)
    m.state.partitions = {"p1": p1, "p2": p2, "p3": p3}
    before = _fds()
    w.fail, w.once = fail, True
    m.adopt_all(rebooted=True)
    assert ("partition.recreate_failed", "p1") in events and ("partition.recreated", "p2") in events
    assert ("partition.forgotten", "p3") in events and unpinned == [p3.netns]
    assert sorted(m.state.partitions) == ["p1", "p2"] and list(m.parts) == ["p2"]
    assert "p1" in m.unserved and "injected failure" in m.unserved["p1"]
    assert p1.agent_uid == 0x70000001 and p1.agent_uid not in m.uids
    assert w.live == ["netns:p2", "tap:eth0", "port1", "agent"], w.log
    p1_log = w.log[:w.log.index("+netns:p2")]
    made = [e[1:] for e in p1_log if e[0] == "+"]
    assert [e[1:] for e in p1_log if e[0] == "-"] == list(reversed(made))
    assert m.describe("p1", with_counters=False)["state"] == "unserved"
    m.parts["p2"].close_fds()
    m.uids.release(p2.agent_uid)
    assert _fds() == before, "a descriptor was left open"


def test_create_retries_without_uso_on_a_kernel_before_6_2(world_manager, monkeypatch):
    """TUNSETOFFLOAD answers EINVAL to TUN_F_USO4/6 before Linux 6.2: create
    goes on without UDP segmentation, for this and every later partition."""
    import errno

    from vnetshare import adapter
    from vnetshare.core.errors import NativeError

    w, m = world_manager(None)
    m.functions = adapter.derive(adapter.UplinkInfo("up0", 1500), "emulate")
    asked = []

    def old_kernel_tap(ifname, path, offloads=0, **kw):
        asked.append(offloads)
        if offloads & adapter.USO_BITS:
            raise NativeError(errno.EINVAL, "tap_open eth0: Invalid argument")
        w.step("open_tap", f"tap:{ifname}")
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)

    monkeypatch.setattr(mgr, "open_tap", old_kernel_tap)
    out = m.create({"name": "p1", "ips": []})
    assert out["state"] == "running"
    assert asked[0] & adapter.USO_BITS and not asked[1] & adapter.USO_BITS
    rows = {r["function"]: r for r in out["functions"]}
    assert rows["uso4"]["value"] is False and rows["uso4"]["source"] == adapter.NO_KERNEL_USO
    m.parts["p1"].close_fds()
    with pytest.raises(Boom):  # any other refusal is not retried
        w.fail = "netns.create"
        m.create({"name": "p2", "ips": []})
