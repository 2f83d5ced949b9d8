#!/usr/bin/env bash
# Installs everything, then runs the whole trial suite; ends with an "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python tools/run_tests.py "$@"
