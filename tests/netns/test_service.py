"""The service: `vnetshare service install`, the unit's ExecStart run as systemd
runs it, the config file, `vnetshare status`, and what a second daemon may not do.

systemd is installed here but is not PID 1, so no unit can be started. The
unit's ExecStart line is run the way systemd would run it: its specifiers
expanded, under the unit's CapabilityBoundingSet= and NoNewPrivileges=
(setpriv, as systemd does for a root service), with a NOTIFY_SOCKET bound
here in place of systemd's, the config file named by $VNETSHARE_CONFIG in
place of /etc/vnetshare/vnetshare.toml (so it can keep the daemon's records
out of this host's /var/lib). The seccomp lines of the unit were tried under
systemd 252 as PID 1 (docs/design-notes.md, "The service").
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time

import pytest

from vnetshare.core import config
from vnetshare.frontends import service
from vnetshare.linux import procs
from vnetshare.linux.probe import ping
from vnetshare.linux.procs import python_argv

from system import LAN_V4, UPLINK, System, cli_as_nobody, wait_for

SOCKET = config.DEFAULT_SOCKET  # the unit passes no --socket: inside the sandbox, its own /run


def install(root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(python_argv("vnetshare", "service", *args, "--root", str(root)),
                          capture_output=True, text=True, timeout=60)


def unit_lines(text: str) -> dict[str, str]:
    """KEY=VALUE of a unit (each key once in ours), comments left out."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def exec_start(unit: dict[str, str], uplink: str) -> list[str]:
    """ExecStart's command line for instance @uplink, specifiers expanded as systemd would."""
    spec = {"%I": uplink, "%i": service.escape(uplink), "%S": "/var/lib", "%t": "/run", "%%": "%"}
    line = unit["ExecStart"]
    assert set(re.findall(r"%.", line)) <= set(spec), f"a specifier this test does not expand: {line}"
    return shlex.split(re.sub(r"%.", lambda m: spec[m.group(0)], line))


def caps_of(unit: dict[str, str]) -> list[str]:
    return [c.lower().removeprefix("cap_") for c in unit["CapabilityBoundingSet"].split()]


