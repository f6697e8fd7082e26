"""service.py - `vnetshare service`: the systemd unit, one daemon per uplink.

    vnetshare service install [--uplink IFACE [--enable]] [--root DIR]
    vnetshare service uninstall [--uplink IFACE] [--root DIR]

install writes the template unit vnetshare@.service (UNIT, ExecStart
pointing at the installation that runs it) into /etc/systemd/system, and
/etc/vnetshare/vnetshare.toml with every daemon setting commented out if
there is none yet; with --enable it enables (and, where systemd runs,
starts) vnetshare@IFACE.service. deploy/systemd/vnetshare@.service is the
same unit for /usr/local/bin, where scripts/setup.sh links the command.

Rules:
1. An instance is the uplink's name escaped as `systemd-escape` does
   (escape()); the unit takes it back with %I and passes nothing else, so
   the config file can set every other option. A daemon run by the unit
   and one run by hand have the same defaults: records in /var/lib/vnetshare
   (StateDirectory=), socket, lock and pins in /run/vnetshare
   (RuntimeDirectory=, kept when the daemon stops: the agents' uid locks in
   it are shared by every daemon of the host). A second instance gets its
   own socket, state-dir and runtime-dir in its [uplinks.IFACE] table; the
   daemon refuses a socket another one listens on.
2. The unit has no file system namespacing: a partition is a mount in the
   host's /run/netns, and a daemon in a mount namespace of its own would
   make it where neither the host nor the next daemon sees it (UNIT says
   why; test_service.py proves it).
3. Its capabilities are the ones the daemon and its agents use, each
   proven needed (test_service.py starts the ExecStart line under the
   unit's CapabilityBoundingSet= and NoNewPrivileges=).
4. --root DIR writes under DIR and runs `systemctl --root`: nothing is
   reloaded or started; a test, an image being built.
5. An existing config file is never overwritten; uninstall keeps it, and
   the partitions' records.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap

from ..core import config, configfile, state
from ..core.errors import ConfigError

UNIT_NAME = "vnetshare@.service"
UNIT_DIR = "etc/systemd/system"   # under the root: the administrator's units
DEFAULT_COMMAND = "/usr/local/bin/vnetshare"  # scripts/setup.sh links it there

UNIT = """\
# vnetshare@.service - the vnetshare daemon on one uplink NIC
#
#   vnetshare service install --uplink eth1 --enable
#   (or: systemctl enable --now vnetshare@eth1.service)
#
# The instance is the interface's name as `systemd-escape` writes it (eth1,
# enp3s0 as they are; br-lan as br\\x2dlan). Settings: /etc/vnetshare/vnetshare.toml,
# each key a flag of `vnetshare daemon`, [uplinks.IFACE] for this instance
# only. `vnetshare status` says how it is. Written by `vnetshare service
# install` (ExecStart: the installation it ran from).

[Unit]
Description=vnetshare: share NIC %I between network-namespace partitions
# No dependency on the NIC's device unit: without udev (a container) it
# never appears and each start would wait 90 s for it. A NIC not there yet
# fails the start, and Restart= tries again.

[Service]
# READY=1 once the data path forwards and the control socket serves.
Type=notify
NotifyAccess=main
ExecStart={command} daemon --uplink %I
# The partitions' records (/var/lib/vnetshare), kept across reboots; the
# control socket, the daemon's lock, the pins of adopted namespaces and the
# agents' uid locks (/run/vnetshare), which the agents of every daemon of
# the host share: kept when an instance stops. A second instance needs its
# own socket, state-dir and runtime-dir: its [uplinks.IFACE] table.
StateDirectory=vnetshare
StateDirectoryMode=0700
RuntimeDirectory=vnetshare
RuntimeDirectoryPreserve=yes
# The daemon stops its agents; anything left after it exits gets SIGKILL.
KillMode=mixed
Restart=on-failure
RestartSec=5s
# Exit status 2: a bad flag or config file, which a restart does not mend.
RestartPreventExitStatus=2

