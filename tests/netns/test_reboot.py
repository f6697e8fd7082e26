"""The records outlive a reboot, the rest is runtime (issue 21, item 3).

A daemon keeps its records in a state directory and its lock and pins in a
runtime directory (config.py: /var/lib/vnetshare and /run/vnetshare for a
real host, two temporary directories here).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from system import UPLINK, System, wait_for
from vnetshare.linux import netns
from vnetshare.linux.probe import ping
from vnetshare.linux.procs import python_argv

ADOPTED = "ctr"  # a container's namespace, given with --netns


@pytest.fixture
def host(tmp_path):
    """A System whose state and runtime directories are apart, and a
    container's namespace to adopt."""
    s = System(tmp_path, state_dir=str(tmp_path / "state"), runtime_dir=str(tmp_path / "run"))
    try:
        netns.create(ADOPTED)
        s.start_daemon()
        yield s
    finally:
        s.close()
        _unmount_pins(s)
    assert netns.names() == [], f"namespaces left behind: {netns.names()}"


def _unmount_pins(s: System) -> None:
    """What a reboot does to the runtime directory: every mount in it (the
    pins of adopted namespaces, and the directory netns.share_dir() bound
    onto itself) gone, and then the directory itself (a new tmpfs)."""
    top = os.path.realpath(s.runtime_dir)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p == top or p.startswith(top + "/")), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True)  # listed twice: the second finds none
    shutil.rmtree(s.runtime_dir, ignore_errors=True)


def _events(s: System, kind: str) -> list[dict]:
    events = [json.loads(line) for line in s.cli("events", "--json").stdout.splitlines()]
    return [e for e in events if e["event"] == kind]


def test_a_state_in_the_runtime_dir_from_before_the_split_is_moved_and_adopted(tmp_path):
    """An upgrade without a reboot: the old daemon kept everything in one
    directory (by default /run/vnetshare); the new one, given that as its
    runtime dir and a state dir apart, moves the records and adopts the
    partitions as they are, the adopted namespace's pin included."""
    run = str(tmp_path / "run")
    s = System(tmp_path, state_dir=run)  # everything in one directory, as before
    try:
        s.start_daemon()
        s.create("pa", "--ip", "198.18.0.11/24")
        netns.create(ADOPTED)
        s.create(ADOPTED, "--netns", f"/run/netns/{ADOPTED}", "--ip", "198.18.0.20/24")
        pa_ns = os.stat("/run/netns/pa").st_ino
        assert s.stop_daemon() == 0
        s.state_dir, s.runtime_dir = str(tmp_path / "state"), run  # the new defaults' shape
        s.state_path = os.path.join(s.state_dir, "state.json")
        s.start_daemon()
        assert s.state_names() == [ADOPTED, "pa"]
        assert not os.path.exists(os.path.join(run, "state.json"))
        assert not os.path.exists(os.path.join(run, "partitions"))
        assert "moved the state of 2 partition(s)" in s.log()
        assert os.stat("/run/netns/pa").st_ino == pa_ns  # adopted, not made again
        assert [e["partition"] for e in _events(s, "partition.adopted")] == [ADOPTED, "pa"]
        assert wait_for(lambda: ping(ADOPTED, "198.18.0.11", count=1, timeout=1).ok), s.log()
    finally:
        s.close()
    assert netns.names() == [], f"namespaces left behind: {netns.names()}"


def test_a_second_daemon_on_the_same_state_dir_is_refused_whatever_its_runtime_dir(host: System, tmp_path):
    p = subprocess.run(python_argv("vnetshare", "--socket", str(tmp_path / "other.sock"), "daemon",
                                   "--uplink", UPLINK, "--state-dir", host.state_dir,
                                   "--runtime-dir", str(tmp_path / "other-run")),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert f"another daemon already keeps its state in {host.state_dir}" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
