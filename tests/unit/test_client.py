"""client.daemon_socket(): where a command finds its daemon (client.py rule 3)."""
import pytest

from vnetshare.frontends import client


@pytest.fixture
def paths(tmp_path, monkeypatch):
    default, lab = tmp_path / "control.sock", tmp_path / "lab.sock"
    monkeypatch.setattr(client, "DEFAULT_SOCKET", str(default))
    monkeypatch.setattr(client, "LAB_SOCKET", str(lab))
    monkeypatch.delenv("VNETSHARE_SOCKET", raising=False)
    return default, lab


def test_the_default_unless_only_the_labs_socket_is_there(paths, monkeypatch):
    default, lab = paths
    assert client.daemon_socket() == str(default)  # nothing anywhere: the error names the default
    lab.touch()
    assert client.daemon_socket() == str(lab)      # the lab alone
    default.touch()
    assert client.daemon_socket() == str(default)  # a deployment's daemon wins
    default.unlink()
    # what a user chose is never overridden, and a daemon listens where it was told
    assert client.daemon_socket("/x.sock") == "/x.sock"
    monkeypatch.setenv("VNETSHARE_SOCKET", "/y.sock")
    assert client.daemon_socket() == "/y.sock"
    monkeypatch.delenv("VNETSHARE_SOCKET")
    assert client.socket_path() == str(default)
