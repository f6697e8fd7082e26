#!/usr/bin/env bash
# wheels.sh - a wheelhouse for installing vnetshare where there is no network
#
#   ./scripts/wheels.sh [--test] [DIR]        (default: build/wheels)
#
# Fills DIR with wheels of vnetshare's dependencies and of the build
# backend it needs (setuptools, wheel, cffi), so `pip install --no-index
# --find-links DIR .` works inside the test sandbox (a fresh network
# namespace with no route out) and in a container. With --test it adds the
# test extras (pytest, hypothesis, scapy, kubernetes-validate and what they
# need), so `pip install --no-index --find-links DIR -e '.[test]'`, and so
# scripts/setup.sh, works offline too: scripts/test-in-container.sh uses
# that. The requirements are read from pyproject.toml, so a floor raised
# there is the floor here. scripts/test.sh runs it before entering the
# sandbox; tests/netns/test_install.py uses the result through
# VNETSHARE_WHEELS. Cheap to run again: pip reuses what is there. It
# honours pip's environment, so PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels
# fills DIR from another wheelhouse without a network.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=()
if [ "${1:-}" = --test ]; then
    extras=(test)
    shift
fi
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
out=$(python3 -m pip wheel -q --disable-pip-version-check -w "$dir" "${reqs[@]}" 2>&1) \
    || { echo "$out" >&2; echo "wheels.sh: pip wheel failed" >&2; exit 1; }
[ -z "$out" ] || grep -v -e "^WARNING: Running pip as" -e "^WARNING: Location .* is ignored" <<<"$out" >&2 || true
echo "$dir"
