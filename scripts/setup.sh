#!/usr/bin/env bash
# setup.sh - install vnetshare on this Debian machine, in a virtual environment of its own
#
#   ./scripts/setup.sh        (from a clone, as root or through sudo)
#
# Installs the Debian packages running vnetshare needs that are missing
# (lib.sh's RUN_NEEDS, and python3-venv and python3-dev for the
# distribution's Python: one apt-get run), makes /opt/vnetshare a virtual
# environment of /usr/bin/python3, installs this clone into it (not
# editable: a wheel built from a copy of the files git tracks, so nothing in
# the clone is written) and links `vnetshare` and `vnetshare-cni` into
# /usr/local/bin. pip builds the C data plane through cffi with -Wall
# -Wextra -Werror and fails loudly on any error. The system's Python is
# left as it was: nothing is installed into it (PEP 668), whichever
# `python3` comes first on PATH (a pyenv one is not used: it is a user's,
# not the machine's).
#
# Run again (after `git pull`), it upgrades in place; if the environment's
# Python has changed under it (a Debian upgrade from 3.11 to 3.13), it makes
# the environment again first (lib.sh's venv_for). vnetshare's Python
# dependencies come from PyPI, or from wherever pip's own variables say
# (PIP_INDEX_URL, or PIP_NO_INDEX=1 with PIP_FIND_LINKS=DIR: a wheelhouse
# from scripts/wheels.sh, where there is no network). The test tools are
# scripts/test.sh's to install.
#
# Environment: VNETSHARE_PREFIX (default /opt/vnetshare): the environment;
# VNETSHARE_BINDIR (default /usr/local/bin): where the commands are linked;
# VNETSHARE_DATADIR (default: share beside the bin directory, /usr/local/share):
# the man page (man/man1/vnetshare.1) and the bash and zsh completion
# (bash-completion/completions/vnetshare, zsh/site-functions/_vnetshare),
# copied from the environment's share directory, where the package
# installed them (setup.py generates them at build time);
# VNETSHARE_PYTHON (default /usr/bin/python3): the interpreter it is made with.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root "setup.sh: must run as root (apt-get, /opt, and vnetshare needs CAP_NET_ADMIN)" "$@"
prefix=${VNETSHARE_PREFIX:-/opt/vnetshare}
bindir=${VNETSHARE_BINDIR:-/usr/local/bin}
datadir=${VNETSHARE_DATADIR:-$(dirname "$bindir")/share}
python=${VNETSHARE_PYTHON:-/usr/bin/python3}

# The commands go into $bindir for root and sudo alike (sudo's secure_path
# has /usr/local/bin). A link there is ours to replace (an older setup.sh
# linked another interpreter's script); a file is someone else's.
for cmd in vnetshare vnetshare-cni; do
    if [ -e "$bindir/$cmd" ] && [ ! -L "$bindir/$cmd" ]; then
        echo "setup.sh: $bindir/$cmd is a file, not a link: remove it, or set VNETSHARE_BINDIR" >&2
        exit 1
    fi
done

# shellcheck disable=SC2046  # python_debs prints package names, or nothing
apt_need RUN_NEEDS -- $(python_debs "$python")
command -v git >/dev/null && git rev-parse --is-inside-work-tree >/dev/null 2>&1 \
    || { echo "setup.sh: run it from a git clone (with git installed): it installs the files git tracks" >&2; exit 1; }
venv_for "$python" "$prefix"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vnetshare-setup.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
copy_tree "$tmp/src"
echo "setup.sh: building vnetshare and installing it into $prefix"
"$prefix/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$tmp/src"
# From /, with -P: the installation, not this clone, must be what imports.
(cd / && "$prefix/bin/python" -P -c 'import vnetshare.dataplane._native') # the C extension really loads
(cd / && "$prefix/bin/python" -P -c 'import sys; from vnetshare import agent; sys.exit(agent.c_agent() is None)') \
    || { echo "setup.sh: the C agent (vnetshare/_bin/vnetshare-agent) was not installed" >&2; exit 1; }

mkdir -p "$bindir"
for cmd in vnetshare vnetshare-cni; do
    link=$bindir/$cmd
    old=$(readlink "$link" || true)
    if [ "$old" != "$prefix/bin/$cmd" ]; then
        ln -sfn "$prefix/bin/$cmd" "$link"
        [ -z "$old" ] || echo "setup.sh: $link linked $old, now $prefix/bin/$cmd"
    fi
done
"$bindir/vnetshare" --help >/dev/null
cli_files "$prefix" "$datadir"
version=$(cd / && "$prefix/bin/python" -P -c 'from importlib.metadata import version; print(version("vnetshare"))')
echo "setup.sh: vnetshare $version in $prefix ($("$prefix/bin/python" -V) from $python)," \
     "commands in $bindir, man page and completion in $datadir"
found=$(command -v vnetshare || true)
if [ "$found" != "$bindir/vnetshare" ]; then
    echo "setup.sh: note: \`vnetshare\` on this PATH is ${found:-not found}, not $bindir/vnetshare" >&2
fi
