#!/usr/bin/env bash
# image.sh - a Debian root file system as a tarball, built without a registry
#
#   ./scripts/image.sh [--suite SUITE] [--download PACKAGE[,...]] NAME PACKAGE[,PACKAGE...]
#                                                   (as root; needs mmdebstrap)
#
# Builds `mmdebstrap --variant=minbase --include=PACKAGES SUITE` (default
# bookworm, Debian 12) into build/images/NAME-KEY.tar, where KEY is a hash
# of what decides the content (the suite, the variant, the sorted package
# lists and this script), and prints that path as the last line. A tarball
# with that key already there is reused, so a second run costs nothing;
# older tarballs of NAME are removed. `podman import PATH NAME` turns it
# into an image, and `podman save` of that into something `ctr images
# import` takes.
#
# With --download, the image also holds the .deb files of those packages
# and what they depend on, downloaded but not installed, with apt's package
# lists: inside a container without network, `apt-get update` keeps the
# lists it has (and warns) and `apt-get install` of those packages takes
# them from apt's cache, as on a machine with a network
# (scripts/test-in-container.sh --setup).
set -euo pipefail
cd "$(dirname "$0")/.."
suite=bookworm
download=
while [ $# -gt 0 ]; do
    case $1 in
        --suite) suite=$2; shift 2 ;;
        --download) download=$(tr ',' '\n' <<<"$2" | sed '/^$/d' | sort -u | paste -sd, -); shift 2 ;;
        *) break ;;
    esac
done
if [ $# -ne 2 ]; then
    echo "usage: $0 [--suite SUITE] [--download PACKAGE[,...]] NAME PACKAGE[,PACKAGE...]" >&2
    exit 2
fi
name=$1
packages=$(tr ',' '\n' <<<"$2" | sed '/^$/d' | sort -u | paste -sd, -)
variant=minbase
key=$( { echo "$suite $variant $packages $download"; cat "$0"; } | sha256sum | cut -c1-16)
dir=build/images
out="$dir/$name-$key.tar"
mkdir -p "$dir"
if [ ! -s "$out" ]; then
    command -v mmdebstrap >/dev/null || { echo "image.sh: mmdebstrap is not installed" >&2; exit 1; }
    if [ -n "$download" ]; then
        hooks=(--skip=cleanup/apt --customize-hook='chroot "$1" apt-get clean'
               --customize-hook="chroot \"\$1\" apt-get install -y -qq --download-only \
                                 --no-install-recommends ${download//,/ }")
    else
        hooks=(--customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*')
    fi
    tmp="$out.part.$$"
    trap 'rm -f "$tmp"' EXIT
    echo "image.sh: building $out ($suite: $packages${download:+; downloaded: $download})" >&2
    mmdebstrap --quiet --variant="$variant" --include="$packages" "${hooks[@]}" \
        --format=tar "$suite" "$tmp" >&2
    mv "$tmp" "$out"
    trap - EXIT
    find "$dir" -maxdepth 1 -name "$name-*.tar" ! -path "$out" -delete
fi
echo "$out"
