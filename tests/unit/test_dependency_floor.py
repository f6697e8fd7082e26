"""The pyroute2 floor in pyproject.toml is a version that works.

Debian 12's python3-pyroute2 is 0.7.2: with the floor at 0.7, pip kept it
and the suite failed in a Debian container (49 tests), because vnetshare
then opened pyroute2's Ethtool as a context manager (adapter.query), which
pyroute2 supports from 0.7.6 on (0.7.5 fails, 0.7.6 passes the suite's
root tests). adapter.query now asks the kernel itself (linux/ethtool.py,
issue 12: pyroute2's import cost a restarting daemon 130 ms); the floor
stays at the release the whole suite was proven on.
"""
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LAST_BROKEN = "0.7.5"
FIRST_WORKING = "0.7.6"


def requirement(name: str) -> Requirement:
    """pyproject.toml's one requirement on @name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [r for r in map(Requirement, project["dependencies"]) if r.name == name]
    assert len(found) == 1, project["dependencies"]
    return found[0]


def pyroute2_requirement() -> Requirement:
    return requirement("pyroute2")


def test_the_declared_floor_excludes_the_releases_vnetshare_breaks_on():
    spec = pyroute2_requirement().specifier
    assert not spec.contains(LAST_BROKEN), f"pyroute2{spec} lets pip keep {LAST_BROKEN}"
    assert not spec.contains("0.7.2"), f"pyroute2{spec} lets pip keep Debian 12's 0.7.2"
    assert spec.contains(FIRST_WORKING), f"pyroute2{spec} refuses {FIRST_WORKING}, which works"


def test_the_installed_pyroute2_meets_the_floor_and_has_what_vnetshare_uses():
    from pyroute2 import IPRoute  # noqa: F401 (vnetshare's imports)
    from pyroute2.netlink.exceptions import NetlinkError  # noqa: F401
    from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD  # noqa: F401

    req = pyroute2_requirement()
    installed = version("pyroute2")
    assert req.specifier.contains(installed), f"pyroute2 {installed} is installed, vnetshare needs {req}"


# prometheus_client: vnetshare.metrics.Exporter kept the server that
# start_http_server() returns, to stop it when the daemon stops; it returns
# (server, thread) from 0.20.0 on and None before (its exposition.py at
# v0.19.0 and v0.20.0). Debian 12's python3-prometheus-client is 0.16.0.
# Checked with the two wheels: under 0.19.0 the Exporter failed with
# "cannot unpack non-iterable NoneType", under 0.20.0 it served and stopped,
# and tests/native/test_metrics_collector.py passes under both (it needs no server).
# Since issue 20 the Exporter serves from its own bounded server
# (metrics_server.py) with the library's MetricsHandler, not
# start_http_server; the floor stays at the release the suite was proven on.
PROMETHEUS_LAST_BROKEN = "0.19.0"
PROMETHEUS_FIRST_WORKING = "0.20.0"


def prometheus_requirement() -> Requirement:
    return requirement("prometheus_client")


def test_the_prometheus_client_floor_excludes_the_releases_vnetshare_breaks_on():
    spec = prometheus_requirement().specifier
    assert not spec.contains(PROMETHEUS_LAST_BROKEN), f"prometheus_client{spec} lets pip keep {PROMETHEUS_LAST_BROKEN}"
    assert not spec.contains("0.16.0"), f"prometheus_client{spec} lets pip keep Debian 12's 0.16.0"
    assert spec.contains(PROMETHEUS_FIRST_WORKING), f"prometheus_client{spec} refuses {PROMETHEUS_FIRST_WORKING}"


def test_the_installed_prometheus_client_meets_the_floor_and_has_what_vnetshare_uses():
    from http.server import BaseHTTPRequestHandler

    from prometheus_client import CollectorRegistry, MetricsHandler, ProcessCollector  # noqa: F401
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily  # noqa: F401
    from prometheus_client.registry import Collector  # noqa: F401

    req = prometheus_requirement()
    installed = version("prometheus_client")
    assert req.specifier.contains(installed), f"prometheus_client {installed} is installed, vnetshare needs {req}"
    # metrics_server.py runs it on a request it read itself: a BaseHTTPRequestHandler answering GET
    assert issubclass(MetricsHandler, BaseHTTPRequestHandler) and callable(MetricsHandler.do_GET)
