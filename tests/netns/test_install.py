"""The ways people install a Python tool, each followed by the lab demo.

Each test installs vnetshare from a copy of the source tree (the files git
tracks, so no extension built in place) into a fresh virtual environment,
then runs `vnetshare lab demo` from that environment as root, as a user
would after `sudo`. The demo starts a daemon and two agents; agents drop
to uids of their own, so nothing they run may need the installation's
files after that (the C agent is static), and no helper process may
import the package from its working directory. The installation must
carry the C agent (built by setup.py), which the demo's daemon then runs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


from vnetshare.linux import netns

ROOT = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 600
DEMO_TIMEOUT = 300


def source_copy(dest: Path) -> Path:
    """The files a fresh clone has, copied to @dest (no build artefacts).

    Tracked files and new ones git does not ignore: in a fresh clone that
    is the clone; in a work tree it includes a file not yet added.
    """
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if not name or not (ROOT / name).is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    assert not list(dest.glob("vnetshare/_native*")), "the copy must not hold a built extension"
    return dest


def venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    return where / "bin"


def pip_install(bindir: Path, *args: str, cwd: Path | None = None) -> None:
    """pip install from the wheelhouse scripts/test.sh made (the sandbox has no network)."""
    wheels = os.environ.get("VNETSHARE_WHEELS")
    assert wheels and os.path.isdir(wheels), \
        "VNETSHARE_WHEELS is not a wheelhouse: run through ./scripts/test.sh (it runs scripts/wheels.sh)"
    p = subprocess.run([str(bindir / "pip"), "install", "-q", "--no-index", "--find-links", wheels, *args],
                       cwd=cwd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    assert p.returncode == 0, f"pip install {' '.join(args)}: {p.stderr[-2000:]}"


def c_agent_installed(bindir: Path) -> None:
    """The installation carries the C agent, executable, where the daemon looks."""
    p = subprocess.run([str(bindir / "python"), "-P", "-c", "from vnetshare import agent; print(agent.c_agent())"],
                       cwd="/", capture_output=True, text=True, timeout=60, env={})
    assert p.returncode == 0 and p.stdout.strip().endswith("/site-packages/vnetshare/_bin/vnetshare-agent"), \
        f"no C agent installed: {p.stdout} {p.stderr[-1500:]}"


def demo(bindir: Path, cwd: Path, sock: Path) -> None:
    c_agent_installed(bindir)
    p = subprocess.run([str(bindir / "vnetshare"), "--socket", str(sock), "lab", "demo", "--json"],
                       cwd=cwd, capture_output=True, text=True, timeout=DEMO_TIMEOUT)
    assert p.returncode == 0, f"lab demo from {cwd}: exit {p.returncode}\n{p.stdout[-1500:]}\n{p.stderr[-2500:]}"
    checks = json.loads(p.stdout)["checks"]
    assert checks and all(c["ok"] for c in checks), checks
    assert netns.names() == [] and [link.ifname for link in netns.links()] == ["lo"]


def test_venv_under_a_private_home_runs_the_demo(tmp_path):
    """python3 -m venv ~/venv && ~/venv/bin/pip install CLONE; sudo ~/venv/bin/vnetshare lab demo."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chmod(home, 0o700)  # like /root: the agents' uid cannot read the installation
    src = source_copy(tmp_path / "clone")
    bindir = venv(home / "venv")
    pip_install(bindir, str(src))
    demo(bindir, Path("/"), tmp_path / "control.sock")


def test_pip_install_dot_then_demo_from_the_clone(tmp_path):
    """cd CLONE && pip install . && vnetshare lab demo (from the clone's directory)."""
    src = source_copy(tmp_path / "clone")
    bindir = venv(tmp_path / "venv")
    pip_install(bindir, ".", cwd=src)
    demo(bindir, src, tmp_path / "control.sock")
