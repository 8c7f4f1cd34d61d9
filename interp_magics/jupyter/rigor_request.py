"""What the rigor endpoint accepts: the request body, the notebook's shape, the ledger.

Everything here runs in the server (in an executor thread) before a check starts: linear work
on at most ``server.MAX_BODY`` bytes, so that the worker process gets a notebook whose shape
the checker can read, and the client a 400 that says what is wrong with what it sent.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.records import clean_entry

MAX_CELLS = 10_000
MAX_CELL_SOURCE = 1_000_000  # characters; longer cells are reported, not parsed
MAX_LEDGER_ENTRIES = 10_000

_CELL_TYPES = frozenset({"code", "markdown", "raw"})


class RequestError(ValueError):
    """The request body is not what the endpoint accepts; the message says what is wrong."""


@dataclass
class RigorRequest:
    """A checked ``POST /interp-magics/rigor`` body."""

    notebook: dict[str, Any] | None
    path: str | None
    ledger: list[dict[str, Any]] | None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path) if self.path else "notebook"


def parse_request(body: bytes) -> RigorRequest:
    """Return the checked rigor request in ``body`` (JSON); raise RequestError if malformed."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError, MemoryError) as exc:  # bad JSON, UTF-8 or nesting
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise RequestError(f"the request body is not valid JSON ({detail})") from None
    if not isinstance(data, dict):
        raise RequestError(
            "the request body must be a JSON object with 'notebook' (a notebook model) "
            "and/or 'path', and optionally 'ledger'"
        )
    path = data.get("path")
    if path is not None and (not isinstance(path, str) or not path or "\0" in path):
        raise RequestError("'path' must be a non-empty string: the notebook's path on the server")
    notebook = data.get("notebook")
    if notebook is None and path is None:
        raise RequestError("give 'notebook' (the notebook model) or 'path' (a notebook file)")
    request = RigorRequest(None, path, ledger_entries(data.get("ledger")))
    if notebook is not None:
        request.notebook = checked_notebook(notebook, request.notes)
    return request


def checked_notebook(notebook: Any, notes: list[str]) -> dict[str, Any]:
    """Return ``notebook`` as a version-4 notebook dict whose cells the checker can read.

    Raises RequestError when it is not a notebook. nbformat 1 to 3 is converted in memory. Cells
    whose source is longer than MAX_CELL_SOURCE are checked as empty and a note says so.
    """
    if not isinstance(notebook, dict):
        raise RequestError(f"'notebook' must be a notebook object, not {_kind(notebook)}")
    if not isinstance(notebook.get("cells"), list) or notebook.get("nbformat", 4) != 4:
        notebook = _upgraded(notebook)
    cells = notebook["cells"]
    too_many = f"the notebook has {len(cells)} cells; the checker reads at most {MAX_CELLS}"
    clean = []
    for i, cell in _objects(cells, MAX_CELLS, too_many, "cell"):
        kind = cell.get("cell_type", "code")
        if kind not in _CELL_TYPES:
            raise RequestError(
                f"cell {i} has cell_type {_short(kind)}; expected code, markdown or raw"
            )
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise RequestError(
                f"cell {i} has a source that is not text (a string or a list of strings)"
            )
        for key, types in (("id", (str,)), ("metadata", (dict,)), ("outputs", (list,))):
            if cell.get(key) is not None and not isinstance(cell[key], types):
                raise RequestError(f"cell {i} has a malformed {key!r} ({_kind(cell[key])})")
        count = cell.get("execution_count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise RequestError(f"cell {i} has an execution_count that is not an integer")
        if len(source) > MAX_CELL_SOURCE:
            notes.append(
                f"cell {i} ({len(source):,} characters) is longer than "
                f"{MAX_CELL_SOURCE:,} characters and was not checked"
            )
            source = ""
        clean.append({**cell, "cell_type": kind, "source": source})
    metadata = notebook.get("metadata")
    return {
        "nbformat": 4,
        "nbformat_minor": notebook.get("nbformat_minor", 5),
        "metadata": metadata if isinstance(metadata, dict) else {},
        "cells": clean,
    }


def _upgraded(notebook: dict[str, Any]) -> dict[str, Any]:
    """Return a notebook of nbformat 1 to 3 as version 4 (in memory), as the checker and
    Jupyter convert it; RequestError, saying why, for anything Jupyter cannot open either."""
    from ..rigor.notebook import NotebookError, as_v4

    if isinstance(notebook.get("nbformat"), bool):  # JSON true is no version number
        raise RequestError("'nbformat' is true, not a version number: send nbformat 4")
    try:
        return as_v4(notebook, "the notebook")
    except NotebookError as exc:
        raise RequestError(str(exc)) from None


def ledger_entries(ledger: Any) -> list[dict[str, Any]] | None:
    """Return the ledger's entries with only well-typed fields (None when not given).

    Accepts ``{"schema": 1, "entries": [...]}`` or a list of entries; each entry must be an
    object, and is cleaned like every ledger entry from outside the kernel
    (:func:`interp_magics.core.records.clean_entry`).
    """
    if ledger is None:
        return None
    if isinstance(ledger, dict):
        schema = ledger.get("schema", 1)
        if schema != 1:
            raise RequestError(f"ledger schema {_short(schema)} is not supported (1)")
        ledger = ledger.get("entries")
        if not isinstance(ledger, list):
            raise RequestError("'ledger' must have an 'entries' list")
    if not isinstance(ledger, list):
        raise RequestError(
            "'ledger' must be {'schema': 1, 'entries': [...]}, a list of "
            f"entries, or null; got {_kind(ledger)}"
        )
    too_many = f"the ledger has {len(ledger)} entries; at most {MAX_LEDGER_ENTRIES} are accepted"
    return [
        clean_entry(e) for _, e in _objects(ledger, MAX_LEDGER_ENTRIES, too_many, "ledger entry")
    ]


def _objects(
    items: list[Any], limit: int, too_many: str, name: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield each item with its 1-based index, checking that there are at most ``limit``
    (else RequestError saying ``too_many``) and that each is an object (named ``name i``)."""
    if len(items) > limit:
        raise RequestError(too_many)
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise RequestError(f"{name} {i} must be an object, not {_kind(item)}")
        yield i, item


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