class Service:
    """The daemon the unit starts, as systemd would start it (module doc):
    notifications collected from a socket of our own; stopped by PID."""

    def __init__(self, tmp_path, unit_text: str, caps: list[str] | None = None, settings: str = ""):
        self.dir = tmp_path
        self.unit = unit_lines(unit_text)
        self.caps = caps_of(self.unit) if caps is None else caps
        self.conf = tmp_path / "vnetshare.toml"
        self.conf.write_text(f'state-dir = "{tmp_path / "state"}"\n' + settings)
        self.log_path = tmp_path / "service.log"
        self.notify_path = str(tmp_path / "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.messages: list[str] = []
        self.proc: subprocess.Popen | None = None
        for d, mode in (("/run/vnetshare", 0o755),):  # RuntimeDirectory=
            os.makedirs(d, mode=mode, exist_ok=True)

    def argv(self) -> list[str]:
        assert self.unit["NoNewPrivileges"] == "yes"
        return ["setpriv", "--bounding-set", "-all," + ",".join("+" + c for c in self.caps),
                "--inh-caps", "-all", "--no-new-privs", "--", *exec_start(self.unit, UPLINK)]

    def start(self) -> None:
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path, VNETSHARE_CONFIG=str(self.conf))
        env.pop("VNETSHARE_SOCKET", None)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env, start_new_session=True)

    def wait(self, assignment: str, timeout: float = 20.0) -> str:
        """The first notification (since the last wait) holding @assignment
        (READY=1, STOPPING=1, STATUS=...), and every one before it."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.notify.settimeout(max(0.01, min(0.2, deadline - time.monotonic())))
            try:
                msg = self.notify.recv(4096).decode()
            except TimeoutError:
                if self.proc.poll() is not None:
                    break
                continue
            self.messages.append(msg)
            seen.append(msg)
            if assignment in msg.split("\n"):
                return "\n".join(seen)
        raise AssertionError(f"no {assignment} in {seen} (daemon: {self.proc.poll()}): {self.log()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            procs.stop(self.proc, grace=20)
        self.notify.close()


@pytest.fixture
def lan(tmp_path):
    """The LAN host and uplink of system.System, no daemon yet: the service
    starts it, on the default socket."""
    s = System(tmp_path)
    s.sock = SOCKET
    s.state_path = str(tmp_path / "state" / "state.json")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def unit_text(tmp_path) -> str:
    """The unit `vnetshare service install` writes for this installation."""
    root = tmp_path / "root"
    root.mkdir()
    p = install(root, "install")
    assert p.returncode == 0, p.stderr
    return (root / "etc/systemd/system/vnetshare@.service").read_text()


def status(s: System) -> tuple[int, dict]:
    p = s.cli("status", "--json", check=False)
    return p.returncode, json.loads(p.stdout)


# -- the unit's daemon ------------------------------------------------------------

def test_the_units_daemon_says_ready_once_it_forwards(lan, unit_text, tmp_path):
    """Type=notify: READY=1 comes when the data path is up. At that moment,
    without waiting, the control socket serves, and after a restart a
    partition's ping to the LAN gets its answer."""
    svc = Service(tmp_path, unit_text, settings="storm-limit = 700\n")
    try:
        svc.start()
        ready = svc.wait("READY=1")
        code, st = status(lan)
        assert code == 0 and st["state"] == "running", st
        assert (st["switch"], st["uplink_up"], st["uplink"], st["pid"]) == ("running", True, UPLINK, svc.proc.pid)
        assert "STATUS=serving 0 partition(s) on uplink vsu0" in ready
        assert ready.index("STATUS=starting on uplink vsu0") < ready.index("READY=1")

        p = lan.create("pa", "--ip", "198.18.0.11/24", "--gateway", LAN_V4)
        assert p["storm_limit_pps"] == 700  # from the config file
        svc.wait("STATUS=serving 1 partition(s) on uplink vsu0")
        assert ping("pa", LAN_V4, count=1).ok

        assert svc.stop() == 0
        assert "STOPPING=1" in svc.wait("STOPPING=1").split("\n")

        svc.start()
        svc.wait("READY=1")
        r = ping("pa", LAN_V4, count=1)
        assert r.ok, r.output
        code, st = status(lan)
        assert (code, st["partitions"], st["served"]) == (0, 1, 1), st
    finally:
        svc.close()


def test_the_units_privileges_are_enough_and_the_agents_keep_none(lan, unit_text, tmp_path):
    """Under the unit's bounding set and no_new_privs: partitions made,
    changed, served after an agent is killed, deleted; the daemon holds
    only the unit's capabilities and each agent none."""
    svc = Service(tmp_path, unit_text)
    try:
        svc.start()
        svc.wait("READY=1")
        lan.create("pa", "--ip", "198.18.0.11/24")
        lan.cli("partition", "set", "pa", "--ip", "198.18.0.12/24")
        agent = procs.agents_of(svc.proc.pid)
        assert len(agent) == 1
        with open(f"/proc/{agent[0]}/status") as f:
            st = dict(line.rstrip("\n").split(":\t", 1) for line in f)
        assert (st["CapEff"], st["CapPrm"], st["NoNewPrivs"]) == ("0000000000000000", "0000000000000000", "1")
        assert st["Uid"].split()[0] != "0"
        with open(f"/proc/{svc.proc.pid}/status") as f:
            daemon = dict(line.rstrip("\n").split(":\t", 1) for line in f)
        assert int(daemon["CapEff"], 16) == sum(1 << CAPS[c] for c in caps_of(svc.unit))
        os.kill(agent[0], signal.SIGKILL)
        assert wait_for(lambda: (a := procs.agents_of(svc.proc.pid)) and a != agent)
        assert ping("pa", LAN_V4, count=1).ok
        # a daemon SIGKILLed while its agent could not end (stopped): the
        # next one ends that agent (CAP_KILL) and serves the partition
        stale = procs.agents_of(svc.proc.pid)[0]
        os.kill(stale, signal.SIGSTOP)
        os.kill(svc.proc.pid, signal.SIGKILL)
        svc.proc.wait()
        svc.start()
        svc.wait("READY=1")
        assert not procs.is_agent(stale, "pa")  # ended (a zombie until whoever inherited it reaps it)
        assert ping("pa", LAN_V4, count=1).ok
        lan.cli("partition", "delete", "pa")
        assert svc.stop() == 0
    finally:
        svc.close()


