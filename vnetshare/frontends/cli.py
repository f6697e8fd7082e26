"""cli.py - the `vnetshare` command: a thin client of the daemon's control socket.

    vnetshare daemon [--uplink IFACE] [--config FILE|none] [--print-config] [OPTION...]
    vnetshare status [--json]
    vnetshare service install [--uplink IFACE [--enable]] [--root DIR]
    vnetshare service uninstall [--uplink IFACE] [--root DIR]
    vnetshare partition create NAME [--ip CIDR]... [--gateway IP] [--mac MAC]
                                    [--mtu N] [--ifname NAME] [--netns PATH]
    vnetshare partition set NAME [--ip CIDR]... [--gateway IP|none] [--route R|none]...
                                 [--mtu N] [--mac MAC] [--label K=V|K-]... [POLICY...]
    vnetshare partition delete NAME
    vnetshare partition list [--json]
    vnetshare partition show NAME [--json]
    vnetshare adapter [--json]
    vnetshare stats [--json] [--watch [SECONDS] [-n COUNT]]
    vnetshare top [-d SECONDS] [-n COUNT] [--json]
    vnetshare events [--json] [--follow]
    vnetshare fdb [--json] [--partition NAME] [--vlan ID|none]
    vnetshare groups [--json] [--vlan ID|none]
    vnetshare capture NAME [-w FILE|-] [-c COUNT] [--direction in|out|both] [--drops] [FILTER...]
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
from . import clitools, exits, listing
from .client import DaemonError, DaemonNotRunning, DaemonUnreachable, call, daemon_socket
from ..core.errors import ConfigError, VnetshareError


_arg = clitools.arg        # the names the other frontends' parsers were given
_int = clitools.integer
_table = clitools.table
_text = clitools.text
_Parser = clitools.Parser

NAME_HELP = ("the partition's name: 1-15 letters, digits, '-', '_' or '.', not starting with '-' or '.' "
             "(also its network namespace's name)")

_mtu = _int("MTU", config.mtu)
_coalesce_usecs = _int("coalescing window", config.coalesce_usecs)
_tap_txqueuelen = _int("TAP transmit queue", config.tap_txqueuelen)
_ring_size = _int("ring size", config.ring_size, base=0)


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ConfigError(f"gateway {value!r}: not an IPv4 or IPv6 address") from None


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


def _policy_fields(parser: argparse.ArgumentParser, args, create: bool = True) -> dict:
    """The policy options as request fields, rates checked here as the daemon
    will; in set, a burst alone is a new depth for the rate the partition has."""
    for d in ("tx", "rx"):
        limit, burst = getattr(args, f"{d}_limit"), getattr(args, f"{d}_burst")
        if burst and not limit:
            if create:
                parser.error(f"--{d}-burst needs --{d}-limit")
            continue
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
        epilog="The options --socket and --json may be given before or after the command. "
               "Exit codes: " + ", ".join(f"{n} {short}" for n, short, _what, _c in exits.EXITS)
               + " (docs/cli.md, man vnetshare).",
    )
    p.add_argument("--version", action=_Version, nargs=0,
                   help="print the version, the C data plane's build and ring ABI, whether the agent "
                        "binary is there, and exit")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    d = sub.add_parser("daemon", help="run the hosting daemon on an uplink NIC")
    d.add_argument("--config", metavar="FILE|none",
                   help=f"settings: each key an option below without its dashes, flags win; [uplinks.IFACE] "
                        f"tables for one uplink's daemon (default: ${configfile.ENV} or "
                        f"{configfile.DEFAULT_PATH} if it exists; none: no file)")
    d.add_argument("--print-config", action="store_true",
                   help="print the settings the daemon would run with, and where each comes from; start nothing")
    d.set_defaults(parser=d)
    d.add_argument("--uplink", type=_arg(config.ifname), metavar="IFACE",
                   help="the network interface to share (or `uplink` in the config file)")
    d.add_argument("--backup-uplink", type=_arg(config.ifname), default=None, metavar="IFACE",
                   help="a second NIC on the same LAN: the switch moves to it when the uplink loses its "
                        "carrier, and announces every partition there (docs/operating.md, \"Failover\")")
    d.add_argument("--failback", type=_arg(config.failback), default=None, metavar="hold|always|never",
                   help="back to the uplink once it is up again: after --failback-hold (hold, default), "
                        "at once (always), or only when the backup fails (never)")
    d.add_argument("--failback-hold", type=_arg(config.failback_hold), default=None, metavar="SECONDS",
                   help=f"how long the uplink stays up before hold goes back to it "
                        f"(default {config.FAILBACK_HOLD_DEFAULT:g})")
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
    d.add_argument("--tap-txqueuelen", type=_arg(_tap_txqueuelen), default=None, metavar="N",
                   help="frames a partition's TAP queues for its agent before it drops them, set when "
                        f"the partition is made (default {config.TAP_TXQUEUELEN_DEFAULT}); short keeps "
                        "a ping from waiting behind a TCP stream of the same partition")
    d.add_argument("--tap-byte-limit", choices=config.TAP_BYTE_LIMIT_MODES, default=None,
                   help="what an agent takes from its TAP ahead of the switch: auto, a byte limit that "
                        "follows how fast the switch takes it (the TAP's queue holds the rest), or off, "
                        f"as much as the ring holds (default {config.TAP_BYTE_LIMIT_DEFAULT})")
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
    d.add_argument("--mcast-snooping", type=_arg(config.mcast_snooping), default=None, metavar="on|off",
                   help="on (default): the switch listens to IGMP and MLD and sends a multicast group's "
                        "frames only to the partitions that joined it (and the LAN); groups nobody joined "
                        "flood until a querier is heard on the LAN; link-local groups always flood "
                        "(`vnetshare groups`). off: every multicast frame floods to the VLAN")
    d.add_argument("--fdb-age", type=_arg(config.fdb_age), default=None, metavar="SECONDS",
                   help="the switch forgets a station of the wire it has not heard for SECONDS "
                        f"(default {config.FDB_AGE_DEFAULT}, as a bridge's ageing time)")
    d.add_argument("--metrics", type=_arg(config.metrics_address), default=None, metavar="[ADDR:]PORT",
                   help="serve Prometheus metrics at http://ADDR:PORT/metrics (ADDR default "
                        f"{config.METRICS_ADDR_DEFAULT}, IPv6 as [::1]:PORT; default: off)")
    d.add_argument("--host-port", type=_arg(config.ifname), default=None, metavar="NAME",
                   help="make device NAME in the host's namespace, a port of the switch like a partition's "
                        "but trusted (its L3 guard, RA and DHCP guard off): give it the host's address and "
                        "the host reaches its partitions, and the LAN through the switch (docs/tenants.md, \"The host "
                        "reaches its partitions\"); made at start, removed at stop")
    d.add_argument("--host-port-mac", type=_arg(config.mac), default=None, metavar="MAC",
                   help="the host port's MAC (default: derived from the uplink's MAC and NAME, the same "
                        "at every start)")
    d.add_argument("--take-address", action="store_true", default=None,
                   help="move the uplink's addresses and routes onto the host port (added there first, "
                        "then the routes, then removed from the uplink) and put them back at stop")
    if only_daemon:
        return _finish(p, d)
    capture, cni, live = _others()

    part = sub.add_parser("partition", help="create, delete, list and show partitions")
    psub = part.add_subparsers(dest="pcmd", required=True, metavar="ACTION")
    c = psub.add_parser("create", help="create a partition: a network namespace with a virtual NIC")
    c.add_argument("name", type=_arg(config.partition_name), metavar="NAME", help=NAME_HELP)
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
    _set_parser(psub)
    c.add_argument("--may-exist", action="store_true",
                   help="a partition of that name existing already is no error (it is left as it is)")
    dl = psub.add_parser("delete", help="delete a partition and everything it owns")
    dl.add_argument("name", type=_arg(config.partition_name), metavar="NAME", help=NAME_HELP)
    dl.add_argument("--if-exists", action="store_true", help="no partition of that name is no error")
    ls = psub.add_parser("list", help="list partitions (a header line, or \"no partitions\")")
    listing.add_options(ls)
    sh = psub.add_parser("show", help="a partition's addresses, functions and counters")
    sh.add_argument("name", type=_arg(config.partition_name), metavar="NAME", help=NAME_HELP)
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

    _fdb_parser(sub)
    _groups_parser(sub)

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
    return _finish(p, d)


def _finish(p: argparse.ArgumentParser, daemon: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The global options everywhere (clitools rule 2); the daemon's
    settings include --socket (rule 4)."""
    actions = clitools.add_global_options(p)
    daemon.set_defaults(socket_option=actions["socket"])
    return p


