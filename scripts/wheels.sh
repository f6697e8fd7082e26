#!/usr/bin/env bash
# wheels.sh - a wheelhouse for installing vnetshare where there is no network
#
#   ./scripts/wheels.sh [DIR]        (default: build/wheels)
#
# Fills DIR with wheels of vnetshare's dependencies and of the build
# backend it needs (setuptools, wheel, cffi), so `pip install --no-index
# --find-links DIR .` works inside the test sandbox (a fresh network
# namespace with no route out) and in a container. scripts/test.sh runs it
# before entering the sandbox; tests/netns/test_install.py uses the result
# through VNETSHARE_WHEELS. Cheap to run again: pip reuses what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build/wheels}"
mkdir -p "$dir"
python3 -m pip wheel -q --disable-pip-version-check -w "$dir" \
    'setuptools>=61' wheel 'cffi>=1.15' 'pyroute2>=0.7' 2>&1 | grep -v '^WARNING: Running pip as' || true
test -n "$(ls "$dir"/pyroute2-*.whl 2>/dev/null)" || { echo "wheels.sh: no pyroute2 wheel in $dir" >&2; exit 1; }
echo "$dir"
