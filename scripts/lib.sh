# lib.sh - what the scripts share (setup.sh, test.sh, test-in-container.sh,
# deploy/kubernetes/build-image.sh, .ci/run)
#
#   . "$(dirname "$0")/lib.sh"              (sourced, not run)
#   need_root "NAME: must run as root: WHY" "$@"
#   RUN_NEEDS, TEST_NEEDS                   (command or file -> Debian package)
#   debs TABLE...                           (their packages, one a line)
#   apt_need TABLE... [-- PACKAGE...]
#   python_debs PYTHON, DEBIAN_PYTHON_DEBS
#   venv_for PYTHON DIR
#   TEST_VENV                               (scripts/test.sh's environment)
#   copy_tree DEST
#   cli_files PREFIX DATADIR                (the man page, bash and zsh completion)
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

# What running vnetshare needs, command (or file) -> the Debian package that
# brings it: scripts/setup.sh installs what is missing. Building it from
# source is part of installing it, so the compiler is here too.
declare -A RUN_NEEDS=(
    [gcc]=gcc                          # cffi builds the C data plane, setup.py the agent
    [/usr/include/stdio.h]=libc6-dev   # the C library's headers, and libc.a the agent is linked with
    [ip]=iproute2                      # `ip netns exec PARTITION ...`; the lab and linux/probe.py run through it
    [ping]=iputils-ping                # `vnetshare lab demo`'s reachability checks (linux/probe.py)
    [iperf3]=iperf3                    # `vnetshare lab demo`'s TCP checks (linux/probe.py)
)

# What the tests, the benchmark and CI need besides RUN_NEEDS: scripts/test.sh
# installs both. None of it is on vnetshare's own path: the runtimes are the
# CNI plugin's callers, the servers and clients play the LAN's hosts, the
# rest reads back what vnetshare wrote.
declare -A TEST_NEEDS=(
    [unshare]=util-linux               # scripts/sandbox.sh (essential in Debian)
    [mount]=mount                      # scripts/sandbox.sh
    [ps]=procps                        # the tests look at processes
    [git]=git                          # tests/netns/test_install.py and copy_tree list the tree's files
    [vde_switch]=vde2                  # scripts/bench.py net: the vde_switch peer
    [pasta]=passt                      # scripts/bench.py net: the pasta peer
    # the CNI plugin's tests (issue 10): real runtimes, the reference
    # plugins, images built without a registry (also scripts/image.sh's)
    [podman]=podman
    [runc]=runc
    [containerd]=containerd
    [ctr]=containerd
    [mmdebstrap]=mmdebstrap
    [/usr/lib/cni/host-local]=containernetworking-plugins
    [newuidmap]=uidmap
    [slirp4netns]=slirp4netns          # also scripts/bench.py net: the slirp4netns peer
    [fuse-overlayfs]=fuse-overlayfs
    # issue 11: the metrics' real clients, and pcap files read back
    [promtool]=prometheus
    [prometheus]=prometheus
    [tcpdump]=tcpdump
    # issue 20: a real DHCP server on the LAN host and a DHCPv6 client in a
    # partition (the DHCPv4 client is pyroute2's)
    [dnsmasq]=dnsmasq-base
    [dhclient]=isc-dhcp-client
    # issue 21: the service's tests (systemd-analyze verify, systemctl
    # --root, systemd-escape; setpriv runs the unit's ExecStart)
    [systemd-analyze]=systemd
    [setpriv]=util-linux
    # the CLI's tests: the live view in a real terminal (tmux), the man page
    # rendered (groff) and read as a user reads it (man -l: test_install.py),
    # the completion scripts run by their shells
    [tmux]=tmux
    [groff]=groff-base
    [man]=man-db
    [zsh]=zsh
)

# debs TABLE...: the packages of these tables (RUN_NEEDS, TEST_NEEDS), sorted,
# one a line.
debs() {
    local name
    for name; do
        local -n table=$name
        printf '%s\n' "${table[@]}"
        unset -n table
    done | sort -u
}

