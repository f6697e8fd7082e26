"""vnetshare without its C: a copy of the source tree with no compiled
extension and no agent binary imports the package, its pure rules and the
CNI plugin, and the plugin answers VERSION; the standalone plugin file is
packed from the package's own modules (no stub) and answers too; every
module of tests/unit imports there (tests/unit/conftest.py rule 1)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import vnetshare

SOURCE = Path(vnetshare.__file__).resolve().parent
UNIT = Path(__file__).resolve().parent
BUILT = ("*.so", "_bin", "__pycache__")  # the extension, the agent binary, bytecode


def _bare_tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    shutil.copytree(SOURCE, root / "vnetshare", ignore=shutil.ignore_patterns(*BUILT))
    left = [str(p) for p in (root / "vnetshare").rglob("*") if p.suffix == ".so" or p.name == "vnetshare-agent"]
    assert not left, f"the copy still has a build: {left}"
    return root


def _run(args: list[str], root: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1", **env))


def test_the_package_core_and_cni_plugin_import_without_the_build(tmp_path):
    root = _bare_tree(tmp_path)
    # -S: no site-packages, so not the installed (built) vnetshare either
    code = ("import sys, vnetshare, vnetshare.core, vnetshare.core.config, vnetshare.frontends.cni\n"
            "print(vnetshare.__file__)\n"
            "print(sorted(m for m in sys.modules if m.startswith('vnetshare.dataplane')))\n"
            "try:\n    vnetshare.Ring\nexcept ImportError as e:\n    print('Ring:', e)\n")
    p = _run([sys.executable, "-S", "-c", code], root)
    assert p.returncode == 0, p.stderr
    where, dataplane, ring = p.stdout.splitlines()
    assert where == str(root / "vnetshare" / "__init__.py")
    assert dataplane == "[]"
    assert ring.startswith("Ring: ") and "_native" in ring  # the C loads on first use, and only then

    p = _run([sys.executable, "-S", "-c", "import sys; from vnetshare.frontends.cni import main; sys.exit(main())"],
             root, CNI_COMMAND="VERSION")
    assert p.returncode == 0, p.stderr
    assert "1.1.0" in json.loads(p.stdout)["supportedVersions"]


def test_the_standalone_plugin_is_the_package_s_own_modules(tmp_path):
    from vnetshare.frontends import cni_install

    plugin = tmp_path / "vnetshare"
    plugin.write_bytes(cni_install._standalone())
    plugin.chmod(0o755)
    import zipfile
    with zipfile.ZipFile(plugin) as z:
        packed = {n: z.read(n) for n in z.namelist()}
    assert packed["vnetshare/__init__.py"] == (SOURCE / "__init__.py").read_bytes()  # no stub
    assert packed["vnetshare/frontends/__init__.py"] == (SOURCE / "frontends" / "__init__.py").read_bytes()
    p = subprocess.run([sys.executable, "-S", str(plugin)], input="", capture_output=True, text=True, timeout=60,
                       cwd=tmp_path, env={"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": "VERSION"})
    assert p.returncode == 0, p.stderr
    assert "1.1.0" in json.loads(p.stdout)["supportedVersions"]


def test_every_unit_test_module_imports_without_the_build(tmp_path):
    root = _bare_tree(tmp_path)
    p = _run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
              "--rootdir", str(UNIT.parent), str(UNIT)], root)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "test_without_build.py::" in p.stdout
    assert "vnetshare.dataplane._native" not in p.stdout
