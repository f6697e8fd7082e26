"""ring: the shared-memory ring against a Unix SOCK_SEQPACKET socketpair.

Cross-process throughput for 64 B, 1500 B and 64 KiB frames through the
ring and through the socketpair, then the round trip (ping-pong) with the
waiting side polling and sleeping on its wakeup. Each side is its own
process, pinned to its own core when there are two; the loops are C
(native/ring_bench.c). No root needed.

The ring moves records only as fast as the CPU its two sides get. On 2
vCPUs shared with other work, a run during which other processes take a
sixth of the machine or more moves 1500 B records at about 40 % of a quiet
run's rate: either side preempted for longer than the ring's 4 MiB lasts
(about 0.3 ms) stalls the other, so their stalls add up
(docs/design-notes.md, "The ring's slow mode (issue 12)"). So each ring
size also reports the slowest and the fastest run, the share of the
machine other processes took during the median run and the most they
took in any run, and the median run's sleeps and wakeup-pipe writes from
the ring's own counters (struct ring_stats), per million records.
"""
from __future__ import annotations

import json
import os
import socket
import statistics

from vnetshare import Ring, create_fds
from vnetshare.dataplane._native import ffi, lib
from vnetshare.core.errors import check

from .measure import Foreign, Section

SIZES = {"64B": 64, "1500B": 1500, "64KiB": 65536}
COUNTS = {"64B": 4_000_000, "1500B": 2_000_000, "64KiB": 60_000}
RTT_COUNT = 200_000
TIMEOUT_MS = 60_000


CPUS = sorted(os.sched_getaffinity(0))


def _pin(cpu: int) -> None:
    """Put this process on its own core (children inherit, so use CPUS)."""
    if len(CPUS) > 1:
        os.sched_setaffinity(0, {CPUS[cpu % len(CPUS)]})


def _result(res) -> dict:
    return {
        "records": res.records,
        "bytes": res.bytes,
        "elapsed_ns": res.elapsed_ns,
        "bad": res.bad,
    }


