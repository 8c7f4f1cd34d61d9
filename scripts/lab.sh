#!/usr/bin/env bash
# Open JupyterLab on the tutorials with the project's environment. Extra arguments go to
# `jupyter lab` (e.g. --no-browser --port 8899).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
args=(--ServerApp.root_dir=tutorials)
# Jupyter refuses to start as root unless told that is intended (containers, CI machines).
if [ "$(id -u)" = 0 ]; then args+=(--allow-root); fi
exec .venv/bin/jupyter lab "${args[@]}" "$@"
