#!/usr/bin/env bash
# wheels.sh - a wheelhouse for installing vnetshare where there is no network
#
#   ./scripts/wheels.sh [--test] [--python X.Y] [DIR]        (default: build/wheels)
#
# Fills DIR with wheels of vnetshare's dependencies and of the build
# backend it needs (setuptools, wheel, cffi), so `pip install --no-index
# --find-links DIR .` works inside the test sandbox (a fresh network
# namespace with no route out) and in a container. With --test it adds the
# test extras (pytest, hypothesis, scapy, kubernetes-validate and what they
# need), so `pip install --no-index --find-links DIR -e '.[test]'`, and so
# scripts/test.sh, works offline too: scripts/test-in-container.sh uses
# that. The wheels are for the python3 that runs this (`pip wheel`); with
# --python X.Y they are for CPython X.Y on this machine's architecture and
# glibc 2.17 or later instead, downloaded as published (`pip download
# --only-binary`): for a container whose Python is not this one
# (scripts/test-in-container.sh --setup: Debian 13's 3.13). The
# requirements are read from pyproject.toml, so a floor raised there is the
# floor here. scripts/test.sh runs it before entering the sandbox;
# tests/netns/test_install.py uses the result through VNETSHARE_WHEELS.
# Cheap to run again: pip reuses what is there. It honours pip's
# environment, so PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels fills DIR from
# another wheelhouse without a network.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=()
python=
while [ $# -gt 0 ]; do
    case $1 in
        --test) extras=(test); shift ;;
        --python) python=$2; shift 2 ;;
        *) break ;;
    esac
done
dir="${1:-build/wheels}"
mkdir -p "$dir"
# build-system.requires, project.dependencies and the extras asked for
reqs=$(python3 - "${extras[@]}" <<'PY'
import sys, tomllib
with open("pyproject.toml", "rb") as f:
    p = tomllib.load(f)
reqs = p["build-system"]["requires"] + p["project"]["dependencies"]
for extra in sys.argv[1:]:
    reqs += p["project"]["optional-dependencies"][extra]
print("\n".join(dict.fromkeys(reqs)))
PY
)
mapfile -t reqs <<<"$reqs"
if [ -z "$python" ]; then
    pip=(wheel -w "$dir")
else
    pip=(download -d "$dir" --only-binary=:all: --implementation cp --python-version "$python"
         --platform "manylinux2014_$(uname -m)")
    for minor in $(seq 17 36); do pip+=(--platform "manylinux_2_${minor}_$(uname -m)"); done
fi
out=$(python3 -m pip "${pip[@]}" -q --disable-pip-version-check "${reqs[@]}" 2>&1) \
    || { echo "$out" >&2; echo "wheels.sh: pip ${pip[0]} failed" >&2; exit 1; }
[ -z "$out" ] || grep -v -e "^WARNING: Running pip as" -e "^WARNING: Location .* is ignored" <<<"$out" >&2 || true
echo "$dir"
