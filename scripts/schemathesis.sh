#!/usr/bin/env bash
# Third-party conformance: schemathesis (pinned in .venv by
# scripts/setup-tools.sh) against the built server on the embedded store.
#   1. the server's own document (/openapi/openapi-spec.json), positive and
#      negative data, every check that applies (see CHECKS_OWN);
#   2. the original service's document (../shared/seed/original-openapi.json,
#      or its copy crates/http/tests/original-openapi.json), positive data,
#      narrowed to the differences written in README.md ("Differences from the
#      original service") by scripts/schemathesis/original_hooks.py.
# Each run gets a fresh server and data directory. Exits non-zero on any
# failure or error.
# Usage: scripts/schemathesis.sh
#   EVENT_STORE_BIN      the binary (default $CARGO_TARGET_DIR/debug/event-store)
#   SCHEMATHESIS_EXAMPLES  test cases per operation and phase (default 25)
#   SCHEMATHESIS_SEED    the seed (default fixed, so a run is reproducible);
#                        "random" lets schemathesis pick one (it prints it)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ST="$ROOT/.venv/bin/schemathesis"
BIN="${EVENT_STORE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/event-store}"
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-25}"
SEED="${SCHEMATHESIS_SEED:-20250301}"
ORIGINAL="$ROOT/../shared/seed/original-openapi.json"
[ -f "$ORIGINAL" ] || ORIGINAL="$ROOT/crates/http/tests/original-openapi.json"

[ -x "$ST" ] || { echo "schemathesis not in .venv: run scripts/setup-tools.sh python" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no binary at $BIN: cargo build -p eventstore-cli" >&2; exit 1; }

WORK="$(mktemp -d)"
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

# Starts the binary on a fresh data directory and port 0; sets URL.
start_server() {
    local name="$1"
    mkdir -p "$WORK/$name"
    "$BIN" serve --port 0 --data-dir "$WORK/$name/data" --log-level warn \
        >"$WORK/$name/stdout" 2>"$WORK/$name/server.log" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        URL="$(sed -n 's/^listening on //p' "$WORK/$name/stdout" | head -n1)"
        [ -n "$URL" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "the server did not start:" >&2
    cat "$WORK/$name/server.log" >&2
    exit 1
}

common=(--max-examples "$EXAMPLES" --generation-database none --no-color
    --request-timeout 10 --suppress-health-check all --output-truncate true)
[ "$SEED" = random ] || common+=(--seed "$SEED")

# Checks that do not apply: ignored_auth and object_level_authorization
# (the server runs without API keys here; auth has its own Rust tests),
# max_response_time (no budget set).
CHECKS_OWN="not_a_server_error,status_code_conformance,content_type_conformance"
CHECKS_OWN+=",response_headers_conformance,response_schema_conformance"
CHECKS_OWN+=",negative_data_rejection,positive_data_acceptance,missing_required_header"
CHECKS_OWN+=",unsupported_method,allow_header_conformance,ensure_resource_availability"
CHECKS_OWN+=",use_after_free"

CHECKS_ORIGINAL="not_a_server_error,status_code_conformance,content_type_conformance"
CHECKS_ORIGINAL+=",response_schema_conformance,positive_data_acceptance,ensure_resource_availability"

export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in scripts/schemathesis
status=0
cd "$WORK" # schemathesis writes nothing into the checkout

echo "--- schemathesis: the server's own document (positive and negative data)"
start_server own
PYTHONPATH="$ROOT/scripts/schemathesis" SCHEMATHESIS_HOOKS=own_hooks \
    "$ST" --config-file "$ROOT/scripts/schemathesis/schemathesis.toml" run "$URL/openapi/openapi-spec.json" --mode all --checks "$CHECKS_OWN" "${common[@]}" ||
    status=1
stop_server

echo "--- schemathesis: the original service's document (positive data)"
start_server original
PYTHONPATH="$ROOT/scripts/schemathesis" SCHEMATHESIS_HOOKS=original_hooks \
    "$ST" --config-file "$ROOT/scripts/schemathesis/schemathesis.toml" run "$ORIGINAL" --url "$URL" --mode positive --checks "$CHECKS_ORIGINAL" "${common[@]}" ||
    status=1
stop_server

if [ "$status" -ne 0 ]; then
    echo "schemathesis found failures (server logs were in $WORK, now removed)" >&2
fi
exit "$status"