# apt_need TABLE... [-- PACKAGE...]: installs, in one apt-get run, the
# package of each TABLE entry whose command is not on PATH and whose file is
# not there, and each PACKAGE dpkg does not have installed. Says what it
# installs; silent when nothing is missing.
apt_need() {
    local missing=() key pkg
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        local -n table=$1
        for key in "${!table[@]}"; do
            command -v "$key" >/dev/null || [ -e "$key" ] || missing+=("${table[$key]}")
        done
        unset -n table
        shift
    done
    [ $# -eq 0 ] || shift
    for pkg; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing+=("$pkg")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "$(basename "$0"): installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# python_debs PYTHON: the Debian packages a virtual environment of PYTHON
# that builds C extensions needs: python3, python3-venv (ensurepip) and
# python3-dev (Python.h) when PYTHON is the distribution's, or is
# /usr/bin/python3 or python3 and not installed yet; nothing for another
# interpreter (pyenv's, one built from source), which carries them itself.
python_debs() {
    local path
    if path=$(command -v "$1"); then
        dpkg -S "$(readlink -f "$path")" >/dev/null 2>&1 || return 0
    elif [ "$1" != /usr/bin/python3 ] && [ "$1" != python3 ]; then
        return 0
    fi
    echo "$DEBIAN_PYTHON_DEBS"
}
DEBIAN_PYTHON_DEBS="python3 python3-venv python3-dev"

# venv_for PYTHON DIR: DIR becomes a working virtual environment of PYTHON.
# Made with `PYTHON -m venv` if it is missing; made again (--clear) if its
# interpreter is no longer PYTHON's or finds no packages there, as after a
# Debian upgrade from Python 3.11 to 3.13 (DIR/bin/python, a link to
# /usr/bin/python3, then runs 3.13, which looks in lib/python3.13: empty);
# kept as it is otherwise. A DIR that is something else than a virtual
# environment is refused, never cleared. Fails with one line if PYTHON
# cannot build C extensions (no Python.h).
venv_for() {
    local py=$1 dir=$2 me want have
    me=$(basename "$0")
    want=$("$py" -c 'import os, sys; print(os.path.realpath(sys.executable))') \
        || { echo "$me: $py does not run" >&2; return 1; }
    "$py" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || { echo "$me: $py has no C headers (Python.h) to build vnetshare with" >&2; return 1; }
    if [ -e "$dir/pyvenv.cfg" ]; then
        have=$("$dir/bin/python" -c 'import os, sys, sysconfig
assert os.path.isdir(sysconfig.get_path("purelib"))
print(os.path.realpath(sys.executable))' 2>/dev/null) || have=
        [ "$have" != "$want" ] || return 0
        echo "$me: $dir was made by another Python (${have:-its interpreter finds no packages}):" \
             "making it again with $want"
        "$py" -m venv --clear "$dir"
    elif [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
        echo "$me: $dir is not a virtual environment and not empty: refusing to install there" >&2
        return 1
    else
        "$py" -m venv "$dir"
    fi
}

# scripts/test.sh's environment: vnetshare installed editable from this tree
# with its test extras, made by the python3 on PATH. .ci/run and the README
# run the benchmark with its interpreter.
TEST_VENV=build/venv

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
# (root without CAP_SYS_RESOURCE, hybrid cgroups, PID 1 not systemd), its
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

# cli_files PREFIX DATADIR: copy the man page and the bash and zsh completion
# scripts that the package installed into the environment PREFIX (setup.py
# generates them from the parser at build time: vnetshare/frontends/clidoc.py)
# to DATADIR (/usr/local/share), where man and the shells look:
# man/man1/vnetshare.1, bash-completion/completions/vnetshare,
# zsh/site-functions/_vnetshare. Each is written whole, then moved in place;
# a file the environment lacks fails the install.
cli_files() {
    local prefix=$1 datadir=$2 rel dest
    for rel in man/man1/vnetshare.1 bash-completion/completions/vnetshare zsh/site-functions/_vnetshare; do
        dest=$datadir/$rel
        mkdir -p "$(dirname "$dest")"
        cp "$prefix/share/$rel" "$dest.tmp"
        chmod 0644 "$dest.tmp"
        mv -f "$dest.tmp" "$dest"
    done
}