def _in_child(fn) -> tuple[int, int]:
    """Run fn() in a forked child; return (pid, read end of its result pipe)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(rfd)
            os.write(wfd, json.dumps(fn()).encode())
        except BaseException as e:  # noqa: BLE001 - report, never return to caller
            os.write(wfd, json.dumps({"error": repr(e)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    return pid, rfd


def _join(pid: int, rfd: int) -> dict:
    chunks = []
    while chunk := os.read(rfd, 65536):
        chunks.append(chunk)
    os.close(rfd)
    os.waitpid(pid, 0)
    out = json.loads(b"".join(chunks) or b"{}")
    if "error" in out:
        raise RuntimeError(f"bench child failed: {out['error']}")
    return out


def _wake_counts(r: Ring, side: str) -> dict:
    st = r.stats()
    return {f"{side}_sleeps": st["sleeps"], f"{side}_kicks": st["kicks"]}


def ring_stream(frame_len: int, count: int) -> dict:
    """Producer in this process, consumer in a child; consumer's view counts.

    Also each side's sleeps and kicks, and "others": the share of the
    machine (0 - 1) that processes other than the two sides used meanwhile.
    """
    fds = create_fds()
    sizes = ffi.new("uint32_t[1]", [frame_len])
    try:
        def consumer():
            _pin(1)
            with Ring(fds, "consumer") as r:
                res = ffi.new("struct bench_result *")
                check(lib.bench_consume(r.handle, count, sizes, 1, 0, TIMEOUT_MS, res))
                return _result(res) | _wake_counts(r, "consumer")

        others: dict = {}
        with Section(Foreign(), "run", others):  # the bench's own other figure, per run
            pid, rfd = _in_child(consumer)
            _pin(0)
            with Ring(fds, "producer") as r:
                res = ffi.new("struct bench_result *")
                check(lib.bench_produce(r.handle, count, sizes, 1, 32, 0, 0, 0, TIMEOUT_MS, res))
                prod = _wake_counts(r, "producer")
            out = _join(pid, rfd)
    finally:
        fds.close()
    if out["bad"] or out["records"] != count:
        raise RuntimeError(f"ring stream lost or damaged records: {out}")
    return out | prod | {"others": others["run"][1] / 100}


def sock_stream(frame_len: int, count: int) -> dict:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

        def consumer():
            _pin(1)
            a.close()
            res = ffi.new("struct bench_result *")
            check(lib.bench_sock_recv(b.fileno(), count, frame_len, res))
            return _result(res)

        pid, rfd = _in_child(consumer)
        _pin(0)
        res = ffi.new("struct bench_result *")
        check(lib.bench_sock_send(a.fileno(), count, frame_len, res))
        out = _join(pid, rfd)
    finally:
        a.close()
        b.close()
    if out["bad"] or out["records"] != count:
        raise RuntimeError(f"socketpair stream lost or damaged messages: {out}")
    return out


def ring_rtt(count: int, poll: bool) -> float:
    """Median round trip in microseconds, 64-byte frames."""
    flags = lib.BENCH_POLL if poll else 0
    ab, ba = create_fds(), create_fds()
    try:
        def pong():
            _pin(1)
            with Ring(ab, "consumer") as rx, Ring(ba, "producer") as tx:
                res = ffi.new("struct bench_result *")
                check(lib.bench_pong(rx.handle, tx.handle, count, flags, TIMEOUT_MS, res))
                return _result(res)

        pid, rfd = _in_child(pong)
        _pin(0)
        rtt = ffi.new("uint64_t[]", count)
        with Ring(ab, "producer") as tx, Ring(ba, "consumer") as rx:
            res = ffi.new("struct bench_result *")
            check(lib.bench_ping(tx.handle, rx.handle, count, 64, flags, TIMEOUT_MS, rtt, res))
        _join(pid, rfd)
    finally:
        ab.close()
        ba.close()
    if res.bad:
        raise RuntimeError("ping-pong frames damaged")
    samples = sorted(rtt[i] for i in range(count // 10, count))  # drop warm-up
    return statistics.median(samples) / 1000.0


def bench_ring(reps: int, quick: bool) -> list[dict]:
    scale = 20 if quick else 1
    rows = []

    def rate(r: dict) -> float:
        return r["records"] / (r["elapsed_ns"] / 1e9)

    for name, flen in SIZES.items():
        count = COUNTS[name] // scale
        for kind, fn in (("ring", ring_stream), ("socketpair", sock_stream)):
            runs = [fn(flen, count) for _ in range(reps)]
            r = sorted(runs, key=lambda r: r["elapsed_ns"])[len(runs) // 2]
            secs = r["elapsed_ns"] / 1e9
            rows.append({"name": f"{kind}_{name}_records_per_s", "value": round(rate(r)), "unit": "records/s"})
            rows.append({"name": f"{kind}_{name}_GBps", "value": round(r["bytes"] / secs / 1e9, 3), "unit": "GB/s"})
            if kind != "ring":
                continue
            per_m = 1e6 / r["records"]
            rows += [
                {"name": f"ring_{name}_records_per_s_min", "value": round(min(map(rate, runs))), "unit": "records/s"},
                {"name": f"ring_{name}_records_per_s_max", "value": round(max(map(rate, runs))), "unit": "records/s"},
                {"name": f"ring_{name}_others_cpu_pct", "value": round(r["others"] * 100, 1), "unit": "% of machine"},
                {"name": f"ring_{name}_others_cpu_max_pct", "value": round(max(x["others"] for x in runs) * 100, 1),
                 "unit": "% of machine"},
            ]
            for side in ("consumer", "producer"):
                for what in ("sleeps", "kicks"):
                    rows.append({"name": f"ring_{name}_{side}_{what}_per_M", "value": round(r[f"{side}_{what}"] * per_m),
                                 "unit": "/M records"})
    for poll in (True, False):
        vals = [ring_rtt(RTT_COUNT // scale, poll) for _ in range(reps)]
        rows.append({"name": f"ring_rtt_{'poll' if poll else 'sleep'}_us", "value": round(statistics.median(vals), 2), "unit": "us"})
    by = {r["name"]: r["value"] for r in rows}
    for name in SIZES:
        rows.append({
            "name": f"ratio_ring_vs_socketpair_{name}_records",
            "value": round(by[f"ring_{name}_records_per_s"] / by[f"socketpair_{name}_records_per_s"], 2),
            "unit": "x",
        })
    return rows