CAPS = {"net_admin": 12, "net_raw": 13, "sys_admin": 21, "setuid": 7, "setgid": 6, "kill": 5}


@pytest.mark.parametrize("cap, fails, says", [
    ("net_raw", "start", "sw_create on uplink vsu0: Operation not permitted"),
    ("sys_admin", "start", "a shared mount: Operation not permitted"),
    ("net_admin", "create", "tap_open eth0: Operation not permitted"),
    ("setuid", "create", "setresuid(1879048192): Operation not permitted"),
    ("setgid", "create", "setgroups: Operation not permitted"),
    ("kill", "restart", "Operation not permitted"),
])
def test_each_capability_of_the_unit_is_needed(lan, unit_text, tmp_path, cap, fails, says):
    """Without it, what it is for fails, with one line saying so. KILL ends
    a partition's agent left by a daemon that was SIGKILLed (the agent runs
    as the partition's uid): here one stopped before, so it cannot end itself."""
    unit = unit_lines(unit_text)
    assert cap in caps_of(unit)
    svc = Service(tmp_path, unit_text, caps=[c for c in caps_of(unit) if c != cap])
    try:
        svc.start()
        if fails == "start":
            assert svc.proc.wait(timeout=20) == 1
            assert says in svc.log() and "Traceback" not in svc.log(), svc.log()
            return
        svc.wait("READY=1")
        p = lan.cli("partition", "create", "pa", "--ip", "198.18.0.11/24", check=False)
        if fails == "create":
            assert p.returncode == 1 and says in p.stderr, p.stderr
            return
        assert p.returncode == 0, p.stderr
        agent = procs.agents_of(svc.proc.pid)[0]
        os.kill(agent, signal.SIGSTOP)
        os.kill(svc.proc.pid, signal.SIGKILL)
        svc.proc.wait()
        try:
            svc.start()  # must end that agent, to open the partition's TAP again
            assert svc.proc.wait(timeout=20) == 1
            assert svc.log().strip().splitlines()[-1] == f"vnetshare: error: {says}", svc.log()
        finally:
            if os.path.exists(f"/proc/{agent}"):
                os.kill(agent, signal.SIGKILL)
    finally:
        svc.close()


def test_a_daemon_in_a_mount_namespace_of_its_own_loses_its_partitions(lan, tmp_path):
    """Why the unit has no ProtectSystem=, PrivateTmp=... (service.py rule
    2): systemd gives such a service a mount namespace whose mounts reach
    the host no more ("slave first", systemd.exec MountFlags=), as unshare
    does here. Its partition's /run/netns entry is no namespace for the
    host, and the namespace ends with the daemon: the next one must make it
    again, and what ran in it is gone. (Seen under systemd 252 with
    PrivateTmp=yes alone: docs/design-notes.md, "The service".)"""
    conf = tmp_path / "c.toml"
    conf.write_text(f'state-dir = "{tmp_path / "state"}"\n')
    argv = python_argv("vnetshare", "--socket", SOCKET, "daemon", "--uplink", UPLINK, "--config", str(conf))
    with open(tmp_path / "d.log", "ab") as log:
        d = subprocess.Popen(["unshare", "--mount", "--propagation", "slave", *argv], stdout=log, stderr=log)
    try:
        assert wait_for(lambda: lan.cli("status", check=False).returncode == 0, timeout=20)
        lan.cli("partition", "create", "pa", "--ip", "198.18.0.11/24")
        assert lan.cli_json("partition", "list")[0]["name"] == "pa"
        r = subprocess.run(["ip", "netns", "exec", "pa", "true"], capture_output=True, text=True)
        assert r.returncode != 0 and "setting the network namespace \"pa\" failed" in r.stderr
    finally:
        procs.stop(d, grace=20)
    svc = Service(tmp_path, service.unit_text(service.command()))
    try:
        svc.start()
        svc.wait("READY=1")
        events = [json.loads(line) for line in lan.cli("events", "--json").stdout.splitlines()]
        first = [e["event"] for e in events if e["partition"] == "pa"][0]
        # not adopted: made again (from its record) or, with the host's stale
        # /run/netns/pa in the way, not served at all
        assert first in ("partition.recreated", "partition.recreate_failed"), events
        lan.cli("partition", "delete", "pa")
    finally:
        svc.close()
        if os.path.exists("/run/netns/pa") and not os.path.ismount("/run/netns/pa"):
            os.unlink("/run/netns/pa")  # what the host had of it: an empty file


