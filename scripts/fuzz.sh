#!/usr/bin/env bash
# Runs the fuzz targets of crates/fuzz for longer than scripts/test does.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 60)
#   TARGET   embedded_log dynamodb_codec json_bodies page_keys http_router
#            (default: all, one after the other)
# Runs the test build scripts/test already made (debug assertions and
# overflow checks on, no rebuild); FUZZ_PROFILE=release builds the targets
# optimized first (minutes, once), for several times the inputs per second.
# FUZZ_SEED=N repeats a run; a crash stops the run,
# prints the seed and the input, and saves the input under
# target/fuzz-crashes/TARGET/, where FUZZ_REPLAY=FILE replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] &&
    targets=(embedded_log dynamodb_codec json_bodies page_keys http_router)

profile=()
if [ "${FUZZ_PROFILE:-}" = release ]; then
    # Optimized, but with the checks of a debug build kept.
    export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
    export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
    profile=(--release)
fi
export FUZZ_SECONDS="$seconds"
for t in "${targets[@]}"; do
    echo "==> fuzzing $t for ${seconds}s" >&2
    cargo test "${profile[@]}" --locked -p eventstore-fuzz --test fuzz -- \
        --exact "$t" --nocapture
done
