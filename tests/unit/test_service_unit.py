"""service.py's unit: what systemd would load, named as systemd names instances.

systemd-analyze verify reads the unit as systemd would (every key known,
every value parsed, the ExecStart binary executable) without a running
systemd. It exits 0 even when it ignores a line, so a clean unit is one it
has nothing to say about; the broken copies show it does speak.
"""
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from vnetshare.frontends import service
from vnetshare.frontends.cli import daemon_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = ROOT / "deploy" / "systemd" / "vnetshare@.service"


def test_the_deploy_copy_is_the_unit_for_usr_local_bin():
    assert DEPLOYED.read_text() == service.unit_text(), (
        "deploy/systemd/vnetshare@.service is service.UNIT for /usr/local/bin: regenerate it with "
        "python3 -c 'from vnetshare.frontends import service; print(service.unit_text(), end=\"\")' "
        "> deploy/systemd/vnetshare@.service")
    assert "ExecStart=/usr/local/bin/vnetshare daemon --uplink %I\n" in DEPLOYED.read_text()


def verify(tmp_path: Path, text: str, name: str = "vnetshare@.service") -> str:
    """What systemd-analyze verify says of @text as unit @name ('' if nothing)."""
    path = tmp_path / name
    path.write_text(text)
    p = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    return f"exit {p.returncode}: {p.stdout}{p.stderr}" if p.returncode or p.stdout or p.stderr else ""


@pytest.mark.parametrize("name", ["vnetshare@.service", "vnetshare@eth1.service", r"vnetshare@br\x2dlan.service"])
def test_systemd_analyze_verify_has_nothing_to_say(tmp_path, name):
    """The unit as `vnetshare service install` writes it for this installation."""
    assert verify(tmp_path, service.unit_text(service.command()), name) == ""


@pytest.mark.parametrize("change, says", [
    (("Type=notify", "Type=notfiy"), "Failed to parse service type"),
    (("KillMode=mixed", "KilMode=mixed"), "Unknown key 'KilMode'"),
    (("RestrictNamespaces=net", "RestrictNamespaces=nett"), "Failed to parse namespace type string, ignoring: nett"),
    (("SystemCallFilter=@system-service", "SystemCallFilter=@system-servic"), "system-servic"),
])
def test_verify_does_speak_of_a_broken_unit(tmp_path, change, says):
    text = service.unit_text(service.command())
    assert change[0] in text
    assert says in verify(tmp_path, text.replace(*change))


def test_verify_checks_the_command_exists(tmp_path):
    assert "is not executable" in verify(tmp_path, service.unit_text(str(tmp_path / "nowhere" / "vnetshare")))


def test_the_command_is_this_installations():
    """Run from a console script, that script; here (pytest) the one beside this interpreter."""
    import sys

    assert service.command() == os.path.join(os.path.dirname(sys.executable), "vnetshare")
    assert os.access(service.command(), os.X_OK)


# Options that give the service a mount namespace of its own (systemd.exec:
# "Other file system namespace unit settings ... will implicitly disable
# mount and unmount propagation from the unit's processes towards the host")
MOUNT_NAMESPACING = ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts",
                     "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                     "ProtectControlGroups", "ProtectProc", "ProcSubset", "ReadWritePaths",
                     "ReadOnlyPaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths",
                     "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "RootDirectory",
                     "RootImage", "MountAPIVFS", "MountFlags", "PrivateIPC", "PrivateUsers",
                     "PrivateNetwork", "NetworkNamespacePath")


def test_the_unit_gives_the_daemon_no_mount_namespace():
    """service.py rule 2: a partition is a mount the host must see
    (tests/netns/test_service.py shows one made in a namespace of its own
    is lost)."""
    keys = {line.split("=", 1)[0] for line in service.unit_text().splitlines() if "=" in line
            and not line.startswith("#")}
    assert not keys & set(MOUNT_NAMESPACING)


@pytest.mark.parametrize("name, escaped", [
    ("eth1", "eth1"), ("enp0s31f6", "enp0s31f6"), ("eth0.100", "eth0.100"), ("wlan_0", "wlan_0"),
    ("br-lan", r"br\x2dlan"), (".x", r"\x2ex"), ("x:y", "x:y"), ("é", r"\xc3\xa9"), ("a+b", r"a\x2bb"),
])
def test_instance_names_are_escaped_as_systemd_escape_does(name, escaped):
    """The expected strings are `systemd-escape NAME`'s; the unit's %I undoes it."""
    assert service.escape(name) == escaped
    assert service.instance(name) == f"vnetshare@{escaped}.service"
    p = subprocess.run(["systemd-escape", "--", name], capture_output=True, text=True, timeout=30)
    assert p.stdout.strip() == escaped


def test_the_example_config_lists_every_setting_and_sets_none():
    settings = daemon_settings()
    text = service.example_config(settings)
    assert tomllib.loads(text) == {}
    for key in settings:
        assert f"\n#{key} = " in text, key
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
