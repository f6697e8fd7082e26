#!/usr/bin/env bash
# test-in-container.sh - the README's commands inside a privileged container
#
#   ./scripts/test-in-container.sh [pytest args]     (as root)
#   ./scripts/test-in-container.sh --setup [SUITE]   (as root; SUITE: bookworm, the default, or trixie)
#
# Runs `./scripts/test.sh -m "not runtime" [pytest args]` in `podman run
# --privileged --network none` on a copy of the working tree, and exits
# with its status. The image is Debian 12 built from Debian's packages
# without a registry (scripts/image.sh, cached in build/images/ under a
# key of its package list), so scripts/test.sh finds every command it needs
# and installs nothing with apt. The Python wheels are prepared on the host
# (scripts/wheels.sh --test build/wheels) and mounted read-only at /wheels:
# inside, pip takes everything from there (PIP_NO_INDEX=1) into test.sh's
# virtual environment, made by Debian's python3, and nothing needs the
# network. Tests marked `runtime` drive podman or containerd
# themselves; nested runtimes are out of scope here, they run on the host.
#
# With --setup it runs the README's first command, `./scripts/setup.sh &&
# vnetshare lab demo`, on a minimal Debian (mmdebstrap's minbase of SUITE,
# and git: it is a clone) that has no Python at all, and then checks that
# the system's python3 got neither pip nor vnetshare. setup.sh's own path,
# apt-get included: the image holds, downloaded but not installed, the
# packages setup.sh will ask for (lib.sh's RUN_NEEDS and Debian's
# python3, python3-venv, python3-dev) with apt's lists (image.sh
# --download), so its apt-get runs as on a machine with a network, but for
# the download. vnetshare's Python dependencies, which a real host gets from
# PyPI, come from a wheelhouse made on the host: the published wheels of
# pyproject.toml's build and run requirements for the image's Python
# (scripts/wheels.sh --python X.Y, X.Y read from the image's python3
# package), nothing else, mounted read-only at /wheels.
#
# The copy holds what a fresh clone would, plus files not yet added
# (git ls-files -co --exclude-standard), made a git repository again for
# tests that ask git; the run writes only there, never into this tree
# (build/images and build/wheels* here are the caches it reads).
# Podman runs inside scripts/sandbox.sh (the script calls itself there
# with --in-sandbox), with its configuration, storage (a tmpfs), locks and
# state in a temporary directory and its container under a cgroup of its
# own; the container, the storage, the directory and the cgroups are
# removed at the end, also on failure, Ctrl-C or TERM (which stop pytest as
# Ctrl-C does, so its teardowns run). Importing the image into a fresh
# store takes about 10 s of a 5 minute run: not worth keeping a store.
#
# Environment: VNETSHARE_CT_KEEP=1 keeps the temporary directory (the
# copy, with the run's build/ and logs) and prints where it is.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root "test-in-container.sh: must run as root: podman and the tests need it" "$@"

