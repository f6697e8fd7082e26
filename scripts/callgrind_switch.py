#!/usr/bin/env python3
"""callgrind_switch.py - the switch's instructions per flooded frame, counted.

Run inside the sandbox (it makes a veth pair in the current namespace),
under valgrind:

    ./scripts/sandbox.sh valgrind --tool=callgrind --toggle-collect=sw_run \\
        --callgrind-out-file=/tmp/cg.out .venv/bin/python scripts/callgrind_switch.py [--mcast] [--no-snooping]
    callgrind_annotate /tmp/cg.out | head

Only sw_run() (the data-plane thread: every round, inlined) is counted.
PORTS ports on VLAN 0; port 1's ring gets FRAMES group frames and the
LAN end of the veth sends FRAMES more before the switch starts (so the
rounds are the same run after run); the script waits on the other
ports' H2A rings (not on the switch's stats: a stats command would be
counted) until every copy arrived, then stops the switch. Group frames are
broadcast UDP, or with --mcast UDP to 239.1.2.3 (no member: flooded
while no querier was heard). Instructions are the same on a busy or a
quiet machine, so a before/after of a change to the flood path is one
run each (CG_PKG=DIR: import vnetshare from DIR, e.g. `git archive`'s
tree of the commit before, with its built _native module). Two runs of the
same code differ by a few dozen instructions in a million or two. Per frame:
the total over 2 * FRAMES. valgrind 3.19 has no epoll_pwait2(): preload a
shim (gcc -O2 -shared -fPIC -o /tmp/pw2.so pw2.c) that calls epoll_pwait():

    #define _GNU_SOURCE
    #include <sys/epoll.h>
    int epoll_pwait2(int fd, struct epoll_event *ev, int n,
                     const struct timespec *t, const sigset_t *ss)
    {
            return epoll_pwait(fd, ev, n, t ? (int)(t->tv_sec * 1000 +
                               (t->tv_nsec + 999999) / 1000000) : -1, ss);
    }
"""
import os
import socket
import sys
import time

if os.environ.get("CG_PKG"):  # another tree's package (the code before a change)
    sys.path.insert(0, os.environ["CG_PKG"])
    sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from vnetshare import CONSUMER, PRODUCER, Ring, create_fds
from vnetshare.dataplane.switch import Switch
from vnetshare.linux import netns

PORTS, FRAMES, SIZE = 8, 400, 1 << 22  # FRAMES from the wire fit its RX ring


def main() -> None:
    mcast = "--mcast" in sys.argv
    dst_mac, dst_ip = (("01:00:5e:01:02:03", "239.1.2.3") if mcast
                       else ("ff:ff:ff:ff:ff:ff", "10.9.0.255"))
    netns.veth_pair("cgup0", "cglan0")
    for ifname in ("cgup0", "cglan0"):  # no IPv6 chatter (MLD, RS) in the count
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w") as f:
            f.write("1")
    netns.link_set("cgup0", up=True)
    netns.link_set("cglan0", up=True)
    kw = {"mcast_snooping": False} if "--no-snooping" in sys.argv else {}
    sw = Switch("cgup0", coalesce_usecs=0, **kw)
    tx, rx = None, []
    for i in range(1, PORTS + 1):
        a2h, h2a = create_fds(SIZE), create_fds(SIZE)
        mac = f"02:00:00:00:00:{i:02x}"
        sw.add_port(i, mac, a2h, h2a, SIZE)
        if i == 1:
            tx = Ring.attach(a2h, PRODUCER)
        rx.append(Ring.attach(h2a, CONSUMER))
    frame = bytes(Ether(src="02:00:00:00:00:01", dst=dst_mac) / IP(src="10.9.0.1", dst=dst_ip)
                  / UDP(sport=9, dport=9) / (b"x" * 22))
    wire = bytes(Ether(src="02:00:00:00:00:64", dst=dst_mac) / IP(src="10.9.0.100", dst=dst_ip)
                 / UDP(sport=9, dport=9) / (b"x" * 22))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind(("cglan0", 0))
    for _ in range(FRAMES):
        tx.send(frame, flush=False)
        s.send(wire)
    tx.flush()
    sw.start()  # everything queued first: the rounds are the same run after run
    got = [0] * PORTS
    want = [FRAMES if i == 0 else 2 * FRAMES for i in range(PORTS)]
    deadline = time.monotonic() + float(os.environ.get("CG_WAIT", "120"))
    while any(g < w for g, w in zip(got, want)) and time.monotonic() < deadline:
        for i, r in enumerate(rx):
            while r.recv() is not None:
                got[i] += 1
        time.sleep(0.01)
    sw.stop()
    print("copies received per port:", got, "wanted:", want)
    sw.close()
    netns.delete_link("cgup0")


if __name__ == "__main__":
    main()
