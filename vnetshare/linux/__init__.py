"""vnetshare.linux - plumbing over Linux: namespaces and links (netlink,
through pyroute2), processes (/proc), and the external tools that measure
(ping, iperf3).

netns   network namespaces, links, addresses, routes, sysctls
procs   how helper processes are started, found and ended (by PID)
probe   ping, iperf3 and a hashed TCP transfer, run inside namespaces
"""
