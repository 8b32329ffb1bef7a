#!/usr/bin/env bash
# Appends/s with and without N idle long polls held on a quiet stream type:
# the release binary with the embedded store, a fresh data directory per
# run, `event-store bench --idle-long-polls` as the load (figures in
# docs/benchmarks.md). Usage: scripts/bench-long-polls.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
polls=${1:-1000}
runs=${2:-3}
port=${PORT:-18090}
bin=target/release/event-store
[ -x "$bin" ] || cargo build --release -p eventstore-cli
echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$runs"); do
  for idle in 0 "$polls"; do
    dir=$(mktemp -d)
    "$bin" serve --port "$port" --data-dir "$dir/data" \
      --max-connections $((polls + 512)) --max-long-polls $((polls + 64)) \
      >"$dir/stdout" 2>"$dir/stderr" &
    pid=$!
    until curl -sf "http://127.0.0.1:$port/readiness-check" >/dev/null; do sleep 0.1; done
    echo "## run $run, idle long polls: $idle, load: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$bin" bench --url "http://127.0.0.1:$port" --scenarios single,concurrent \
      --idle-long-polls "$idle" --json
    kill -TERM "$pid"
    wait "$pid"
    rm -rf "$dir"
  done
done
