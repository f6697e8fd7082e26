"""The CI rule: under VNETSHARE_NO_SKIP=1 a skipped test fails the run."""
import pathlib

pytest_plugins = ["pytester"]

CONFTEST = (pathlib.Path(__file__).parents[1] / "conftest.py").read_text()


def test_skip_is_a_failure_under_no_skip(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("import pytest\n\ndef test_x():\n    pytest.skip('no CAP_NET_ADMIN')\n")
    monkeypatch.setenv("VNETSHARE_NO_SKIP", "1")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*skips are failures here*no CAP_NET_ADMIN*"])


def test_skip_is_a_skip_elsewhere(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("import pytest\n\ndef test_x():\n    pytest.skip('no CAP_NET_ADMIN')\n")
    monkeypatch.delenv("VNETSHARE_NO_SKIP", raising=False)
    result = pytester.runpytest()
    result.assert_outcomes(skipped=1)
