"""The command line and the run: which sections, in which order, with what
measured meanwhile; then the JSON rows or the tables, and the exit status."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

from .common import BenchError, Plan, say
from .failover import bench_failover
from .mcast import bench_mcast
from .measure import Foreign, Section, machine_cpu
from .net import WORKLOADS, bench_net
from .paths import DAEMON_ARGS, PATHS, Made, free_names
from .report import machine_line, print_net, print_restart, print_scale, print_table, print_targets, target_rows
from .ring import bench_ring
from .restart import bench_restart
from .scale import bench_scale


def plan_for(args) -> Plan:
    if args.quick:
        return Plan(reps=args.reps or 1, seconds=2, pings=100, levels=(1, 4), idle_seconds=2, idle_settle=1,
                    cli_creates=2, only=args.only, many=args.many or 100)
    return Plan(reps=args.reps or 3, seconds=5, pings=500, levels=(1, 8, 32, 64), idle_seconds=10, idle_settle=5,
                cli_creates=5, only=args.only, many=args.many or 1000)


def get_parser() -> argparse.ArgumentParser:
    overview = sys.modules[__package__].__doc__
    p = argparse.ArgumentParser(prog="bench.py", description=overview.split("\n\n")[0],
                                epilog="paths: " + ", ".join(PATHS) + "; workloads: " + ", ".join(WORKLOADS))
    p.add_argument("what", nargs="?", default="all",
                   choices=("ring", "net", "scale", "restart", "failover", "mcast", "all"),
                   help="ring: the shared-memory ring against a socketpair; net: vnetshare against veth, "
                        "bridge, macvlan, vde_switch, pasta, slirp4netns; scale: 1 to 64 partitions, then "
                        "--many at once; restart: traffic across a daemon restart; failover: the uplink's "
                        "carrier lost, a backup NIC takes over (default: all)")
    p.add_argument("--json", action="store_true", help="print rows {name, value, unit} as JSON")
    p.add_argument("--reps", type=int, default=None, help="runs per figure, median (default 3; 1 with --quick "
                                                           "for net and scale)")
    p.add_argument("--quick", action="store_true", help="a smoke test: ring 1/20 of the work; net 1 rep of "
                                                        "2 s; scale 1 and 4 partitions")
    p.add_argument("--only", action="append", default=[], metavar="PATTERN",
                   help="net: only PATH/WORKLOAD matching this glob (or a PATH or WORKLOAD alone), "
                        "e.g. 'vns*/tcp1', vde, ping, storm, txlimit; repeatable")
    p.add_argument("--many", type=int, default=None, metavar="N",
                   help="scale: then N idle partitions at once; restart: one restart with N idle partitions more "
                        "(default 1000; 100 with --quick)")
    p.add_argument("--check", action="store_true", help="exit 3 if a target is not met")
    p.add_argument("--daemon-arg", action="append", default=[], metavar="ARG",
                   help="pass ARG to `vnetshare daemon` (net and scale), e.g. --daemon-arg=--coalesce-usecs=0; "
                        "repeatable")
    return p


def _interrupt(sig, _frame):
    raise KeyboardInterrupt(f"signal {sig}")


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    if args.reps is not None and args.reps < 1:
        get_parser().error(f"--reps {args.reps}: must be at least 1")
    sections = ["ring", "net", "scale", "restart", "failover", "mcast"] if args.what == "all" else [args.what]
    needs_root = [s for s in sections if s != "ring"]
    if needs_root and os.geteuid() != 0:
        get_parser().error(f"{' and '.join(needs_root)} need root: "
                           "./scripts/sandbox.sh python3 scripts/bench.py " + " ".join(sys.argv[1:]))
    if needs_root and not os.environ.get("VNETSHARE_SANDBOX"):
        say("note: not inside scripts/sandbox.sh; only vnb-* namespaces and links are made and removed")
    plan = plan_for(args)
    DAEMON_ARGS[:] = args.daemon_arg
    rows: dict[str, list[dict]] = {}
    errors: list[str] = []
    other: dict[str, tuple[float, float]] = {}  # section -> CPU-s, % of the machine
    foreign = Foreign()
    foreign.start()
    try:
        if "ring" in sections:
            say("ring")
            everywhere = os.sched_getaffinity(0)
            try:
                with Section(foreign, "ring", other):
                    rows["ring"] = bench_ring(args.reps or 3, args.quick)
            finally:  # ring pins this process to one core: net and scale must not inherit it
                os.sched_setaffinity(0, everywhere)
        header = machine_line()
        if needs_root:
            signal.signal(signal.SIGTERM, _interrupt)
            signal.signal(signal.SIGHUP, _interrupt)
            m0, t0 = machine_cpu()[0], time.monotonic()
            time.sleep(1.0)
            busy = (machine_cpu()[0] - m0) / (time.monotonic() - t0) / os.cpu_count() * 100
            header += f", {busy:.0f} % busy before the run"
            made = Made()
            try:
                free_names(made.nsmod)
                if "net" in sections:
                    with Section(foreign, "net", other):
                        rows["net"] = bench_net(made, plan, errors)
                if "scale" in sections:
                    with Section(foreign, "scale", other):
                        rows["scale"] = bench_scale(made, plan, errors)
                if "restart" in sections:
                    with Section(foreign, "restart", other):
                        rows["restart"] = bench_restart(made, plan, errors)
                if "failover" in sections:
                    if len(needs_root) > 1:
                        made.close()  # its own topology, the same names
                    with Section(foreign, "failover", other):
                        rows["failover"] = bench_failover(made, plan, errors)
                if "mcast" in sections:
                    with Section(foreign, "mcast", other):
                        rows["mcast"] = bench_mcast(made, plan, errors)
            except BenchError as e:
                errors.append(str(e))
            finally:
                made.close()
    finally:
        foreign.stop()
    # a shared machine: say how much CPU others took while we measured
    for s, (cpu, share) in other.items():
        rows.setdefault("machine", []).append(
            {"name": f"machine_other_cpu_during_{s}_pct", "value": round(share, 2), "unit": "% of the machine"})
    top = foreign.top()
    other_line = ("# other processes on the machine meanwhile: "
                  + ", ".join(f"{s} {cpu:.1f} CPU-s ({share:.1f} %)" for s, (cpu, share) in other.items())
                  + (f"; most: {top}" if top else ""))
    sections_out = sections + (["machine"] if "machine" in rows else [])
    every = [r for s in sections_out for r in rows.get(s, [])]
    targets = target_rows(every, sections)
    if args.json:
        print(json.dumps(every + [{k: t[k] for k in ("name", "value", "unit")} for t in targets], indent=1))
    else:
        if "ring" in rows:
            print_table("vnetshare ring vs Unix SOCK_SEQPACKET socketpair (cross-process)", rows["ring"])
        if needs_root:
            print(header)
        print(other_line)
        if "net" in rows:
            print_net(rows["net"], plan)
        if "scale" in rows:
            print_scale(rows["scale"], plan)
        if "restart" in rows:
            print_restart(rows["restart"], plan)
        if "failover" in rows:
            print_table("failover: carrier loss on the uplink, the backup takes over (medians)", rows["failover"])
        if "mcast" in rows:
            print_table(f"mcast: a stream to a group 1 partition of {plan.many} joined, against unicast "
                        "(switch CPU per frame, medians)", rows["mcast"])
        if needs_root:
            print_targets(targets)
    for e in errors:
        say(f"error: {e}")
    if errors:
        return 1
    if args.check and any(t["value"] != "met" for t in targets):
        return 3
    return 0


def run() -> int:
    """main() for the command line: ^C, SIGTERM and SIGHUP end it with 130."""
    try:
        return main()
    except KeyboardInterrupt as e:  # made.close() already ran
        say(f"interrupted ({str(e) or 'SIGINT'}): everything this run made is removed")
        return 130
