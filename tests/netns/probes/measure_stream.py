#!/usr/bin/env python3
"""Where a TCP stream between two partitions spends CPU, thread by thread.

    ./scripts/sandbox.sh python3 tests/netns/probes/measure_stream.py [STREAMS] [DAEMON-ARG...]

Builds the bench's lab (scripts/vnbench/paths.py), makes partitions pa and
pb, runs iperf3 from pa to pb for 6 s (STREAMS parallel streams, default
1) and over its middle 3 s prints each thread's CPU (daemon threads, the
two agents, the two iperf3 ends) in % of a core, the throughput, each
partition's frames received and of those written to its TAP by the switch
itself (rx_direct), and the switch's loop counters. DAEMON-ARGs go to
`vnetshare daemon` (e.g. --direct-share=0). With BIGBUF=1 in the
environment both partitions get 32 MiB TCP buffers (is the stream window
bound?). Issue 12 found with it that a stream leaves a third of the two
vCPUs idle (wakeups, not work) and is not window bound. A measurement,
not a test; everything is removed at the end.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import measure_idle  # noqa: E402
from measure_idle import HZ  # noqa: E402
from vnbench.paths import DAEMON_ARGS, Made, create_partition, start_vns  # noqa: E402
from vnetshare.frontends.client import call  # noqa: E402


def threads(pids: list[int]) -> dict[str, tuple[str, int]]:
    out = {}
    for pid in pids:
        out.update(measure_idle.threads(pid))
    return out


def main() -> int:
    streams = sys.argv[1] if len(sys.argv) > 1 else "1"
    DAEMON_ARGS.extend(sys.argv[2:])
    made = Made()
    try:
        start_vns(made)
        create_partition(made, "pa", "198.18.0.11")
        create_partition(made, "pb", "198.18.0.12")
        if os.environ.get("BIGBUF"):
            for ns in ("pa", "pb"):
                subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_wmem=4096 16384 33554432",
                                "net.ipv4.tcp_rmem=4096 131072 33554432"], check=True)
        srv = made.proc(["ip", "netns", "exec", "pb", "iperf3", "-s", "-1", "-B", "198.18.0.12"],
                        stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        cli = made.proc(["ip", "netns", "exec", "pa", "iperf3", "-c", "198.18.0.12", "-t", "6", "-P", streams, "-J"],
                        stdout=subprocess.PIPE)
        time.sleep(2)
        pids = [made.daemon.pid] + made.agent_pids() + [srv.pid, cli.pid]  # `ip netns exec` execs iperf3
        s0, t0, st0 = threads(pids), time.monotonic(), call(made.sock, "stats")
        time.sleep(3)
        s1, t1, st1 = threads(pids), time.monotonic(), call(made.sock, "stats")
        out = json.loads(cli.communicate(timeout=30)[0])
        srv.wait(timeout=30)
        dt = t1 - t0
        for k, (comm, v) in sorted(s1.items()):
            if k in s0 and v > s0[k][1]:
                print(f"pid {k.split('/')[2]:>7} tid {k.split('/')[4]:>7} {comm:16} {(v - s0[k][1]) / HZ / dt * 100:6.1f} %")
        print("Gbit/s", round(out["end"]["sum_received"]["bits_per_second"] / 1e9, 2))
        for n in ("pa", "pb"):
            a, b = st0["partitions"][n], st1["partitions"][n]
            print(n, {k: b[k] - a[k] for k in ("rx_frames", "rx_direct", "tx_frames")})
        print("switch:", {k: st1["uplink"][k] - st0["uplink"][k] for k in ("rounds", "sleeps", "naps", "polls",
                                                                         "poll_hits")})
    finally:
        made.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
