#!/usr/bin/env bash
# Creates the project-local virtualenv `.venv` (gitignored) with the AWS
# emulator used by the DynamoDB/SNS/SQS tests, unless it is already there.
# Idempotent: a second run does nothing but check the pinned version.
set -euo pipefail

MOTO_VERSION="5.2.5"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"

if [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c "import moto, sys; sys.exit(0 if moto.__version__ == '$MOTO_VERSION' else 1)" 2>/dev/null; then
    exit 0
fi

echo "setting up $VENV with moto[server]==$MOTO_VERSION" >&2
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
"$VENV/bin/python" -c "import moto; print('moto', moto.__version__, 'ready in $VENV')" >&2
