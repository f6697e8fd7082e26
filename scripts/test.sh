#!/usr/bin/env bash
# test.sh - the README's test command: set up this machine, then run every test
#
#   ./scripts/test.sh [pytest args]     (as root, or through sudo)
#
# Installs the Debian packages that running vnetshare and its tests need and
# are missing (lib.sh's RUN_NEEDS and TEST_NEEDS: one apt-get run), puts
# vnetshare, editable, with its test extras, into a virtual environment of
# the python3 on PATH (build/venv, lib.sh's TEST_VENV: the system's Python
# is not touched) and runs the whole suite with that interpreter inside a
# fresh network and mount namespace, so no test can see or touch the host's
# interfaces. Root tests never skip here: VNETSHARE_NO_SKIP=1 turns a skip
# into a failure. The runtime tests (podman, containerd) get their Debian
# image from scripts/image.sh, built here while there is network. The exit
# status is pytest's.
#
# The test environment's bin comes first on PATH for everything after the
# install (scripts/wheels.sh, the tests' `python3` in namespaces), so it is
# the one tests start daemons with (sys.executable). scripts/setup.sh, the
# user's install, is tested by tests/netns/test_install.py.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root "test.sh: must run as root: the tests create namespaces and devices" "$@"
python=$(command -v python3 || echo /usr/bin/python3)
# shellcheck disable=SC2046  # python_debs prints package names, or nothing
apt_need RUN_NEEDS TEST_NEEDS -- $(python_debs "$python")
python=$(command -v python3) || { echo "test.sh: no python3 on PATH" >&2; exit 1; }
venv_for "$python" "$TEST_VENV"
echo "test.sh: building vnetshare into $TEST_VENV (pip install -e '.[test]')"
"$TEST_VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
"$TEST_VENV/bin/python" -c 'import vnetshare.dataplane._native' # the C extension really loads
"$TEST_VENV/bin/python" -c 'import sys; from vnetshare import agent; sys.exit(agent.c_agent() is None)' \
    || { echo "test.sh: the C agent (vnetshare/_bin/vnetshare-agent) was not built" >&2; exit 1; }
PATH="$(pwd)/$TEST_VENV/bin:$PATH"

# The sandbox has no network: the install tests take their wheels from here.
VNETSHARE_WHEELS="$(pwd)/$(./scripts/wheels.sh build/wheels | tail -n 1)"
# The runtime tests' container image (podman, containerd), built without a
# registry; a caller that set VNETSHARE_IMAGE (the in-container run, which
# deselects those tests) keeps its own.
if [ -z "${VNETSHARE_IMAGE:-}" ]; then
    VNETSHARE_IMAGE="$(pwd)/$(./scripts/image.sh cnitest iproute2,iputils-ping,iperf3,python3 | tail -n 1)"
fi
# The service's test boots systemd in a container of this image
# (tests/netns/test_service_systemd.py); a caller that set
# VNETSHARE_SYSTEMD_IMAGE (the in-container run) keeps its own.
if [ -z "${VNETSHARE_SYSTEMD_IMAGE:-}" ]; then
    VNETSHARE_SYSTEMD_IMAGE="$(pwd)/$(./scripts/image.sh vnssystemd \
        systemd,systemd-sysv,dbus,iproute2,iputils-ping,python3 | tail -n 1)"
fi
export PATH VNETSHARE_WHEELS VNETSHARE_IMAGE VNETSHARE_SYSTEMD_IMAGE VNETSHARE_NO_SKIP=1 PYTHONDONTWRITEBYTECODE=1
exec ./scripts/sandbox.sh "$TEST_VENV/bin/python" -m pytest -p no:cacheprovider "$@"
