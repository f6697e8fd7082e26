"""tests/unit: pure Python, no build.

Rule 1: nothing here needs the C extension (vnetshare.dataplane._native) or
the C agent: a test that does belongs in tests/native. When a run holds
only tests/unit, the extension cannot be imported here at all (an
ImportError naming this rule); test_without_build.py proves the same for
every module of this directory, with a source tree that has no build.
"""
import importlib.abc
import sys
from pathlib import Path

NATIVE = "vnetshare.dataplane._native"
HERE = Path(__file__).resolve().parent


class _NoBuild(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == NATIVE:
            raise ImportError(f"{NATIVE}: tests/unit runs without the build (tests/unit/conftest.py "
                              "rule 1): a test that needs C belongs in tests/native")
        return None


def pytest_configure(config):
    args = [Path(a.split("::")[0]).resolve() for a in config.args]
    if args and all(a == HERE or HERE in a.parents for a in args) and NATIVE not in sys.modules:
        sys.meta_path.insert(0, _NoBuild())
