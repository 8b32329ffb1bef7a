#!/usr/bin/env bash
# Does scraping /metrics slow appends down? Runs `event-store bench
# --scenarios concurrent` twice against a fresh local server: once alone,
# once while a loop scrapes GET /metrics back to back, and prints both
# figures and the number of scrapes.
#
# Usage: scripts/scrape-bench.sh [path/to/event-store] (default: the release
# build, else $EVENT_STORE_BIN). CLIENTS and APPENDS set the load (32, 4000).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-${EVENT_STORE_BIN:-$root/target/release/event-store}}
CLIENTS=${CLIENTS:-32}
APPENDS=${APPENDS:-4000}
for mode in alone scraped; do
  dir=$(mktemp -d)
  "$BIN" serve --port 0 --data-dir "$dir/data" >"$dir/out" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$dir/out" 2>/dev/null && break; sleep 0.1; done
  url=$(grep -o 'http://[0-9.:]*' "$dir/out" | head -1)
  scraper=
  if [ "$mode" = scraped ]; then
    (n=0; while true; do curl -s -o /dev/null "$url/metrics"; n=$((n + 1)); echo "$n" >"$dir/scrapes"; done) &
    scraper=$!
  fi
  "$BIN" bench --url "$url" --scenarios concurrent --clients "$CLIENTS" --concurrent-appends "$APPENDS" 2>&1 |
    grep -E "events/s" | sed "s/^/$mode: /"
  if [ -n "$scraper" ]; then
    kill "$scraper"; wait "$scraper" 2>/dev/null || true
    echo "$mode: $(cat "$dir/scrapes") scrapes during the run"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
done
