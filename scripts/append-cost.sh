#!/usr/bin/env bash
# What one durable single-event append over HTTP costs the server: wrk
# drives POST /streams/account/s<1..10000>/events (expectedRevision any, one
# small event) against a fresh data directory, and the script reads the
# server's CPU time and context switches (all its threads) from /proc
# before and after. CPU time per append is far steadier than appends/s on
# a shared machine, where the disk's fdatasync latency swings tenfold.
# Figures in docs/benchmarks.md.
#
# Usage: scripts/append-cost.sh [BIN] [SECONDS] [CLIENTS...]
#   BIN defaults to target/release/event-store; CLIENTS to "1 64".
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/event-store}
secs=${2:-5}
shift $(($# > 2 ? 2 : $#))
clients=${*:-1 64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -x "$bin" ] || cargo build --release -p eventstore-cli

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
dir=$(mktemp -d)
"$bin" serve --bind 127.0.0.1 --port "$port" --data-dir "$dir/data" >"$dir/log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
until curl -sf "http://127.0.0.1:$port/readiness-check" >/dev/null; do sleep 0.05; done  # ready: the store is open
cat >"$dir/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local sid = "s" .. math.random(1, 10000)
  return wrk.format(nil, "/streams/account/" .. sid .. "/events", nil,
    '{"expectedRevision":"any","events":[{"eventType":"Deposited","payload":{"amount":10}}]}')
end
LUA
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
switches() { cat /proc/"$pid"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
hz=$(getconf CLK_TCK)
echo "# $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg), $bin"
for c in $clients; do
  t0=$(ticks) s0=$(switches)
  out=$(wrk -t$((c < 2 ? 1 : 2)) -c"$c" -d"${secs}s" --latency -s "$dir/post.lua" "http://127.0.0.1:$port/")
  t1=$(ticks) s1=$(switches)
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  echo "clients=$c appends/s=$(awk '/Requests\/sec/ {print int($2)}' <<<"$out")" \
    "p50=$(awk '/ 50%/ {print $2}' <<<"$out") p99=$(awk '/ 99%/ {print $2}' <<<"$out")" \
    "server_cpu_us_per_append=$(((t1 - t0) * 1000000 / hz / n))" \
    "context_switches_per_append=$(python3 -c "print(round(($s1 - $s0) / $n, 2))")" \
    "non2xx=${non2xx:-0}"
done
