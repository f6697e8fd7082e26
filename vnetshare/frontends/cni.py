"""cni.py - vnetshare's CNI plugin: `vnetshare-cni`, which runtimes run as `vnetshare`.

A container runtime (podman, containerd, through them Kubernetes) runs a
CNI plugin with CNI_COMMAND and the other CNI_* variables in its
environment and the network configuration as JSON on stdin; the plugin
answers with a result or an error object as JSON on stdout (the CNI spec,
containernetworking/cni SPEC.md, versions 0.3.0 to 1.1.0). This one is a
thin client of the daemon's control socket: the daemon does the work and
stays the uplink's only owner.

Rules:
1. ADD creates a partition in the runtime's namespace (CNI_NETNS, any path:
   the daemon pins it under its own name) with the device CNI_IFNAME. Its
   name is attachment_name(): "cni" and 12 hex digits of a hash of the
   container id and ifname, so DEL finds it again; labels record the
   network, container id and ifname, and are what DEL, CHECK and GC go by.
2. Addresses come from the IPAM plugin the config names, run from
   CNI_PATH the way the reference plugins run it (same environment, same
   stdin); its addresses become the partition's (and so its guard's), its
   routes the partition's routes. No "ipam" section: an L2-only device.
   Whatever fails after IPAM ADD releases the lease again (IPAM DEL).
3. DEL succeeds for anything already gone: the netns (CNI_NETNS may be
   empty), the partition, the lease. It fails only when the daemon can't
   be asked (then the runtime retries, and the partition is not forgotten).
4. Every failure is an error object with the spec's code (1-7, 11, 50) or
   one of ours from 100 (ERR_*), a one-line "msg" naming the bad key or
   value, and "details" saying what to do. A malformed value is invalid()'s
   error object, made nowhere else: code 4 for a CNI_* variable, 7 for a
   config key (named as a path: 'prevResult.ips[0].address'), "details"
   the value as given. Every value the plugin reads is checked before
   anything happens, and no input ends in a traceback: run() answers even
   a bug of its own with an error object (ERR_INTERNAL).
5. GC deletes the partitions labelled with this network whose attachment is
   not in cni.dev/valid-attachments, releases their leases, and never
   touches a partition without this network's label.
6. A MAC or an address that is someone else's is refused as the daemon
   refuses it for `partition create` (EADDRINUSE, manager.py rule 4), and an
   IPAM address no host may have as config.cidr() refuses it; the plugin
   answers code 7, invalid network config, naming the key or the IPAM
   plugin the value came from: the runtime passed it from the network's own
   configuration (its IPAM range, runtimeConfig.mac, the MAC= argument a
   Kubernetes annotation fills), retrying the same call cannot succeed (11
   would say it could), and it is no broken environment (4). The lease is
   released (rule 2): nothing is left half made.
7. Imports only the pure parts of vnetshare (core.config, core.protocol,
   core.errors, core.state, frontends.client): `vnetshare cni install --standalone`
   (cni_install.py, the installer) packs exactly those into one
   executable file for nodes that have only python3.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import subprocess
import sys
import traceback
from typing import Any, Callable, TypeVar

from ..core import config
from ..core.errors import ConfigError
from . import client

T = TypeVar("T")

PLUGIN_TYPE = "vnetshare"
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = SUPPORTED_VERSIONS[-1]

# the spec's error codes
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN = 11
ERR_NOT_AVAILABLE = 50
# vnetshare's own
ERR_NO_DAEMON = 100       # nothing answers on the control socket
ERR_DAEMON_REFUSED = 101  # the daemon answered with an error
ERR_IPAM = 102            # the IPAM plugin is missing or failed
ERR_CHECK = 103           # CHECK found the attachment not as ADD made it
ERR_INTERNAL = 199        # a bug in this plugin (run()'s last resort): never expected

LABEL_NETWORK = "cni.network"
LABEL_CONTAINER = "cni.container"
LABEL_IFNAME = "cni.ifname"

# keys a network config may have: the spec's, the runtimes', and ours
_SPEC_KEYS = {"cniVersion", "cniVersions", "name", "type", "ipam", "dns", "capabilities", "runtimeConfig",
              "args", "prevResult", "cni.dev/valid-attachments", "cni.dev/attachments",
              "disableCheck", "disableGC"}
_OWN_KEYS = {"socket", "mtu", "mac", "vlan", "allowIPs", "trustedRouter", "allowLLC", "stormLimit",
             "txLimit", "txBurst", "rxLimit", "rxBurst"}
# CNI_ARGS keys this plugin knows; others are refused unless IgnoreUnknown
_KNOWN_ARGS = {"IgnoreUnknown", "MAC", "IP", "K8S_POD_NAME", "K8S_POD_NAMESPACE",
               "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID"}
# commands, the first spec version that has each, and the variables each needs
_COMMANDS = {
    "ADD": ("0.1.0", ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH")),
    "DEL": ("0.1.0", ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH")),
    "CHECK": ("0.4.0", ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH")),
    "STATUS": ("1.1.0", ()),
    "GC": ("1.1.0", ("CNI_PATH",)),
    "VERSION": ("0.1.0", ()),
}


class CniError(Exception):
    """A failure the runtime gets as the spec's error object (rule 4): "msg"
    and "details" one line each, at most TEXT_MAX characters whatever they
    quote."""

    def __init__(self, code: int, msg: str, details: str = "", daemon_code: str | None = None):
        msg, details = _one_line(msg), _one_line(details)
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details
        self.daemon_code = daemon_code  # the daemon's errno name, when it refused

    def to_json(self, version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


TEXT_MAX = 400    # characters of an error's msg or details
SHOWN_MAX = 120   # characters of a value quoted in details
_MISSING = object()


def _one_line(text: str) -> str:
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return text if len(text) <= TEXT_MAX else text[:TEXT_MAX - 3] + "..."


def _shown(value: Any) -> str:
    """@value as JSON for a message, cut to SHOWN_MAX characters."""
    if value is _MISSING:
        return "not set"
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError):
        text = f"a {type(value).__name__}"
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX - 3] + "..."


def invalid(key: str, value: Any, why: str, code: int | None = None, hint: str = "") -> CniError:
    """Rule 4's error object for a malformed value, the one place it is
    made: @key is an environment variable (CNI_*: code 4 unless @code says
    otherwise) or a config key as a path ('ipam.type',
    'prevResult.ips[0].address': code 7 unless @code says otherwise); "msg"
    names it and says @why, "details" shows the value as given and @hint."""
    env = key.startswith("CNI_")
    if code is None:
        code = ERR_INVALID_ENV if env else ERR_INVALID_CONFIG
    details = f"{key} is {_shown(value)}" + (f"; {hint}" if hint else "")
    return CniError(code, f"{key if env else f'config key {key!r}'}: {why}", details)


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


# --- what the runtime gave ---------------------------------------------------------------

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # the spec's container id and network name


class Request:
    """One plugin call: the command, the CNI_* variables and the config,
    every value this plugin reads checked before anything happens."""

    def __init__(self, env: dict[str, str], stdin: bytes):
        self.command = env.get("CNI_COMMAND", "")
        if self.command not in _COMMANDS:
            raise invalid("CNI_COMMAND", self.command, f"{self.command!r} is not one of {', '.join(_COMMANDS)}",
                          hint="the runtime sets CNI_COMMAND")
        self.conf = _decode(stdin)
        self.version = self.conf.get("cniVersion")
        if self.version not in SUPPORTED_VERSIONS:
            raise invalid("cniVersion", self.conf.get("cniVersion", _MISSING),
                          f"{self.version!r}: vnetshare supports {', '.join(SUPPORTED_VERSIONS)}",
                          ERR_INCOMPATIBLE_VERSION, "set the conflist's cniVersion to one of these")
        since, needed = _COMMANDS[self.command]
        if _vkey(self.version) < _vkey(since):
            raise CniError(ERR_INCOMPATIBLE_VERSION,
                           f"{self.command} needs cniVersion {since} or later, the config says {self.version}")
        if self.command == "VERSION":
            return
        for var in needed:
            if not env.get(var):
                raise invalid(var, env.get(var, _MISSING), "not set", hint=f"{self.command} needs "
                              f"{', '.join(needed)}")
        for var, value in env.items():
            if var.startswith("CNI_") and "\0" in value:
                raise invalid(var, value, "contains a NUL character")
        self.env = env
        self.container = env.get("CNI_CONTAINERID", "")
        self.netns = env.get("CNI_NETNS", "")
        self.ifname = env.get("CNI_IFNAME", "")
        if "CNI_CONTAINERID" in needed and (not _ID_RE.fullmatch(self.container)
                                            or len(self.container) > config.LABEL_VALUE_MAX):
            raise invalid("CNI_CONTAINERID", self.container, f"must be 1-{config.LABEL_VALUE_MAX} letters, "
                          "digits, '_', '.' or '-', starting with a letter or digit")
        if "CNI_IFNAME" in needed:
            _checked("CNI_IFNAME", self.ifname, config.ifname)
        if "CNI_NETNS" in needed:
            _checked("CNI_NETNS", self.netns, config.netns_path)
        self.path = [d for d in env.get("CNI_PATH", "").split(os.pathsep) if d]
        self.args = _cni_args(env.get("CNI_ARGS", ""))
        self._check_config()

    def _check_config(self) -> None:
        c = self.conf
        for key in c:
            if key not in _SPEC_KEYS and key not in _OWN_KEYS:
                raise invalid(key, c[key], "vnetshare knows no such key", ERR_UNSUPPORTED_FIELD,
                              f"vnetshare's own keys are {', '.join(sorted(_OWN_KEYS))}")
        if c.get("type") != PLUGIN_TYPE:
            raise invalid("type", c.get("type", _MISSING), f"{c.get('type')!r}, not {PLUGIN_TYPE!r}")
        name = c.get("name", _MISSING)
        if not isinstance(name, str) or not _ID_RE.fullmatch(name) or len(name) > config.LABEL_VALUE_MAX:
            raise invalid("name", name, f"must be 1-{config.LABEL_VALUE_MAX} letters, digits, '_', '.' or '-', "
                          "starting with a letter or digit")
        self.network = name
        ipam = _object(c, "ipam")
        self.ipam_type = None
        if ipam:  # {}: no IPAM, as a missing key
            kind = ipam.get("type", _MISSING)
            if not isinstance(kind, str) or not kind or "/" in kind or "\0" in kind or kind in (".", ".."):
                raise invalid("ipam.type", kind, "must name an IPAM plugin (a file name on CNI_PATH)")
            self.ipam_type = kind
        self.dns = _dns(c)
        self.runtime_config = _object(c, "runtimeConfig")
        sock = c.get("socket")
        if sock is not None and (not isinstance(sock, str) or not os.path.isabs(sock) or "\0" in sock):
            raise invalid("socket", sock, "must be an absolute path (the daemon's control socket)")
        self.socket = client.socket_path(sock)
        self.fields = self._partition_fields()
        if self.command == "CHECK":
            self.prev_ips, self.prev_macs = _prev_result(c)
        if self.command == "GC":
            self.valid = _attachments(c)

    def _partition_fields(self) -> dict[str, Any]:
        """vnetshare's own keys, checked by the same validators as the CLI's options."""
        c, rc, out = self.conf, self.runtime_config, {}
        if "mtu" in c:
            out["mtu"] = _checked("mtu", c["mtu"], config.mtu)
        self.mac_key = None  # where the MAC came from, for a refusal (rule 6)
        for key, mac in (("runtimeConfig.mac", rc.get("mac")), ("CNI_ARGS MAC", self.args.get("MAC")),
                         ("mac", c.get("mac"))):
            if mac is not None and mac != "":  # the first one given wins
                out["mac"] = _checked(key, mac, config.mac)
                self.mac_key = key
                break
        if "vlan" in c:
            out["vlan"] = _checked("vlan", c["vlan"], config.vlan)
        if "allowIPs" in c:
            if not isinstance(c["allowIPs"], list):
                raise invalid("allowIPs", c["allowIPs"], "must be a list of prefixes or \"any\"")
            out["allow_ips"] = _checked("allowIPs", c["allowIPs"], config.allow_ips)
        if "trustedRouter" in c:
            if not isinstance(c["trustedRouter"], bool):
                raise invalid("trustedRouter", c["trustedRouter"], "must be true or false")
            out["trusted_router"] = c["trustedRouter"]
        if "allowLLC" in c:
            if not isinstance(c["allowLLC"], bool):
                raise invalid("allowLLC", c["allowLLC"], "must be true or false")
            out["allow_llc"] = c["allowLLC"]
        if "stormLimit" in c:
            out["storm_limit"] = _checked("stormLimit", c["stormLimit"], config.storm_limit)
        bandwidth = _object(rc, "bandwidth", "runtimeConfig.bandwidth")
        for d, ours, theirs in (("tx", "txLimit", "egress"), ("rx", "rxLimit", "ingress")):
            what, rates, bursts = ours, c.get(ours), c.get(f"{d}Burst")
            rate_key, burst_key = f"runtimeConfig.bandwidth.{theirs}Rate", f"runtimeConfig.bandwidth.{theirs}Burst"
            rate = _count(bandwidth.get(f"{theirs}Rate"), rate_key, config.RATE_MAX_BITS)
            if rate:
                # Kubernetes' bandwidth capability: bits per second, bursts in bits
                burst = _count(bandwidth.get(f"{theirs}Burst"), burst_key, 8 * 10**12)
                what, rates, bursts = rate_key, f"{rate}bit", f"{burst // 8}b" if burst else None
            if rates is None:
                if bursts is not None:
                    raise invalid(f"{d}Burst", bursts, f"needs '{ours}'")
                continue
            rates = [rates] if isinstance(rates, str) else rates
            bursts = [] if bursts is None else [bursts] if isinstance(bursts, str) else bursts
            for key, value in ((what, rates), (f"{d}Burst", bursts)):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise invalid(key, value, "a rate like \"100mbit\" (a burst like \"64kb\") or a list of them")
            _checked(what, rates, lambda v: config.rate_limit(v, bursts, what, d))
            out[f"{d}_limit"] = list(rates)
            if bursts:
                out[f"{d}_burst"] = list(bursts)
        return out

    # -- the attachment ----------------------------------------------------
    def labels(self) -> dict[str, str]:
        return {LABEL_NETWORK: self.network, LABEL_CONTAINER: self.container, LABEL_IFNAME: self.ifname}


def _checked(key: str, value: Any, check: Callable[[Any], T]) -> T:
    """check(@value), its ConfigError (which names the value) an error object for @key."""
    try:
        return check(value)
    except ConfigError as e:
        raise invalid(key, value, str(e)) from None


def _object(parent: dict[str, Any], key: str, path: str | None = None) -> dict[str, Any]:
    """@parent[@key] if it is an object; absent or null: {}."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(path or key, value, "must be an object")
    return value


