# setup.py - hands cffi its builder, builds the C agent and the CLI's files; metadata lives in pyproject.toml
"""The build has two native parts:

- vnetshare.dataplane._native, the cffi extension (native/build_ffi.py);
- vnetshare/_bin/vnetshare-agent, the partition agent (native/agent.c with
  the ring and the pump), an executable the daemon runs for each partition.

and the command line's man page and bash and zsh completion, generated from
its parser at build time (vnetshare/frontends/clidoc.py, CLI_FILES below)
and installed as data files under the environment's prefix
(share/man/man1/vnetshare.1, share/bash-completion/completions/vnetshare,
share/zsh/site-functions/_vnetshare): every wheel carries the ones of its
own parser. scripts/setup.sh copies them from its environment to where
man and the shells look (lib.sh's cli_files).

build_ext builds both, with the same flags (-Wall -Wextra -Werror: any
warning fails the install), into the build directory, so every install
path carries the agent: `pip install .`, a virtual environment, a wheel
(scripts/wheels.sh, the test container), and in place for
`pip install -e .` and `python3 setup.py build_ext --inplace`. A compiler
error fails the build loudly; there is no other agent: a daemon without the
binary does not start (vnetshare/agent.py rule 1).
"""
import os
import subprocess
import sys

from setuptools import Command, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import LinkError

try:
    from setuptools.command.install_data import install_data
except ImportError:  # setuptools before 70: its distutils' (importing setuptools put it there)
    from distutils.command.install_data import install_data

AGENT = os.path.join("vnetshare", "_bin", "vnetshare-agent")
AGENT_SOURCES = ["agent.c", "ring.c", "pump.c"]  # under native/
COMPILE_ARGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"]  # as native/build_ffi.py's
# clidoc's kind -> (where it is installed, under the prefix; its name)
CLI_FILES = {
    "man": ("share/man/man1", "vnetshare.1"),
    "bash": ("share/bash-completion/completions", "vnetshare"),
    "zsh": ("share/zsh/site-functions", "_vnetshare"),
}
CLI_BUILD = os.path.join("build", "cli")  # where build_cli writes them, beside setup.py


class build_ext_with_agent(build_ext):
    """build_ext that also links native/agent.c into vnetshare/_bin/vnetshare-agent."""

    def run(self):
        super().run()  # the extensions (copied into the source tree if in place)
        built = os.path.join(self.build_lib, AGENT)
        self._build_agent(built)
        if self.inplace:
            self.mkpath(os.path.dirname(self._inplace_agent()))
            self.copy_file(built, self._inplace_agent(), level=self.verbose)

    def _inplace_agent(self) -> str:
        package_dir = self.get_finalized_command("build_py").get_package_dir("vnetshare")
        return os.path.join(package_dir, "_bin", "vnetshare-agent")

    def _build_agent(self, out: str) -> None:
        sources = [os.path.join("native", name) for name in AGENT_SOURCES]
        depends = sources + [os.path.join("native", n) for n in os.listdir("native") if n.endswith(".h")]
        if not (self.force or any(_newer(src, out) for src in depends)):
            return
        objects = self.compiler.compile(
            sources, output_dir=os.path.join(self.build_temp, "agent"),
            include_dirs=["native"], extra_postargs=COMPILE_ARGS, depends=depends)
        self.mkpath(os.path.dirname(out))
        link = dict(output_dir=os.path.dirname(out), libraries=["pthread"])
        try:
            # Static (and position-independent): the system calls the
            # seccomp list allows are those of the glibc it was built and
            # measured with, not of whichever the machine upgrades to; and
            # no loader, less memory, a faster start (docs/design-notes.md).
            self.compiler.link_executable(objects, os.path.basename(out), extra_postargs=["-static-pie"], **link)
        except LinkError:
            self.warn("vnetshare-agent: no static C library (libc.a) to link with: linking it dynamically")
            self.compiler.link_executable(objects, os.path.basename(out), **link)

    # What setuptools asks a build step for (wheels, editable installs):
    # the files in the build directory, and where in-place copies go.
    def get_outputs(self):
        return super().get_outputs() + [os.path.join(self.build_lib, AGENT)]

    def get_output_mapping(self):
        mapping = dict(super().get_output_mapping())
        if self.inplace:
            mapping[os.path.join(self.build_lib, AGENT)] = self._inplace_agent()
        return mapping


class build_cli(Command):
    """Write the man page and the completion scripts (CLI_FILES) into
    CLI_BUILD, from the parser of the tree being built: `python3 -m
    vnetshare.frontends.clidoc KIND` with the tree first on the path (it
    imports neither the C extension nor a dependency)."""

    description = "generate the man page and the bash and zsh completion from the parser"
    user_options = []

    def initialize_options(self):
        pass

    def finalize_options(self):
        pass

    def run(self):
        here = os.path.dirname(os.path.abspath(__file__))
        env = dict(os.environ, PYTHONPATH=here)
        for kind, (_, name) in CLI_FILES.items():
            out = os.path.join(CLI_BUILD, kind, name)
            p = subprocess.run([sys.executable, "-P", "-m", "vnetshare.frontends.clidoc", kind], cwd=here,
                               env=env, capture_output=True, text=True)
            if p.returncode != 0 or not p.stdout:
                raise RuntimeError(f"clidoc {kind}: exit {p.returncode}: {p.stderr[-2000:]}")
            self.mkpath(os.path.dirname(out))
            with open(out + ".tmp", "w") as f:
                f.write(p.stdout)
            os.replace(out + ".tmp", out)


class install_data_with_cli(install_data):
    """install_data that first generates the files it installs (build_cli):
    a wheel, an install and an editable install each carry the man page and
    completion of the parser they install."""

    def run(self):
        self.run_command("build_cli")
        super().run()


def _newer(src: str, out: str) -> bool:
    return not os.path.exists(out) or os.path.getmtime(src) > os.path.getmtime(out)


setup(cffi_modules=["native/build_ffi.py:ffibuilder"],
      cmdclass={"build_ext": build_ext_with_agent, "build_cli": build_cli, "install_data": install_data_with_cli},
      data_files=[(where, [os.path.join(CLI_BUILD, kind, name)]) for kind, (where, name) in CLI_FILES.items()])
