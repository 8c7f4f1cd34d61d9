"""Reading a ledger saved to a file (``interp-rigor --ledger FILE``), with what to fix if it is bad.

A ledger file is what ``Ledger.to_json()`` gives, ``{"schema": 1, "entries": [...]}``, or a
plain list of entries. Each entry is an object with a ``kind`` and the fields of its record
(:mod:`interp_magics.core.records`); :func:`~interp_magics.core.records.clean_entry` says which
fields are well typed, and a field a record declares with a value of the wrong type is an
error here rather than silently dropped, since the user can fix the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core import records

MAX_PROBLEMS = 10  # problems listed before "and N more"


class LedgerFileError(ValueError):
    """The ledger file cannot be used; the message says why and what to fix."""


def read_ledger_file(path: Path) -> list[dict[str, Any]]:
    """Return the cleaned entries of the ledger file at ``path``.

    Raises LedgerFileError for an unreadable file, malformed JSON, a document that is not a
    ledger, or entries that are not objects with a kind and well-typed fields.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LedgerFileError(f"cannot read ledger {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LedgerFileError(f"ledger {path} is not UTF-8 text; is it a ledger?") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LedgerFileError(
            f"ledger {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}); save it again with Ledger.to_json()"
        ) from None
    except RecursionError:
        raise LedgerFileError(f"ledger {path} is nested too deeply to be a ledger") from None
    return ledger_entries(data, str(path))


def ledger_entries(data: Any, where: str = "the ledger") -> list[dict[str, Any]]:
    """Return the cleaned entries of a ledger document (raises LedgerFileError, saying why)."""
    entries = data.get("entries") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        what = f'an object whose "entries" is {_kind_of(entries)}' if isinstance(data, dict) else ""
        raise LedgerFileError(
            f'{where} must be a JSON list of entries or an object with an "entries" list '
            f"(as Ledger.to_json() writes it), not {what or _kind_of(data)}"
        )
    schema = data.get("schema", records.SCHEMA) if isinstance(data, dict) else records.SCHEMA
    if schema != records.SCHEMA:
        raise LedgerFileError(
            f"{where} has schema {json.dumps(schema)[:40]}; this version reads schema "
            f"{records.SCHEMA} (write it with the same version of interp-magics)"
        )
    problems: list[str] = []
    cleaned = []
    for i, entry in enumerate(entries, 1):
        clean, problem = _entry(entry)
        if problem:
            problems.append(f"entry {i}: {problem}")
        else:
            cleaned.append(clean)
    if problems:
        more = len(problems) - MAX_PROBLEMS
        shown = problems[:MAX_PROBLEMS] + ([f"and {more} more"] if more > 0 else [])
        raise LedgerFileError(f"{where} has malformed entries: " + "; ".join(shown))
    return cleaned


def _entry(entry: Any) -> tuple[dict[str, Any], str]:
    """Return an entry cleaned by ``clean_entry``, and what is wrong with it ("" if nothing)."""
    if not isinstance(entry, dict):
        return {}, f"is {_kind_of(entry)}, not an object"
    kind = entry.get("kind")
    if not isinstance(kind, str) or not kind:
        return {}, 'has no "kind" (the analysis it records, e.g. "probe" or "patch")'
    clean = records.clean_entry(entry)
    cls = records.RECORD_TYPES.get(kind)
    declared = {**records.CONTEXT_FIELDS, **(records.field_types(cls) if cls else {})}
    wrong = sorted(
        key
        for key in entry
        if isinstance(key, str) and key not in clean and (key in declared or key == "p_values")
    )
    if wrong:
        fields = ", ".join(json.dumps(k)[:60] for k in wrong[:5])
        return {}, f"{kind[:40]!r} has fields of the wrong type or out of range: {fields}"
    return clean, ""


def _kind_of(value: Any) -> str:
    """Return a JSON value's type in words ("a string", "null")."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
