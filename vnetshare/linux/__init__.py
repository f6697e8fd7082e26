"""vnetshare.linux - plumbing over Linux: namespaces and links (netlink,
through pyroute2), processes (/proc), and the external tools that measure
(ping, iperf3).

netns      network namespaces, links, addresses, routes, sysctls
linkstate  a link's state and its changes (NETLINK_ROUTE): the uplink's,
           for the event watcher
procs      how helper processes are started, found and ended (by PID),
           and how they ended (exit_description)
probe      ping, iperf3 and a hashed TCP transfer, run inside namespaces
"""
