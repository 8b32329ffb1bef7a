#!/usr/bin/env bash
# Benchmarks `event-store serve --backend dynamodb --relay` on the AWS
# emulator (moto): per scenario a fresh table and server, `event-store bench`
# against it, then the server's `--cost-report` (DynamoDB requests and
# WCU/RCU computed from item sizes) divided per 1,000 events.
#
# Usage: scripts/bench-dynamodb.sh [path/to/event-store]
#   (default: target/release/event-store; build it with
#   `cargo build --release -p eventstore-cli`)
# Counts: SINGLE (appends), CONCURRENT (appends), BATCHES (of 10), CLIENTS;
# PAYLOAD: bytes of each event's payload (bench's --payload-bytes).
# Needs .venv with moto (scripts/moto/setup.sh) and jq.
#
# moto serves one request at a time behind a global lock: the throughput
# printed is moto's, not DynamoDB's. The request counts and capacity units
# are the design's, whatever the emulator's speed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-${CARGO_TARGET_DIR:-$ROOT/target}/release/event-store}"
SINGLE="${SINGLE:-300}"
CONCURRENT="${CONCURRENT:-1000}"
BATCHES="${BATCHES:-200}"
CLIENTS="${CLIENTS:-16}"
PAYLOAD="${PAYLOAD:-100}"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 1; }
"$ROOT/scripts/moto/setup.sh"

WORK="$(mktemp -d)"
"$ROOT/.venv/bin/python" "$ROOT/scripts/moto/server.py" 0 \
    </dev/null >"$WORK/moto.out" 2>/dev/null &
MOTO=$!
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
    kill "$MOTO" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q '^port=' "$WORK/moto.out" && break; sleep 0.1; done
PORT="$(sed -n 's/^port=//p' "$WORK/moto.out")"

export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
unset EVENT_STORE_BACKEND EVENT_STORE_TABLE EVENT_STORE_RELAY EVENT_STORE_PORT

# scenario name, events it writes, bench arguments
run() {
    local name="$1" events="$2"
    shift 2
    local table="bench-$name-$RANDOM$RANDOM"
    "$BIN" dynamodb create-table "$table" >/dev/null
    "$BIN" serve --backend dynamodb --table "$table" --relay --cost-report --port 0 \
        >"$WORK/$name.out" 2>"$WORK/$name.log" &
    SERVER=$!
    for _ in $(seq 200); do grep -qs '^listening on ' "$WORK/$name.out" && break; sleep 0.1; done
    local url
    url="$(sed -n 's/^listening on //p' "$WORK/$name.out")"
    "$BIN" bench --url "$url" --payload-bytes "$PAYLOAD" "$@" --json >"$WORK/$name.bench"
    kill -TERM "$SERVER"
    wait "$SERVER"
    SERVER=""
    local api relay
    api="$(grep '"costReport":"api"' "$WORK/$name.out")"
    relay="$(grep '"costReport":"relay"' "$WORK/$name.out")"
    jq -nr --argjson b "$(cat "$WORK/$name.bench")" --argjson a "$api" --argjson r "$relay" \
        --arg name "$name" --argjson n "$events" '
        def k: . * 1000 / $n | round;
        def ops(x): x.byOperation | to_entries | map("\(.key) \(.value * 1000 / $n | round)") | join(", ");
        "| \($name) | \($b.events) | \($b.eventsPerSecond | round) | \($b.p50Ms * 10 | round / 10) / \($b.p99Ms * 10 | round / 10) ms"
        + " | \($a.requests | k) + \($r.requests | k) | \($a.wcu | k) + \($r.wcu | k) | \($a.rcu | k) + \($r.rcu | k)"
        + " | \(($a.wcu + $r.wcu) / $n * 100 | round / 100) | \(ops($a)); relay: \(ops($r)) |"'
}

echo "| scenario | events | events/s (moto) | p50 / p99 | requests / 1000 events (API + relay) | WCU / 1000 events (API + relay) | RCU / 1000 events (API + relay) | WCU / event | requests by operation / 1000 events |"
echo "|---|---|---|---|---|---|---|---|---|"
run single "$SINGLE" --scenarios single --single-appends "$SINGLE"
# About 8 appends (3 batches) per stream, as in crates/dynamodb/tests/costs.rs.
run concurrent "$CONCURRENT" --scenarios concurrent --clients "$CLIENTS" \
    --concurrent-appends "$CONCURRENT" --streams "$((CONCURRENT / 8))"
run batch "$((BATCHES * 10))" --scenarios batch --clients "$CLIENTS" --batches "$BATCHES" \
    --streams "$((BATCHES / 3))"