def _objects(parent: dict[str, Any], key: str, path: str | None = None) -> list[dict[str, Any]]:
    """@parent[@key] if it is a list of objects; absent or null: []."""
    path = path or key
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(path, value, "must be a list of objects")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid(f"{path}[{i}]", item, "must be an object")
    return value


def _count(value: Any, key: str, top: int) -> int:
    """A whole number from 0 to @top (absent or null: 0)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise invalid(key, value, f"must be a whole number from 0 to {top}")
    return value


def _string(parent: dict[str, Any], key: str, path: str) -> str | None:
    value = parent.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(path, value, "must be a string")
    return value


def _dns(conf: dict[str, Any]) -> dict[str, Any]:
    """The config's dns, with only the spec's fields (the result repeats it)."""
    dns, out = _object(conf, "dns"), {}
    for key in ("nameservers", "search", "options"):
        value = dns.get(key)
        if value is not None:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise invalid(f"dns.{key}", value, "must be a list of strings")
            out[key] = value
    domain = _string(dns, "domain", "dns.domain")
    if domain is not None:
        out["domain"] = domain
    return out


def _prev_result(conf: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """CHECK's prevResult: its addresses (CIDRs, sorted) and MACs by interface name."""
    if not isinstance(conf.get("prevResult"), dict):
        raise invalid("prevResult", conf.get("prevResult", _MISSING), "CHECK needs ADD's result here, an object")
    prev, ips, macs = conf["prevResult"], [], {}
    for i, ip in enumerate(_objects(prev, "ips", "prevResult.ips")):
        key = f"prevResult.ips[{i}].address"
        addr, why = ip.get("address", _MISSING), "must be an address with its prefix length, like \"10.1.0.2/24\""
        if not isinstance(addr, str):
            raise invalid(key, addr, why)
        try:
            ips.append(str(ipaddress.ip_interface(addr)))
        except ValueError:
            raise invalid(key, addr, why) from None
    for i, iface in enumerate(_objects(prev, "interfaces", "prevResult.interfaces")):
        name = _string(iface, "name", f"prevResult.interfaces[{i}].name")
        mac = _string(iface, "mac", f"prevResult.interfaces[{i}].mac")
        if name is not None and mac:
            macs[name] = mac.lower()
    return sorted(ips), macs