# Hardening, each line tried under systemd 252 (tests/netns/test_service.py).
# No file system namespace (ProtectSystem=, ProtectHome=, PrivateTmp=,
# PrivateDevices=, ProtectKernel*=, ProtectControlGroups=, ReadWritePaths=,
# ...): any one of them keeps the daemon's mounts from the host (systemd.exec,
# MountFlags=), and a partition is a mount, /run/netns/NAME, which the host's
# `ip netns exec`, container runtimes and the next daemon must see: with
# PrivateTmp=yes alone, a new partition is not reachable from the host and
# is gone after a restart.
NoNewPrivileges=yes
# NET_ADMIN: TAPs, links, addresses. NET_RAW: the uplink's AF_PACKET socket.
# SYS_ADMIN: network namespaces (unshare, setns) and their mounts.
# SETUID, SETGID: each agent becomes its partition's own uid and gid.
# KILL: ending an agent that runs under that uid.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_ADMIN CAP_SETUID CAP_SETGID CAP_KILL
# UNIX: control socket, agents. NETLINK: links. PACKET: the uplink.
# INET, INET6: --metrics, interface ioctls.
RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_PACKET AF_INET AF_INET6
RestrictNamespaces=net
# @mount: the partitions' namespace mounts; seccomp: the agents' own filter.
SystemCallFilter=@system-service @mount seccomp
SystemCallErrorNumber=EPERM
SystemCallArchitectures=native
# Devices: the TAPs' /dev/net/tun, and the pseudo devices (/dev/null, ...).
DevicePolicy=closed
DeviceAllow=/dev/net/tun rw
LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
ProtectClock=yes
ProtectHostname=yes

[Install]
WantedBy=multi-user.target
"""


def unit_text(command: str = DEFAULT_COMMAND) -> str:
    """The unit, its ExecStart running @command (a path, or a command line)."""
    return UNIT.replace("{command}", command)


def command() -> str:
    """The `vnetshare` of the installation that runs this: the console
    script it was started as (/usr/local/bin/vnetshare, not what that
    links to, which an upgrade may replace), else the one beside this
    interpreter, else this interpreter with -m."""
    argv0 = sys.argv[0]
    if os.path.basename(argv0) == "vnetshare" and os.access(argv0, os.X_OK):
        return os.path.abspath(argv0)
    beside = os.path.join(os.path.dirname(sys.executable), "vnetshare")
    if os.access(beside, os.X_OK):
        return beside
    return f"{sys.executable} -P -m vnetshare"


def escape(name: str) -> str:
    """@name as an instance name, as `systemd-escape` writes it: '/' as '-',
    bytes other than ASCII letters, digits, ':', '_' and '.' (and a leading
    '.') as \\xNN."""
    out = []
    for i, b in enumerate(name.encode()):
        c = chr(b)
        if c == "/":
            out.append("-")
        elif (c.isascii() and (c.isalnum() or c in ":_.")) and not (i == 0 and c == "."):
            out.append(c)
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def instance(uplink: str) -> str:
    """The unit that runs the daemon on @uplink."""
    return f"vnetshare@{escape(uplink)}.service"


def example_config(settings: dict[str, argparse.Action]) -> str:
    """The config file `install` writes when there is none: every setting
    (@settings: cli.daemon_settings()) commented out, with its help."""
    head = f"""\
# {configfile.DEFAULT_PATH} - the settings of this host's vnetshare daemons
#
# Each key is a flag of `vnetshare daemon` without its dashes; a flag on
# the command line wins over this file, this file over the defaults. Top-level
# keys are for every daemon; a table [uplinks.IFACE] for the daemon of that
# uplink (vnetshare@IFACE.service) only, over the top level. For example:
#
#   storm-limit = 500
#
#   [uplinks.eth2]                        # a second daemon needs its own:
#   socket = "/run/vnetshare/eth2.sock"   # `vnetshare --socket ... status`
#   state-dir = "/var/lib/vnetshare/eth2"
#   runtime-dir = "/run/vnetshare/eth2"
#
# `vnetshare daemon --uplink IFACE --print-config` shows what a daemon would
# run with, and where each value comes from. Every setting, commented out:
"""
    parts = [head]
    for key, action in settings.items():
        note = {"uplink": "; the service gives it: the instance's name"}.get(key, "")
        form = action.metavar or ("|".join(map(str, action.choices)) if action.choices else key.upper())
        flag = f"--{key}" + ("" if action.nargs == 0 else f" {form}")
        text = " ".join((action.help or "").replace("%%", "%").split()) + note
        body = textwrap.fill(f"{flag}: {text}", width=76, initial_indent="# ", subsequent_indent="#   ")
        value = "true" if action.nargs == 0 else f'"{form}"'
        parts.append(f"\n{body}\n#{key} = {value}\n")
    return "".join(parts)


def _write(path: str, text: str, mode: int = 0o644) -> None:
    """@text into @path, whole or not at all (state.write_atomic())."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    state.write_atomic(path, text.encode(), mode)


def systemd_running() -> bool:
    """This system was booted with systemd (sd_booted())."""
    return os.path.isdir("/run/systemd/system")


def _systemctl(root: str | None, *argv: str) -> None:
    if shutil.which("systemctl") is None:
        raise ConfigError("systemctl is not installed: this host has no systemd to run the unit")
    cmd = ["systemctl", *([f"--root={root}"] if root else []), *argv]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        why = " / ".join(p.stderr.strip().splitlines()[-2:]) or f"exit status {p.returncode}"
        raise ConfigError(f"{' '.join(cmd)}: {why}")


