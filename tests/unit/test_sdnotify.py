"""sdnotify.py: the datagram systemd's sd_notify() would send, to the socket $NOTIFY_SOCKET names."""
import logging
import os
import socket

import pytest

from vnetshare.linux import sdnotify


@pytest.mark.parametrize("value, want", [
    ("/run/systemd/notify", b"/run/systemd/notify"),
    ("@sd-notify-123", b"\0sd-notify-123"),
    ("", None),
    (None, None),
    ("vsock:2:1234", None),   # systemd 253's VSOCK form: not spoken here
    ("relative/path", None),
])
def test_address(value, want):
    assert sdnotify.address(value) == want


def test_message_is_newline_separated_assignments_one_line_each():
    assert sdnotify.message(ready=1, status="serving 2\npartitions") == b"READY=1\nSTATUS=serving 2 partitions"


def _listener(addr):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(addr)
    s.settimeout(5)
    return s


@pytest.mark.parametrize("abstract", [False, True])
def test_the_manager_gets_the_datagram_and_children_do_not_get_the_address(tmp_path, abstract):
    where = f"@vnetshare-test-{os.getpid()}" if abstract else str(tmp_path / "notify")
    listener = _listener(b"\0" + where[1:].encode() if abstract else where)
    env = {"NOTIFY_SOCKET": where, "PATH": "/bin"}
    try:
        n = sdnotify.Notifier(env)
        assert "NOTIFY_SOCKET" not in env and env == {"PATH": "/bin"}  # rule 2
        assert n.ready("serving 0 partition(s) on uplink eth1")
        assert listener.recv(4096) == b"READY=1\nSTATUS=serving 0 partition(s) on uplink eth1"
        assert n.stopping("SIGTERM: stopping")
        assert listener.recv(4096) == b"STOPPING=1\nSTATUS=SIGTERM: stopping"
    finally:
        listener.close()


def test_without_notify_socket_nothing_is_sent():
    assert not sdnotify.Notifier({}).ready("x")


def test_a_manager_that_is_gone_is_logged_once_never_raised(tmp_path, caplog):
    n = sdnotify.Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING, logger="vnetshare.daemon"):
        assert not n.ready("x")
        assert not n.stopping("y")
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot notify the service manager at {tmp_path / 'gone'}: No such file or directory"]