def _attachments(conf: dict[str, Any]) -> set[tuple[str, str]]:
    """GC's attachments still valid: (container id, ifname)."""
    valid = set()
    for key in ("cni.dev/valid-attachments", "cni.dev/attachments"):
        for i, a in enumerate(_objects(conf, key)):
            container = _string(a, "containerID", f"{key}[{i}].containerID")
            ifname = _string(a, "ifname", f"{key}[{i}].ifname")
            valid.add((container, ifname))
    return valid


def _decode(stdin: bytes) -> dict[str, Any]:
    try:
        conf = json.loads(stdin.decode("utf-8") or "null")
    except (ValueError, RecursionError) as e:
        raise CniError(ERR_DECODE, f"the network config on stdin is not JSON: {e}") from None
    if not isinstance(conf, dict):
        raise CniError(ERR_DECODE, "the network config on stdin must be a JSON object",
                       f"stdin is {_shown(conf)}")
    return conf


def _cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS: "K=V;K=V". Unknown keys are an error unless IgnoreUnknown is true."""
    out: dict[str, str] = {}
    for part in filter(None, text.split(";")):
        key, eq, value = part.partition("=")
        if not eq:
            raise invalid("CNI_ARGS", text, f"{part!r} is not KEY=VALUE")
        out[key] = value
    ignore = out.get("IgnoreUnknown", "").lower() in ("1", "true")
    unknown = sorted(set(out) - _KNOWN_ARGS)
    if unknown and not ignore:
        raise invalid("CNI_ARGS", text, f"{unknown[0]!r} is unknown to vnetshare",
                      hint="add IgnoreUnknown=1 to CNI_ARGS to pass keys meant for other plugins")
    return out


def attachment_name(container: str, ifname: str, attempt: int = 0) -> str:
    """The partition name for an attachment: "cni" + 12 hex digits (15
    characters, a valid partition and netns name), a different slice of the
    hash for each @attempt after a collision."""
    digest = hashlib.sha256(f"{container}\0{ifname}".encode()).hexdigest()
    return "cni" + digest[12 * attempt:12 * attempt + 12]


# --- the daemon ---------------------------------------------------------------------------

def _call(req: Request, op: str, **fields: Any) -> dict[str, Any]:
    try:
        return client.call(req.socket, op, **fields)
    except client.DaemonUnreachable as e:
        raise CniError(ERR_NO_DAEMON, f"vnetshare: {e}",
                       f"the plugin talks to the vnetshare daemon on {req.socket} "
                       "(config key 'socket'); start it, or point 'socket' at it") from None
    except client.DaemonError as e:
        raise CniError(ERR_DAEMON_REFUSED, f"vnetshare: {e}", f"the daemon answered {e.code} to {op}",
                       daemon_code=e.code) from None
    except PermissionError as e:
        raise CniError(ERR_IO, f"vnetshare: {e}") from None


def _ours(req: Request, everything: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The daemon's partitions (of @everything, if given) this network's plugin made."""
    if everything is None:
        everything = _call(req, "partition.list")["partitions"]
    return [p for p in everything if (p.get("labels") or {}).get(LABEL_NETWORK) == req.network]


