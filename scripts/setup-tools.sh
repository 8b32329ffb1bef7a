#!/usr/bin/env bash
# Installs the pinned tools of the serverless workflow, all inside the project:
#   .venv (Python virtualenv, shared with scripts/moto/setup.sh):
#     cfn-lint      lints the synthesized CloudFormation template
#     cargo-lambda  builds the Lambda zips (`cargo lambda build`) and emulates
#                   the Lambda Runtime API (`cargo lambda watch`)
#     ziglang       the cross linker cargo-lambda uses (found as `python -m ziglang`)
#     rust-just     the `just` command runner
#     schemathesis  property-based API tests from the OpenAPI documents
#                   (scripts/schemathesis.sh)
#   _infrastructure/aws-event-store/node_modules: aws-cdk-lib, the aws-cdk CLI,
#     TypeScript and tsx, exactly as package-lock.json says (`npm ci`).
# Usage: scripts/setup-tools.sh [python|cdk]...   (no argument: everything)
# Idempotent: a second run only checks the versions. Put `.venv/bin` on PATH
# (or use `just`, which does) to get `cargo lambda`, `just` and `cfn-lint`.
set -euo pipefail

CFN_LINT_VERSION="1.58.0"
CARGO_LAMBDA_VERSION="1.9.2"
ZIGLANG_VERSION="0.14.1"
JUST_VERSION="1.59.0"
SCHEMATHESIS_VERSION="4.32.5"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
CDK_APP="$ROOT/_infrastructure/aws-event-store"

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(python cdk)

setup_python() {
    local want=("cfn-lint==$CFN_LINT_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION"
        "ziglang==$ZIGLANG_VERSION" "rust-just==$JUST_VERSION"
        "schemathesis==$SCHEMATHESIS_VERSION")
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    local have
    have="$("$VENV/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null || true)"
    local missing=()
    for spec in "${want[@]}"; do
        grep -qixF "$spec" <<<"$have" || missing+=("$spec")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing into $VENV: ${missing[*]}" >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
    fi
}

setup_cdk() {
    command -v npm >/dev/null || { echo "npm not found: install Node.js 20 or newer" >&2; exit 1; }
    # npm ci only when node_modules is absent or older than the lock file.
    if [ ! -f "$CDK_APP/node_modules/.package-lock.json" ] ||
        [ "$CDK_APP/package-lock.json" -nt "$CDK_APP/node_modules/.package-lock.json" ]; then
        echo "npm ci in $CDK_APP" >&2
        (cd "$CDK_APP" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

for part in "${parts[@]}"; do
    case "$part" in
        python) setup_python ;;
        cdk) setup_cdk ;;
        *) echo "unknown part: $part (python | cdk)" >&2; exit 2 ;;
    esac
done