# -- partition set ----------------------------------------------------------

def _route_or_none(value: str) -> str:
    return value if value == "none" else config.route(value)


def _gateway_or_none(value: str) -> str:
    return value if value == "none" else _ip(value)


def _set_parser(psub) -> None:
    """`partition set`: every setting of create that can change live; an
    option left out leaves its setting as it is."""
    se = psub.add_parser("set", help="change a running partition: addresses, gateway, routes, MTU, MAC, "
                                     "labels, guard, VLAN and rates")
    se.add_argument("name", type=_arg(config.partition_name), metavar="NAME", help=NAME_HELP)
    se.add_argument("--ip", action="append", default=None, type=_arg(config.cidr), metavar="CIDR",
                    help="the partition's addresses: replaces them all (repeatable); its gateway and "
                         "routes must stay on one of their subnets")
    se.add_argument("--gateway", type=_arg(_gateway_or_none), metavar="IP|none",
                    help="default route via this address (none: no default route)")
    se.add_argument("--route", action="append", default=None, type=_arg(_route_or_none),
                    metavar="'DST [via GW]'|none", help="the partition's routes: replaces them all "
                    "(repeatable; none: no routes)")
    se.add_argument("--mtu", type=_arg(_mtu), metavar="N", help="MTU, at most the uplink's")
    se.add_argument("--mac", type=_arg(config.mac), metavar="MAC",
                    help="a new MAC: its traffic stops while the daemon changes it (the device goes "
                         "down and up; its addresses and routes are made again)")
    se.add_argument("--label", action="append", default=None, type=_arg(config.label_change),
                    metavar="KEY=VALUE|KEY-", help="set or replace a label; KEY- removes it (repeatable)")
    _policy_options(se, create=False)
    se.set_defaults(parser=se)


