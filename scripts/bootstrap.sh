#!/usr/bin/env bash
# Create the project's virtualenv and install Baton with its dev tools into it.
# On a Debian machine without venv support, install it (as root) first.
set -euo pipefail
PY="${1:-python3}"
VENV="${2:-.venv}"

if ! command -v "$PY" >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv
  else
    echo "bootstrap: $PY not found; install Python 3.11+ (sudo apt-get install python3 python3-venv)" >&2
    exit 1
  fi
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: Baton needs Python 3.11 or newer; $PY is $("$PY" -V 2>&1)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
      "$PY" -m venv "$VENV"
    else
      echo "bootstrap: '$PY -m venv' failed; install python3-venv" >&2
      exit 1
    fi
  fi
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[dev]"
