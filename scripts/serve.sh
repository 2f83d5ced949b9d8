#!/usr/bin/env bash
# Installs everything, then runs lrrd in the foreground on port 3000 with ./content and ./data,
# on its own embedded Redis. Extra arguments are passed to `twistd lrrd`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
mkdir -p content data
exec .venv/bin/twistd --nodaemon --pidfile= lrrd --content ./content --data ./data "$@"
