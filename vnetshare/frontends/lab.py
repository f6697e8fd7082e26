"""lab.py - the embedded default: a self-contained network to try vnetshare on.

    vnetshare lab up      build it and leave it running
    vnetshare lab down    remove everything it made
    vnetshare lab demo    build it, run ping and iperf3 through it, report, remove it

The lab is a veth pair: its host end (vns-uplink) is the daemon's uplink NIC,
its other end (lan0) lives in the namespace vns-lan, which plays a host on the
LAN (198.18.0.1/24, fd00:5e::1/64; 198.18.0.0/15 is the range set aside for
benchmarking networks). Two partitions, lab-a and lab-b, reach each other and
that host exactly as they would reach a real LAN through a real NIC. No real
NIC is touched and no address is added outside the lab's namespaces.

Rules:
1. `up` makes nothing if a lab (or any of its names) already exists, and
   undoes what it made if any step fails.
2. `down` removes only what carries the lab's names, and only the daemon
   whose PID the lab recorded (checked against /proc/PID/cmdline).
3. `demo` always ends with `down`, whatever happened, and exits 0 only if
   every check passed.
4. The lab is a deployment of its own, beside a real one: its daemon's
   socket is SOCKET (/run/vnetshare-lab/control.sock) unless --socket
   says otherwise, its state directory is the socket's directory, and its
   uplink is its own veth, so neither the per-state-directory lock nor the
   per-NIC lock (hosting.py rule 1) meets a real daemon's. Plain
   `vnetshare partition list` reaches the lab's daemon when no daemon's
   socket is at the default (client.daemon_socket()).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from ..linux import netns, procs
from .client import DaemonError, DaemonUnreachable, call, daemon_socket
from ..core.errors import VnetshareError
from ..core import config, state as statefile
from ..linux.probe import iperf3, ping

LAN_NS = "vns-lan"
UPLINK = "vns-uplink"
LAN_IF = "lan0"
LAN_V4 = "198.18.0.1"
LAN_V6 = "fd00:5e::1"
PARTITIONS = (
    ("lab-a", "198.18.0.11", "fd00:5e::11"),
    ("lab-b", "198.18.0.12", "fd00:5e::12"),
)
DAEMON_START_TIMEOUT = 15.0
SOCKET = config.LAB_SOCKET  # rule 4


class LabError(VnetshareError):
    pass


def _run_dir(sock: str) -> str:
    return os.path.dirname(sock) or "."


def _lab_file(sock: str) -> str:
    return os.path.join(_run_dir(sock), "lab.json")


_progress = sys.stdout  # demo --json sends progress to stderr, so stdout is JSON only


def _say(msg: str) -> None:
    print(f"lab: {msg}", file=_progress, flush=True)


def make_lan_host(uplink: str, lan_ns: str, lan_if: str, v4: str, v6: str) -> None:
    """A host on the LAN: namespace @lan_ns at the far end of a veth whose
    near end, @uplink, is the NIC a daemon shares; addresses without DAD."""
    netns.create(lan_ns)
    netns.veth_pair(uplink, lan_if, None, lan_ns)
    netns.link_set(uplink, None, up=True)
    netns.lo_up(lan_ns)
    netns.link_set(lan_if, lan_ns, up=True)
    netns.add_address(lan_if, v4, lan_ns, nodad=True)
    netns.add_address(lan_if, v6, lan_ns, nodad=True)


def _is_daemon(pid: int) -> bool:
    argv = procs.cmdline(pid) or []
    return b"vnetshare" in argv and b"daemon" in argv and UPLINK.encode() in argv


def start_daemon(sock: str, uplink: str, state_dir: str, log_path: str, extra: tuple[str, ...] = (),
                 timeout: float = DAEMON_START_TIMEOUT, new_session: bool = True,
                 preexec_fn=None) -> subprocess.Popen:
    """Start `vnetshare daemon` on @uplink and return once it answers on @sock.

    The one harness for starting a daemon: the lab, the system tests and
    the benchmark use it. The daemon reads no config file (--config none:
    the host's settings are not the lab's). Its output goes to @log_path
    (appended); if it exits or stays silent, LabError carries the log's
    last lines.
    @preexec_fn runs in the child (the benchmark ties the daemon's life to
    its own with PR_SET_PDEATHSIG).
    """
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(
            procs.python_argv("vnetshare", "--socket", sock, "daemon", "--uplink", uplink,
                              "--state-dir", state_dir, "--config", "none", *extra),
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=new_session,
            preexec_fn=preexec_fn,
        )

    def tail() -> str:
        with open(log_path, errors="replace") as f:
            return " / ".join(f.read().strip().splitlines()[-3:])

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"the daemon exited at start (status {proc.returncode}): {tail()}")
        try:
            call(sock, "daemon.status", timeout=2)
            return proc
        except DaemonUnreachable:
            time.sleep(0.05)
    proc.terminate()
    proc.wait()
    raise LabError(f"the daemon did not answer on {sock} within {timeout:.0f} s: {tail()}")


def _stop_daemon(pid: int) -> None:
    if not _is_daemon(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _is_daemon(pid):
        time.sleep(0.05)
    if _is_daemon(pid):
        os.kill(pid, signal.SIGKILL)


def up(sock: str) -> int:
    """Build the lab: LAN namespace, veth uplink, daemon, two partitions."""
    taken = [n for n in (LAN_NS,) + tuple(p[0] for p in PARTITIONS) if netns.exists(n)]
    if taken or any(link.ifname == UPLINK for link in netns.links()) or os.path.exists(_lab_file(sock)):
        raise LabError(f"a lab is already up ({', '.join(taken) or UPLINK}): remove it with `vnetshare lab down`")
    try:
        call(sock, "daemon.status", timeout=2)
        raise LabError(f"a daemon already runs on {sock}: stop it first, the lab starts its own")
    except DaemonUnreachable:
        pass
    info: dict = {"daemon_pid": None}
    try:
        _say(f"LAN host: namespace {LAN_NS}, {LAN_IF} {LAN_V4}/24 {LAN_V6}/64")
        make_lan_host(UPLINK, LAN_NS, LAN_IF, f"{LAN_V4}/24", f"{LAN_V6}/64")
        _say(f"daemon on uplink {UPLINK}")
        run_dir = _run_dir(sock)
        os.makedirs(run_dir, mode=0o755, exist_ok=True)
        info["daemon_pid"] = start_daemon(sock, UPLINK, run_dir,
                                          os.path.join(run_dir, "lab-daemon.log")).pid
        with open(_lab_file(sock), "w") as f:
            json.dump(info, f)
        for name, v4, v6 in PARTITIONS:
            call(sock, "partition.create", name=name, ips=[f"{v4}/24", f"{v6}/64"], gateway=LAN_V4)
            _say(f"partition {name}: eth0 {v4}/24 {v6}/64 via {LAN_V4}")
    except BaseException:
        _teardown(sock, info.get("daemon_pid"))
        raise
    found = daemon_socket() == sock  # plain commands reach this daemon (rule 4)
    _say("up. Try: ip netns exec lab-a ping 198.18.0.12 ; "
         + ("vnetshare partition list" if found else f"vnetshare --socket {sock} partition list")
         + " ; vnetshare " + ("" if sock == SOCKET else f"--socket {sock} ") + "lab down")
    return 0


def _teardown(sock: str, pid: int | None) -> None:
    for name, _, _ in PARTITIONS:
        try:
            call(sock, "partition.delete", name=name, timeout=10)
        except (DaemonUnreachable, DaemonError):
            pass
    if pid:
        _stop_daemon(pid)
    # partitions a dead daemon could not delete: their namespaces (with the TAP)
    for name, _, _ in PARTITIONS:
        if netns.exists(name):
            netns.quietly(netns.delete, name)
    netns.quietly(netns.delete, LAN_NS)       # takes lan0 and so the veth pair
    netns.quietly(netns.delete_link, UPLINK)  # in case the pair outlived it
    state = os.path.join(_run_dir(sock), "state.json")
    if os.path.exists(state) and pid:
        statefile.remove(state)
    try:
        os.unlink(_lab_file(sock))
    except FileNotFoundError:
        pass


def down(sock: str) -> int:
    """Remove everything the lab made (rule 2)."""
    pid = None
    try:
        with open(_lab_file(sock)) as f:
            pid = json.load(f).get("daemon_pid")
    except (FileNotFoundError, ValueError):
        pass
    _teardown(sock, pid)
    _say("down")
    return 0


def demo(sock: str, seconds: int = 3, as_json: bool = False) -> int:
    """Build, check, report, remove (rule 3)."""
    global _progress
    _progress = sys.stderr if as_json else sys.stdout
    rows: list[dict] = []

    def record(path: str, test: str, ok: bool, detail: str) -> None:
        rows.append({"path": path, "test": test, "ok": ok, "detail": detail})
        if not as_json:
            print(f"  {'ok  ' if ok else 'FAIL'} {path:<24} {test:<14} {detail}", flush=True)

    try:
        up(sock)
        (a, a4, a6), (b, b4, b6) = PARTITIONS
        paths = [(f"{a} -> {b}", a, b, b4, b6), (f"{a} -> LAN host", a, LAN_NS, LAN_V4, LAN_V6)]
        if not as_json:
            print("checks:")
        for label, src, _dst, v4, v6 in paths:
            for fam, addr in (("ping IPv4", v4), ("ping IPv6", v6)):
                r = ping(src, addr, count=5)
                record(label, fam, r.ok, f"{r.received}/{r.sent} replies"
                       + (f", avg {r.rtt_avg_ms:.3f} ms" if r.rtt_avg_ms is not None else ""))
        for label, src, dst, v4, _v6 in paths:
            r = iperf3(dst, src, v4, seconds=seconds)
            detail = (f"{r.gbps:.2f} Gbit/s, {r.sent_bytes} bytes sent, {r.received_bytes} received"
                      if r.sent_bytes else r.error)
            record(label, "iperf3 TCP", r.ok, detail)
    except (VnetshareError, OSError) as e:
        record("lab", "setup", False, str(e))
    finally:
        down(sock)
    ok = bool(rows) and all(r["ok"] for r in rows)
    if as_json:
        print(json.dumps({"ok": ok, "checks": rows}, indent=1))
    else:
        print(f"demo: {'all checks passed' if ok else 'FAILED'} ({sum(r['ok'] for r in rows)}/{len(rows)})")
    return 0 if ok else 1