# The suite's image holds every package scripts/test.sh would install
# (lib.sh's RUN_NEEDS and TEST_NEEDS, so the two never drift apart) and the
# distribution's Python with venv and its headers, which test.sh's
# environment is made with.
PACKAGES=$(debs RUN_NEEDS TEST_NEEDS | paste -sd, -),${DEBIAN_PYTHON_DEBS// /,}
# --setup: what runs in its container (bash -c), from the clone's copy
SETUP_CHECK='set -e
if command -v python3 >/dev/null; then echo "the image has a python3 already" >&2; exit 1; fi
./scripts/setup.sh
vnetshare lab demo
if python3 -m pip --version >/dev/null 2>&1; then echo "the system python3 has pip now" >&2; exit 1; fi
if (cd / && python3 -P -c "import vnetshare") 2>/dev/null; then
    echo "the system python3 imports vnetshare" >&2; exit 1
fi
echo "setup.sh && vnetshare lab demo passed on Debian $(cat /etc/debian_version), $(python3 -V);" \
     "the system python3 has neither pip nor vnetshare"'

# --- inside scripts/sandbox.sh (fresh network and mount namespaces) ----------
if [ "${1:-}" = --in-sandbox ]; then
    mode=$2 name=$3 tmp=$4 tarball=$5 wheels=$6
    shift 6
    podman_private "$tmp"
    export TMPDIR=$tmp/tmp
    cgroup=vnetshare-test-$$
    container=vnetshare-test-$$
    cleanup_inside() {
        podman rm -f -t 0 "$container" >/dev/null 2>&1 || true
        # the container's and conmon's cgroups, under the parent given below
        find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name "$cgroup" 2>/dev/null |
            while read -r dir; do
                find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
            done
        leftover=$(find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name "$cgroup" 2>/dev/null)
        [ -z "$leftover" ] || echo "test-in-container.sh: cgroups left behind: $leftover" >&2
    }
    trap cleanup_inside EXIT
    # A signal (the host side forwards Ctrl-C and TERM as TERM) stops the
    # container with SIGINT, as Ctrl-C stops pytest, so the tests' own
    # cleanup runs; podman kills it if it has not ended 30 s later.
    stopping=
    stop_container() {
        stopping=1
        podman stop -t 30 "$container" >/dev/null 2>&1 || true
    }
    trap stop_container INT TERM
    image=$name:$(basename "$tarball" .tar | sed "s/^$name-//")
    start=$SECONDS
    podman import -q "$tarball" "$image" >/dev/null
    echo "test-in-container.sh: image $image imported in $((SECONDS - start)) s" \
         "($(podman image inspect -f '{{.Size}}' "$image" | awk '{ printf "%d MB", $1 / 1e6 }'))"
    [ -z "$stopping" ] || exit 130
    if [ "$mode" = setup ]; then
        command=(bash -c "$SETUP_CHECK")
    else
        command=(./scripts/test.sh -m "not runtime" "$@")
    fi
    podman run --name "$container" --rm --privileged --network none \
        --cgroup-parent "/$cgroup" --pull never --systemd false --stop-signal SIGINT \
        -v "$tmp/src:/src" -v "$wheels:/wheels:ro" -w /src \
        -e PIP_NO_INDEX=1 -e PIP_FIND_LINKS=/wheels \
        -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_ROOT_USER_ACTION=ignore \
        -e VNETSHARE_IMAGE=unused -e VNETSHARE_SYSTEMD_IMAGE=unused \
        "$image" "${command[@]}" &
    run=$!
    while :; do  # a trapped signal ends `wait` early; wait again until it exits
        rc=0
        wait "$run" || rc=$?
        kill -0 "$run" 2>/dev/null || break
    done
    exit "$rc"
fi

# --- on the host ------------------------------------------------------------
start=$SECONDS
if [ "${1:-}" = --setup ]; then
    mode=setup suite=${2:-bookworm}
    set --
    name=vnetshare-setup-$suite
    tarball=$(./scripts/image.sh --suite "$suite" \
        --download "$(debs RUN_NEEDS | paste -sd, -),${DEBIAN_PYTHON_DEBS// /,}" "$name" git | tail -n 1)
    python=$(tar -tf "$tarball" | sed -n 's|.*/python\(3\.[0-9]*\)-minimal_.*\.deb$|\1|p' | sort -u)
    if [ -z "$python" ] || [ "$(wc -l <<<"$python")" != 1 ]; then
        echo "test-in-container.sh: no one python3.X-minimal package among $tarball's downloads" >&2
        exit 1
    fi
    wheels=$(./scripts/wheels.sh --python "$python" "build/wheels-py$python" | tail -n 1)
else
    mode=test name=vnetshare-test
    tarball=$(./scripts/image.sh "$name" "$PACKAGES" | tail -n 1)
    wheels=$(./scripts/wheels.sh --test build/wheels | tail -n 1)
fi
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/vnetshare-ctest.XXXXXX")
cleanup() {
    if [ "${VNETSHARE_CT_KEEP:-}" = 1 ]; then
        echo "test-in-container.sh: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$tmp/src" "$tmp/storage" "$tmp/tmp" "$tmp/cni"

copy_tree "$tmp/src"
git -C "$tmp/src" init -q
git -C "$tmp/src" add -A
podman_conf "$tmp" /run/vnetshare-test-storage "$tmp/cni"

echo "test-in-container.sh: $(basename "$tarball"), wheels from $wheels, tree copied to $tmp/src"
# In the background, so that a signal reaches this shell at once; it is
# passed on as TERM (a background job ignores SIGINT).
./scripts/sandbox.sh "$0" --in-sandbox "$mode" "$name" "$tmp" "$(pwd)/$tarball" "$(pwd)/$wheels" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' INT TERM
while :; do
    rc=0
    wait "$child" || rc=$?
    kill -0 "$child" 2>/dev/null || break
done
echo "test-in-container.sh: exit $rc after $((SECONDS - start)) s"
exit "$rc"
