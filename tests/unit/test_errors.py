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
