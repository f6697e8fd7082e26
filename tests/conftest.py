"""Suite-wide rules.

Rule 1: with VNETSHARE_NO_SKIP=1 (set by scripts/test.sh, so in CI) a skipped
test is a failed test: a root test that cannot run there is a broken setup,
not a pass.

Rule 2: no test reads this host's /etc/vnetshare/vnetshare.toml: every
daemon a test starts runs on its flags (VNETSHARE_CONFIG=none), unless the
test gives --config.
"""
import os

import pytest

os.environ["VNETSHARE_CONFIG"] = "none"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and os.environ.get("VNETSHARE_NO_SKIP") == "1" and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else rep.longrepr
        rep.longrepr = f"skipped, and skips are failures here (VNETSHARE_NO_SKIP=1): {reason}"
