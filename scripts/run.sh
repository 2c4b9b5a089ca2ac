#!/usr/bin/env bash
# The README's first command: install the gateway into ./.venv and run the daemon on the
# embedded defaults (./inbox, ./outbox, SQLite in ./var). Extra arguments go to `run`
# (e.g. --config config/gateway.toml).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
"$PY" -m pip install -q --disable-pip-version-check -e .
exec "$ROOT/.venv/bin/dit-gateway" run "$@"
