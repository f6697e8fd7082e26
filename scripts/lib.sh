# lib.sh - what the scripts share (setup.sh, test.sh, test-in-container.sh,
# deploy/kubernetes/build-image.sh)
#
#   . "$(dirname "$0")/lib.sh"              (sourced, not run)
#   need_root "NAME: must run as root: WHY" "$@"
#   copy_tree DEST
#   podman_conf DIR RUNROOT [CNI_CONFIG_DIR]
#   podman_private DIR                      (inside scripts/sandbox.sh)
#
# Sourcing it moves to the repository root, as the scripts expect to be.
# need_root re-executes the calling script through `sudo -E` with the given
# arguments when it is not run as root, or, without sudo, prints the message
# and exits 1.

# shellcheck shell=bash
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_root() {
    local why=$1
    shift
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null; then exec sudo -E "$0" "$@"; fi
        echo "$why" >&2
        exit 1
    fi
}

# copy_tree DEST: this tree as a fresh clone has it, plus files not yet added
# (tracked files deleted here are left out), copied to DEST.
copy_tree() {
    git ls-files -z -co --exclude-standard | python3 -c '
import os, shutil, sys
dest = sys.argv[1]
for name in sys.stdin.buffer.read().decode().split("\0"):
    if name and os.path.isfile(name):
        os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
        shutil.copy2(name, os.path.join(dest, name))
' "$1"
}

# podman_conf DIR RUNROOT [CNI_CONFIG_DIR]: DIR/containers.conf and
# DIR/storage.conf with the settings podman needs on this kind of machine
# (DESIGN.md: no CAP_SYS_RESOURCE, hybrid cgroups, PID 1 not systemd), its
# store in DIR/storage; with CNI_CONFIG_DIR, the CNI backend reading it.
# Point podman at them with CONTAINERS_CONF and CONTAINERS_STORAGE_CONF.
podman_conf() {
    local dir=$1 runroot=$2 cni=${3:-}
    cat > "$dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
    if [ -n "$cni" ]; then
        printf '\n[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "%s"\n' "$cni" >> "$dir/containers.conf"
    fi
    cat > "$dir/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$runroot"
EOF
}

# podman_private DIR: inside scripts/sandbox.sh, before podman runs with
# podman_conf DIR's files: its locks (/dev/shm), default store, blob cache
# and CNI state (/var/lib/containers, /var/lib/cni) and its store
# (DIR/storage) become private tmpfs, and CONTAINERS_CONF and
# CONTAINERS_STORAGE_CONF point at DIR. Podman writes
# /var/lib/containers/cache whatever its graphroot: where the host has no
# such directory, /var/lib gets an overlay whose upper layer is in DIR, so
# the directory is made there and never on the host.
podman_private() {
    local dir=$1 d
    mount -t tmpfs -o mode=1777 tmpfs /dev/shm
    if [ ! -d /var/lib/containers ] || [ ! -d /var/lib/cni ]; then
        mkdir -p "$dir/varlib/upper" "$dir/varlib/work"
        mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$dir/varlib/upper,workdir=$dir/varlib/work" /var/lib
        mkdir -p /var/lib/containers /var/lib/cni
    fi
    for d in /var/lib/containers /var/lib/cni "$dir/storage"; do
        mount -t tmpfs -o mode=0700 tmpfs "$d"
    done
    export CONTAINERS_CONF=$dir/containers.conf CONTAINERS_STORAGE_CONF=$dir/storage.conf
}
