"""bench.py - measure vnetshare side by side with its peers, in one run.

    python3 scripts/bench.py [ring|net|scale|restart|failover|mcast|all] [--json] [--quick] [--reps N]
                             [--only PATTERN]... [--check] [--daemon-arg=ARG]...

Without a subcommand it runs all three. net and scale need root and make
network namespaces, veths and processes: run them in the sandbox,
`./scripts/sandbox.sh python3 scripts/bench.py`.

ring: cross-process throughput through the shared-memory ring for 64 B,
1500 B and 64 KiB frames, and the same transfer through a Unix
SOCK_SEQPACKET socketpair for scale; then the round trip (ping-pong) with
the waiting side polling and with it sleeping on the eventfd. Each side is
its own process, pinned to its own core when there are two; every figure is
the median of --reps runs, and ratios come from the same run. The loops are
C (native/ring_bench.c).

net: the same workloads through every path, one after the other in each
repetition (so slow drifts of a shared machine hit every path alike):
  veth         two namespaces joined by a veth pair
  bridge       a Linux bridge (in its own namespace) with a veth to each of
               two namespaces
  macvlan      two macvlans in bridge mode on one lower veth, each moved into
               its own namespace: macvlan to macvlan
  macvlan-lan  the same macvlan to a LAN host: the lower veth's peer lives in
               a third namespace (the lab topology, with macvlan as the NIC
               sharer)
  vde          vde_switch with two TAPs, each in its namespace, each plugged
               in by a vde_plug2tap process
  pasta        pasta (Debian's passt) giving a namespace the host's stack, as
               podman starts it (--config-net ... --netns PATH), to a LAN
               host behind the host namespace's only veth (paths.py says
               how and why; docs/performance.md has the command lines)
  slirp4netns  the same with slirp4netns as rootless podman starts it
               (--configure --mtu=65520 --disable-host-loopback ...)
               A peer whose program is missing is not measured; its
               column says why and the run does not fail for it.
  vns          vnetshare partition to partition (the lab topology: a veth
               uplink to a LAN namespace, the daemon on it, two partitions;
               two more idle but for storm and txlimit)
  vns-lan      vnetshare partition to the LAN host through the uplink
  vns-open, vns-lan-open
               the same two on the same daemon, from partitions made with
               --allow-ip any (the L3 guard off): tcp1, udp64 and ping
               only, for ratio_vns*_vs_vns*_open_* (the guard's cost)
  vns-host     the host (the run's own namespace) to a partition through the
               daemon's host port (--host-port vnb-host, a second address of
               the host's on it), on the same daemon: tcp1 and ping only,
               for ratio_vns_host_vs_veth_* (the host reaching its
               partitions, issue 21) and ratio_vns_host_vs_vns_*
Workloads: iperf3 TCP 1, 2 and 4 streams (Gbit/s received), iperf3 UDP 64-byte
datagrams (packets per second received), ping -i 0.01 round trip p50/p99
idle and under a TCP stream, and CPU seconds per GB received during the
1-stream run: of the switch's own processes (daemon + agents; vde_switch +
vde_plug2tap; none for the kernel peers, whose work is softirq in whatever
task runs it) and of the whole machine (/proc/stat, every core: iperf3 ends,
kernel, switch, and any background load).
Tenant workloads (issue 8):
  storm        bridge, vns, vns-lan: the sender's ping p50/p99 (no other
               load), then its TCP 1 stream, each with a third member of
               the same switch flooding 60-byte broadcasts (IPv4 UDP from
               its own MAC and address, so the guard passes them) from a
               Python AF_PACKET loop at full speed, and each without; both
               halves in every repetition, the order swapped every other
               one. The flooder ends by itself after its measurement's
               length (+15 s) and is stopped by PID when it is done. Rows
               <path>_storm_{on,off}_*, ratio_<path>_storm_on_vs_off_*,
               frames the flooder sent and (vnetshare) the storm drops the
               switch counted, per second.
  txlimit      vns-lan: TCP 1 stream from a partition made with --tx-limit
               200mbit (iperf3's received rate, and bytes leaving the
               uplink over the middle of the run), against 200 Mbit/s.

scale: vnetshare only, with 1, 8, 32, 64 partitions (then --many at once,
one create at a time and then by one `apply`): aggregate TCP
throughput of one iperf3 stream per partition to its own server on the LAN
host (bytes leaving the uplink over a window), CPU of daemon + agents while
idle, time to create a partition (p50, p99 of the control request the CLI
waits for; and of the whole `vnetshare partition create` command), memory per
partition (agent PSS, daemon growth, ring memfd pages), and whether every
partition worked.

failover: the uplink's carrier lost (the LAN's end of its veth set down)
with a --backup-uplink on the same LAN bridge: carrier loss to the first
ping reply (-i 0.01), the longest gap, when the daemon moved and how long
its announcement took, whether a TCP stream survived; then 1,000
synthetic partitions' announcements through the daemon's paced sender
(failover.py says why synthetic).

mcast: a multicast stream to a group 1 of N partitions joined (--many),
the switch's CPU per frame against the same stream unicast, and with
snooping off (mcast.py says how).

Python only sets up, starts the real tools (iperf3, ping, vde_switch, the
vnetshare daemon), reads /proc and /sys, and prints. Everything net and
scale make carries the prefix `vnb`: they refuse to start if such a
namespace or link exists, never touch another interface, and remove every
namespace, link and process they made (by name and PID) at the end, on
failure and on ^C/SIGTERM. Every child process is bounded in time.

scripts/bench.py runs it; this package holds its parts, split as passt's
test/lib (setup, helpers, report) and test/perf (one file per workload
family):
  common.py   BenchError, the log line, children tied to the run, Plan
  paths.py    Made (what the run made, removed by name and PID) and the
              builders of the paths below
  measure.py  CPU, memory and counters from /proc and /sys, other
              processes' CPU meanwhile, ping times, background iperf3
  ring.py     the ring micro-bench
  net.py      the workloads through every path
  scale.py    1 to 64 partitions
  failover.py the uplink lost, the backup NIC takes over
  mcast.py    a multicast stream to 1 of N partitions against unicast
  report.py   targets, verdicts, tables
  main.py     the command line and the run
"""
