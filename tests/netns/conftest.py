"""Root tests: they need CAP_NET_ADMIN and must run inside the sandbox.

They skip with a reason elsewhere; scripts/test.sh (and so CI) turns any such
skip into a failure.
"""
import os

import pytest


def _cap_net_admin() -> bool:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 12))
    return False


def _in_sandbox() -> bool:
    # scripts/sandbox.sh exports the network namespace it made
    return os.environ.get("VNETSHARE_SANDBOX") == os.readlink("/proc/self/ns/net")


@pytest.fixture(autouse=True)
def _root_sandbox():
    if not _cap_net_admin():
        pytest.skip("needs CAP_NET_ADMIN: run ./scripts/test.sh as root")
    if not _in_sandbox():
        pytest.skip("refusing to run in the host's network namespace: use ./scripts/test.sh")


@pytest.fixture
def lab():
    """A dataplane_helpers.Lab: everything one data-plane test makes, removed after it."""
    from dataplane_helpers import Lab

    made = Lab()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def daemon_args() -> tuple[str, ...]:
    """Extra `vnetshare daemon` arguments for `system` (and so `two`): a
    test module overrides this fixture to start its daemon with them."""
    return ()


@pytest.fixture
def system(tmp_path, daemon_args):
    """A system.System with its daemon running; removed after the test."""
    from vnetshare.linux import netns
    from system import System

    s = System(tmp_path)
    try:
        s.start_daemon(*daemon_args)
        yield s
    finally:
        s.close()
    assert netns.names() == [], f"namespaces left behind: {netns.names()}"


@pytest.fixture
def two(system):
    """Partitions pa and pb (system.A, system.B), IPv4 and IPv6, default route to the LAN host."""
    from system import A, B, LAN_V4

    for name, v4, v6 in (A, B):
        system.create(name, "--ip", f"{v4}/24", "--ip", f"{v6}/64", "--gateway", LAN_V4)
    return system
