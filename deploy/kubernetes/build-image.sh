#!/usr/bin/env bash
# build-image.sh - the vnetshare node image as a tarball, built without a registry
#
#   deploy/kubernetes/build-image.sh [OUT]     (as root; default build/images/vnetshare-VERSION.image.tar)
#
# Makes localhost/vnetshare:VERSION (VERSION from pyproject.toml) and saves it
# with `podman save` to OUT, which each node imports into the namespace the
# kubelet's containerd uses:
#
#   ctr -n k8s.io images import vnetshare-0.1.0.image.tar
#
# (CRI-O: `podman load -i OUT` on the node.) The DaemonSet names the image
# with imagePullPolicy: Never, so a node without it says ErrImageNeverPull.
#
# 1. Wheels of vnetshare's build and run dependencies (pyproject.toml) for
#    the image's Python, CPython 3.11 of Debian 12, whatever Python runs this
#    script: `pip download` with explicit tags, on the host (the network).
# 2. Two Debian 12 root file systems by scripts/image.sh (cached in
#    build/images/): one to build vnetshare's wheel (gcc, Python headers),
#    one to run it (python3, iproute2).
# 3. Inside scripts/sandbox.sh (no network), podman with its configuration,
#    storage (a tmpfs) and state in a temporary directory: `podman import`
#    both, `podman build` the Containerfile beside this script (this tree,
#    as a fresh clone has it plus files not yet added, in the build
#    context), `podman save`. The temporary directory, the images in it and
#    the build's cgroups are removed at the end, also on failure.
#
# Environment: VNETSHARE_TRACE=1 shows the sandboxed half's commands (set -x).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
if [ "$(id -u)" != 0 ]; then
    echo "build-image.sh: must run as root: mmdebstrap and podman need it" >&2
    exit 1
fi
here=deploy/kubernetes

# --- inside scripts/sandbox.sh (fresh network and mount namespaces) ----------
if [ "${1:-}" = --in-sandbox ]; then
    [ -z "${VNETSHARE_TRACE:-}" ] || set -x
    tmp=$2 build_tar=$3 base_tar=$4 image=$5 out=$6
    podman_private "$tmp"
    export TMPDIR=$tmp/tmp
    cgroup=vnetshare-image-$$
    cleanup_inside() {
        find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name "$cgroup" 2>/dev/null |
            while read -r dir; do
                find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
            done
    }
    trap cleanup_inside EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    podman import -q "$build_tar" localhost/vnetshare-node-build:latest >/dev/null
    podman import -q "$base_tar" localhost/vnetshare-node-base:latest >/dev/null
    podman build -q --network=none --pull=never --cgroup-parent "/$cgroup" \
        -f "$here/Containerfile" -t "$image" "$tmp/context" >/dev/null
    podman save -q --format docker-archive -o "$out.part" "$image"
    mv "$out.part" "$out"
    podman image inspect -f '{{.Id}} {{.Size}}' "$image" |
        awk -v img="$image" '{ printf "build-image.sh: %s is %.12s, %d MB\n", img, $1, $2 / 1e6 }'
    exit 0
fi

# --- on the host ------------------------------------------------------------
version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
image=localhost/vnetshare:$version
out=$(realpath -m "${1:-build/images/vnetshare-$version.image.tar}")
mkdir -p "$(dirname "$out")"
build_tar=$(./scripts/image.sh vnetshare-node-build python3,python3-pip,python3-dev,gcc,libc6-dev | tail -n 1)
base_tar=$(./scripts/image.sh vnetshare-node-base python3,python3-pip,iproute2 | tail -n 1)

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/vnetshare-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$tmp/storage" "$tmp/tmp" "$tmp/context/src" "$tmp/context/wheels"

# 1. wheels for CPython 3.11 on this machine's architecture, glibc 2.36
arch=$(uname -m)
platforms=(--platform "manylinux2014_$arch")
for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
mapfile -t reqs < <(python3 - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    p = tomllib.load(f)
print("\n".join(dict.fromkeys(p["build-system"]["requires"] + p["project"]["dependencies"])))
PY
)
python3 -m pip download -q --disable-pip-version-check --only-binary=:all: \
    --python-version 3.11 --implementation cp "${platforms[@]}" \
    -d "$tmp/context/wheels" "${reqs[@]}" 2>&1 | { grep -v -e "^WARNING: Location .* is ignored" -e "^WARNING: Running pip as" >&2 || true; }
[ -n "$(ls "$tmp/context/wheels"/cffi-*.whl 2>/dev/null)" ] || { echo "build-image.sh: no cffi wheel downloaded" >&2; exit 1; }

# 2. this tree as a fresh clone has it, plus files not yet added
copy_tree "$tmp/context/src"
podman_conf "$tmp" /run/vnetshare-image-storage

./scripts/sandbox.sh "$here/build-image.sh" --in-sandbox "$tmp" "$(pwd)/$build_tar" "$(pwd)/$base_tar" "$image" "$out"
echo "build-image.sh: wrote $out; on each node: ctr -n k8s.io images import $(basename "$out")"
echo "$out"
