#!/usr/bin/env bash
# image.sh - a Debian root file system as a tarball, built without a registry
#
#   ./scripts/image.sh NAME PACKAGE[,PACKAGE...]      (as root; needs mmdebstrap)
#
# Builds `mmdebstrap --variant=minbase --include=PACKAGES bookworm` into
# build/images/NAME-KEY.tar, where KEY is a hash of what decides the content
# (the suite, the variant, the sorted package list and this script), and
# prints that path as the last line. A tarball with that key already there
# is reused, so a second run costs nothing; older tarballs of NAME are
# removed. `podman import PATH NAME` turns it into an image, and `podman
# save` of that into something `ctr images import` takes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
    echo "usage: $0 NAME PACKAGE[,PACKAGE...]" >&2
    exit 2
fi
name=$1
packages=$(tr ',' '\n' <<<"$2" | sed '/^$/d' | sort -u | paste -sd, -)
suite=bookworm
variant=minbase
key=$( { echo "$suite $variant $packages"; cat "$0"; } | sha256sum | cut -c1-16)
dir=build/images
out="$dir/$name-$key.tar"
mkdir -p "$dir"
if [ ! -s "$out" ]; then
    command -v mmdebstrap >/dev/null || { echo "image.sh: mmdebstrap is not installed" >&2; exit 1; }
    tmp="$out.part.$$"
    trap 'rm -f "$tmp"' EXIT
    echo "image.sh: building $out ($packages)" >&2
    mmdebstrap --quiet --variant="$variant" --include="$packages" \
        --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
        --format=tar "$suite" "$tmp" >&2
    mv "$tmp" "$out"
    trap - EXIT
    find "$dir" -maxdepth 1 -name "$name-*.tar" ! -path "$out" -delete
fi
echo "$out"
