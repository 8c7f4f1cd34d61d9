#!/usr/bin/env bash
# Create .venv/ in the repository root and install interp-magics (editable) with everything
# needed to run the tutorials, the tests and the benchmarks: the Python packages, the widgets'
# bundles, the JupyterLab extension, and (when run as root) Debian's Chromium for the browser
# tests.
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
# Every widget build.mjs lists must exist and be newer than the sources, else all are rebuilt.
rebuild=""
for name in $(grep "^const all = " widgets/build.mjs | grep -o "'[a-z]*'" | tr -d "'"); do
  bundle="interp_magics/widgets/static/$name.js"
  if [ ! -f "$bundle" ] || [ -n "$(find widgets/src widgets/build.mjs -newer "$bundle" -print -quit)" ]; then
    rebuild=1
  fi
done
if [ -n "$rebuild" ]; then
  (cd widgets && npm run --silent build)
fi

# The JupyterLab extension is built by jupyter-builder, a Python tool that drives the
# extension's node modules; it is installed first so the extension can be built before the
# package is installed (the editable install copies the built extension into the venv).
if [ ! -x "$VENV/bin/jupyter-builder" ]; then
  "${PIP[@]}" install --quiet -c constraints.txt jupyter-builder
fi
lab_hash="$(sha256sum labextension/package-lock.json | cut -d' ' -f1)"
if [ "$(cat labextension/node_modules/.interp-magics-lock 2>/dev/null)" != "$lab_hash" ]; then
  echo "setup: installing the JupyterLab extension's node modules"
  (cd labextension && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lab_hash" > labextension/node_modules/.interp-magics-lock
fi
built=interp_magics/labextension/package.json
if [ ! -f "$built" ] || [ -n "$(find labextension/src labextension/style labextension/package.json -newer "$built" -print -quit)" ]; then
  echo "setup: building the JupyterLab extension"
  (cd labextension && PATH="$PWD/../$VENV/bin:$PATH" npm run --silent build >/dev/null)
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
# Keep the installed extension identical to the built one (what the wheel ships), also after
# a rebuild without reinstalling.
ext="$VENV/share/jupyter/labextensions/interp-magics"
if ! diff -rq interp_magics/labextension "$ext" -x install.json >/dev/null 2>&1; then
  rm -rf "$ext" && mkdir -p "$(dirname "$ext")"
  cp -r interp_magics/labextension "$ext" && cp labextension/install.json "$ext/"
fi
echo "setup: ready ($("$VENV/bin/python" -c 'import interp_magics, torch; print("interp-magics", interp_magics.__version__, "torch", torch.__version__)'))"
