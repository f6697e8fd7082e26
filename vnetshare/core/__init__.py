"""vnetshare.core - the pure rules: no sockets, no netlink, no C.

config     what a user may give (names, addresses, MTU, rates, VLANs), and
           DaemonConfig, the daemon's settings filled once
protocol   the control socket's wire protocol, sans I/O: requests, answers,
           the line decoder, what each op accepts
state      the daemon's state file (what exists, for a new daemon to adopt)
errors     the exception tree every layer raises
lifecycle  a partition's states and events, as a table
"""