def _set_fields(args) -> dict:
    """`partition set`'s options as partition.set request fields."""
    fields = {k: v for k, v in _policy_fields(args.parser, args, create=False).items() if v is not None}
    if args.ip is not None:
        fields["ips"] = args.ip
    if args.gateway is not None:
        fields["gateway"] = args.gateway
    if args.route is not None:
        if "none" in args.route and len(args.route) > 1:
            args.parser.error("--route none: removes the routes; don't give routes with it")
        fields["routes"] = [r for r in args.route if r != "none"]
    if args.mtu is not None:
        fields["mtu"] = args.mtu
    if args.mac is not None:
        fields["mac"] = args.mac
    if args.label is not None:
        fields["labels"] = dict(args.label)
    if not fields:
        args.parser.error("partition set: nothing to change (give --ip, --gateway, --route, --mtu, --mac, "
                          "--label, --allow-ip, --vlan, --storm-limit, --tx-limit, --tx-burst, --rx-limit, "
                          "--rx-burst, --trusted-router or --allow-llc)")
    return fields


def _print_set(name: str, ans: dict) -> None:
    changes = ans.get("changes", [])
    if not changes:
        print(f"partition {name}: nothing changed (it has these settings)")
        return
    print(f"changed partition {name}: "
          + ", ".join(f"{c['field']} {c['old']} -> {c['new']}" for c in changes))


# -- fdb --------------------------------------------------------------------

def _fdb_parser(sub) -> None:
    f = sub.add_parser("fdb", help="the switch's forwarding table: each MAC, its VLAN and port, "
                                   "static (a partition's own) or learned on the uplink, and its age")
    f.add_argument("--json", action="store_true", help="print the rows as JSON")
    f.add_argument("--partition", type=_arg(config.partition_name), metavar="NAME",
                   help="only this partition's port")
    f.add_argument("--vlan", type=_arg(config.vlan), metavar="ID|none", help="only this VLAN (none: untagged)")


def _print_fdb(rows: list[dict]) -> None:
    if not rows:
        print("no entries")
        return
    print(_table([[r["mac"], str(r["vlan"]) if r["vlan"] is not None else "-",
                   r["port"] + ("" if r["port_kind"] == "partition" else f" ({r['port_kind'].replace('_', ' ')})"),
                   "static" if r["static"] else "learned",
                   "-" if r["age_seconds"] is None else f"{r['age_seconds']:.1f}s"] for r in rows],
                 ["MAC", "VLAN", "PORT", "TYPE", "AGE"]))


def cmd_fdb(args) -> int:
    ans = _client(args, "fdb", partition=args.partition, vlan=args.vlan)
    print(json.dumps(ans["fdb"], indent=1)) if args.json else _print_fdb(ans["fdb"])
    return 0