def test_a_second_daemon_on_the_same_socket_refuses_naming_the_first(system, tmp_path):
    """Two uplinks, one socket: the second start fails before it takes
    anything, with one line saying what a second daemon needs; the first
    still answers."""
    from vnetshare.linux import netns

    netns.veth_pair("vsu1", "vsu1p")
    try:
        p = subprocess.run(python_argv("vnetshare", "--socket", system.sock, "daemon", "--uplink", "vsu1",
                                       "--state-dir", str(tmp_path / "second")),
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1
        assert p.stderr.strip().splitlines() == [
            f"vnetshare: error: control socket {system.sock}: process {system.daemon.pid} listens on it "
            "already (one daemon per NIC; the daemon of another NIC needs its own socket, runtime-dir and "
            "state-dir: flags, or the [uplinks.vsu1] table of the config file)"]
        assert status(system)[1]["uplink"] == UPLINK
    finally:
        netns.quietly(netns.delete_link, "vsu1")


# -- vnetshare status --------------------------------------------------------------

def test_status_running_degraded_not_running_unknown(system, tmp_path):
    """The exit codes of `systemctl is-active`: 0 running, 1 degraded (the
    uplink down), 3 not running, 4 unknown (no answer that makes sense)."""
    from vnetshare.linux import netns

    system.create("pa", "--ip", "198.18.0.11/24")
    code, st = status(system)
    assert code == 0 and st["state"] == "running" and st["problems"] == []
    assert (st["uplink"], st["pid"], st["partitions"], st["served"]) == (UPLINK, system.daemon.pid, 1, 1)
    assert abs(st["started"] + st["uptime"] - time.time()) < 5
    text = system.cli("status").stdout
    assert text.startswith(f"vnetshare daemon: running on uplink {UPLINK}, pid {system.daemon.pid}, since ")
    assert "partitions  1 (1 served)" in text and f"data path   switch running, uplink {UPLINK} up" in text

    netns.link_set(UPLINK, None, up=False)
    try:
        assert wait_for(lambda: status(system)[0] == 1)
        code, st = status(system)
        assert st["state"] == "degraded" and st["problems"] == [f"uplink {UPLINK} is down (DOWN)"]
        p = system.cli("status", check=False)
        assert p.returncode == 1 and f"  problem     uplink {UPLINK} is down (DOWN)" in p.stdout
    finally:
        netns.link_set(UPLINK, None, up=True)

    garbage = tmp_path / "garbage.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(garbage))
    srv.listen()

    def answer():
        c, _ = srv.accept()
        c.recv(4096)
        c.sendall(b"not json\n")
        c.close()

    t = threading.Thread(target=answer)
    t.start()
    p = subprocess.run(python_argv("vnetshare", "--socket", str(garbage), "status"), capture_output=True,
                       text=True, timeout=30)
    t.join()
    srv.close()
    assert p.returncode == 4 and p.stdout == f"vnetshare daemon: unknown: the daemon at {garbage} sent a malformed answer\n"

    system.stop_daemon()
    code, st = status(system)
    assert code == 3 and st["state"] == "not running" and st["socket"] == system.sock
    p = system.cli("status", check=False)
    assert p.returncode == 3 and p.stdout.startswith(f"vnetshare daemon: not running: no daemon running: {system.sock}")


def test_status_as_another_user_is_unknown(system):
    """Not root: 4, as `systemctl is-active` says for what it cannot know."""
    code, err = cli_as_nobody(system.sock, "status")
    assert code == 4
    assert err.strip().splitlines() == ["vnetshare: error: must run as root (try: sudo vnetshare ...)"]


# -- the config file, as the daemon reads it ---------------------------------------

def test_a_bad_config_file_is_exit_2_one_line_and_nothing_starts(tmp_path):
    conf = tmp_path / "vnetshare.toml"
    conf.write_text('storm-limit = 500\n[uplinks.vsu0]\nfdb-age = "old"\n')
    sock = tmp_path / "c.sock"
    p = subprocess.run(python_argv("vnetshare", "--socket", str(sock), "daemon", "--uplink", UPLINK,
                                   "--config", str(conf)), capture_output=True, text=True, timeout=30)
    assert p.returncode == 2  # RestartPreventExitStatus=2: the unit does not restart on it
    assert p.stderr.strip().splitlines() == [
        f"vnetshare daemon: error: {conf}: [uplinks.vsu0] fdb-age: FDB ageing time 'old': not a number"]
    assert not sock.exists()


def test_print_config_says_what_the_daemon_would_run_with_and_why(tmp_path):
    conf = tmp_path / "vnetshare.toml"
    conf.write_text('uplink = "vsu0"\nstorm-limit = 500\nmetrics = 9477\n[uplinks.vsu0]\nfdb-age = 60\n')
    p = subprocess.run(python_argv("vnetshare", "daemon", "--config", str(conf), "--metrics", "9478",
                                   "--print-config"), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert f'uplink = "vsu0"  # {conf}' in lines
    assert f"storm-limit = 500  # {conf}" in lines
    assert f"fdb-age = 60  # {conf} [uplinks.vsu0]" in lines
    assert 'metrics = "127.0.0.1:9478"  # --metrics' in lines
    assert f'state-dir = "{config.STATE_DIR}"  # default' in lines
    assert not os.path.exists(config.DEFAULT_SOCKET) or True  # nothing started: no daemon line in the output
    assert "ready" not in p.stdout + p.stderr


# -- vnetshare service install / uninstall -----------------------------------------

def test_install_writes_unit_and_config_enable_links_uninstall_keeps_the_config(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    p = install(root, "install", "--uplink", "br-lan", "--enable")
    assert p.returncode == 0, p.stderr
    unit = root / "etc/systemd/system/vnetshare@.service"
    assert unit.read_text() == service.unit_text(service.command())
    assert f"ExecStart={service.command()} daemon --uplink %I" in unit.read_text()
    wants = root / "etc/systemd/system/multi-user.target.wants" / r"vnetshare@br\x2dlan.service"
    assert os.readlink(wants) == "/etc/systemd/system/vnetshare@.service"
    conf = root / "etc/vnetshare/vnetshare.toml"
    assert "#storm-limit = " in conf.read_text()
    assert p.stdout.splitlines() == [
        f"wrote {unit} (ExecStart: {service.command()} daemon ...)",
        f"wrote {conf} (every setting, commented out)",
        r"enabled vnetshare@br\x2dlan.service"]

    conf.write_text("storm-limit = 500\n")  # the administrator's: never overwritten
    p = install(root, "install", "--uplink", "eth1", "--enable")
    assert p.returncode == 0 and conf.read_text() == "storm-limit = 500\n" and f"kept {conf}" in p.stdout
    assert service.enabled(str(root)) == [r"vnetshare@br\x2dlan.service", "vnetshare@eth1.service"]

    p = install(root, "uninstall", "--uplink", "eth1")
    assert p.returncode == 0 and service.enabled(str(root)) == [r"vnetshare@br\x2dlan.service"] and unit.exists()
    p = install(root, "uninstall")
    assert p.returncode == 0, p.stderr
    assert not unit.exists() and service.enabled(str(root)) == [] and conf.read_text() == "storm-limit = 500\n"


@pytest.mark.parametrize("args, says", [
    (("install", "--enable"), "vnetshare service install: error: --enable needs --uplink IFACE: the daemon of which NIC?"),
    (("install", "--uplink", "a/b"), "vnetshare service install: error: argument --uplink: interface name 'a/b': "
                                     "must not contain '/'"),
])
def test_install_mistakes_are_one_line(tmp_path, args, says):
    p = install(tmp_path, *args)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [says]
    assert not (tmp_path / "etc").exists()
