#!/usr/bin/env bash
# setup.sh - install what vnetshare needs on a fresh Debian 12 machine and build it
#
# Installs the Debian packages that are missing (one apt-get run), then the
# Python package itself, editable, with its test extras: pip builds the C data
# plane through cffi with -Wall -Wextra -Werror and fails loudly on any error.
# Safe to run again: it only installs what is missing and rebuilds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root "setup.sh: must run as root (apt-get, and vnetshare needs CAP_NET_ADMIN)" "$@"

# command -> Debian package
declare -A NEED=(
    [gcc]=gcc
    [ip]=iproute2
    [unshare]=util-linux
    [iperf3]=iperf3
    [ping]=iputils-ping
    [vde_switch]=vde2        # scripts/bench.py net: the vde_switch peer
    # the CNI plugin's tests (issue 10): real runtimes, the reference
    # plugins, images built without a registry
    [podman]=podman
    [runc]=runc
    [containerd]=containerd
    [ctr]=containerd
    [mmdebstrap]=mmdebstrap
    [/usr/lib/cni/host-local]=containernetworking-plugins
    [newuidmap]=uidmap
    [slirp4netns]=slirp4netns
    [fuse-overlayfs]=fuse-overlayfs
    # issue 11: the metrics' real clients, and pcap files read back
    [promtool]=prometheus
    [prometheus]=prometheus
    [tcpdump]=tcpdump
    # issue 20: a real DHCP server on the LAN host and a DHCPv6 client in a
    # partition (the DHCPv4 client is pyroute2's)
    [dnsmasq]=dnsmasq-base
    [dhclient]=isc-dhcp-client
)
missing=()
for cmd in "${!NEED[@]}"; do
    command -v "$cmd" >/dev/null || missing+=("${NEED[$cmd]}")
done
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')
python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing+=(python3-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "setup.sh: building and installing vnetshare (pip install -e '.[test]')"
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -c 'import vnetshare.dataplane._native' # the C extension really loads
python3 -c 'import sys; from vnetshare import agent; sys.exit(agent.c_agent() is None)' \
    || { echo "setup.sh: the C agent (vnetshare/_bin/vnetshare-agent) was not built" >&2; exit 1; }

# `vnetshare` on PATH, for root and sudo alike
if ! command -v vnetshare >/dev/null; then
    command -v pyenv >/dev/null && pyenv rehash || true
fi
if ! command -v vnetshare >/dev/null || [ ! -e /usr/local/bin/vnetshare ]; then
    script="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/vnetshare"
    [ -x "$script" ] && [ "$script" != /usr/local/bin/vnetshare ] && ln -sf "$script" /usr/local/bin/vnetshare
fi
command -v vnetshare >/dev/null || { echo "setup.sh: vnetshare is not on PATH" >&2; exit 1; }
