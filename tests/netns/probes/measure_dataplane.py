"""measure_dataplane.py - quick figures for the data plane (not a test).

    ./scripts/sandbox.sh python3 tests/netns/probes/measure_dataplane.py [--seconds 3] [--tpacket 2|3] [--tov MS]

Builds the switch test topology (two partitions with TAP + pump, a veth
uplink to a LAN namespace), all in this process, and prints:
  - ping RTT p50/p90/p99 LAN -> partition and partition -> partition;
  - iperf3 TCP Gbit/s partition -> partition, partition -> LAN, LAN -> partition;
  - the same ping and iperf3 over a bare kernel veth pair, for scale.
Everything is made inside the sandbox and removed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "..")]  # tests/netns, tests (waiting.py)

from dataplane_helpers import Lab, nsexec, ping  # noqa: E402
from test_dataplane_switch import LAN4, Net  # noqa: E402
from vnetshare.linux import netns


def rtts(ns: str, addr: str, n: int = 200, interval: float = 0.01) -> list[float]:
    p = nsexec(ns, "ping", "-n", "-c", str(n), "-i", str(interval), addr, timeout=60)
    return sorted(float(x) for x in re.findall(r"time=([\d.]+) ms", p.stdout))


def pct(r: list[float]) -> str:
    return (f"p50 {statistics.median(r):.3f}  p90 {r[int(len(r) * 0.9)]:.3f}  "
            f"p99 {r[min(len(r) - 1, int(len(r) * 0.99))]:.3f} ms")


def iperf(lab: Lab, server_ns: str, client_ns: str, addr: str, seconds: int, streams: int = 1) -> float:
    srv = lab.popen(server_ns, "iperf3", "-s", "-1")
    for _ in range(50):
        if nsexec(server_ns, "ss", "-ltn", check=False).stdout.count(":5201"):
            break
        import time

        time.sleep(0.05)
    out = nsexec(client_ns, "iperf3", "-c", addr, "-t", str(seconds), "-P", str(streams), "-J",
                 timeout=seconds + 30).stdout
    srv.wait(timeout=10)
    end = json.loads(out)["end"]
    return end["sum_received"]["bits_per_second"] / 1e9


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--tpacket", type=int, default=2)
    ap.add_argument("--tov", type=int, default=1)
    args = ap.parse_args()

    lab = Lab()
    try:
        net = Net(lab, tpacket=args.tpacket, block_tov_ms=args.tov)
        a, b = net.parts
        ping(net.lan, "10.9.0.1", count=2)
        ping(a.ns, "10.9.0.2", count=2)
        print(f"vnetshare (TPACKET_V{args.tpacket}{', tov %d ms' % args.tov if args.tpacket == 3 else ''})")
        print(f"  ping LAN -> partition        {pct(rtts(net.lan, '10.9.0.1'))}")
        print(f"  ping partition -> partition  {pct(rtts(a.ns, '10.9.0.2'))}")
        for name, srv, cli, addr in (
            ("partition -> partition", b.ns, a.ns, "10.9.0.2"),
            ("partition -> LAN      ", net.lan, a.ns, LAN4),
            ("LAN -> partition      ", a.ns, net.lan, "10.9.0.1"),
        ):
            print(f"  iperf3 TCP {name}  {iperf(lab, srv, cli, addr, args.seconds):6.2f} Gbit/s")
        up = net.sw.uplink_stats()
        print(f"  uplink: rx {up['rx_frames']} tx {up['tx_frames']} kernel drops {up['drops']['rx_kernel']}"
              f" truncated {up['drops']['rx_truncated']} tx errors {up['drops']['tx_errors']}")
        for p in (a, b):
            st = p.pump.stats()
            print(f"  pump {p.ns}: tx {st['tx_frames']} frames {st['tx_bytes'] / max(1, st['tx_frames']):.0f} B avg,"
                  f" rx {st['rx_frames']} frames, a2h_full {st['a2h_full']}")
    finally:
        lab.close()

    lab = Lab()
    try:
        x, y = lab.netns("x"), lab.netns("y")
        netns.veth_pair("vx", "vy", netns=x, peer_netns=y)
        for ns, dev, ip in ((x, "vx", "10.8.0.1/24"), (y, "vy", "10.8.0.2/24")):
            netns.add_address(dev, ip, ns)
            netns.link_set(dev, ns, up=True)
        ping(x, "10.8.0.2", count=2)
        print("kernel veth pair")
        print(f"  ping                         {pct(rtts(x, '10.8.0.2'))}")
        print(f"  iperf3 TCP                   {iperf(lab, y, x, '10.8.0.2', args.seconds):6.2f} Gbit/s")
    finally:
        lab.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
