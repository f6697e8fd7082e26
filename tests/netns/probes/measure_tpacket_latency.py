"""Why the uplink uses TPACKET_V2: a lone frame waits for a V3 block timer.

TPACKET_V3 hands a block to userspace only when it is full or when
tp_retire_blk_tov expires; TPACKET_V2 wakes the reader per frame. This
pings a partition from the LAN host through the switch with each, and
prints the median round trip of each. A measurement, not a test (timing
on a shared 2-core machine is no pass/fail): run it in the sandbox,

    ./scripts/sandbox.sh python3 tests/netns/probes/measure_tpacket_latency.py

Numbers: docs/kernel-facts.md (and tests/netns/probes/measure_dataplane.py).
"""
import os
import sys

sys.path[:0] = [os.path.dirname(__file__), os.path.dirname(os.path.dirname(__file__)),
                os.path.dirname(os.path.dirname(os.path.dirname(__file__)))]  # ... and tests (waiting.py)
import re
import statistics

import dataplane_helpers as dh
from test_dataplane_switch import Net


def _p50(lab, **kw) -> float:
    net = Net(lab, **kw)
    dh.ping(net.lan, "10.9.0.1", count=2)
    out = dh.nsexec(net.lan, "ping", "-n", "-c", "60", "-i", "0.01", "10.9.0.1", timeout=30).stdout
    rtts = [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]
    assert len(rtts) >= 55, out
    return statistics.median(rtts)


def main() -> int:
    results = {}
    for name, kw in (("v2", dict(tpacket=2)), ("v3", dict(tpacket=3, block_tov_ms=1))):
        lab = dh.Lab()
        try:
            results[name] = _p50(lab, **kw)
        finally:
            lab.close()
    print(f"ping LAN -> partition p50: V2 {results['v2']:.3f} ms, V3 (tov 1 ms) {results['v3']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
