#!/usr/bin/env bash
# Create .venv/ in the repository root and install interp-magics (editable) with everything
# needed to run the tutorials, the tests and the benchmarks: the Python packages, the widgets'
# node modules and bundles, and (when run as root) Debian's Chromium for the browser tests.
# Safe to run again: each step runs only when its inputs changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi

# Front end first, so the Python build finds the bundles and does not need to build them.
if ! command -v npm >/dev/null; then
  echo "setup: npm (Node.js 18+) is needed to build the widgets" >&2
  exit 1
fi
lock_hash="$(sha256sum widgets/package-lock.json | cut -d' ' -f1)"
if [ "$(cat widgets/node_modules/.interp-magics-lock 2>/dev/null)" != "$lock_hash" ]; then
  echo "setup: installing the widgets' node modules"
  (cd widgets && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > widgets/node_modules/.interp-magics-lock
fi
bundle=interp_magics/widgets/static/probes.js
if [ ! -f "$bundle" ] || [ -n "$(find widgets/src widgets/build.mjs -newer "$bundle" -print -quit)" ]; then
  (cd widgets && npm run --silent build)
fi

if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: Chromium not found; the browser tests need it (sudo apt-get install chromium)"
  fi
fi

stamp="$VENV/.interp-magics-setup"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into $VENV"
  # torch first and pinned: an unpinned torch resolves to a CUDA build of several GB.
  "${PIP[@]}" install --quiet -c constraints.txt torch
  "${PIP[@]}" install --quiet -c constraints.txt -e ".[dev]"
  echo "$want" > "$stamp"
fi
echo "setup: ready ($("$VENV/bin/python" -c 'import interp_magics, torch; print("interp-magics", interp_magics.__version__, "torch", torch.__version__)'))"
