"""cni_install.py - `vnetshare cni install`: the CNI plugin (cni.py) put where runtimes find it.

Rules:
1. Into the plugin directory goes a link to the installed vnetshare-cni
   executable, or with --standalone one self-contained file: a zipapp of
   the plugin's pure-Python modules (_STANDALONE_MODULES, the package's
   own __init__ files among them: they import no C), for nodes that have
   only python3.
2. With --conf-dir, a conflist: vnetshare with host-local addresses from
   --subnet. Every file is written atomically (core.state.write_atomic):
   a runtime never runs or reads half a file.
"""
from __future__ import annotations

import argparse
import io
import ipaddress
import json
import os
import shutil
import sys
import sysconfig
import zipfile
from typing import Any

from ..core.errors import ConfigError
from ..core.state import write_atomic
from .cni import PLUGIN_TYPE

_STANDALONE_MODULES = ("__init__.py", "core/__init__.py", "core/config.py", "core/errors.py",
                       "core/protocol.py", "core/state.py", "frontends/__init__.py", "frontends/client.py",
                       "frontends/cni.py")


def _console_script() -> str:
    for path in (os.path.join(sysconfig.get_path("scripts"), "vnetshare-cni"),
                 os.path.join(os.path.dirname(sys.executable), "vnetshare-cni"),
                 shutil.which("vnetshare-cni")):
        if path and os.access(path, os.X_OK):
            return os.path.realpath(path)
    raise ConfigError("the vnetshare-cni executable is not installed (pip install vnetshare), "
                      "or use --standalone")


def _standalone() -> bytes:
    """One executable file: a zipapp of the plugin's pure-Python modules,
    the package's own __init__ files included (they import no C)."""
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    buf = io.BytesIO()
    buf.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("__main__.py", "import sys\nfrom vnetshare.frontends.cni import main\nsys.exit(main())\n")
        for rel in _STANDALONE_MODULES:
            z.write(os.path.join(pkg, rel), f"vnetshare/{rel}")
    return buf.getvalue()


def conflist(name: str, subnet: str, gateway: str | None = None, socket: str | None = None) -> dict[str, Any]:
    """An example network config list: vnetshare with host-local addresses in @subnet."""
    net = ipaddress.ip_network(subnet, strict=False)
    rng: dict[str, Any] = {"subnet": str(net)}
    if gateway:
        rng["gateway"] = str(ipaddress.ip_address(gateway))
    plugin: dict[str, Any] = {"type": PLUGIN_TYPE}
    if socket:
        plugin["socket"] = socket
    plugin["ipam"] = {"type": "host-local", "ranges": [[rng]],
                      "routes": [{"dst": "0.0.0.0/0" if net.version == 4 else "::/0"}]}
    return {"cniVersion": "1.0.0", "name": name, "plugins": [plugin]}


def install(bin_dir: str, conf_dir: str | None = None, name: str = "vnetshare", subnet: str | None = None,
            gateway: str | None = None, socket: str | None = None, standalone: bool = False) -> list[str]:
    """`vnetshare cni install`: the plugin into @bin_dir (a link to
    vnetshare-cni, or with @standalone a self-contained file), and with
    @conf_dir a conflist; returns what it wrote."""
    if conf_dir is not None:
        if subnet is None:
            raise ConfigError("--conf-dir needs --subnet: the addresses host-local hands out")
        try:
            body = conflist(name, subnet, gateway, socket)
        except ValueError as e:
            raise ConfigError(f"--subnet {subnet!r} / --gateway {gateway!r}: {e}") from None
    os.makedirs(bin_dir, exist_ok=True)
    target = os.path.join(bin_dir, PLUGIN_TYPE)
    if standalone:
        write_atomic(target, _standalone(), 0o755)
    else:
        script = _console_script()
        tmp = target + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(script, tmp)
        os.replace(tmp, target)
    written = [target]
    if conf_dir is not None:
        os.makedirs(conf_dir, exist_ok=True)
        path = os.path.join(conf_dir, f"10-{name}.conflist")
        write_atomic(path, (json.dumps(body, indent=2) + "\n").encode(), 0o644)
        written.append(path)
    return written


def add_install_parser(sub: argparse._SubParsersAction) -> None:
    """`vnetshare cni install` for the CLI (cli.py owns the rest)."""
    cni = sub.add_parser("cni", help="the CNI plugin: install it for container runtimes")
    csub = cni.add_subparsers(dest="ccmd", required=True, metavar="ACTION")
    i = csub.add_parser("install", help="link the plugin into a CNI plugin directory, optionally with a conflist")
    i.add_argument("--bin-dir", default="/opt/cni/bin", metavar="DIR",
                   help="where runtimes look for plugins (default /opt/cni/bin)")
    i.add_argument("--conf-dir", metavar="DIR",
                   help="also write DIR/10-NET.conflist, a network using vnetshare with host-local addresses")
    i.add_argument("--name", default="vnetshare", metavar="NET", help="the network's name (default vnetshare)")
    i.add_argument("--subnet", metavar="CIDR", help="the addresses host-local hands out (with --conf-dir)")
    i.add_argument("--gateway", metavar="IP", help="the default route's gateway (default: the subnet's first address)")
    i.add_argument("--standalone", action="store_true",
                   help="write a self-contained plugin file (needs only python3), not a link: for nodes "
                        "where vnetshare is not installed, such as from a DaemonSet")


def install_main(args: argparse.Namespace) -> int:
    for path in install(args.bin_dir, args.conf_dir, args.name, args.subnet, args.gateway,
                        getattr(args, "socket", None), args.standalone):
        kind = "plugin" if not path.endswith(".conflist") else "network config"
        print(f"wrote {kind} {path}")
    return 0
