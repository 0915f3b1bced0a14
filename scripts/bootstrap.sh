#!/bin/sh
# Makes a fresh clone runnable: dependencies from package-lock.json, and the nats-server binary.
set -e
cd "$(dirname "$0")/.."
if [ ! -d node_modules ]; then
  echo "weir: installing dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi
if ! command -v nats-server >/dev/null 2>&1; then
  echo "weir: installing nats-server (apt-get install -y nats-server)" >&2
  if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y nats-server >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y nats-server >&2; }
fi
# Chromium for the dashboard's browser tests and bench (driven by playwright-core; never a browser download).
if [ ! -x /usr/bin/chromium ] && [ -z "${WEIR_CHROMIUM:-}" ]; then
  echo "weir: installing chromium (apt-get install -y chromium)" >&2
  if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y chromium >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y chromium >&2; } \
    || echo "weir: could not install chromium; the dashboard browser tests will be skipped" >&2
fi
