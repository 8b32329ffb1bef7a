#!/usr/bin/env bash
# What can be checked of the minimum supported Rust version (`rust-version`
# in Cargo.toml) with only the machine's one, newer toolchain, offline:
#   1. no dependency in Cargo.lock declares a `rust-version` above ours
#      (read from `cargo metadata`);
#   2. no std API newer than ours is used: clippy's `incompatible_msrv`
#      lint, which reads `rust-version`, is on (workspace lints) and runs
#      in scripts/test's `cargo clippy -D warnings`; this script runs it
#      alone when called with --clippy.
# NOT checked: language features and Cargo features newer than
# `rust-version` (syntax, lints, manifest keys) and compiler bugs fixed
# since: only building with that toolchain would tell, and none other than
# the machine's can be installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[ -n "$msrv" ] || { echo "no rust-version in Cargo.toml" >&2; exit 1; }

host=$(rustc -vV | sed -n 's/^host: //p')
cargo metadata --format-version 1 --locked --filter-platform "$host" |
    python3 -c '
import json, sys
def v(s):
    parts = [int(x) for x in s.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))
msrv = sys.argv[1]
meta = json.load(sys.stdin)
used = {n["id"] for n in meta["resolve"]["nodes"]}
bad = [
    "%s %s needs Rust %s" % (p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p["id"] in used and p.get("rust_version") and v(p["rust_version"]) > v(msrv)
]
if bad:
    print("packages that need a Rust newer than rust-version %s:" % msrv, *bad, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print("rust-version %s: no crate in the build (%d on %s) declares a newer one" % (msrv, len(used), sys.argv[2]))
' "$msrv" "$host"

if [ "${1:-}" = "--clippy" ]; then
    cargo clippy --workspace --all-targets --locked -- -D warnings -A clippy::all -D clippy::incompatible_msrv
fi
