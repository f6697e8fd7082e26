#!/usr/bin/env bash
# sandbox.sh - prepare a fresh network + mount namespace, then run a command in it
#
# Run it through `unshare --net --mount` (scripts/test.sh does): everything
# the command creates (namespaces, links, the daemon's /run/vnetshare) lives
# inside the sandbox and disappears with it; the host's interfaces are never
# visible, let alone touched.
set -euo pipefail
# scripts/test.sh passes the namespace it started in: ours must be another.
# Both namespaces must be new, or the mounts below would land on the host.
here=$(readlink /proc/self/ns/net)
mnt=$(readlink /proc/self/ns/mnt)
if [ -z "${VNETSHARE_HOST_NETNS:-}" ] || [ "$here" = "$VNETSHARE_HOST_NETNS" ] ||
   [ -z "${VNETSHARE_HOST_MNTNS:-}" ] || [ "$mnt" = "$VNETSHARE_HOST_MNTNS" ]; then
    echo "sandbox.sh: not in fresh network and mount namespaces; run it through scripts/test.sh" >&2
    exit 1
fi
export VNETSHARE_SANDBOX="$here"
mount --make-rprivate /
mount -t tmpfs -o mode=0755 vnetshare-run /run    # /run/netns, /run/vnetshare
mount -t sysfs sysfs /sys                          # /sys/class/net of this netns
ip link set lo up
exec "$@"
