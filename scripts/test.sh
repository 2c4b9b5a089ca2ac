#!/usr/bin/env bash
# Install what the tests need (openssh-server, Python packages) and run the gates and the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
python3 -m ruff check gateway tests benchmarks
python3 -m mypy
# pytest exits 5 when it collects no test: that is a failure here, like any non-zero exit.
python3 -m pytest -q -p no:cacheprovider "$@"
