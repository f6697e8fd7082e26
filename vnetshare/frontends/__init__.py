"""vnetshare.frontends - what users run: the CLI and what it drives.

cli     `vnetshare ...`: argument parsing, output, exit codes
client  the control socket's client (protocol.py over a Unix socket)
lab     the embedded default: a veth uplink to a namespace playing the LAN
verify  `vnetshare verify`: hostile frames between two temporary
        partitions, proving the daemon's guard
"""
