"""Which notebook this kernel runs, for ``%rigor`` without a path.

Front ends that know say so: JupyterLab and Notebook 7 through the Jupyter server's
``JPY_SESSION_NAME`` (ipykernel copies it to ``__session__``), VS Code through
``__vsc_ipynb_file__``. nbclient and nbconvert say nothing: they start the kernel in the
notebook's folder and send no cell ids, so the notebook is found there by what the kernel ran
(the running cell's source and IPython's input history).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from IPython.core.error import UsageError

MAX_CANDIDATES = 200  # notebooks read in the working directory at most
MAX_NOTEBOOK_BYTES = 50 * 2**20  # larger files are not read (a study notebook is far smaller)


def find_notebook(shell: Any) -> str | None:
    """Return the path of the notebook this kernel runs, or None when it cannot be found.

    First what the front end tells the kernel: VS Code's ``__vsc_ipynb_file__``, or the path
    the Jupyter server puts in ``JPY_SESSION_NAME`` (ipykernel copies it to ``__session__``).
    nbclient and nbconvert tell the kernel nothing but start it in the notebook's folder, so
    then the notebook is the one in the working directory that holds the running cell (by its
    id, or its source) and most of the code this kernel ran. The same search runs when the
    named file holds none of that code (a kernel started from another notebook's kernel
    inherits its ``JPY_SESSION_NAME``). Raises UsageError when several notebooks match equally.
    """
    running, history = _running_cell(shell), _history(shell)
    named = _named_notebook(shell)
    if named is not None and any(_match(named, running, history)):
        return str(named)
    found = _search(Path.cwd(), running, history)
    return str(found) if found is not None else (str(named) if named is not None else None)


def _named_notebook(shell: Any) -> Path | None:
    """Return the notebook file the front end named, if it exists."""
    ns = shell.user_ns
    for candidate in (
        ns.get("__vsc_ipynb_file__"),
        os.environ.get("JPY_SESSION_NAME"),
        ns.get("__session__"),
    ):
        if not candidate or not isinstance(candidate, (str, os.PathLike)):
            continue
        path = Path(candidate)
        for option in (path, Path.cwd() / path.name):
            if option.suffix == ".ipynb" and option.is_file():
                return option
    return None


class _Running(NamedTuple):
    """The cell running now: its id (front ends that send one) and its normalised source."""

    cell_id: str | None
    source: str | None


def _running_cell(shell: Any) -> _Running:
    """Return the id and source of the cell running now (IPython's ExecutionInfo)."""
    info = getattr(getattr(getattr(shell, "displayhook", None), "exec_result", None), "info", None)
    cell_id = getattr(info, "cell_id", None)
    raw = getattr(info, "raw_cell", None)
    return _Running(
        cell_id if isinstance(cell_id, str) and cell_id else None,
        _normalised(raw) if isinstance(raw, str) and raw.strip() else None,
    )


def _history(shell: Any) -> set[str]:
    """Return the sources of the cells this kernel ran, normalised (IPython's raw history)."""
    raw = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    return {_normalised(s) for s in raw or [] if isinstance(s, str) and s.strip()}


def _normalised(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _search(folder: Path, running: _Running, history: set[str]) -> Path | None:
    """Return the notebook in ``folder`` that holds the running cell and the most of ``history``.

    Raises UsageError, naming them, when several hold it equally.
    """
    try:
        candidates = sorted(p for p in folder.glob("*.ipynb") if p.is_file())[:MAX_CANDIDATES]
    except OSError:
        return None
    matches = [(_match(path, running, history), path) for path in candidates]
    scored = [(score, path) for score, path in matches if score[0] or score[1]]
    if not scored:
        return None
    best = max(score for score, _ in scored)
    tied = [path for score, path in scored if score == best]
    # nbconvert writes its executed copy next to the notebook as NAME.nbconvert.ipynb
    originals = [p for p in tied if not p.name.endswith(".nbconvert.ipynb")] or tied
    if len(originals) == 1:
        return originals[0]
    names = ", ".join(p.name for p in originals[:5])
    raise UsageError(
        f"several notebooks in {folder} hold the code this kernel ran ({names}); give the path "
        f"of this one, e.g. %rigor {originals[0].name}"
    )


def _match(path: Path, running: _Running, history: set[str]) -> tuple[bool, bool, int]:
    """Return how well the notebook at ``path`` matches this kernel, best first when sorted.

    Whether it holds the running cell's id, whether it holds its source, and how many of the
    sources this kernel ran it holds.
    """
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            return False, False, 0
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False, False, 0
    ids, sources = set(), set()
    for cell in _cells(data):
        if cell.get("cell_type") == "code":
            ids.add(cell.get("id"))
            sources.add(_normalised(_text(cell.get("source", cell.get("input")))))
    by_id = running.cell_id is not None and running.cell_id in ids
    by_source = running.source is not None and running.source in sources
    return by_id, by_source, len(history & sources)


def _cells(data: Any) -> list[dict[str, Any]]:
    """Return the cell dicts of notebook JSON (nbformat 4, or the worksheets of nbformat 3)."""
    if not isinstance(data, dict):
        return []
    cells = data.get("cells")
    if not isinstance(cells, list):
        worksheets = data.get("worksheets")
        sheets = worksheets if isinstance(worksheets, list) else []
        cells = [c for w in sheets if isinstance(w, dict) for c in w.get("cells") or []]
    return [c for c in cells if isinstance(c, dict)]


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""