# -- groups -----------------------------------------------------------------

def _groups_parser(sub) -> None:
    g = sub.add_parser("groups", help="the switch's multicast groups (IGMP/MLD snooping): each group, "
                                      "the partitions that joined it and when that ends, and the "
                                      "querier heard on each VLAN")
    g.add_argument("--json", action="store_true", help="print the table as JSON")
    g.add_argument("--vlan", type=_arg(config.vlan), metavar="ID|none", help="only this VLAN (none: untagged)")


def _print_groups(ans: dict) -> None:
    if not ans["snooping"]:
        print("multicast snooping is off (daemon --mcast-snooping off): every group floods")
        return
    if not ans["groups"]:
        print("no groups")
    else:
        print(_table([[str(g["vlan"]) if g["vlan"] is not None else "-", g["group"],
                       ", ".join(m["port"] + ("" if m["port_kind"] == "partition"
                                              else f" ({m['port_kind'].replace('_', ' ')})")
                                 for m in g["members"]),
                       f"{min(m['expires_seconds'] for m in g['members']):.0f}s"] for g in ans["groups"]],
                     ["VLAN", "GROUP", "MEMBERS", "EXPIRES"]))
    if not ans["queriers"]:
        print("no querier heard: groups nobody joined flood to their VLAN")
        return
    print()
    print(_table([[str(q["vlan"]) if q["vlan"] is not None else "-", q["family"], q["address"],
                   q["port"] + (f" ({q['port_kind'].replace('_', ' ')})" if q["port_kind"] != "partition" else ""),
                   f"{q['expires_seconds']:.0f}s", f"{q['interval_seconds']:g}s"] for q in ans["queriers"]],
                 ["VLAN", "FAMILY", "QUERIER", "PORT", "EXPIRES", "INTERVAL"]))


def cmd_groups(args) -> int:
    ans = _client(args, "groups", vlan=args.vlan)
    table = {k: ans[k] for k in ("snooping", "groups", "queriers")}
    print(json.dumps(table, indent=1)) if args.json else _print_groups(table)
    return 0


def daemon_settings() -> dict[str, argparse.Action]:
    """Every setting of `vnetshare daemon`, by config file key (rule 4)."""
    args = get_parser(only_daemon=True).parse_args(["daemon"])
    return configfile.options(args.parser, args.socket_option)


# -- output ---------------------------------------------------------------

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
        storm = p.get("storm_limit_pps")
        print(f"  storm     {storm or 'no limit'}" + (" frames/s" if storm else ""))
        print(f"  tx limit  {config.rate_of(p, 'tx').describe()}")
        print(f"  rx limit  {config.rate_of(p, 'rx').describe()}")
    if p.get("functions"):
        print("  functions (from the uplink):")
        rows = [[f["function"], _text(f["value"]), f"{f['source']} = {_text(f['source_value'])}"]
                for f in p["functions"]]
        print("    " + _table(rows, ["FUNCTION", "VALUE", "FROM"]).replace("\n", "\n    "))
    if p.get("counters"):
        print("  counters:")
        for k, v in p["counters"].items():
            if isinstance(v, dict):  # by reason: the ones that counted
                v = " ".join(f"{r}={n}" for r, n in v.items() if n) or 0
            print(f"    {k:<10} {_text(v)}")


def _print_adapter(ans: dict) -> None:
    up = ans["uplink"]
    print(f"uplink {up['ifname']}: mtu {up['mtu']}, speed {up.get('speed') or '?'}, "
          f"duplex {up.get('duplex') or '?'}, mode {ans['mode']}"
          + (" (gone: not served until a device of that name is back)"
             if "ifindex" in up and up["ifindex"] is None else ""))
    if ans.get("backup"):
        b = ans["backup"]
        print(f"backup uplink {b['ifname']}: mtu {b['mtu']}, speed {b.get('speed') or '?'}, duplex "
              f"{b.get('duplex') or '?'}: partitions get what both offer")
        _print_uplinks(ans, "")
    rows = [[f["function"], _text(f["value"]), f["source"], _text(f["source_value"])] for f in ans["functions"]]
    print(_table(rows, ["PARTITION FUNCTION", "VALUE", "UPLINK FEATURE", "UPLINK VALUE"]))


