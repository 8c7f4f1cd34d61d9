"""The analysis ledger: what this kernel actually ran, keyed by notebook cell.

While the IPython extension is loaded, every analysis the core emits (see
:mod:`interp_magics.core.events`) becomes one entry tagged with the id of the outermost cell that
ran it (IPython passes it to ``pre_run_cell``), that cell's execution count and a hash of its
source. Cell magics that run their body fire nested run events without a cell id; only the
outermost cell owns entries. The ledger is plain data: :meth:`Ledger.to_json` gives a list of
dicts that can be saved into notebook metadata.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any


class Ledger:
    """Entries of analyses run in this kernel, with the cell each came from."""

    SCHEMA = 1

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._depth = 0
        self._cell: dict[str, Any] = {}

    # -- IPython events ---------------------------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        """Note the outermost cell that starts running (IPython ``pre_run_cell``)."""
        with self._lock:
            self._depth += 1
            if self._depth > 1:
                return
            raw = getattr(info, "raw_cell", "") or ""
            self._cell = {
                "cell_id": getattr(info, "cell_id", None),
                "source_sha1": hashlib.sha1(raw.encode("utf-8")).hexdigest(),
            }

    def post_run_cell(self, result: Any) -> None:
        """Close the current cell when its outermost run ends (IPython ``post_run_cell``)."""
        if not started(result):
            return
        with self._lock:
            self._depth = max(0, self._depth - 1)
            if self._depth == 0:
                count = getattr(result, "execution_count", None)
                for entry in self._entries:
                    if entry.get("_open"):
                        entry.pop("_open")
                        entry["execution_count"] = count
                self._cell = {}

    # -- records ----------------------------------------------------------------------------
    def record(self, record: dict[str, Any]) -> None:
        """Add one analysis record, tagged with the running cell (events subscriber)."""
        with self._lock:
            entry = {
                **record,
                "cell_id": self._cell.get("cell_id"),
                "source_sha1": self._cell.get("source_sha1"),
                "execution_count": None,
                "time": time.time(),
            }
            if self._depth > 0:
                entry["_open"] = True
            self._entries.append(entry)

    @property
    def entries(self) -> list[dict[str, Any]]:
        """Return a copy of all entries, oldest first."""
        with self._lock:
            return [{k: v for k, v in e.items() if k != "_open"} for e in self._entries]

    def for_cell(self, cell_id: str) -> list[dict[str, Any]]:
        """Return the entries recorded while the cell with ``cell_id`` ran."""
        return [e for e in self.entries if e.get("cell_id") == cell_id]

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def to_json(self) -> dict[str, Any]:
        """Return the ledger as JSON-serialisable data (for notebook metadata)."""
        return {"schema": self.SCHEMA, "entries": json.loads(json.dumps(self.entries, default=str))}


def started(result: Any) -> bool:
    """Return whether IPython fired ``pre_run_cell`` for the run whose ``post_run_cell`` this is.

    IPython returns early for a blank cell, before ``pre_run_cell``, but still fires
    ``post_run_cell``: counting that one would end the outer cell while it still runs.
    """
    raw = getattr(getattr(result, "info", None), "raw_cell", None)
    return not (isinstance(raw, str) and not raw.strip())
