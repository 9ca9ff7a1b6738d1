#!/usr/bin/env bash
# Installs what the browser tests need: Debian's chromium and the playwright Python package.
# Idempotent; run as root. Usage: tests/browser_setup.sh [VENV] (default: .venv).
# Never runs `playwright install`: the browser comes from Debian, not from a download.
set -euo pipefail

PLAYWRIGHT_VERSION="1.65.2"
VENV="${1:-.venv}"

if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi

if ! "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet "playwright==$PLAYWRIGHT_VERSION"
fi

/usr/bin/chromium --version 2>/dev/null
"$VENV/bin/python" -c "from importlib.metadata import version; print('playwright', version('playwright'))"