def _print_uplinks(ans: dict, indent: str) -> None:
    """Failover: both uplinks, which one serves since when, the moves."""
    import time

    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ans["active_since"]))
    for u in ans["uplinks"]:
        link = "up" if u["up"] else "down" if u["up"] is False else "unknown"
        print(f"{indent}{u['role']:<8} {u['ifname']} {link} ({u['operstate']})"
              + (f", active since {since}" if u["active"] else ""))
    hold = f" after {ans['failback_hold']:g} s" if ans["failback"] == "hold" else ""
    print(f"{indent}{ans['uplink_moves']} move(s); failback {ans['failback']}{hold}"
          + ("; neither serves: frames for the wire are dropped" if ans["active_uplink"] is None else ""))


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
        try:
            ans = _client(args, "partition.create", name=args.name, ips=args.ip, gateway=args.gateway,
                          routes=args.route, mac=args.mac, mtu=args.mtu, ifname=args.ifname,
                          netns=args.netns, labels=dict(args.label) or None, **fields)
        except DaemonError as e:
            if not (args.may_exist and e.code == "EEXIST"):
                raise
            p = _client(args, "partition.show", name=args.name)["partition"]  # ENOENT: not that name's
            print(json.dumps(p, indent=1) if args.json else f"partition {args.name} exists already")
            return 0
        p = ans["partition"]
        print(json.dumps(p, indent=1) if args.json else
              f"created partition {p['name']}: {p['ifname']} {p['mac']} mtu {p['mtu']}"
              + (f" {' '.join(p['ips'])}" if p["ips"] else ""))
        return 0
    if args.pcmd == "set":
        ans = _client(args, "partition.set", name=args.name, **_set_fields(args))
        _print_set(args.name, ans)
        return 0
    if args.pcmd == "delete":
        deleted = True
        try:
            _client(args, "partition.delete", name=args.name)
        except DaemonError as e:
            if not (args.if_exists and e.code == "ENOENT"):
                raise
            deleted = False
        print(json.dumps({"name": args.name, "deleted": deleted}) if args.json else
              f"deleted partition {args.name}" if deleted else f"no partition {args.name}: nothing to delete")
        return 0
    if args.pcmd == "list":
        return listing.main(args, _client(args, "partition.list")["partitions"])
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
    for u in ans.get("uplinks", [])[1:]:  # failover: the backup
        if u["up"] is False:
            problems.append(f"backup uplink {u['ifname']} is down ({u['operstate']})")
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
    if len(st.get("uplinks", [])) > 1:
        _print_uplinks(st, "  failover    ")
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
    """The other commands' modules: capture, cni (its installer), live."""
    from . import capture, cni_install as cni, live

    return capture, cni, live


def _lazy(module: str, fn: str):
    """A command in frontends/@module, imported when it runs."""
    def run(args) -> int:
        from importlib import import_module

        return getattr(import_module(f"{__package__}.{module}"), fn)(args)
    return run


def _command(argv: list[str]) -> str | None:
    """The command word of @argv (after the global options), or None."""
    it = iter(argv)
    for tok in it:
        if tok == "--socket":
            next(it, None)
        elif not tok.startswith("--socket=") and tok != "--json":
            return None if tok.startswith("-") else tok
    return None


class _Version(argparse.Action):
    """--version: about.py's text, or its JSON with --json on the line."""

    def __call__(self, parser, namespace, values, option_string=None):
        from . import about

        i = about.info()
        print(json.dumps(i, indent=1) if _Parser.json_errors else about.text(i))
        parser.exit(0)


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
    "fdb": cmd_fdb,
    "groups": cmd_groups,
    "service": _lazy("service", "main"),
    "cni": _lazy("cni_install", "install_main"),
    "capture": _lazy("capture", "main"),
    "events": _lazy("live", "events_main"),
    "top": _lazy("live", "top_main"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    as_json = _Parser.json_errors = clitools.wants_json(argv)
    parser = get_parser(only_daemon=_command(argv) == "daemon")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        code = exits.report("EACCES", "must run as root (try: sudo vnetshare ...)", as_json, status=exits.DENIED)
        return STATUS_EXIT["unknown"] if args.cmd == "status" else code
    try:
        return COMMANDS[args.cmd](args)
    except BrokenPipeError:  # `| head` has what it wanted
        clitools.quiet_stdout()
        return 0
    except (OSError, VnetshareError) as e:  # one line, no "[Errno N]" (exits rule 2)
        code = exits.report_exception(e, as_json)
        return exits.FAILURE if args.cmd == "daemon" else code  # exits rule 5
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
