# lib.sh - the preamble scripts/setup.sh and scripts/test.sh share
#
#   . "$(dirname "$0")/lib.sh"              (sourced, not run)
#   need_root "NAME: must run as root: WHY" "$@"
#
# Sourcing it moves to the repository root, as the scripts expect to be.
# need_root re-executes the calling script through `sudo -E` with the given
# arguments when it is not run as root, or, without sudo, prints the message
# and exits 1.

# shellcheck shell=bash
cd "$(dirname "$0")/.."

need_root() {
    local why=$1
    shift
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null; then exec sudo -E "$0" "$@"; fi
        echo "$why" >&2
        exit 1
    fi
}
