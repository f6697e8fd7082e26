"""The ways people install a Python tool, each followed by the lab demo.

Each test installs vnetshare from a copy of the source tree (the files git
tracks, so no extension built in place) into a fresh virtual environment,
then runs `vnetshare lab demo` from that environment as root, as a user
would after `sudo`. The demo starts a daemon and two agents; agents drop
to uids of their own, so nothing they run may need the installation's
files after that (the C agent is static), and no helper process may
import the package from its working directory. The installation must
carry the C agent (built by setup.py), which the demo's daemon then runs,
and the man page and completion scripts setup.py generates (under the
environment's share/).

The README's way is scripts/setup.sh: the distribution's /usr/bin/python3
(externally managed, PEP 668) makes the environment, the commands are
linked into a bin directory, the system's Python gets nothing. Here it
installs into a temporary prefix and bin directory (VNETSHARE_PREFIX,
VNETSHARE_BINDIR) with the python3 of scripts/test.sh's environment first
on PATH, so it must not take the `python3` it finds there; pip takes the
wheels from the wheelhouse (PIP_NO_INDEX, PIP_FIND_LINKS), as the sandbox
has no network.
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
SYSTEM_PYTHON = Path("/usr/bin/python3")


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


def cli_files(share: Path) -> None:
    """The man page and the bash and zsh completion under @share, as setup.py
    generated them from the parser: man reads the page."""
    page = (share / "man" / "man1" / "vnetshare.1").read_text()
    assert page.startswith(".TH VNETSHARE 1") and "\n.SS vnetshare partition create\n" in page
    p = subprocess.run(["man", "-l", "-P", "cat", str(share / "man" / "man1" / "vnetshare.1")],
                       capture_output=True, text=True, timeout=60, env={"MANWIDTH": "100", "PATH": os.environ["PATH"]})
    assert p.returncode == 0 and "EXIT STATUS" in p.stdout and "--may-exist" in p.stdout, p.stderr
    assert "complete -F _vnetshare vnetshare" in (share / "bash-completion" / "completions" / "vnetshare").read_text()
    assert (share / "zsh" / "site-functions" / "_vnetshare").read_text().startswith("#compdef vnetshare")


def demo(bindir: Path, cwd: Path, sock: Path, command: Path | None = None) -> None:
    """`vnetshare lab demo` passes, run as @command (default: @bindir's vnetshare)."""
    c_agent_installed(bindir)
    p = subprocess.run([str(command or bindir / "vnetshare"), "--socket", str(sock), "lab", "demo", "--json"],
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
    cli_files(home / "venv" / "share")
    demo(bindir, Path("/"), tmp_path / "control.sock")


def test_pip_install_dot_then_demo_from_the_clone(tmp_path):
    """cd CLONE && pip install . && vnetshare lab demo (from the clone's directory)."""
    src = source_copy(tmp_path / "clone")
    bindir = venv(tmp_path / "venv")
    pip_install(bindir, ".", cwd=src)
    cli_files(tmp_path / "venv" / "share")
    demo(bindir, src, tmp_path / "control.sock")


# -- scripts/setup.sh ----------------------------------------------------------------

class Setup:
    """A clone (a copy of the tree, made a git repository again) and what
    its scripts/setup.sh installs: the environment @prefix, the links in @bindir."""

    def __init__(self, tmp_path: Path):
        self.clone = source_copy(tmp_path / "clone")
        subprocess.run(["git", "init", "-q"], cwd=self.clone, check=True)
        self.prefix = tmp_path / "opt" / "vnetshare"
        self.bindir = tmp_path / "bin"

    def run(self, check: bool = True) -> subprocess.CompletedProcess:
        wheels = os.environ.get("VNETSHARE_WHEELS")
        assert wheels and os.path.isdir(wheels), "VNETSHARE_WHEELS is not a wheelhouse: run through ./scripts/test.sh"
        env = dict(os.environ, VNETSHARE_PREFIX=str(self.prefix), VNETSHARE_BINDIR=str(self.bindir),
                   PIP_NO_INDEX="1", PIP_FIND_LINKS=wheels)
        p = subprocess.run([str(self.clone / "scripts" / "setup.sh")], env=env, cwd="/",
                           capture_output=True, text=True, timeout=PIP_TIMEOUT)
        assert not check or p.returncode == 0, f"setup.sh: exit {p.returncode}\n{p.stdout}{p.stderr[-3000:]}"
        return p

    def vnetshare(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bindir / "vnetshare"), *args], cwd="/", env={},
                              capture_output=True, text=True, timeout=60)

    def pip_show(self) -> str:
        p = subprocess.run([str(self.prefix / "bin" / "pip"), "show", "vnetshare"], cwd="/",
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout


def system_site_packages() -> dict[str, list[str]]:
    """What Debian's python3 has in each of its site directories."""
    dirs = subprocess.run([str(SYSTEM_PYTHON), "-c", "import site; print('\\n'.join(site.getsitepackages()))"],
                          capture_output=True, text=True, check=True, env={}).stdout.split()
    return {d: sorted(os.listdir(d)) if os.path.isdir(d) else [] for d in dirs}


def test_setup_sh_installs_with_the_system_python_and_the_demo_passes(tmp_path):
    """./scripts/setup.sh && vnetshare lab demo, on a Debian whose python3 is externally managed."""
    stdlib = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                            capture_output=True, text=True, check=True, env={}).stdout.strip()
    assert os.path.exists(os.path.join(stdlib, "EXTERNALLY-MANAGED")), \
        f"{SYSTEM_PYTHON} is not externally managed: not the Debian this test is about"
    site_before = system_site_packages()
    setup = Setup(tmp_path)
    tree_before = git_status(setup.clone)

    setup.run()

    for cmd in ("vnetshare", "vnetshare-cni"):
        assert os.readlink(setup.bindir / cmd) == str(setup.prefix / "bin" / cmd)
    assert os.path.realpath(setup.prefix / "bin" / "python") == os.path.realpath(SYSTEM_PYTHON), \
        "the environment is not the system Python's (setup.sh took the python3 on PATH?)"
    p = setup.vnetshare("--help")
    assert p.returncode == 0 and "lab" in p.stdout, p.stderr
    # the man page and the completion scripts: the environment's (the wheel's), copied
    # beside the bin directory
    cli_files(setup.prefix / "share")
    cli_files(setup.bindir.parent / "share")
    p = subprocess.run([str(setup.bindir / "vnetshare-cni")], env={"CNI_COMMAND": "VERSION"}, input="",
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "supportedVersions" in json.loads(p.stdout), p.stdout + p.stderr
    # the system's Python: nothing added, and it does not see vnetshare
    assert system_site_packages() == site_before
    p = subprocess.run([str(SYSTEM_PYTHON), "-P", "-c", "import vnetshare"], cwd="/", env={},
                       capture_output=True, text=True)
    assert p.returncode != 0 and "No module named 'vnetshare'" in p.stderr, p.stderr
    # nothing was built or written in the clone
    assert git_status(setup.clone) == tree_before

    demo(setup.prefix / "bin", Path("/"), tmp_path / "control.sock", command=setup.bindir / "vnetshare")


def test_setup_sh_again_upgrades_in_place(tmp_path):
    """git pull && ./scripts/setup.sh: the new version replaces the old one, in the same environment."""
    setup = Setup(tmp_path)
    setup.run()
    assert "Version: 0.1.0" in setup.pip_show().splitlines()
    venv_cfg = (setup.prefix / "pyvenv.cfg").stat()
    (setup.prefix / "kept").write_text("made before the upgrade\n")
    pyproject = setup.clone / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.1.1"', 1))

    setup.run()

    assert "Version: 0.1.1" in setup.pip_show().splitlines()
    assert (setup.prefix / "pyvenv.cfg").stat().st_mtime_ns == venv_cfg.st_mtime_ns
    assert (setup.prefix / "kept").exists(), "the environment was made again, not upgraded"
    assert setup.vnetshare("--help").returncode == 0


def test_setup_sh_again_after_a_python_upgrade_makes_the_environment_again(tmp_path):
    """A Debian upgrade moves /usr/bin/python3 to a new minor version; setup.sh mends the install.

    The environment is made to look as if the Python before was 3.(N-1):
    its packages in lib/python3.(N-1), pyvenv.cfg saying so, bin/python a
    link to /usr/bin/python3, which now runs 3.N. That is what an upgrade
    from 3.11 to 3.13 leaves: the interpreter looks in lib/python3.13 and
    finds nothing.
    """
    setup = Setup(tmp_path)
    setup.run()
    minor = int(subprocess.run([str(setup.prefix / "bin" / "python"), "-c", "import sys; print(sys.version_info[1])"],
                               capture_output=True, text=True, check=True).stdout)
    before = f"3.{minor - 1}"
    (setup.prefix / "lib" / f"python3.{minor}").rename(setup.prefix / "lib" / f"python{before}")
    cfg = setup.prefix / "pyvenv.cfg"
    cfg.write_text("".join(f"version = {before}.9\n" if line.startswith("version") else line
                           for line in cfg.read_text().splitlines(keepends=True)))
    p = setup.vnetshare("--help")
    assert p.returncode != 0 and "No module named 'vnetshare'" in p.stderr, \
        f"the install made to look broken still runs: {p.stdout}{p.stderr}"

    setup.run()

    p = setup.vnetshare("--help")
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(setup.prefix / "lib")) == [f"python3.{minor}"]


def test_setup_sh_refuses_to_take_what_is_not_its_own(tmp_path):
    """A prefix that is some other directory, a command that is some other file: refused, left as they were."""
    setup = Setup(tmp_path)
    setup.prefix.mkdir(parents=True)
    (setup.prefix / "data").write_text("someone's\n")
    p = setup.run(check=False)
    assert p.returncode == 1 and f"{setup.prefix} is not a virtual environment" in p.stderr, p.stderr
    assert os.listdir(setup.prefix) == ["data"]

    setup.prefix = tmp_path / "opt2"
    setup.bindir.mkdir()
    (setup.bindir / "vnetshare").write_text("#!/bin/sh\necho another vnetshare\n")
    p = setup.run(check=False)
    assert p.returncode == 1 and f"{setup.bindir}/vnetshare is a file, not a link" in p.stderr, p.stderr
    assert (setup.bindir / "vnetshare").read_text() == "#!/bin/sh\necho another vnetshare\n"
    assert not setup.prefix.exists()


def git_status(tree: Path) -> str:
    """The tree's files as git sees them: untracked, ignored ones too."""
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=tree,
                          capture_output=True, text=True, check=True).stdout
