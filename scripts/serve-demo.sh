#!/usr/bin/env bash
# Install into .venv (first run only) and start the service on SQLite with the demo accounts (DEMO ONLY).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/member-exchange" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -e .
fi
exec "$VENV/bin/member-exchange" serve --demo --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
