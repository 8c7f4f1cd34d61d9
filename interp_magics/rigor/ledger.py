"""The kernel's ledger as the rules read it: typed entries, from whatever form it was given in.

Entries are read with :func:`interp_magics.core.records.parse_entry`, which validates them
(a front end may send anything) and maps control names onto the one vocabulary. The ledger
module is not imported: the checker runs inside the jupyter server, without the kernel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, get_origin

from ..core import records
from ..core.records import (
    AblationRecord,
    LedgerEntry,
    PatchRecord,
    PathPatchRecord,
    ProbeRecord,
    StatTestRecord,
)
from .notebook import NotebookError


def read_ledger(ledger: Any) -> list[LedgerEntry]:
    """Return the typed entries of a Ledger, its ``to_json()`` dict or a list of entries.

    Raises NotebookError for anything else; items that are not objects are skipped.
    """
    if ledger is None:
        return []
    if hasattr(ledger, "entries"):
        ledger = ledger.entries
    if isinstance(ledger, dict):
        ledger = ledger.get("entries", [])
    if not isinstance(ledger, list):
        raise NotebookError("ledger must be a Ledger, its to_json() dict, or a list of entries")
    return [read_entry(e) for e in ledger if isinstance(e, dict)]


def read_entry(entry: Mapping[str, Any]) -> LedgerEntry:
    """Return one raw entry as a :class:`LedgerEntry` whose record is None only for unknown kinds.

    ``parse_entry`` leaves the record out when a field it requires is missing or was dropped
    as wrongly typed. Older and hand-written ledgers hold such partial entries (a patch with
    only its corruption), and the rules have always read an absent field as empty: no
    controls, no p-values, an unnamed metric. So the record is completed with empty values.
    """
    parsed = records.parse_entry(entry)
    cls = records.RECORD_TYPES.get(parsed.kind)
    if parsed.record is not None or cls is None:
        return parsed
    clean = records.clean_entry(entry)
    types = records.field_types(cls)
    values = {
        f.name: clean[f.name] if f.name in clean else _empty(types[f.name])
        for f in records.fields_of(cls)
        if f.name in clean
        or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    }
    return dataclasses.replace(parsed, record=cls(**values))


def _empty(annotation: Any) -> Any:
    """Return the empty value of a record field's type ("", 0, False, [])."""
    if get_origin(annotation) is list:
        return []
    return annotation() if annotation in (str, int, float, bool) else None


def p_values(entry: LedgerEntry) -> tuple[int, bool]:
    """Return how many p-values an entry reports, and whether they were corrected."""
    record = entry.record
    if isinstance(
        record, (ProbeRecord, StatTestRecord, PatchRecord, AblationRecord, PathPatchRecord)
    ):
        return record.p_values, record.corrected
    # A kind with no record here (an older "test" entry) may still report p-values; the count
    # is validated as a record's would be (clean_entry checks only the fields records declare).
    count = entry.extra.get("p_values")
    if not isinstance(count, int) or isinstance(count, bool):
        return 0, False
    if not 0 <= count <= records.MAX_P_VALUES:
        return 0, False
    return count, bool(entry.extra.get("corrected"))
