"""Snapshots: what the panels list, as small summaries of the caches, models and ledger.

A snapshot holds summaries only (names, shapes, dtypes, devices, bytes), never tensor data or
reprs, so it stays cheap and small whatever the tensors hold. Cache summaries are memoised:
each carries a ``rev`` that changes only when the summary is recomputed, so a push can send
``"entries": null`` for a ``rev`` the panels already hold.

Never imports torch: a kernel that never imported torch has no tensors to describe, so the
types are looked up in ``sys.modules`` (:func:`cache_type`, :func:`module_type`) and are None
until then.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ...version import __version__
from .protocol import (
    MAX_ENTRIES,
    MAX_ENTRY_BYTES,
    MAX_LEDGER,
    MAX_LEDGER_BYTES,
    PROTOCOL,
    Message,
    jsonable,
    text,
)

# IPython's own names in the user namespace; names starting with "_" are skipped as well.
IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def is_listed(name: Any) -> bool:
    """Return whether a user-namespace name is one the panels list (not IPython's, not ``_``)."""
    return isinstance(name, str) and not name.startswith("_") and name not in IPYTHON_NAMES


def listed_names(shell: Any) -> list[tuple[str, Any]]:
    """Return the (name, value) pairs of ``shell``'s namespace that the panels may list."""
    # dict.copy is atomic under the GIL; iterating the live dict from a comm thread while a
    # cell binds names could fail with "dictionary changed size".
    ns = shell.user_ns.copy()
    return [(k, v) for k, v in ns.items() if is_listed(k)]


def cache_type() -> type | None:
    """Return the ActivationCache class, or None while no cache can exist."""
    # A sys.modules check, not an import: a cache can only exist once
    # interp_magics.core.cache (and so torch) was imported, and importing it here would
    # import torch into kernels that never use it.
    module = sys.modules.get("interp_magics.core.cache")
    return getattr(module, "ActivationCache", None)


def module_type() -> type | None:
    """Return ``torch.nn.Module``, or None while torch is not imported."""
    # A sys.modules check so that the bridge never imports torch itself.
    torch = sys.modules.get("torch")
    nn = getattr(torch, "nn", None)
    return getattr(nn, "Module", None)


def capture_running() -> bool:
    """Return whether a capture (or any analysis owning hooks) runs in this process."""
    from ...core.hooks import owned_hooks  # light: no torch

    return bool(owned_hooks())


@dataclass
class _CacheMemo:
    """A cache's summary, with what tells whether it is still valid."""

    cache: weakref.ReferenceType[Any]
    keys: tuple[str, ...]
    summary: dict[str, Any]  # without "name"
    entries_size: int  # length of the JSON of the summary's entries


class Snapshots:
    """Builds snapshot messages, memoising summaries across calls.

    Not thread-safe: the bridge calls it under its lock.
    """

    def __init__(self) -> None:
        self._seq = 0
        self._memo: dict[int, _CacheMemo] = {}
        self._store_sizes: dict[tuple[int, int], int | None] = {}
        self._ledger_memo: tuple[list[dict[str, Any]], list[Any]] | None = None

    def take(self, names: list[tuple[str, Any]], ledger: Any, *, busy: bool) -> Message:
        """Return the snapshot message: caches, models, sizes and the ledger's tail.

        ``names`` are the listable bindings (:func:`listed_names`), ``ledger`` the shell's
        ledger (or None) and ``busy`` whether a cell runs.
        """
        self._seq += 1
        caches, models = self._scan(names)
        stores = self._stores(names)
        seen: set[int] = set()
        total = 0
        for c in caches:
            ident = c.pop("_id")
            if ident not in seen:  # a cache bound to two names counts once in the total
                seen.add(ident)
                total += c["bytes"]
        return {
            "v": PROTOCOL,
            "type": "snapshot",
            "version": __version__,
            "seq": self._seq,
            "busy": busy or capture_running(),
            "caches": caches,
            "models": models,
            "stores": stores,
            "total_bytes": total,
            "ledger": self._ledger_tail(ledger),
        }

    def _stores(self, names: list[tuple[str, Any]]) -> list[Message]:
        """Return the open activation stores: name, where, examples, tensors, bytes on disk.

        Their size on disk is read once per store and number of examples (listing a store's
        chunks on object storage is slow), and never tensor data.
        """
        out = []
        for name, value in sorted(names, key=lambda kv: kv[0]):
            kind = type(value)  # type(), not isinstance: a proxy's __class__ could run code
            if kind.__name__ != "StoredCache" or not kind.__module__.startswith("interp_magics."):
                continue
            key = (id(value), int(value.examples))
            size = self._store_sizes.get(key)
            if size is None:
                size = _guarded(lambda v: int(v.nbytes), value)
                self._store_sizes[key] = size
            out.append(
                {
                    "name": text(name),
                    "path": text(str(value.path)),
                    "examples": int(value.examples),
                    "tensors": len(value.keys()),
                    "bytes": size if size is not None else 0,
                    "complete": bool(value.progress.complete),
                }
            )
        return out

    def forget(self, cache: Any) -> None:
        """Drop the memoised summary of ``cache`` (it was freed)."""
        self._memo.pop(id(cache), None)

    def clear(self) -> None:
        """Drop every memoised summary."""
        self._memo.clear()
        self._ledger_memo = None

    def _scan(self, names: list[tuple[str, Any]]) -> tuple[list[Message], list[Message]]:
        cache_kind, model_kind = cache_type(), module_type()
        models: list[Message] = []
        found = []
        if cache_kind is None and model_kind is None:
            return [], models
        for name, value in sorted(names, key=lambda kv: kv[0]):
            # type(), not isinstance: a proxy's __class__ could run user code here.
            kind = type(value)
            if cache_kind is not None and issubclass(kind, cache_kind):
                found.append((name, value))
            elif (model_kind is not None and issubclass(kind, model_kind)) or _wraps_a_model(kind):
                model = _guarded(_model_summary, name, value)
                if model is not None:
                    models.append(model)
        caches = self._cache_summaries(found)
        live = {id(cache) for _, cache in found}
        for key in [k for k in self._memo if k not in live]:
            del self._memo[key]  # drop summaries of caches no longer bound
        return caches, models

    def _cache_summaries(self, found: list[tuple[str, Any]]) -> list[Message]:
        """Return the summaries of the bound caches, tensor lists cut to MAX_ENTRY_BYTES."""
        caches: list[Message] = []
        budget = MAX_ENTRY_BYTES
        capturing = capture_running() if found else False
        for name, cache in found:
            memo = _guarded(self._summary, cache, capturing)
            if memo is None:
                continue
            summary = {"name": text(name), **memo.summary, "_id": id(cache)}
            if memo.entries_size > budget:  # keep the payload small with many big caches
                entries = summary["entries"]
                keep = len(entries) * max(budget, 0) // memo.entries_size
                summary["entries"], summary["truncated"] = entries[:keep], True
            budget -= memo.entries_size
            caches.append(summary)
        return caches

    def _summary(self, cache: Any, capturing: bool) -> _CacheMemo:
        """Return the memoised summary of ``cache``, recomputed when it may have changed."""
        # Every use of a capture fills a new cache, and a cache changes only while its own
        # capture runs: outside captures, the same object with the same keys is unchanged.
        memo = self._memo.get(id(cache))
        if not capturing and memo is not None:
            keys = tuple(cache)
            if memo.cache() is cache and keys == memo.keys:
                return memo
        memo = _summarise(cache)
        self._memo[id(cache)] = memo
        return memo

    def _ledger_tail(self, ledger: Any) -> Message:
        entries = list(ledger.entries[-MAX_LEDGER:]) if ledger is not None else []
        if self._ledger_memo is not None and self._ledger_memo[0] == entries:
            return {"schema": 1, "entries": self._ledger_memo[1]}
        clean = [jsonable(e) for e in entries]
        while clean and len(json.dumps(clean)) > MAX_LEDGER_BYTES:
            clean = clean[len(clean) // 4 + 1 :]  # keep the newest entries that fit
        self._ledger_memo = (entries, clean)
        return {"schema": 1, "entries": clean}


_revisions = itertools.count(1)  # one number per cache summary ever made in this kernel


def _summarise(cache: Any) -> _CacheMemo:
    """Return a fresh summary of ``cache`` through its public API (rows: one per tensor)."""
    rows = cache.rows()
    entries = [
        {
            "key": text(r["name"]),
            "shape": [int(s) for s in r["shape"]],
            "dtype": r["dtype"],
            "device": r["device"],
            "bytes": int(r["bytes"]),
        }
        for r in rows[:MAX_ENTRIES]
    ]
    summary = {
        "tensors": len(rows),
        "bytes": int(sum(r["bytes"] for r in rows)),
        "dtypes": sorted({r["dtype"] for r in rows}),
        "devices": sorted({r["device"] for r in rows}),
        "model": text(getattr(cache, "model_name", "") or ""),
        "entries": entries,
        "truncated": len(rows) > MAX_ENTRIES,
        "rev": next(_revisions),
    }
    return _CacheMemo(
        cache=weakref.ref(cache),
        keys=tuple(cache),
        summary=summary,
        entries_size=len(json.dumps(entries)),
    )


def _guarded(describe: Callable[..., _T], *args: Any) -> _T | None:
    """Return ``describe(*args)``, or None when it raises: one odd object (a subclass with a
    broken ``parameters()``, a cache being mutated) must not empty the whole panel."""
    try:
        return describe(*args)
    except Exception:
        log.warning("interp_magics: describing an object for the panel failed", exc_info=True)
        return None


def _wraps_a_model(kind: type) -> bool:
    """Return whether ``kind`` is an nnsight model class (it wraps a torch module)."""
    return any(cls.__module__.startswith("nnsight.") for cls in kind.__mro__)


def _model_summary(name: str, model: Any) -> Message:
    """Return name, class, parameter count and bytes of ``model`` (shared parameters once).

    An nnsight model is described by the module it wraps (read, never dispatched: the panel
    must not load weights). A model dispatched by accelerate also says where its weights live
    and which devices its blocks run on (``placement``).
    """
    from torch.nn.parameter import is_lazy  # torch is imported: a module exists

    from ...core.placement import placement

    label = type(model).__name__
    if _wraps_a_model(type(model)):
        model = model.__dict__.get("_module")
        label = f"{label}({type(model).__name__})"
    count = size = 0
    dtypes: set[str] = set()
    devices: set[str] = set()
    # Module.parameters() yields each Parameter once, so tied weights are counted once.
    for p in model.parameters():
        if is_lazy(p):  # a lazy module's parameters have no shape before its first call
            continue
        n = p.nelement()
        count += n
        size += n * p.element_size()
        dtypes.add(str(p.dtype).removeprefix("torch."))
        devices.add(str(p.device))
    summary: Message = {
        "name": text(name),
        "class": text(label),
        "parameters": count,
        "bytes": size,
        "dtype": ", ".join(sorted(dtypes)),
        "device": ", ".join(sorted(devices)),
    }
    try:
        where = placement(model)
    except Exception:  # weights on meta with nothing to load them: the device says "meta"
        where = None
    if where is not None and where.dispatched:
        summary["placement"] = {
            "devices": [str(d) for d in where.devices],
            "resident": dict(where.resident),
            "offloaded": dict(where.offloaded),
        }
    return summary
