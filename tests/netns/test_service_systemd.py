"""The service under systemd itself: systemd 252 as PID 1 of a privileged
container, the unit installed and enabled there by `vnetshare service
install`, as a user does on a server.

test_service.py runs the unit's ExecStart as systemd would; this runs it
with systemd, so what only systemd does is tried too: Type=notify's wait,
the seccomp filters (address families, namespaces, system calls), the
restart policy, StateDirectory= and RuntimeDirectory=, and a file system
namespacing option's effect on partitions. The container is a Debian 12
image with systemd (VNETSHARE_SYSTEMD_IMAGE: scripts/test.sh builds it with
scripts/image.sh); this installation is mounted into it read-only at the
same paths, so the unit's ExecStart is this test run's `vnetshare`. The
container has its own network namespace: its LAN is a veth to a namespace
inside it.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

import vnetshare
from vnetshare.frontends import service

from runtimes import CniEnv, Podman, shared_store

pytestmark = pytest.mark.runtime

IMAGE = "localhost/vnssystemd:latest"
IMAGE_HELP = ("build it with `scripts/image.sh vnssystemd systemd,systemd-sysv,dbus,iproute2,iputils-ping,"
              "python3` and pass the path it prints as VNETSHARE_SYSTEMD_IMAGE (scripts/test.sh does both)")
NAME = f"vns-systemd-{os.getpid()}"
UNIT = "vnetshare@vsu0.service"
LAN = """
ip netns add lan
ip link add vsu0 type veth peer name lan0 netns lan
ip link set vsu0 up
ip -n lan link set lo up
ip -n lan link set lan0 up
ip -n lan addr add 198.18.0.1/24 dev lan0
"""


def installation() -> list[str]:
    """The directories this installation runs from: its environment, its
    interpreter's (unless the image has it: /usr), its source tree."""
    dirs = {sys.prefix, str(Path(vnetshare.__file__).resolve().parents[1])}
    if sys.base_prefix != "/usr":  # Debian's python3: the image's is the same (both Debian 12)
        dirs.add(sys.base_prefix)
    return sorted(d for d in dirs if not any(d != o and d.startswith(o + "/") for o in dirs))


class Box:
    """The container: systemd as PID 1, run() a shell command in it as root."""

    def __init__(self, podman: Podman):
        self.podman = podman
        self.vnetshare = service.command()

    def run(self, script: str, check: bool = True, timeout: float = 120):
        return self.podman("exec", NAME, "sh", "-ec", script, check=check, timeout=timeout)

    def out(self, script: str, **kw) -> str:
        return self.run(script, **kw).stdout.strip()

    def show(self, *props: str) -> dict[str, str]:
        text = self.out(f"systemctl show {UNIT} " + " ".join(f"-p {p}" for p in props))
        return dict(line.split("=", 1) for line in text.splitlines())

    def vns(self, *args: str, check: bool = True):
        return self.run(" ".join([self.vnetshare, *args]), check=check)

    def status(self) -> tuple[int, dict]:
        p = self.vns("status", "--json", check=False)
        return p.returncode, json.loads(p.stdout)


@pytest.fixture
def box(tmp_path, request, tmp_path_factory):
    tarball = os.environ.get("VNETSHARE_SYSTEMD_IMAGE")
    if not tarball or not os.path.isfile(tarball):
        pytest.fail(f"VNETSHARE_SYSTEMD_IMAGE={tarball!r} is no image: {IMAGE_HELP}", pytrace=False)
    env = CniEnv(tmp_path, "/run/unused.sock")
    podman = Podman(env, shared_store(request.config, tmp_path_factory))
    problems = []
    try:
        podman("import", tarball, "vnssystemd", quiet=True)
        mounts = [a for d in installation() for a in ("-v", f"{d}:{d}:ro")]
        podman("run", "-d", "--name", NAME, "--privileged", "--network", "none", "--systemd", "always",
               "--pull", "never", *mounts, IMAGE, "/sbin/init")
        env.containers.update(podman.container_ids())
        b = Box(podman)
        # systemd's own socket first (until then systemctl has no bus), then its start-up job
        b.run("for i in $(seq 300); do [ -S /run/systemd/private ] && exit 0; sleep 0.1; done; exit 1")
        state = b.out("systemctl is-system-running --wait || true", timeout=120)
        assert state in ("running", "degraded"), state
        b.run(LAN)
        yield b
    finally:
        problems = podman.close() + env.close()
    assert not problems, "\n".join(problems)


