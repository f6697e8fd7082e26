"""cli.py - the `vnetshare` command: a thin client of the daemon's control socket.

    vnetshare daemon [--uplink IFACE] [--config FILE|none] [--print-config] [OPTION...]
    vnetshare status [--json]
    vnetshare service install [--uplink IFACE [--enable]] [--root DIR]
    vnetshare service uninstall [--uplink IFACE] [--root DIR]
    vnetshare partition create NAME [--ip CIDR]... [--gateway IP] [--mac MAC]
                                    [--mtu N] [--ifname NAME] [--netns PATH]
    vnetshare partition delete NAME
    vnetshare partition list [--json]
    vnetshare partition show NAME [--json]
    vnetshare adapter [--json]
    vnetshare stats [--json] [--watch [SECONDS] [-n COUNT]]
    vnetshare top [-d SECONDS] [-n COUNT] [--json]
    vnetshare events [--json] [--follow]
    vnetshare capture NAME [-w FILE|-] [-c COUNT] [--direction in|out|both] [--drops]
    vnetshare lab up | down | demo

Rules:
1. A user mistake is one line on stderr, "vnetshare: error: ...", naming the
   bad value, and a non-zero exit; never a traceback.
2. Values are checked here first (so a typo is caught with no daemon
   running) and again by the daemon (which trusts no client).
3. Every read command has --json, printing exactly what the daemon sent.
4. `vnetshare daemon`'s settings: its flags, over the config file, over the
   defaults of config.DaemonConfig (configfile.py): each option of the
   daemon parser is a key of the file with nothing else to change; its
   parser default stays None ("not given").
5. `vnetshare status` exits as `systemctl is-active` would: STATUS_EXIT.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys

from ..core import config, configfile
from .client import DaemonError, DaemonNotRunning, DaemonUnreachable, call, daemon_socket, socket_path
from ..core.errors import ConfigError, VnetshareError


def _arg(fn):
    """An argparse type from a config validator: ConfigError -> usage error."""

    def convert(value: str):
        try:
            return fn(value)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = fn.__name__
    return convert


def _int(what: str, check, base: int = 10):
    """A converter: a number in @base (0: with 0x/0o prefixes), then @check."""
    def convert(value: str) -> int:
        try:
            n = int(value, base)
        except ValueError:
            raise ConfigError(f"{what} {value!r}: not a number") from None
        return check(n)

    convert.__name__ = check.__name__
    return convert


_mtu = _int("MTU", config.mtu)
_coalesce_usecs = _int("coalescing window", config.coalesce_usecs)
_ring_size = _int("ring size", config.ring_size, base=0)


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError(f"gateway {value!r}: not an IPv4 or IPv6 address") from None


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (rule 1); sub-parsers inherit the class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _policy_options(p: argparse.ArgumentParser, create: bool) -> None:
    """The tenant's policy, the same options for create and set (in set, an
    option left out leaves that setting as it is)."""
    again = "" if create else "; replaces the list"
    p.add_argument("--allow-ip", action="append", default=None, type=_arg(config.allow_ip),
                   metavar="CIDR|any", help="more source addresses it may send from (repeatable"
                   f"{again}); 'any' turns the address guard off (a router, a VPN)")
    p.add_argument("--trusted-router", action=argparse.BooleanOptionalAction, default=None,
                   help="let it send router advertisements, redirects and DHCP server messages")
    p.add_argument("--allow-llc", action=argparse.BooleanOptionalAction, default=None,
                   help="let it send 802.3 length frames (LLC, SNAP: NetBIOS, IS-IS); "
                        "dropped by default")
    p.add_argument("--vlan", type=_arg(config.vlan), metavar="ID|none",
                   help="access VLAN 1-4094: tagged on the uplink, isolated from other VLANs")
    p.add_argument("--storm-limit", type=_arg(config.storm_limit), metavar="PPS",
                   help="broadcast/multicast frames per second it may send (none: no limit; "
                        "default: the daemon's)")
    for d, what in (("tx", "it sends (over the budget, frames wait)"),
                    ("rx", "it receives (over the budget, frames are dropped)")):
        p.add_argument(f"--{d}-limit", action="append", default=None, metavar="RATE",
                       help=f"rate limit on what {what}: N with kbit, mbit, gbit, pps or kpps; "
                            "repeat for a bit and a packet rate; none: no limit")
        p.add_argument(f"--{d}-burst", action="append", default=None, metavar="SIZE",
                       help="bucket depth: N with b, kb, mb, or p (packets) (default: "
                            f"{config.BURST_WINDOW_S[d] * 1000:.0f} ms at the rate, at least 64kb)")


def _policy_fields(parser: argparse.ArgumentParser, args) -> dict:
    """The policy options as request fields, rates checked here as the daemon will."""
    for d in ("tx", "rx"):
        limit, burst = getattr(args, f"{d}_limit"), getattr(args, f"{d}_burst")
        if burst and not limit:
            parser.error(f"--{d}-burst needs --{d}-limit")
        if limit:
            try:
                config.rate_limit(limit, burst or [], f"--{d}-limit", d)
            except ConfigError as e:
                parser.error(str(e))
    return {"allow_ips": args.allow_ip, "trusted_router": args.trusted_router,
            "allow_llc": args.allow_llc, "vlan": args.vlan,
            "storm_limit": args.storm_limit, "tx_limit": args.tx_limit, "tx_burst": args.tx_burst,
            "rx_limit": args.rx_limit, "rx_burst": args.rx_burst}


def get_parser(only_daemon: bool = False) -> argparse.ArgumentParser:
    """The command line; with @only_daemon just `vnetshare [--socket S] daemon
    ...`, which main() takes for that command: the other commands' modules
    (live.py brings asyncio) are not imported before the daemon serves (issue 12)."""
    p = _Parser(
        prog="vnetshare",
        description="Share one network adapter between isolated partitions (network namespaces).",
    )
    socket_option = p.add_argument("--socket", help="control socket (default: $VNETSHARE_SOCKET or "
                                   "/run/vnetshare/control.sock; the daemon's: also `socket` in its config file)")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    d = sub.add_parser("daemon", help="run the hosting daemon on an uplink NIC")
    d.add_argument("--config", metavar="FILE|none",
                   help=f"settings: each key an option below without its dashes, flags win; [uplinks.IFACE] "
                        f"tables for one uplink's daemon (default: ${configfile.ENV} or "
                        f"{configfile.DEFAULT_PATH} if it exists; none: no file)")
    d.add_argument("--print-config", action="store_true",
                   help="print the settings the daemon would run with, and where each comes from; start nothing")
    d.set_defaults(parser=d, socket_option=socket_option)
    d.add_argument("--uplink", type=_arg(config.ifname), metavar="IFACE",
                   help="the network interface to share (or `uplink` in the config file)")
    d.add_argument("--offloads", choices=config.OFFLOAD_MODES, default=None,
                   help="partition offloads: what the uplink has (mirror, default) or all, done in software (emulate)")
    d.add_argument("--state-dir", default=None, metavar="DIR",
                   help="where the partitions' records are kept, to outlive a reboot "
                        f"(default: {config.STATE_DIR})")
    d.add_argument("--runtime-dir", default=None, metavar="DIR",
                   help="the daemon's lock and the pins of adopted namespaces, which a reboot ends "
                        f"(default: {config.RUN_DIR}; with --state-dir alone, that directory)")
    d.add_argument("--ring-size", type=_arg(_ring_size), default=None, metavar="BYTES",
                   help="data area of each ring, a power of two (default 4 MiB)")
    d.add_argument("--coalesce-usecs", type=_arg(_coalesce_usecs), default=None, metavar="N",
                   help="while frames come densely, the switch and agents batch them, waiting up to "
                        f"N microseconds per hop (default {config.COALESCE_USECS_DEFAULT}, 0: off); "
                        "a lone frame is never delayed, and its answer is polled for up to 3 N "
                        "(0: no poll either)")
    d.add_argument("--storm-limit", type=_arg(config.storm_limit), default=None, metavar="PPS",
                   help="partitions' default storm limit: broadcast/multicast frames per second each "
                        f"may send (default {config.STORM_PPS_DEFAULT}, none: no limit)")
    d.add_argument("--max-partitions", type=_arg(config.max_partitions), default=None, metavar="N",
                   help=f"partitions it serves at most (default {config.PARTITIONS_MAX_DEFAULT}; "
                        "16 bytes of table each, set at start)")
    d.add_argument("--direct-share", type=_arg(config.direct_share), default=None, metavar="PCT",
                   help="the switch writes a frame for a partition whose ring is empty to its TAP "
                        "itself (one hop fewer), running the partition's receive path for up to PCT "
                        f"percent of a core per partition (default {config.DIRECT_SHARE_DEFAULT}; "
                        "0: off, agents write every frame)")
    first, last = config.AGENT_UIDS_DEFAULT
    d.add_argument("--agent-uids", type=_arg(config.agent_uids), default=None, metavar="FIRST-LAST",
                   help="uids (and gids) for the partitions' agents, one each, none shared with "
                        f"another daemon of the host (default {first}-{last})")
    d.add_argument("--mac-conflict", type=_arg(config.mac_conflict), default=None, metavar="yield|keep",
                   help="a partition's MAC seen as a source on the wire means a LAN station has it too: "
                        "counted, an event, and with yield (default) the LAN's station gets that MAC's unicast "
                        "frames, from the wire and from other partitions, until it has been quiet for "
                        "--fdb-age; keep: the partition keeps getting them. A partition can't be created "
                        "with the uplink's MAC, another partition's, or one the switch learned on the "
                        "wire, nor with an address another partition of its VLAN has")
    d.add_argument("--fdb-age", type=_arg(config.fdb_age), default=None, metavar="SECONDS",
                   help="the switch forgets a station of the wire it has not heard for SECONDS "
                        f"(default {config.FDB_AGE_DEFAULT}, as a bridge's ageing time)")
    d.add_argument("--metrics", type=_arg(config.metrics_address), default=None, metavar="[ADDR:]PORT",
                   help="serve Prometheus metrics at http://ADDR:PORT/metrics (ADDR default "
                        f"{config.METRICS_ADDR_DEFAULT}, IPv6 as [::1]:PORT; default: off)")
    d.add_argument("--host-port", type=_arg(config.ifname), default=None, metavar="NAME",
                   help="make device NAME in the host's namespace, a port of the switch like a partition's "
                        "but trusted (its L3 guard, RA and DHCP guard off): give it the host's address and "
                        "the host reaches its partitions, and the LAN through the switch (README, \"The host "
                        "reaches its partitions\"); made at start, removed at stop")
    d.add_argument("--host-port-mac", type=_arg(config.mac), default=None, metavar="MAC",
                   help="the host port's MAC (default: derived from the uplink's MAC and NAME, the same "
                        "at every start)")
    d.add_argument("--take-address", action="store_true", default=None,
                   help="move the uplink's addresses and routes onto the host port (added there first, "
                        "then the routes, then removed from the uplink) and put them back at stop")
    if only_daemon:
        return p
    capture, cni, live = _others()

    part = sub.add_parser("partition", help="create, delete, list and show partitions")
    psub = part.add_subparsers(dest="pcmd", required=True, metavar="ACTION")
    c = psub.add_parser("create", help="create a partition: a network namespace with a virtual NIC")
    c.add_argument("name", type=_arg(config.partition_name), metavar="NAME")
    c.add_argument("--ip", action="append", default=[], type=_arg(config.cidr), metavar="CIDR",
                   help="address with prefix length, IPv4 or IPv6 (repeatable)")
    c.add_argument("--gateway", type=_arg(_ip), metavar="IP", help="default route via this address")
    c.add_argument("--route", action="append", default=[], type=_arg(config.route), metavar="'DST [via GW]'",
                   help="a route, as `ip route` writes it: a prefix or default, on-link or via a gateway "
                        "(repeatable)")
    c.add_argument("--mac", type=_arg(config.mac), metavar="MAC", help="MAC address (default: random, locally administered)")
    c.add_argument("--mtu", type=_arg(_mtu), metavar="N", help="MTU (default: the uplink's)")
    c.add_argument("--ifname", type=_arg(config.ifname), metavar="NAME", help="device name inside the partition (default eth0)")
    c.add_argument("--netns", metavar="PATH", help="adopt this existing network namespace instead of creating one")
    c.add_argument("--label", action="append", default=[], type=_arg(config.label), metavar="KEY=VALUE",
                   help="record who made the partition and why (repeatable; `partition show` lists them)")
    _policy_options(c, create=True)
    c.set_defaults(parser=c)
    se = psub.add_parser("set", help="change a running partition's addresses, guard, VLAN and rates")
    se.add_argument("name", type=_arg(config.partition_name), metavar="NAME")
    se.add_argument("--ip", action="append", default=None, type=_arg(config.cidr), metavar="CIDR",
                    help="the partition's addresses: replaces them all (repeatable)")
    _policy_options(se, create=False)
    se.set_defaults(parser=se)
    dl = psub.add_parser("delete", help="delete a partition and everything it owns")
    dl.add_argument("name", type=_arg(config.partition_name), metavar="NAME")
    ls = psub.add_parser("list", help="list partitions")
    ls.add_argument("--json", action="store_true")
    sh = psub.add_parser("show", help="a partition's addresses, functions and counters")
    sh.add_argument("name", type=_arg(config.partition_name), metavar="NAME")
    sh.add_argument("--json", action="store_true")

    ap = sub.add_parser("apply", help="make the partitions a TOML or JSON file declares: create what is "
                                      "missing, change what differs (and with --prune delete the rest)")
    ap.add_argument("file", metavar="FILE", help="[[partition]] tables (TOML) or {\"partitions\": [...]} "
                                                 "(JSON, or FILE ending in .json), each with partition.create's "
                                                 "fields (name, ips, gateway, routes, mac, mtu, ifname, "
                                                 "allow_ips, vlan, tx_limit, labels, ...); - reads stdin")
    ap.add_argument("--prune", action="store_true", help="delete the partitions the file does not declare")
    ap.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    ap.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    ap.set_defaults(parser=ap)

    a = sub.add_parser("adapter", help="what the uplink offers and what partitions get")
    a.add_argument("--json", action="store_true")
    s = sub.add_parser("stats", help="per-partition counters")
    s.add_argument("--json", action="store_true")
    live.add_watch_options(s, _arg)
    s.set_defaults(parser=s)
    live.add_parsers(sub, _arg)

    v = sub.add_parser("verify", help="prove the daemon's guard: send hostile frames between two "
                                      "temporary partitions and check none leaked")
    v.add_argument("--json", action="store_true")
    v.add_argument("--sender-allow-ip", action="append", default=None, type=_arg(config.allow_ip),
                   metavar="CIDR|any", help="give the sending partition these --allow-ip values; "
                   "with 'any' verify must report leaks (a test of verify itself)")

    lab = sub.add_parser("lab", help="a self-contained lab: veth uplink to a namespace playing the LAN")
    lsub = lab.add_subparsers(dest="lcmd", required=True, metavar="ACTION")
    lsub.add_parser("up", help="build the lab and leave it running")
    lsub.add_parser("down", help="remove everything the lab made")
    demo = lsub.add_parser("demo", help="build a lab, run ping and iperf3 through it, report, remove it")
    demo.add_argument("--seconds", type=int, default=3, help="iperf3 run time per path (default 3)")
    demo.add_argument("--json", action="store_true")
    capture.add_parser(sub)
    cni.add_install_parser(sub)
    st = sub.add_parser("status", help="is a daemon running, on which uplink, since when, with how many "
                                       "partitions, its data path: exit 0 running, 1 degraded, "
                                       "3 not running, 4 unknown")
    st.add_argument("--json", action="store_true")
    from . import service

    service.add_parser(sub, _arg)
    return p


def daemon_settings() -> dict[str, argparse.Action]:
    """Every setting of `vnetshare daemon`, by config file key (rule 4)."""
    args = get_parser(only_daemon=True).parse_args(["daemon"])
    return configfile.options(args.parser, args.socket_option)


# -- output ---------------------------------------------------------------

def _table(rows: list[list[str]], head: list[str]) -> str:
    cols = [head] + rows
    widths = [max(len(str(r[i])) for r in cols) for i in range(len(head))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in cols]
    return "\n".join(lines)


def _print_list(ans: dict) -> None:
    rows = []
    for p in ans["partitions"]:
        rows.append([p["name"], p["ifname"], p["mac"], str(p["mtu"]),
                     ",".join(p["ips"]) or "-", p.get("agent", "-")])
    if rows:
        print(_table(rows, ["NAME", "IFNAME", "MAC", "MTU", "ADDRESSES", "AGENT"]))


def _print_show(p: dict) -> None:
    print(f"partition {p['name']}")
    source = f" (adopted: {p['netns_source']})" if p.get("netns_source") else (
        " (adopted)" if p.get("adopted") else "")
    print(f"  netns     {p['netns']}{source}")
    print(f"  device    {p['ifname']}  mac {p['mac']}  mtu {p['mtu']}"
          + (" (the uplink's)" if p.get("mtu_given", p["mtu"]) is None else ""))
    for ip in p["ips"]:
        print(f"  address   {ip}")
    if p.get("gateway"):
        print(f"  gateway   {p['gateway']}")
    for route in p.get("routes", []):
        print(f"  route     {route}")
    for key, value in sorted(p.get("labels", {}).items()):
        print(f"  label     {key}={value}")
    print(f"  agent     {p.get('agent', '-')}" + (f", uid {p['agent_uid']}" if p.get("agent_uid") else ""))
    if p.get("unserved"):
        print(f"  unserved  {p['unserved']}")
    if "guard" in p:
        allowed = ", ".join(a for a in p.get("allow_ips", []) if a != "any")
        print(f"  guard     {p['guard']}" + (f"; also allowed: {allowed}" if allowed else ""))
        print(f"  vlan      {p.get('vlan') or 'none (untagged)'}")
        print(f"  storm     {p['storm_limit'] or 'no limit'}" + (" frames/s" if p["storm_limit"] else ""))
        print(f"  tx limit  {p['tx_limit']}")
        print(f"  rx limit  {p['rx_limit']}")
    if p.get("functions"):
        print("  functions (from the uplink):")
        rows = [[f["function"], str(f["value"]), f"{f['source']} = {f['source_value']}"] for f in p["functions"]]
        print("    " + _table(rows, ["FUNCTION", "VALUE", "FROM"]).replace("\n", "\n    "))
    if p.get("counters"):
        print("  counters:")
        for k, v in p["counters"].items():
            if isinstance(v, dict):
                nz = {r: n for r, n in v.items() if n}
                print(f"    {k:<10} {nz if nz else 0}")
            else:
                print(f"    {k:<10} {v}")


def _print_adapter(ans: dict) -> None:
    up = ans["uplink"]
    print(f"uplink {up['ifname']}: mtu {up['mtu']}, speed {up.get('speed') or '?'}, "
          f"duplex {up.get('duplex') or '?'}, mode {ans['mode']}"
          + (" (gone: not served until a device of that name is back)"
             if "ifindex" in up and up["ifindex"] is None else ""))
    rows = [[f["function"], str(f["value"]), f["source"], str(f["source_value"])] for f in ans["functions"]]
    print(_table(rows, ["PARTITION FUNCTION", "VALUE", "UPLINK FEATURE", "UPLINK VALUE"]))


def _print_stats(ans: dict) -> None:
    rows = []
    for name, c in sorted(ans["partitions"].items()):
        if not c:  # unserved (its re-creation failed): no counters
            rows.append([name, "-", "-", "-", "-", "-"])
            continue
        drops = sum(c.get("drops", {}).values())
        rows.append([name, str(c["rx_frames"]), str(c["rx_bytes"]), str(c["tx_frames"]),
                     str(c["tx_bytes"]), str(drops)])
    print(_table(rows, ["PARTITION", "RX-FRAMES", "RX-BYTES", "TX-FRAMES", "TX-BYTES", "DROPS"]))
    host = ans.get("host_port")
    if host:
        c = host.get("counters", {})
        print(f"host port {host['name']}: rx {c.get('rx_frames', 0)} frames, tx {c.get('tx_frames', 0)} frames, "
              f"drops {sum(c.get('drops', {}).values())}")
    up = ans.get("uplink")
    if up:
        print(f"uplink: rx {up.get('rx_frames', 0)} frames, tx {up.get('tx_frames', 0)} frames, "
              f"drops {sum(up.get('drops', {}).values())}")


# -- commands -------------------------------------------------------------

def _client(args, op: str, **fields) -> dict:
    return call(daemon_socket(args.socket), op, **fields)


def cmd_partition(args) -> int:
    if args.pcmd == "create":
        fields = {k: v for k, v in _policy_fields(args.parser, args).items() if v is not None}
        ans = _client(args, "partition.create", name=args.name, ips=args.ip, gateway=args.gateway,
                      routes=args.route, mac=args.mac, mtu=args.mtu, ifname=args.ifname, netns=args.netns,
                      labels=dict(args.label) or None, **fields)
        p = ans["partition"]
        print(f"created partition {p['name']}: {p['ifname']} {p['mac']} mtu {p['mtu']}"
              + (f" {' '.join(p['ips'])}" if p["ips"] else ""))
        return 0
    if args.pcmd == "set":
        fields = {k: v for k, v in _policy_fields(args.parser, args).items() if v is not None}
        if args.ip is not None:
            fields["ips"] = args.ip
        if not fields:
            args.parser.error("partition set: nothing to change (give --ip, --allow-ip, --vlan, "
                              "--storm-limit, --tx-limit, --rx-limit, --trusted-router "
                              "or --allow-llc)")
        ans = _client(args, "partition.set", name=args.name, **fields)
        print(f"changed partition {args.name}: {', '.join(sorted(fields))}")
        return 0
    if args.pcmd == "delete":
        _client(args, "partition.delete", name=args.name)
        print(f"deleted partition {args.name}")
        return 0
    if args.pcmd == "list":
        ans = _client(args, "partition.list")
        print(json.dumps(ans["partitions"], indent=1)) if args.json else _print_list(ans)
        return 0
    ans = _client(args, "partition.show", name=args.name)
    print(json.dumps(ans["partition"], indent=1)) if args.json else _print_show(ans["partition"])
    return 0


def cmd_apply(args) -> int:
    from ..core import apply as applyplan

    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        args.parser.error(f"{args.file}: {getattr(e, 'strerror', None) or e}")
    head = text.lstrip()
    fmt = ("json" if args.file.endswith(".json") or head.startswith("{")
           or (head.startswith("[") and not head.startswith("[[")) else "toml")
    try:
        entries = applyplan.parse(text, fmt)
    except ConfigError as e:
        args.parser.error(f"{args.file}: {e}")
    # the daemon checks every entry and runs them one after another: allow
    # it a create's worst time for each
    ans = call(daemon_socket(args.socket), "apply", timeout=30 + 0.5 * len(entries), partitions=entries,
               prune=args.prune, dry_run=args.dry_run)
    if args.json:
        ans.pop("ok", None)
        print(json.dumps(ans, indent=1))
    else:
        for d in ans["done"]:
            fields = f" ({', '.join(d['fields'])})" if d.get("fields") else ""
            print(f"{d['action']} {d['name']}{fields}")
        for d in ans["failed"]:
            print(f"vnetshare: error: {d['action']} {d['name']}: {d['error']['message']}", file=sys.stderr)
    return 1 if ans["failed"] else 0


def cmd_adapter(args) -> int:
    ans = _client(args, "adapter")
    ans.pop("ok", None)
    print(json.dumps(ans, indent=1)) if args.json else _print_adapter(ans)
    return 0


def cmd_stats(args) -> int:
    live = _others()[2]
    if args.watch is not None:
        return live.watch(daemon_socket(args.socket), args.watch, args.count, as_json=args.json)
    if args.count is not None:
        args.parser.error(f"-n/--count {args.count}: needs --watch")
    ans = _client(args, "stats")
    ans.pop("ok", None)
    print(json.dumps(ans, indent=1)) if args.json else _print_stats(ans)
    return 0


def cmd_daemon(args) -> int:
    """Rule 4: flags, then the config file, then DaemonConfig's defaults. A
    mistake in either is a usage error, exit 2, on which the service does
    not restart (RestartPreventExitStatus=2)."""
    opts = configfile.options(args.parser, args.socket_option)
    path, required = configfile.which(args.config)
    try:
        from_file = configfile.settings(configfile.load(path, required), path, opts, args.uplink)
    except ConfigError as e:
        args.parser.error(str(e))
    values, sources = configfile.merge(args, opts, from_file)
    if args.socket is None and os.environ.get("VNETSHARE_SOCKET"):  # the environment over the file
        values["socket"], sources["socket"] = os.environ["VNETSHARE_SOCKET"], "$VNETSHARE_SOCKET"
    if "uplink" not in values:
        args.parser.error("no uplink: give --uplink IFACE" + (f", or uplink = \"IFACE\" in {path}" if path else ""))
    try:
        cfg = config.DaemonConfig(**values)  # what the options say of each other
    except ConfigError as e:
        args.parser.error(str(e))
    if args.print_config:
        print(configfile.render(cfg, opts, sources), end="")
        return 0
    from ..hosting import run_daemon

    return run_daemon(cfg)


# `vnetshare status` exit codes, as `systemctl is-active` (LSB's status codes)
STATUS_EXIT = {"running": 0, "degraded": 1, "not running": 3, "unknown": 4}


def _ago(seconds: float) -> str:
    s = int(max(seconds, 0))
    d, h, m = s // 86400, s // 3600 % 24, s // 60 % 60
    parts = [f"{d}d"] * bool(d) + [f"{h}h"] * bool(h) + [f"{m}min"] * bool(m)
    return " ".join(parts[:2]) or f"{s}s"


def status_of(sock: str) -> dict:
    """What `vnetshare status` says of the daemon at @sock: its
    daemon.status answer with "state" (a key of STATUS_EXIT) and
    "problems" (why it is degraded), or the state and the error."""
    import time

    try:
        ans = call(sock, "daemon.status", timeout=5)
    except DaemonNotRunning as e:
        return {"state": "not running", "socket": sock, "error": str(e)}
    except (DaemonUnreachable, DaemonError, PermissionError) as e:
        return {"state": "unknown", "socket": sock, "error": str(e)}
    ans.pop("ok", None)
    ans.setdefault("socket", sock)
    problems = []
    if ans.get("switch", "running") != "running":
        problems.append("the switch is stopped" + (f" ({ans['switch_error']})" if ans.get("switch_error") else ""))
    if ans.get("uplink_up") is False:
        problems.append(f"uplink {ans['uplink']} is down ({ans.get('uplink_operstate')})")
    if ans.get("served", ans.get("partitions")) != ans.get("partitions"):
        problems.append(f"{ans['partitions'] - ans['served']} of {ans['partitions']} partitions not served")
    ans["state"] = "degraded" if problems else "running"
    ans["problems"] = problems
    if "started" in ans:
        ans["uptime"] = round(time.time() - ans["started"], 3)
    return ans


def cmd_status(args) -> int:
    import time

    st = status_of(daemon_socket(args.socket))
    if args.json:
        print(json.dumps(st, indent=1))
        return STATUS_EXIT[st["state"]]
    if "error" in st:
        print(f"vnetshare daemon: {st['state']}: {st['error']}")
        return STATUS_EXIT[st["state"]]
    since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(st["started"]))
    print(f"vnetshare daemon: {st['state']} on uplink {st['uplink']}, pid {st['pid']}, "
          f"since {since} ({_ago(st['uptime'])} ago)")
    for problem in st["problems"]:
        print(f"  problem     {problem}")
    print(f"  partitions  {st['partitions']} ({st['served']} served)")
    link = "up" if st["uplink_up"] else "down" if st["uplink_up"] is False else "unknown"
    print(f"  data path   switch {st['switch']}, uplink {st['uplink']} {link} ({st['uplink_operstate']})")
    print(f"  socket      {st['socket']}")
    print(f"  state       {st['state_dir']}")
    print(f"  version     {st['version']}")
    return STATUS_EXIT[st["state"]]


def cmd_verify(args) -> int:
    from . import verify

    return verify.main(daemon_socket(args.socket), as_json=args.json, sender_allow_ips=args.sender_allow_ip)


def cmd_lab(args) -> int:
    from . import lab

    sock = args.socket or lab.SOCKET  # its own, beside a deployment's (lab.py rule 4)
    if args.lcmd == "up":
        return lab.up(sock)
    if args.lcmd == "down":
        return lab.down(sock)
    return lab.demo(sock, seconds=args.seconds, as_json=args.json)


def _others():
    """The other commands' modules: capture, cni, live."""
    from . import capture, cni, live

    return capture, cni, live


