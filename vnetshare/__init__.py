"""vnetshare: share one network adapter between isolated partitions, in userspace.

The package follows the patent's roles, with the layers they stand on:

    vnetshare/               the roles (US 7,383,555)
      hosting.py             the hosting daemon: control socket, switch, adapter
      manager.py             the partition manager: create, adopt, set, delete
      supervisor.py          its agents: started, watched, restarted, stopped; their uids
      agent.py               a partition's virtual device driver (one process each)
      adapter.py             querying the real NIC for the partitions' functions
    vnetshare/dataplane/     the C data plane and its wrappers (ring, switch, pump)
    vnetshare/core/          pure rules: config, protocol, state, errors, lifecycle
    vnetshare/linux/         namespaces, links, processes, measuring tools
    vnetshare/frontends/     the CLI, its client, the lab, verify

Frames never touch Python: the rings, the switch and the pumps are C. What
tests and tools import from the top is re-exported here; the C extension
loads only when something from dataplane is used.
"""
from .core.errors import ConfigError, NativeError, VnetshareError

# The ring's names load the C extension: they are imported on first use
# (PEP 562), so that `import vnetshare`, vnetshare.core, the CLI's parser and
# the CNI plugin work where the extension was never built.
_FROM_RING = ("CONSUMER", "DROP_REASONS", "PRODUCER", "Ring", "RingEnd", "RingFds", "create_fds")


def __getattr__(name: str):
    if name in _FROM_RING:
        from .dataplane import ring
        return getattr(ring, name)
    raise AttributeError(f"module 'vnetshare' has no attribute {name!r}")


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
