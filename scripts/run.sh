#!/usr/bin/env bash
# The main job (README "Run it"): install Lamina with the server extra into a fresh virtualenv,
# start the reference server on embedded defaults, and show the SDK working against it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[server]'
exec .venv/bin/python scripts/demo.py "$@"
