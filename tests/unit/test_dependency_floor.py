"""The pyroute2 floor in pyproject.toml is a version that works.

Debian 12's python3-pyroute2 is 0.7.2: with the floor at 0.7, pip kept it
and the suite failed in a Debian container (49 tests), because vnetshare
opens pyroute2's Ethtool as a context manager (adapter.query), which
pyroute2 supports from 0.7.6 on (0.7.5 fails, 0.7.6 passes the suite's
root tests).
"""
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LAST_BROKEN = "0.7.5"
FIRST_WORKING = "0.7.6"


def pyroute2_requirement() -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [r for r in map(Requirement, project["dependencies"]) if r.name == "pyroute2"]
    assert len(found) == 1, project["dependencies"]
    return found[0]


def test_the_declared_floor_excludes_the_releases_vnetshare_breaks_on():
    spec = pyroute2_requirement().specifier
    assert not spec.contains(LAST_BROKEN), f"pyroute2{spec} lets pip keep {LAST_BROKEN}"
    assert not spec.contains("0.7.2"), f"pyroute2{spec} lets pip keep Debian 12's 0.7.2"
    assert spec.contains(FIRST_WORKING), f"pyroute2{spec} refuses {FIRST_WORKING}, which works"


def test_the_installed_pyroute2_meets_the_floor_and_has_what_vnetshare_uses():
    from pyroute2 import Ethtool, IPRoute  # noqa: F401 (vnetshare's imports)
    from pyroute2.ethtool.ioctl import EthtoolError  # noqa: F401
    from pyroute2.netlink.exceptions import NetlinkError  # noqa: F401
    from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD  # noqa: F401

    req = pyroute2_requirement()
    installed = version("pyroute2")
    assert req.specifier.contains(installed), f"pyroute2 {installed} is installed, vnetshare needs {req}"
    assert hasattr(Ethtool, "__enter__") and hasattr(Ethtool, "__exit__"), \
        f"pyroute2 {installed}: Ethtool is no context manager (adapter.query uses it as one)"
