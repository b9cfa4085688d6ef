#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine, then runs every test:
# ruff, the JavaScript unit tests (node --test), and pytest (relay, gunicorn, browser e2e).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Debian's chromium for the browser tests"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi
fi

echo "== python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== node packages"
npm ci --no-audit --no-fund --loglevel=error

echo "== ruff"
.venv/bin/ruff check .

echo "== JavaScript unit tests"
node --test tests/js/

echo "== Python and browser tests"
.venv/bin/python -m pytest "$@"
