#!/usr/bin/env bash
# Runs the browser tests of the web UI against the real server binary.
# Installs what is missing: Debian's chromium (apt) and the npm packages
# (npm ci, from package-lock.json).
#
# Usage: tests/browser/run.sh [--screenshots] [path/to/event-store]
#   The binary: the argument, else $EVENT_STORE_BIN, else
#   $CARGO_TARGET_DIR/debug/event-store, else target/debug/event-store.
#   --screenshots  writes the screenshots to docs/screenshots/ (else a temp dir).
# Exits non-zero when a test fails or something cannot be installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

while [ $# -gt 0 ]; do
  case "$1" in
    --screenshots) export SCREENSHOT_DIR="$root/docs/screenshots"; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) export EVENT_STORE_BIN="$1"; shift ;;
  esac
done

if [ -z "${EVENT_STORE_BIN:-}" ]; then
  target=${CARGO_TARGET_DIR:-$root/target}
  case "$target" in /*) ;; *) target="$root/$target" ;; esac
  export EVENT_STORE_BIN="$target/debug/event-store"
fi
if [ ! -x "$EVENT_STORE_BIN" ]; then
  echo "error: no server binary at $EVENT_STORE_BIN (build it with: cargo build -p eventstore-cli)" >&2
  exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing chromium (apt)"
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q chromium
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "==> installing node and npm (apt)"
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q nodejs npm
fi

cd "$here"
if ! node -e "require('playwright-core/package.json')" 2>/dev/null \
  || [ "$(node -p "require('playwright-core/package.json').version")" != "$(node -p "require('./package.json').devDependencies['playwright-core']")" ]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund
fi

echo "==> browser tests against $EVENT_STORE_BIN"
exec node --test --test-concurrency=1 --test-reporter=spec ui.test.mjs