def _root(arg: str | None) -> str | None:
    if arg is None:
        return None
    if not os.path.isdir(arg):
        raise ConfigError(f"--root {arg!r}: not a directory")
    return os.path.abspath(arg)


def install(root: str | None, uplink: str | None, enable: bool) -> int:
    from .cli import daemon_settings

    base = root or "/"
    unit_path = os.path.join(base, UNIT_DIR, UNIT_NAME)
    exe = command()
    _write(unit_path, unit_text(exe))
    print(f"wrote {unit_path} (ExecStart: {exe} daemon ...)")
    conf = os.path.join(base, configfile.DEFAULT_PATH.lstrip("/"))
    if os.path.exists(conf):
        print(f"kept {conf}")
    else:
        _write(conf, example_config(daemon_settings()))
        print(f"wrote {conf} (every setting, commented out)")
    live = root is None and systemd_running()
    if live:
        _systemctl(None, "daemon-reload")
    if not uplink:
        print("next: vnetshare service install --uplink IFACE --enable (or systemctl enable --now "
              "vnetshare@IFACE.service)")
        return 0
    unit = instance(uplink)
    if root is None:
        try:
            socket.if_nametoindex(uplink)
        except OSError:
            print(f"note: there is no interface {uplink} here now: {unit} fails to start, and tries "
                  "again every 5 s")
    if not enable:
        print(f"next: systemctl enable --now {unit}")
        return 0
    _systemctl(root, "enable", *(["--now"] if live else []), unit)
    if live:
        print(f"enabled and started {unit}: vnetshare status")
    else:
        print(f"enabled {unit}" + ("" if root else " (systemd does not run here: not started)"))
    return 0


def enabled(root: str | None) -> list[str]:
    """The vnetshare@ instances enabled under @root: their links in *.wants/."""
    unit_dir = os.path.join(root or "/", UNIT_DIR)
    names = set()
    try:
        entries = os.listdir(unit_dir)
    except FileNotFoundError:
        return []
    for d in entries:
        if d.endswith((".wants", ".requires")) and os.path.isdir(os.path.join(unit_dir, d)):
            names.update(n for n in os.listdir(os.path.join(unit_dir, d))
                         if re.fullmatch(r"vnetshare@.+\.service", n))
    return sorted(names)


def uninstall(root: str | None, uplink: str | None) -> int:
    live = root is None and systemd_running()
    units = [instance(uplink)] if uplink else enabled(root)
    if live:
        _systemctl(None, "stop", *(units if uplink else ["vnetshare@*.service"]))
    if units:
        _systemctl(root, "disable", *units)
        print(f"disabled {', '.join(units)}" + (" and stopped" if live else ""))
    if not uplink:
        unit_path = os.path.join(root or "/", UNIT_DIR, UNIT_NAME)
        try:
            os.unlink(unit_path)
            print(f"removed {unit_path}")
        except FileNotFoundError:
            print(f"{unit_path}: not installed")
        if live:
            _systemctl(None, "daemon-reload")
    print(f"kept {os.path.join(root or '/', configfile.DEFAULT_PATH.lstrip('/'))} and the partitions' "
          "records in /var/lib/vnetshare; partitions stay until deleted or the host reboots")
    return 0


def add_parser(sub, arg) -> None:
    """`vnetshare service ...` into the CLI's sub-parsers; @arg is clitools.arg."""
    s = sub.add_parser("service", help="install the systemd unit vnetshare@IFACE.service")
    ssub = s.add_subparsers(dest="scmd", required=True, metavar="ACTION")
    i = ssub.add_parser("install", help="write the unit (ExecStart: this installation) and, if there is "
                                        "none, a config file with every setting commented out; reload systemd")
    u = ssub.add_parser("uninstall", help="stop and disable the daemon of --uplink, or every one and remove "
                                          "the unit; the config file and the partitions' records stay")
    for p, what in ((i, "the uplink whose daemon --enable enables"), (u, "only this uplink's daemon")):
        p.add_argument("--uplink", type=arg(config.ifname), metavar="IFACE", help=what)
        p.add_argument("--root", metavar="DIR", help="work under DIR instead of / (an image, a test): "
                                                     "`systemctl --root`, nothing reloaded or started")
        p.set_defaults(parser=p)
    i.add_argument("--enable", action="store_true",
                   help="enable vnetshare@IFACE.service and start it now (needs --uplink)")


def main(args) -> int:
    if args.scmd == "install" and args.enable and not args.uplink:
        args.parser.error("--enable needs --uplink IFACE: the daemon of which NIC?")
    root = _root(args.root)
    if args.scmd == "install":
        return install(root, args.uplink, args.enable)
    return uninstall(root, args.uplink)
