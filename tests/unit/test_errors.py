import errno

import pytest

from vnetshare import ConfigError, NativeError, VnetshareError
from vnetshare.core.errors import check


def test_check_passes_values_through():
    assert check(0) == 0
    assert check(7) == 7


def test_check_keeps_errno_and_names_the_call():
    with pytest.raises(NativeError) as exc:
        check(-errno.ENOBUFS, "ring_reserve")
    assert exc.value.errno == errno.ENOBUFS
    assert "ring_reserve" in str(exc.value)
    assert isinstance(exc.value, OSError) and isinstance(exc.value, VnetshareError)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
    assert issubclass(ConfigError, VnetshareError)


def test_what_a_person_reads_has_no_errno_prefix():
    """errors.py rule 4: vnetshare's own OSErrors, and message() of any."""
    import errno

    from vnetshare.core.errors import NativeError, message
    from vnetshare.linux.netns import NetnsError

    assert str(NetnsError(errno.ENODEV, "uplink 'nosuch0' not found")) == "uplink 'nosuch0' not found"
    assert str(NativeError(errno.EPERM, "tap_open eth0: Operation not permitted")) == \
        "tap_open eth0: Operation not permitted"
    assert message(FileNotFoundError(errno.ENOENT, "No such file or directory", "/x")) == \
        "No such file or directory: /x"
    assert message(OSError("plain")) == "plain" and message(ValueError("v")) == "v"
    e = NetnsError(errno.ENODEV, "gone")
    assert e.errno == errno.ENODEV and isinstance(e, OSError)  # the errno is kept (rule 2)
