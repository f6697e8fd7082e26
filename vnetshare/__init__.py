"""vnetshare: share one network adapter between isolated partitions, in userspace.

The public surface: what users and tests import is re-exported here.
"""
from .errors import ConfigError, NativeError, VnetshareError
from .ring import (
    CONSUMER,
    DROP_REASONS,
    PRODUCER,
    Ring,
    RingEnd,
    RingFds,
    create_fds,
)

__all__ = [
    "CONSUMER",
    "ConfigError",
    "DROP_REASONS",
    "NativeError",
    "PRODUCER",
    "Ring",
    "RingEnd",
    "RingFds",
    "VnetshareError",
    "create_fds",
]
__version__ = "0.1.0"
