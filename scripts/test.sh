#!/usr/bin/env bash
# test.sh - the README's test command: set up this machine, then run every test
#
#   ./scripts/test.sh [pytest args]     (as root, or through sudo)
#
# Installs what is missing (scripts/setup.sh), then runs the whole suite
# inside a fresh network and mount namespace, so no test can see or touch the
# host's interfaces. Root tests never skip here: VNETSHARE_NO_SKIP=1 turns a
# skip into a failure. The exit status is pytest's.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root "test.sh: must run as root: the tests create namespaces and devices" "$@"
./scripts/setup.sh
# The sandbox has no network: the install tests take their wheels from here.
VNETSHARE_WHEELS="$(pwd)/$(./scripts/wheels.sh build/wheels | tail -n 1)"
export VNETSHARE_WHEELS VNETSHARE_NO_SKIP=1 PYTHONDONTWRITEBYTECODE=1
exec ./scripts/sandbox.sh python3 -m pytest -p no:cacheprovider "$@"
