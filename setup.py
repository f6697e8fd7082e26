# setup.py - hands cffi its builder and builds the C agent; metadata lives in pyproject.toml
"""The build has two native parts:

- vnetshare.dataplane._native, the cffi extension (native/build_ffi.py);
- vnetshare/_bin/vnetshare-agent, the partition agent (native/agent.c with
  the ring and the pump), an executable the daemon runs for each partition.

build_ext builds both, with the same flags (-Wall -Wextra -Werror: any
warning fails the install), into the build directory, so every install
path carries the agent: `pip install .`, a virtual environment, a wheel
(scripts/wheels.sh, the test container), and in place for
`pip install -e .` and `python3 setup.py build_ext --inplace`. A compiler
error fails the build loudly; there is no other agent: a daemon without the
binary does not start (vnetshare/agent.py rule 1).
"""
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import LinkError

AGENT = os.path.join("vnetshare", "_bin", "vnetshare-agent")
AGENT_SOURCES = ["agent.c", "ring.c", "pump.c"]  # under native/
COMPILE_ARGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"]  # as native/build_ffi.py's


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


def _newer(src: str, out: str) -> bool:
    return not os.path.exists(out) or os.path.getmtime(src) > os.path.getmtime(out)


setup(cffi_modules=["native/build_ffi.py:ffibuilder"], cmdclass={"build_ext": build_ext_with_agent})