def _find(req: Request, parts: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    for p in _ours(req) if parts is None else parts:
        labels = p.get("labels") or {}
        if labels.get(LABEL_CONTAINER) == req.container and labels.get(LABEL_IFNAME) == req.ifname:
            return p
    return None


# --- IPAM -----------------------------------------------------------------------------------

def _ipam(req: Request, command: str, container: str | None = None, ifname: str | None = None,
          stdin: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Run the IPAM plugin the config names, as the reference plugins do:
    the same environment with CNI_COMMAND replaced, the same config on stdin."""
    if req.ipam_type is None:
        return None
    name = req.ipam_type
    exe = next((os.path.join(d, name) for d in req.path
                if os.access(os.path.join(d, name), os.X_OK)), None)
    if exe is None:
        raise CniError(ERR_IPAM, f"IPAM plugin {name!r} not found on CNI_PATH {':'.join(req.path)}",
                       "install the reference plugins (Debian: containernetworking-plugins, in /usr/lib/cni) "
                       "and put their directory on the runtime's plugin path")
    env = dict(req.env, CNI_COMMAND=command)
    if container is not None:
        env["CNI_CONTAINERID"] = container
    if ifname is not None:
        env["CNI_IFNAME"] = ifname
    conf = dict(req.conf if stdin is None else stdin)
    # an IPAM plugin older than the config (Debian 12's host-local stops at
    # 1.0.0 while podman and containerd speak 1.1.0) gets the newest version
    # both know; vnetshare builds its own result, so nothing else changes
    conf["cniVersion"] = _common_version(exe, env, req.version)
    proc = _exec(exe, name, env, json.dumps(conf).encode())
    out = proc.stdout.strip()
    if proc.returncode != 0:
        code, msg, details = _their_error(out or proc.stderr)
        raise CniError(code, f"IPAM plugin {name!r} {command}: {msg}", details)
    if not out:
        return None
    try:
        result = json.loads(out)
    except (ValueError, RecursionError):
        raise CniError(ERR_IPAM, f"IPAM plugin {name!r} {command}: its answer is not JSON") from None
    if not isinstance(result, dict):
        raise CniError(ERR_IPAM, f"IPAM plugin {name!r} {command}: its answer is not a JSON object")
    return result


def _their_error(out: bytes) -> tuple[int, str, str]:
    """A failed plugin's (code, msg, details): its error object, or its
    output as the message under ERR_IPAM."""
    try:
        err = json.loads(out)
    except (ValueError, RecursionError):
        err = None
    if not isinstance(err, dict):
        return ERR_IPAM, out.decode(errors="replace").strip(), ""
    code = err.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) and 0 < code < 1 << 31 else ERR_IPAM
    msg, details = err.get("msg"), err.get("details")
    return code, msg if isinstance(msg, str) else "", details if isinstance(details, str) else ""


def _exec(exe: str, name: str, env: dict[str, str], data: bytes) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([exe], input=data, env=env, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CniError(ERR_IPAM, f"IPAM plugin {name!r}: {e}") from None


def _common_version(exe: str, env: dict[str, str], version: str) -> str:
    proc = _exec(exe, os.path.basename(exe), dict(env, CNI_COMMAND="VERSION"),
                 json.dumps({"cniVersion": version}).encode())
    try:
        theirs = json.loads(proc.stdout)["supportedVersions"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return version
    if not isinstance(theirs, list):
        return version
    if version in theirs:
        return version
    older = [v for v in theirs if v in SUPPORTED_VERSIONS and _vkey(v) < _vkey(version)]
    return max(older, key=_vkey) if older else version


def _release(req: Request, container: str | None = None, ifname: str | None = None) -> None:
    """IPAM DEL; a lease already gone is no error."""
    _ipam(req, "DEL", container, ifname)


# --- results ----------------------------------------------------------------------------------

class Addresses:
    """What an IPAM result gives the partition and the plugin's result,
    each value read and normalised once (a malformed result raises
    ValueError, TypeError or KeyError: cmd_add makes it ERR_IPAM)."""

    def __init__(self, ipam: dict[str, Any] | None):
        ipam = ipam or {}
        self.cidrs: list[str] = []        # the partition's addresses
        self.routes: list[str] = []       # the partition's routes, "DST [via GW]"
        self.ips: list[dict[str, str]] = []       # the result's ips: address, gateway
        self.result_routes: list[dict[str, str]] = []
        gws: dict[int, str] = {}
        for ip in _listed(ipam, "ips"):
            addr = ipaddress.ip_interface(_text(ip["address"]))
            entry = {"address": str(addr)}
            if ip.get("gateway") is not None:
                gw = ipaddress.ip_address(_text(ip["gateway"]))
                gws.setdefault(gw.version, str(gw))
                entry["gateway"] = str(gw)
            self.cidrs.append(str(addr))
            self.ips.append(entry)
        for r in _listed(ipam, "routes"):
            dst = ipaddress.ip_network(_text(r["dst"]), strict=False)
            gw = str(ipaddress.ip_address(_text(r["gw"]))) if r.get("gw") is not None else None
            self.result_routes.append({"dst": str(dst), **({"gw": gw} if gw else {})})
            gw = gw or gws.get(dst.version)
            self.routes.append(f"{dst} via {gw}" if gw else str(dst))
        self.dns = _dns(ipam) if ipam.get("dns") is not None else {}


def _listed(obj: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise TypeError(f"{key!r} is not a list of objects")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{_shown(value)} is not a string")
    return value


def _check_addresses(req: Request, cidrs: list[str]) -> None:
    """Rule 6: an IPAM address no partition may have, refused as the CLI's --ip is."""
    try:
        config.cidrs(cidrs)
    except ConfigError as e:
        raise CniError(ERR_INVALID_CONFIG, f"IPAM plugin {req.ipam_type!r} gave {e}",
                       "the network's ipam section hands out addresses no host may have: fix its range") from None


def _in_use(req: Request, e: CniError) -> CniError:
    """Rule 6: the daemon refused the MAC or an address as someone else's
    (EADDRINUSE); the same refusal as code 7, naming where the value came from."""
    said = e.msg.removeprefix("vnetshare: ")
    mac = req.fields.get("mac")
    if mac and said.startswith(f"MAC {mac}:"):
        return CniError(ERR_INVALID_CONFIG, f"{req.mac_key}: {said}",
                        f"give a MAC no partition, uplink or LAN station has, or leave {req.mac_key} out "
                        "(the daemon makes a random one)", daemon_code=e.daemon_code)
    return CniError(ERR_INVALID_CONFIG, f"IPAM plugin {req.ipam_type!r} gave {said}",
                    "the network's IPAM range holds addresses other partitions of its VLAN have: "
                    "exclude them (rangeStart/rangeEnd, or a subnet of its own)", daemon_code=e.daemon_code)


def _result(req: Request, part: dict[str, Any], addrs: Addresses) -> dict[str, Any]:
    iface: dict[str, Any] = {"name": req.ifname, "mac": part["mac"], "sandbox": req.netns}
    if _vkey(req.version) >= (1, 1, 0):
        iface["mtu"] = part["mtu"]
    ips = []
    for ip in addrs.ips:
        entry: dict[str, Any] = dict(ip, interface=0)
        if _vkey(req.version) < (1, 0, 0):
            entry["version"] = str(ipaddress.ip_interface(ip["address"]).version)
        ips.append(entry)
    out: dict[str, Any] = {"cniVersion": req.version, "interfaces": [iface], "ips": ips}
    if addrs.result_routes:
        out["routes"] = addrs.result_routes
    dns = addrs.dns or req.dns
    if dns:
        out["dns"] = dns
    return out


# --- commands ---------------------------------------------------------------------------------

def cmd_add(req: Request) -> dict[str, Any]:
    everything = _call(req, "partition.list")["partitions"]
    taken = {p["name"] for p in everything}
    stale = _find(req, _ours(req, everything))
    if stale is not None:  # an ADD again without DEL (a runtime that crashed): start afresh
        _call(req, "partition.delete", name=stale["name"])
        _release(req)
        taken.discard(stale["name"])
    name = next((n for n in (attachment_name(req.container, req.ifname, i) for i in range(5)) if n not in taken),
                None)
    if name is None:
        raise CniError(ERR_DAEMON_REFUSED, f"vnetshare: no free partition name for container {req.container!r}")
    ipam = _ipam(req, "ADD")
    try:
        try:
            addrs = Addresses(ipam)
        except (KeyError, TypeError, ValueError, CniError) as e:
            why = e.msg if isinstance(e, CniError) else f"{type(e).__name__}: {e}"
            raise CniError(ERR_IPAM, f"IPAM plugin {req.ipam_type!r}: a result vnetshare can't read: {why}") from None
        _check_addresses(req, addrs.cidrs)
        try:
            part = _call(req, "partition.create", name=name, ips=addrs.cidrs, routes=addrs.routes,
                         ifname=req.ifname, netns=req.netns, labels=req.labels(), **req.fields)["partition"]
        except CniError as e:
            if e.daemon_code != "EADDRINUSE":
                raise
            raise _in_use(req, e) from None
    except BaseException:
        try:
            _release(req)
        except CniError:
            pass  # the first failure is the one to report
        raise
    return _result(req, part, addrs)


def cmd_del(req: Request) -> None:
    part = _find(req)
    if part is not None:
        try:
            _call(req, "partition.delete", name=part["name"])
        except CniError as e:
            if e.daemon_code != "ENOENT":  # deleted meanwhile: that is what DEL wants
                raise
    _release(req)


def cmd_check(req: Request) -> None:
    found = _find(req)
    if found is None:
        raise CniError(ERR_UNKNOWN_CONTAINER, f"vnetshare: no partition for container {req.container!r} "
                       f"and interface {req.ifname!r} on network {req.network!r}")
    part = _call(req, "partition.show", name=found["name"])["partition"]
    problems = []
    if part.get("state") != "running":
        problems.append(f"its agent is {part.get('agent')}")
    if part.get("ifname") != req.ifname:
        problems.append(f"its device is {part.get('ifname')!r}, not {req.ifname!r}")
    if sorted(part.get("ips") or []) != req.prev_ips:
        problems.append(f"its addresses are {part.get('ips')}, prevResult has {req.prev_ips}")
    mac = req.prev_macs.get(req.ifname)
    if mac and mac != part["mac"]:
        problems.append(f"its MAC is {part['mac']}, prevResult has {mac}")
    try:
        if os.stat(req.netns).st_ino != os.stat(part["netns"]).st_ino:
            problems.append(f"it lives in another network namespace than {req.netns}")
    except OSError as e:
        problems.append(f"its namespace can't be compared: {e}")
    if problems:
        raise CniError(ERR_CHECK, f"vnetshare: partition {part['name']}: {'; '.join(problems)}",
                       "delete and add the attachment again")
    _ipam(req, "CHECK")


def cmd_status(req: Request) -> None:
    try:
        client.call(req.socket, "daemon.status", timeout=5)
    except (client.DaemonUnreachable, client.DaemonError, PermissionError) as e:
        raise CniError(ERR_NOT_AVAILABLE, f"vnetshare: the daemon is not available: {e}",
                       f"start it: vnetshare daemon --uplink IFACE (socket {req.socket})") from None


def cmd_gc(req: Request) -> None:
    valid = req.valid
    failures = []
    for p in _ours(req):
        labels = p.get("labels") or {}
        container, ifname = labels.get(LABEL_CONTAINER), labels.get(LABEL_IFNAME)
        if (container, ifname) in valid:
            continue
        try:
            _call(req, "partition.delete", name=p["name"])
            _release(req, container, ifname)
        except CniError as e:
            failures.append(f"{p['name']}: {e.msg}")
    if failures:
        raise CniError(ERR_TRY_AGAIN, f"vnetshare: GC could not remove {len(failures)} partition(s): "
                       + "; ".join(failures))


def run(env: dict[str, str], stdin: bytes) -> tuple[int, dict[str, Any] | None]:
    """One plugin call, sans process: (exit status, JSON for stdout or None).
    Whatever the input, the JSON is a result or an error object (rule 4):
    even a bug here is ERR_INTERNAL, never a traceback."""
    try:
        if env.get("CNI_COMMAND") == "VERSION":
            conf = _decode(stdin) if stdin.strip() else {}
            version = conf.get("cniVersion") if conf.get("cniVersion") in SUPPORTED_VERSIONS else LATEST
            return 0, {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}
        req = Request(env, stdin)
        if req.command == "ADD":
            return 0, cmd_add(req)
        {"DEL": cmd_del, "CHECK": cmd_check, "STATUS": cmd_status, "GC": cmd_gc}[req.command](req)
        return 0, None
    except CniError as e:
        return 1, e.to_json(_reply_version(stdin))
    except Exception as e:  # noqa: BLE001 - rule 4: a bug is an error object too
        where = traceback.extract_tb(e.__traceback__)[-1]
        return 1, CniError(ERR_INTERNAL, f"vnetshare: internal error: {type(e).__name__}: {e}",
                           f"at {os.path.basename(where.filename)}:{where.lineno}; a bug in the plugin: "
                           "please report it with the network config").to_json(_reply_version(stdin))


def _reply_version(stdin: bytes) -> str:
    """The cniVersion an error object is written in: the config's, if vnetshare speaks it."""
    try:
        version = _decode(stdin).get("cniVersion")
    except CniError:
        return LATEST
    return version if version in SUPPORTED_VERSIONS else LATEST


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help", "--version"):
        print(f"vnetshare CNI plugin (CNI {', '.join(SUPPORTED_VERSIONS)}): run by a container runtime, "
              "with CNI_COMMAND and the network config on stdin.\n"
              "Install it with: vnetshare cni install [--bin-dir DIR] [--conf-dir DIR --subnet CIDR]")
        return 0
    try:
        stdin = b"" if env_is_tty() else sys.stdin.buffer.read()
    except OSError as e:
        status, out = 1, CniError(ERR_IO, f"vnetshare: reading the network config from stdin: {e}").to_json(LATEST)
    else:
        status, out = run(dict(os.environ), stdin)
    if out is not None:
        try:
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
        except OSError:
            return status or 1  # nobody reads the answer: the status is all there is
    return status


def env_is_tty() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