def _lazy(module: str, fn: str):
    """A command in frontends/@module, imported when it runs."""
    def run(args) -> int:
        from importlib import import_module

        return getattr(import_module(f"{__package__}.{module}"), fn)(args)
    return run


def _command(argv: list[str]) -> str | None:
    """The command word of @argv (after the global --socket), or None."""
    it = iter(argv)
    for tok in it:
        if tok == "--socket":
            next(it, None)
        elif not tok.startswith("--socket="):
            return None if tok.startswith("-") else tok
    return None


# The other commands' modules (live.py brings asyncio) are imported with this
# one, so a process that drops root later still has them (test_not_root),
# except in `vnetshare daemon`, whose data path must not wait for them (issue 12).
if _command(sys.argv[1:]) != "daemon":
    _others()

COMMANDS = {
    "partition": cmd_partition,
    "apply": cmd_apply,
    "adapter": cmd_adapter,
    "stats": cmd_stats,
    "daemon": cmd_daemon,
    "lab": cmd_lab,
    "verify": cmd_verify,
    "status": cmd_status,
    "service": _lazy("service", "main"),
    "cni": _lazy("cni", "install_main"),
    "capture": _lazy("capture", "main"),
    "events": _lazy("live", "events_main"),
    "top": _lazy("live", "top_main"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = get_parser(only_daemon=_command(argv) == "daemon")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("vnetshare: error: must run as root (try: sudo vnetshare ...)", file=sys.stderr)
        return STATUS_EXIT["unknown"] if args.cmd == "status" else 1
    try:
        return COMMANDS[args.cmd](args)
    except OSError as e:  # NativeError, NetnsError, PermissionError: the message, no "[Errno N]"
        print(f"vnetshare: error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
        return 1
    except VnetshareError as e:  # DaemonError, DaemonUnreachable, ConfigError
        print(f"vnetshare: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
