#!/usr/bin/env bash
# sandbox.sh - run a command in a fresh network + mount namespace
#
#   ./scripts/sandbox.sh COMMAND [ARGS...]      (as root)
#
# Re-executes itself under `unshare --net --mount`, checks that both
# namespaces really are new, gives the sandbox its own /run (so /run/netns and
# /run/vnetshare vanish with it) and /sys (keeping the cgroup hierarchy, which
# container runtimes need), brings lo up and runs COMMAND.
# Everything COMMAND creates lives and dies inside; the host's interfaces are
# never visible, let alone touched. scripts/test.sh runs pytest through it.
set -euo pipefail
if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi
if [ -z "${VNETSHARE_HOST_NETNS:-}" ]; then
    VNETSHARE_HOST_NETNS=$(readlink /proc/self/ns/net)
    VNETSHARE_HOST_MNTNS=$(readlink /proc/self/ns/mnt)
    export VNETSHARE_HOST_NETNS VNETSHARE_HOST_MNTNS
    exec unshare --net --mount -- "$0" "$@"
fi
# Both namespaces must be new, or the mounts below would land on the host.
here=$(readlink /proc/self/ns/net)
mnt=$(readlink /proc/self/ns/mnt)
if [ "$here" = "$VNETSHARE_HOST_NETNS" ] || [ "$mnt" = "${VNETSHARE_HOST_MNTNS:-}" ]; then
    echo "sandbox.sh: not in fresh network and mount namespaces; refusing to go on" >&2
    exit 1
fi
export VNETSHARE_SANDBOX="$here"
mount --make-rprivate /
mount -t tmpfs -o mode=0755 vnetshare-run /run    # /run/netns, /run/vnetshare
# A fresh sysfs shows this netns's /sys/class/net; container runtimes still
# need the cgroup hierarchy, so it is carried over on top of the new sysfs.
if mountpoint -q /sys/fs/cgroup; then
    mkdir /run/.cgroup
    mount --rbind /sys/fs/cgroup /run/.cgroup
fi
mount -t sysfs sysfs /sys                          # /sys/class/net of this netns
if [ -d /run/.cgroup ]; then
    mount --move /run/.cgroup /sys/fs/cgroup
    rmdir /run/.cgroup
fi
ip link set lo up
exec "$@"
