#!/usr/bin/env bash
# Differential fuzzing through HTTP for as long as asked: random operation
# sequences against a backend and against the reference model (the router
# over MemoryStore) must agree (eventstore_testkit::difffuzz). The test
# command runs a bounded number of sequences per backend; this runs batches
# of new seeds for MINUTES on each backend named (default: embedded).
#
# Usage: scripts/difffuzz.sh MINUTES [embedded|dynamodb|lambda|all]
# A failure prints the minimal sequence and its seed; rerun it with
#   EVENT_STORE_DIFFFUZZ_SEED=<seed> EVENT_STORE_DIFFFUZZ_CASES=<n> scripts/difffuzz.sh 0 <backend>
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:?usage: scripts/difffuzz.sh MINUTES [embedded|dynamodb|lambda|all]}
which=${2:-embedded}
export EVENT_STORE_DIFFFUZZ_SECONDS=$((minutes * 60))
export EVENT_STORE_DIFFFUZZ_CASES=${EVENT_STORE_DIFFFUZZ_CASES:-16}

run() {
  case $1 in
    embedded) cargo test -p eventstore-cli --test contract -- --exact \
                difffuzz::embedded_agrees_with_the_reference_model --nocapture ;;
    dynamodb) scripts/moto/setup.sh >/dev/null
              cargo test -p eventstore-cli --test contract -- --exact \
                difffuzz::dynamodb_agrees_with_the_reference_model --nocapture ;;
    lambda)   scripts/moto/setup.sh >/dev/null
              scripts/setup-tools.sh python >/dev/null
              cargo test -p eventstore-lambda --test contract -- --exact \
                difffuzz_lambda_agrees_with_the_reference_model --nocapture ;;
    *) echo "unknown backend $1" >&2; exit 2 ;;
  esac
}

if [ "$which" = all ]; then
  for b in embedded dynamodb lambda; do run "$b"; done
else
  run "$which"
fi
