#!/usr/bin/env bash
# Install into .venv (first run only) and run the whole test suite. SQLite by default; set
# TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres to run it against PostgreSQL
# (a fresh database is created for the run and dropped afterwards). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/pytest" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
  [ -d "$VENV" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -e ".[test]"
  touch "$VENV/.installed"
fi
exec "$VENV/bin/python" -m pytest "$@"
