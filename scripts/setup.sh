#!/usr/bin/env bash
# Create .venv/ in the repository root and install interp-magics (editable) with everything
# needed to run the tutorials, the tests and the benchmarks. Safe to run again: it reinstalls
# only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
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
