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