def test_the_unit_under_systemd(box):
    # installed and started as a user does it; systemctl returns once READY=1 came
    p = box.vns("service", "install", "--uplink", "vsu0", "--enable")
    assert p.stdout.splitlines()[-1] == f"enabled and started {UNIT}: vnetshare status"
    assert box.out(f"cat /etc/systemd/system/vnetshare@.service") == service.unit_text(box.vnetshare).strip()
    code, st = box.status()   # no waiting: active means serving
    assert code == 0 and st["state"] == "running" and st["uplink"] == "vsu0", st
    show = box.show("ActiveState", "StatusText", "MainPID", "NRestarts")
    assert show["ActiveState"] == "active" and show["StatusText"] == "serving 0 partition(s) on uplink vsu0"
    assert int(show["MainPID"]) == st["pid"]

    # under its hardening: the unit's capabilities, no_new_privs, its seccomp filters
    proc = dict(line.split(":\t", 1) for line in box.out(f"cat /proc/{st['pid']}/status").splitlines()
                if ":\t" in line)
    assert proc["CapEff"] == "00000000002030e0" and proc["NoNewPrivs"] == "1" and proc["Seccomp"] == "2"

    # partitions made, reached, adopted again after a restart
    box.vns("partition", "create", "pa", "--ip", "198.18.0.11/24", "--gateway", "198.18.0.1")
    box.run("ip netns exec pa ping -c 1 -W 2 198.18.0.1")
    assert box.show("StatusText")["StatusText"] == "serving 1 partition(s) on uplink vsu0"
    box.run(f"systemctl restart {UNIT}")
    code, st = box.status()
    assert (code, st["partitions"], st["served"]) == (0, 1, 1), st
    box.run("ip netns exec pa ping -c 1 -W 2 198.18.0.1")
    assert box.out("ls /var/lib/vnetshare/partitions") == "pa.json"   # StateDirectory=

    # the config file
    box.run("printf 'storm-limit = 700\\n[uplinks.vsu0]\\nfdb-age = 60\\n' > /etc/vnetshare/vnetshare.toml")
    box.run(f"systemctl restart {UNIT}")
    assert json.loads(box.vns("partition", "show", "pa", "--json").stdout)["storm_limit_pps"] == 700
    # a bad one: failed at once, no restart scheduled (RestartPreventExitStatus=2), the line in the journal
    box.run("printf 'storm-limit = \"lots\"\\n' > /etc/vnetshare/vnetshare.toml")
    assert box.run(f"systemctl restart {UNIT}", check=False).returncode != 0
    show = box.show("ActiveState", "SubState", "ExecMainStatus", "NRestarts")
    assert show == {"ActiveState": "failed", "SubState": "failed", "ExecMainStatus": "2", "NRestarts": "0"}
    assert ("vnetshare daemon: error: /etc/vnetshare/vnetshare.toml: storm-limit: storm limit 'lots': "
            "not a number with a unit") in box.out(f"journalctl -u {UNIT} --no-pager -n 5")
    box.run(f"rm /etc/vnetshare/vnetshare.toml && systemctl start {UNIT}")
    assert box.status()[0] == 0

    # a crash: restarted, the partition served again (the restarts above
    # count towards systemd's start limit, 5 in 10 s: forgotten first)
    box.run(f"systemctl reset-failed {UNIT}")
    pid = box.status()[1]["pid"]
    box.run(f"kill -9 {pid}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (box.status()[0] == 0 and box.status()[1]["pid"] != pid):
        time.sleep(0.2)
    code, st = box.status()
    assert code == 0 and st["pid"] != pid and st["served"] == 1, box.out(f"journalctl -u {UNIT} --no-pager -n 30")
    assert box.show("NRestarts")["NRestarts"] == "1"

    # uninstall: stopped, disabled, the unit gone; the records and the partition's namespace stay
    box.vns("service", "uninstall")
    assert box.out(f"systemctl is-active {UNIT} || true") == "inactive"
    assert box.out("ls /etc/systemd/system/vnetshare@.service 2>&1 || true").endswith("No such file or directory")
    assert box.out("ls /var/lib/vnetshare/partitions") == "pa.json"
    assert box.status()[0] == 3


def test_privatetmp_would_cut_partitions_off_the_host(box):
    """The reason the unit has no ProtectSystem=, PrivateTmp=...: with
    PrivateTmp=yes alone, the daemon's partition is no namespace for the
    host, and is not the next daemon's to adopt."""
    box.vns("service", "install", "--uplink", "vsu0", "--enable")
    # the installation stays in sight where it lives under /tmp (a clone
    # there: CI's): only the partitions' mounts are to go out of it
    keep = "".join(f"BindReadOnlyPaths={d}\\n" for d in installation() if d == "/tmp" or d.startswith("/tmp/"))
    box.run(f"mkdir -p /etc/systemd/system/{UNIT}.d && "
            f"printf '[Service]\\nPrivateTmp=yes\\n{keep}' > /etc/systemd/system/{UNIT}.d/private.conf && "
            f"systemctl daemon-reload && systemctl restart {UNIT}")
    box.vns("partition", "create", "pb", "--ip", "198.18.0.12/24")
    p = box.run("ip netns exec pb true", check=False)
    assert p.returncode != 0 and 'setting the network namespace "pb" failed' in p.stderr
    box.run(f"rm -r /etc/systemd/system/{UNIT}.d && systemctl daemon-reload && systemctl restart {UNIT}")
    events = [json.loads(line) for line in box.vns("events", "--json").stdout.splitlines()]
    first = [e["event"] for e in events if e["partition"] == "pb"][0]
    assert first != "partition.adopted", events


def test_the_host_port_under_the_units_hardening(box):
    """--host-port and --take-address from the config file, under the
    unit's capabilities and filters: the host reaches the LAN and a
    partition through its port; its address goes back to the NIC at stop."""
    box.run("ip addr add 198.18.0.254/24 dev vsu0 && mkdir -p /etc/vnetshare && "
            "printf 'host-port = \"vnshost0\"\\ntake-address = true\\n' > /etc/vnetshare/vnetshare.toml")
    box.vns("service", "install", "--uplink", "vsu0", "--enable")
    assert "198.18.0.254/24" in box.out("ip -br addr show vnshost0")
    box.vns("partition", "create", "pa", "--ip", "198.18.0.11/24")
    box.run("ping -c 1 -W 2 198.18.0.1 && ping -c 1 -W 2 198.18.0.11")
    assert box.status()[1]["host_port"]["name"] == "vnshost0"
    box.run(f"systemctl stop {UNIT}")
    assert "198.18.0.254/24" in box.out("ip -br addr show vsu0")
