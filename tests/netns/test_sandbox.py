"""The sandbox the root tests rely on is really there."""
import os
import socket


def test_only_loopback_is_visible():
    names = [name for _, name in socket.if_nameindex()]
    assert names == ["lo"], f"sandbox shows host interfaces: {names}"


def test_run_is_private():
    # scripts/sandbox.sh mounts a tmpfs on /run: nothing here leaks to the host
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    assert any(m[4] == "/run" and "tmpfs" in m for m in mounts)
    assert os.geteuid() == 0
