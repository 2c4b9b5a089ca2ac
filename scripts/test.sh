#!/usr/bin/env bash
# Install what the tests need (openssh-server, postgresql, chromium, faketime, the Python
# packages: scripts/install-test-deps.sh) and run the gates and the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
PY=.venv/bin/python
"$PY" -m ruff check gateway tests benchmarks
"$PY" -m mypy
# pytest exits 5 when it collects no test: that is a failure here, like any non-zero exit.
"$PY" -m pytest -q -p no:cacheprovider "$@"
