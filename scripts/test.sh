#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine, then runs every test:
# ruff, the JavaScript unit tests (node --test), and pytest (relay, gunicorn, JetStream, browser
# e2e in Chromium, Firefox and WebKit).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need: the three browser engines of the journeys (Chromium,
# Firefox ESR, WebKitGTK's MiniBrowser and its WebDriver, with Xvfb for a display), and
# nats-server for the JetStream cluster.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v firefox-esr >/dev/null 2>&1 || missing+=(firefox-esr)
command -v WebKitWebDriver >/dev/null 2>&1 || missing+=(webkit2gtk-driver)
command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing Debian's ${missing[*]} for the tests"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
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
