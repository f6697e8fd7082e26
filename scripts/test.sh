#!/usr/bin/env bash
# test.sh - the README's test command: set up this machine, then run every test
#
#   ./scripts/test.sh [pytest args]     (as root, or through sudo)
#
# Installs what is missing (scripts/setup.sh), then runs the whole suite
# inside a fresh network and mount namespace, so no test can see or touch the
# host's interfaces. Root tests never skip here: VNETSHARE_NO_SKIP=1 turns a
# skip into a failure. The runtime tests (podman, containerd) get their
# Debian image from scripts/image.sh, built here while there is network.
# The exit status is pytest's.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root "test.sh: must run as root: the tests create namespaces and devices" "$@"
./scripts/setup.sh
# The sandbox has no network: the install tests take their wheels from here.
VNETSHARE_WHEELS="$(pwd)/$(./scripts/wheels.sh build/wheels | tail -n 1)"
# The runtime tests' container image (podman, containerd), built without a
# registry; a caller that set VNETSHARE_IMAGE (the in-container run, which
# deselects those tests) keeps its own.
if [ -z "${VNETSHARE_IMAGE:-}" ]; then
    VNETSHARE_IMAGE="$(pwd)/$(./scripts/image.sh cnitest iproute2,iputils-ping,iperf3,python3 | tail -n 1)"
fi
export VNETSHARE_WHEELS VNETSHARE_IMAGE VNETSHARE_NO_SKIP=1 PYTHONDONTWRITEBYTECODE=1
exec ./scripts/sandbox.sh python3 -m pytest -p no:cacheprovider "$@"
