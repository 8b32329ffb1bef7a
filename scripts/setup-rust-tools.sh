#!/usr/bin/env bash
# Installs the pinned cargo tools of the hygiene checks in scripts/test:
#   cargo-machete  finds dependencies a crate declares and never uses
#   cargo-hack     checks every combination of the client's features
# Each goes into its own versioned folder under a cache that outlives a
# clone ($EVENTSTORE_TOOLS, default ~/.cache/eventstore-tools), so a fresh
# clone on the same machine reuses it and a version bump installs beside it.
# Building them from crates.io takes a few minutes on two cores, once.
# Usage: scripts/setup-rust-tools.sh   (prints nothing when all are there)
# Afterwards: "$(scripts/setup-rust-tools.sh --bin cargo-machete)" is the binary.
set -euo pipefail

CARGO_MACHETE_VERSION="0.9.2"
CARGO_HACK_VERSION="0.6.46"

TOOLS="${EVENTSTORE_TOOLS:-$HOME/.cache/eventstore-tools}"

version_of() {
    case "$1" in
        cargo-machete) echo "$CARGO_MACHETE_VERSION" ;;
        cargo-hack) echo "$CARGO_HACK_VERSION" ;;
        *) echo "unknown tool: $1" >&2; exit 2 ;;
    esac
}

bin_of() { echo "$TOOLS/$1-$(version_of "$1")/bin/$1"; }

install_one() {
    local name="$1" version bin
    version="$(version_of "$name")"
    bin="$(bin_of "$name")"
    [ -x "$bin" ] && return 0
    echo "installing $name $version into $TOOLS (a few minutes, once)" >&2
    # Not into the project's target directory: cargo install builds in a
    # temporary one unless CARGO_TARGET_DIR says otherwise.
    env -u CARGO_TARGET_DIR cargo install --quiet --locked \
        --root "$TOOLS/$name-$version" "$name@$version" >&2
}

if [ "${1:-}" = "--bin" ]; then
    install_one "$2"
    bin_of "$2"
    exit 0
fi

for tool in cargo-machete cargo-hack; do
    install_one "$tool"
done
