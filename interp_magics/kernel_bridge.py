"""The kernel side of the JupyterLab sidebar panels: a comm target and small snapshots.

While the IPython extension is loaded, the front end opens a comm to the target
``"interp_magics"`` with ``{"v": 1, "type": "hello"}``; the kernel answers with a snapshot and
pushes a fresh one after each outermost cell run (``post_run_cell``) that changed what it
lists. A snapshot lists the activation caches and models bound to top-level names in the
notebook, with sizes, plus the tail of the analysis ledger. It holds summaries only (names,
shapes, dtypes, devices, bytes), never tensor data or reprs, so a push stays cheap and small
whatever the tensors hold. Each cache summary has a ``rev``; in a push, ``"entries": null``
means "the tensors of this ``rev`` as in the previous snapshot" (replies to hello and refresh
always carry every cache's entries).

Messages from the front end (all carry ``"v": 1``):

- ``{"type": "hello"}`` (comm open data) or ``{"type": "refresh"}``: reply with a snapshot.
- ``{"type": "free", "name": "acts"}``: delete that cache from the namespace and from IPython's
  output history, collect garbage, and reply ``{"type": "freed", "ok", "bytes", "message"}``;
  refused with ``"busy": true`` while a cell or a capture runs.

Anything else gets ``{"type": "error", "message": ...}``; handlers never raise.
:func:`snapshot_display` serves the same snapshot to front ends that cannot open comms.

This is the notebook-integration layer: it may use IPython and ``comm``, but it never imports
torch itself (a kernel that never imported torch has no tensors to describe).
"""

from __future__ import annotations

import contextlib
import gc
import html
import itertools
import json
import logging
import math
import re
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import comm

from . import __version__
from .ledger import started

PROTOCOL = 1
SUPPORTED_VERSIONS = (1,)
TARGET = "interp_magics"
MAX_COMMS = 8  # a page reload opens a new comm before the old one is noticed closed
MAX_ENTRIES = 200  # tensors listed per cache
MAX_ENTRY_BYTES = 256 * 1024  # JSON of the tensor lists over all caches
MAX_LEDGER = 500  # newest ledger entries sent
MAX_LEDGER_BYTES = 256 * 1024
MAX_TEXT = 200  # longest string copied from user data (names, keys, ledger values)

# IPython's own names in the user namespace; names starting with "_" are skipped as well.
_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
_OUTPUT_NAME = re.compile(r"_\d+$")

log = logging.getLogger(__name__)

Message = dict[str, Any]


def format_bytes(n: float) -> str:
    """Return ``n`` bytes as a short human string in binary units (``18.0 MiB``).

    The same spelling as :func:`interp_magics.options.format_bytes`, which imports torch.
    """
    size = float(n)
    if abs(size) < 1024:
        return f"{int(size)} B"
    unit = "KiB"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if abs(size) < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def _text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Return ``value`` as small, valid JSON data (no NaN, short strings, shallow)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _text(value)
    if depth < 3 and isinstance(value, dict):
        return {_text(k): _jsonable(v, depth + 1) for k, v in list(value.items())[:64]}
    if depth < 3 and isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in list(value)[:64]]
    return _text(value)


def _cache_type() -> type | None:
    # A cache can only exist once interp_magics.cache (and so torch) was imported.
    module = sys.modules.get("interp_magics.cache")
    return getattr(module, "ActivationCache", None)


def _module_type() -> type | None:
    torch = sys.modules.get("torch")
    nn = getattr(torch, "nn", None)
    return getattr(nn, "Module", None)


def _capture_running() -> bool:
    from .hooks import owned_hooks  # light: no torch

    return bool(owned_hooks())


@dataclass
class _CacheMemo:
    """A cache's summary, with what tells whether it is still valid."""

    cache: weakref.ReferenceType[Any]
    keys: tuple[str, ...]
    summary: dict[str, Any]  # without "name"
    entries_size: int  # length of the JSON of the summary's entries


@dataclass
class CacheListing:
    """The kernel's activation caches as a table (``%activations`` with no cell body)."""

    caches: list[dict[str, Any]] = field(default_factory=list)
    total_bytes: int = 0

    def _rows(self) -> list[tuple[str, str, str, str, str]]:
        return [
            (
                c["name"],
                str(c["tensors"]),
                format_bytes(c["bytes"]),
                ", ".join(c["dtypes"]),
                ", ".join(c["devices"]),
            )
            for c in self.caches
        ]

    def _title(self) -> str:
        if not self.caches:
            return (
                "no activation caches in this kernel; "
                "capture one with %%activations MODEL -m PATTERN"
            )
        n = len(self.caches)
        return (
            f"{n} activation cache{'s' if n != 1 else ''}, {format_bytes(self.total_bytes)} in all"
        )

    def __repr__(self) -> str:
        if not self.caches:
            return self._title()
        header = ("name", "tensors", "bytes", "dtypes", "devices")
        body = [*self._rows(), ("total", "", format_bytes(self.total_bytes), "", "")]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(5)]
        lines = [self._title()]
        for row in [header, *body]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        if not self.caches:
            return f'<div class="interp-magics-caches"><p>{esc(self._title())}</p></div>'
        parts = [
            '<div class="interp-magics-caches">',
            f"<strong>{esc(self._title())}</strong>",
            '<table><thead><tr><th style="text-align:left">name</th><th>tensors</th>'
            "<th>bytes</th><th>dtypes</th><th>devices</th></tr></thead><tbody>",
        ]
        for name, tensors, size, dtypes, devices in self._rows():
            parts.append(
                f'<tr><td style="text-align:left"><code>{esc(name)}</code></td>'
                f"<td>{esc(tensors)}</td><td>{esc(size)}</td><td>{esc(dtypes)}</td>"
                f"<td>{esc(devices)}</td></tr>"
            )
        parts.append(
            '</tbody><tfoot><tr><th style="text-align:left">total</th><td></td>'
            f"<th>{esc(format_bytes(self.total_bytes))}</th><td></td><td></td></tr></tfoot>"
            "</table></div>"
        )
        return "".join(parts)


class KernelBridge:
    """The comm target, the snapshot push and ``free`` for one IPython shell.

    Created by the extension's loader with the shell and its ledger; :meth:`install` registers
    the comm target and the run-cell events, :meth:`remove` takes back exactly those.
    """

    def __init__(self, shell: Any, ledger: Any) -> None:
        self.shell = shell
        self.ledger = ledger
        # Comm messages can arrive on another thread while a cell runs (ipykernel >= 7
        # subshells), so the comms, the run depth and the counters share one lock. Re-entrant:
        # a send or a garbage collection must not deadlock against its own thread.
        self._lock = threading.RLock()
        self._comms: OrderedDict[str, Any] = OrderedDict()
        self._depth = 0
        self._seq = 0
        self._memo: dict[int, _CacheMemo] = {}
        self._ledger_memo: tuple[list[dict[str, Any]], list[Any], int] | None = None
        self._manager: Any = None
        self._pushed: tuple[Any, ...] | None = None  # content of the last push
        self._pushed_revs: set[int] = set()  # cache summaries whose entries it carried
        # Keep the exact callables registered, so removal takes back these and nothing else.
        self._target: Callable[[Any, Message], None] = self._open_comm
        self._callbacks: dict[str, Callable[[Any], None]] = {
            "pre_run_cell": self._pre_run_cell,
            "post_run_cell": self._post_run_cell,
        }

    # -- installation -----------------------------------------------------------------------
    def install(self) -> None:
        """Register the comm target and the run-cell events (register after the ledger's)."""
        for name, callback in self._callbacks.items():
            self.shell.events.register(name, callback)
        # comm.get_comm_manager is replaced by ipykernel at import: look it up at call time.
        self._manager = comm.get_comm_manager()
        self._manager.register_target(TARGET, self._target)

    def remove(self) -> None:
        """Unregister what :meth:`install` registered and close the open comms."""
        for name, callback in self._callbacks.items():
            with contextlib.suppress(ValueError):  # already gone: removal must be idempotent
                self.shell.events.unregister(name, callback)
        manager, self._manager = self._manager, None
        targets = getattr(manager, "targets", {})
        # comm's unregister_target pops whatever is registered under the name; only take
        # back our own callable (a newer load may have registered another one).
        if manager is not None and targets.get(TARGET) == self._target:
            manager.unregister_target(TARGET, self._target)
        with self._lock:
            comms = list(self._comms.values())
            self._comms.clear()
            self._memo.clear()
            self._ledger_memo = None
            self._pushed, self._pushed_revs = None, set()
        for c in comms:
            _close(c)

    # -- IPython events ---------------------------------------------------------------------
    def _pre_run_cell(self, info: Any) -> None:
        with self._lock:
            self._depth += 1

    def _post_run_cell(self, result: Any) -> None:
        if not started(result):
            return
        with self._lock:
            self._depth = max(0, self._depth - 1)
            if self._depth or not self._comms:
                return
        # Only the outermost run pushes: a cell magic that runs its body fires nested events.
        self.push()

    @property
    def busy(self) -> bool:
        """Return whether a cell or a capture is running in this kernel."""
        with self._lock:
            depth = self._depth
        return depth > 0 or _capture_running()

    # -- comms ------------------------------------------------------------------------------
    @property
    def comms(self) -> list[Any]:
        """Return the open comms, oldest first."""
        with self._lock:
            return list(self._comms.values())

    def _open_comm(self, c: Any, msg: Message) -> None:
        """Comm target callback: keep ``c`` and answer its hello with a snapshot."""
        try:
            evicted = []
            with self._lock:
                self._comms[c.comm_id] = c
                while len(self._comms) > MAX_COMMS:
                    evicted.append(self._comms.popitem(last=False)[1])
            c.on_msg(lambda m, _c=c: self._handle(_c, m))
            c.on_close(lambda m, _id=c.comm_id: self._forget(_id))
            for old in evicted:
                _close(old)
            data = (msg.get("content") or {}).get("data") if isinstance(msg, dict) else None
            problem = _check(data, {"hello"})
            self._send(c, problem if problem else self._reply_snapshot())
        except Exception:  # a failing target makes the comm manager close the comm
            log.exception("interp_magics: opening the panel comm failed")

    def _forget(self, comm_id: str) -> None:
        with self._lock:
            self._comms.pop(comm_id, None)

    def _handle(self, c: Any, msg: Message) -> None:
        """Comm message callback: dispatch one front-end request; never raises."""
        try:
            data = (msg.get("content") or {}).get("data") if isinstance(msg, dict) else None
            problem = _check(data, {"hello", "refresh", "free"})
            if problem or not isinstance(data, dict):
                self._send(c, problem or _error("malformed message"))
            elif data["type"] == "free":
                self._handle_free(c, data.get("name"))
            else:
                self._send(c, self._reply_snapshot())
        except Exception as exc:
            log.exception("interp_magics: a panel request failed")
            self._send(c, _error(f"the kernel could not answer: {type(exc).__name__}: {exc}"))

    def _handle_free(self, c: Any, name: Any) -> None:
        if not isinstance(name, str) or not name:
            self._send(c, _error("'free' needs the name of a cache, e.g. {'name': 'acts'}"))
            return
        reply, removed = self._free(name)
        self._send(c, reply)
        if removed:
            self.push()  # every panel shows the name gone
        elif not reply.get("busy"):
            self._send(c, self._reply_snapshot())  # the asking panel's list was stale

    def _send(self, c: Any, data: Message) -> bool:
        """Send ``data`` on ``c``; drop the comm when it is closed or sending fails."""
        if getattr(c, "_closed", False):
            self._forget(c.comm_id)
            return False
        try:
            c.send(data)
            return True
        except Exception:
            log.warning("interp_magics: dropping a panel comm that failed to send", exc_info=True)
            self._forget(c.comm_id)
            return False

    def _reply_snapshot(self) -> Message:
        """Return a snapshot for one comm; the next push then goes out even if unchanged.

        That comm may now hold a snapshot the others lack (taken while a cell ran, so
        ``busy``): the push after the cell brings every panel to the same state.
        """
        with self._lock:
            self._pushed, self._pushed_revs = None, set()
            return self.snapshot()

    def push(self, *, force: bool = False) -> int:
        """Send a fresh snapshot to every open comm; return how many received it.

        Skipped (returns 0) when the caches, models and ledger are what the last push sent,
        unless ``force``: most cells change none of them, and an unchanged list needs no
        message (with a hundred caches a snapshot is about 100 KiB).
        """
        try:
            with self._lock:  # build and send under the lock: every comm sees seq increase
                if not self._comms:
                    return 0
                data = self.snapshot()
                content = (data["caches"], data["models"], data["ledger"], data["busy"])
                if not force and content == self._pushed:
                    return 0
                self._pushed = content
                data["caches"] = self._known_entries_dropped(data["caches"])
                return sum(self._send(c, data) for c in list(self._comms.values()))
        except Exception:  # a post_run_cell callback must never disturb the user's cell
            log.exception("interp_magics: pushing the panel snapshot failed")
            return 0

    def _known_entries_dropped(self, caches: list[Message]) -> list[Message]:
        """Return ``caches`` with ``entries: null`` where the previous push carried them.

        Every open comm received the previous push (a comm that got its own snapshot since
        resets ``_pushed_revs``), so the panels copy those entries from it by ``rev``: a push
        after a cell that added one cache carries that cache's tensors, not all of them.
        """
        known = self._pushed_revs
        self._pushed_revs = {c["rev"] for c in caches}
        return [{**c, "entries": None} if c["rev"] in known else c for c in caches]

    # -- snapshot ---------------------------------------------------------------------------
    def _namespace(self) -> list[tuple[str, Any]]:
        # dict.copy is atomic under the GIL; iterating the live dict from a comm thread
        # while a cell binds names could fail with "dictionary changed size".
        ns = self.shell.user_ns.copy()
        return [
            (k, v)
            for k, v in ns.items()
            if isinstance(k, str) and not k.startswith("_") and k not in _IPYTHON_NAMES
        ]

    def snapshot(self) -> Message:
        """Return the snapshot message: caches, models, sizes and the ledger's tail."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            caches, models = self._scan(self._namespace())
            ledger = self._ledger_tail()
            busy = self._depth > 0
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
            "seq": seq,
            "busy": busy or _capture_running(),
            "caches": caches,
            "models": models,
            "total_bytes": total,
            "ledger": ledger,
        }

    def _scan(self, names: list[tuple[str, Any]]) -> tuple[list[Message], list[Message]]:
        cache_type, module_type = _cache_type(), _module_type()
        caches: list[Message] = []
        models: list[Message] = []
        if cache_type is None and module_type is None:
            return caches, models
        live: set[int] = set()
        found = []
        for name, value in sorted(names, key=lambda kv: kv[0]):
            # type(), not isinstance: a proxy's __class__ could run user code here.
            kind = type(value)
            if cache_type is not None and issubclass(kind, cache_type):
                found.append((name, value))
            elif module_type is not None and issubclass(kind, module_type):
                model = _guarded(_model_summary, name, value)
                if model is not None:
                    models.append(model)
        budget = MAX_ENTRY_BYTES
        capturing = _capture_running() if found else False
        for name, cache in found:
            live.add(id(cache))
            memo = _guarded(self._summary, cache, capturing)
            if memo is None:
                continue
            summary = {"name": _text(name), **memo.summary, "_id": id(cache)}
            if memo.entries_size > budget:  # keep the payload small with many big caches
                entries = summary["entries"]
                keep = len(entries) * max(budget, 0) // memo.entries_size
                summary["entries"], summary["truncated"] = entries[:keep], True
            budget -= memo.entries_size
            caches.append(summary)
        for key in [k for k in self._memo if k not in live]:
            del self._memo[key]  # drop summaries of caches no longer bound
        return caches, models

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

    def _ledger_tail(self) -> Message:
        entries = list(self.ledger.entries[-MAX_LEDGER:]) if self.ledger is not None else []
        if self._ledger_memo is not None and self._ledger_memo[0] == entries:
            return {"schema": 1, "entries": self._ledger_memo[1]}
        clean = [_jsonable(e) for e in entries]
        size = len(json.dumps(clean))
        while clean and size > MAX_LEDGER_BYTES:  # keep the newest entries that fit
            clean = clean[len(clean) // 4 + 1 :]
            size = len(json.dumps(clean))
        self._ledger_memo = (entries, clean, size)
        return {"schema": 1, "entries": clean}

    # -- free -------------------------------------------------------------------------------
    def free(self, name: str) -> Message:
        """Return the ``freed`` reply after deleting the cache bound to ``name``.

        Deletes the name and the references IPython's output history holds (``Out``, ``_``,
        ``_N``, the display hook), collects garbage and empties the CUDA cache; ``ok`` says
        whether all of the cache's memory was released. Refused while a cell or a capture runs.
        """
        return self._free(name)[0]

    def _free(self, name: str) -> tuple[Message, bool]:
        base: Message = {"v": PROTOCOL, "type": "freed", "name": _text(name)}
        with self._lock:
            if self.busy:
                return {
                    **base,
                    "ok": False,
                    "busy": True,
                    "bytes": 0,
                    "message": "busy: a cell is running; free it when the cell finishes",
                }, False
            ns = self.shell.user_ns
            obj = ns.get(name)
            cache_type = _cache_type()
            if (
                name.startswith("_")
                or name in _IPYTHON_NAMES
                or cache_type is None
                or obj is None
                or not issubclass(type(obj), cache_type)
            ):
                what = (
                    f" ({name!r} is a {type(obj).__name__})"
                    if obj is not None and not name.startswith("_")
                    else ""
                )
                return {
                    **base,
                    "ok": False,
                    "bytes": 0,
                    "message": f"no activation cache named {name!r} in this kernel{what}",
                }, False
            nbytes = int(obj.nbytes)
            # Weak references tell afterwards what really went away: the cache object, and
            # each tensor (one taken out with x = acts[...] keeps its memory alive).
            cache_ref = weakref.ref(obj)
            tensor_refs = [(_storage_ref(t), t.element_size() * t.nelement()) for t in obj.values()]
            others = sorted(
                k
                for k, v in self._namespace()
                if v is obj and k != name and not _OUTPUT_NAME.match(k)
            )
            del ns[name]
            self._forget_outputs(obj)
            self._memo.pop(id(obj), None)
            del obj
            gc.collect()
            _empty_device_cache()
            released = sum(size for ref, size in tensor_refs if ref() is None)
            alive = cache_ref() is not None
            del tensor_refs
        return {**base, **_freed_message(name, nbytes, released, alive, others)}, True

    def _forget_outputs(self, obj: Any) -> None:
        """Drop references IPython's output history holds to ``obj`` (Out, _, _N, ...)."""
        shell = self.shell
        ns = shell.user_ns
        hidden = getattr(shell, "user_ns_hidden", {})
        out = ns.get("Out")
        if isinstance(out, dict):
            for key in [k for k, v in list(out.items()) if v is obj]:
                del out[key]
        for key in [k for k, v in list(ns.items()) if v is obj and _OUTPUT_NAME.match(k)]:
            del ns[key]
            if hidden.get(key) is obj:
                del hidden[key]
        hook = getattr(shell, "displayhook", None)
        for unders in ("_", "__", "___"):
            # Reset like DisplayHook.flush does; "" keeps IPython's own bookkeeping working.
            if ns.get(unders) is obj:
                ns[unders] = ""
            if hidden.get(unders) is obj:
                hidden[unders] = ""
            if hook is not None and getattr(hook, unders, None) is obj:
                setattr(hook, unders, "")
        for result in (
            getattr(shell, "last_execution_result", None),
            getattr(hook, "exec_result", None),
        ):
            if result is not None and getattr(result, "result", None) is obj:
                result.result = None


def _freed_message(
    name: str, nbytes: int, released: int, alive: bool, others: list[str]
) -> dict[str, Any]:
    size = format_bytes(nbytes)
    if alive:
        where = (
            f"by {', '.join(f'`{o}`' for o in others[:3])}"
            if others
            else "elsewhere (e.g. in a list, a dict or another object)"
        )
        return {
            "ok": False,
            "bytes": 0,
            "message": f"removed `{name}` from the namespace, but the cache ({size}) is still "
            f"referenced {where}; delete those references to free the memory",
        }
    if released < nbytes:
        kept = format_bytes(nbytes - released)
        return {
            "ok": False,
            "bytes": released,
            "message": f"removed `{name}` and freed {format_bytes(released)}, but {kept} stay "
            f"in memory: tensors taken from the cache (e.g. x = {name}[...]) are still "
            "referenced; delete those to free the rest",
        }
    return {"ok": True, "bytes": released, "message": f"freed {size}"}


def _storage_ref(tensor: Any) -> weakref.ReferenceType[Any]:
    """Return a weak reference that dies when ``tensor``'s memory is given back.

    The storage, not the tensor: ``x = acts[k].detach()`` or ``.numpy()`` keeps the memory
    alive through a new tensor object sharing the storage.
    """
    try:
        return weakref.ref(tensor.untyped_storage())
    except (RuntimeError, NotImplementedError, TypeError):  # sparse or nested tensors
        return weakref.ref(tensor)


_revisions = itertools.count(1)  # one number per cache summary ever made in this kernel


def _summarise(cache: Any) -> _CacheMemo:
    """Return a fresh summary of ``cache`` through its public API (rows: one per tensor)."""
    rows = cache.rows()
    dtypes = sorted({r["dtype"] for r in rows})
    devices = sorted({r["device"] for r in rows})
    entries = [
        {
            "key": _text(r["name"]),
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
        "dtypes": dtypes,
        "devices": devices,
        "model": _text(getattr(cache, "model_name", "") or ""),
        "entries": entries,
        "truncated": len(rows) > MAX_ENTRIES,
        "rev": next(_revisions),
    }
    entries_size = len(json.dumps(entries))
    return _CacheMemo(
        cache=weakref.ref(cache),
        keys=tuple(cache),
        summary=summary,
        entries_size=entries_size,
    )


_T = TypeVar("_T")


def _guarded(describe: Callable[..., _T], *args: Any) -> _T | None:
    """Return ``describe(*args)``, or None when it raises: one odd object (a subclass with a
    broken ``parameters()``, a cache being mutated) must not empty the whole panel."""
    try:
        return describe(*args)
    except Exception:
        log.warning("interp_magics: describing an object for the panel failed", exc_info=True)
        return None


def _model_summary(name: str, model: Any) -> Message:
    """Return name, class, parameter count and bytes of ``model`` (shared parameters once)."""
    count = size = 0
    dtypes: set[str] = set()
    devices: set[str] = set()
    # Module.parameters() yields each Parameter once, so tied weights are counted once.
    lazy = _is_lazy()
    for p in model.parameters():
        if lazy(p):  # a lazy module's parameters have no shape before its first call
            continue
        n = p.nelement()
        count += n
        size += n * p.element_size()
        dtypes.add(str(p.dtype).removeprefix("torch."))
        devices.add(str(p.device))
    return {
        "name": _text(name),
        "class": _text(type(model).__name__),
        "parameters": count,
        "bytes": size,
        "dtype": ", ".join(sorted(dtypes)),
        "device": ", ".join(sorted(devices)),
    }


def _is_lazy() -> Callable[[Any], bool]:
    from torch.nn.parameter import is_lazy  # torch is imported: a module exists

    return is_lazy


def _check(data: Any, types: Iterable[str]) -> Message | None:
    """Return an error message for a malformed request, or None when it is well formed."""
    allowed = sorted(types)
    if not isinstance(data, dict):
        return _error(
            f"expected a JSON object like {{'v': 1, 'type': '{allowed[0]}'}}, "
            f"got {type(data).__name__}"
        )
    version = data.get("v")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        return _error(
            f"unsupported protocol version {_jsonable(version)!r}: this kernel's interp_magics "
            f"{__version__} speaks version {', '.join(map(str, SUPPORTED_VERSIONS))}; "
            "update interp-magics in the kernel or the JupyterLab extension so they match"
        )
    kind = data.get("type")
    if kind not in allowed:
        return _error(f"unknown message type {_jsonable(kind)!r}; expected {', '.join(allowed)}")
    return None


def _error(message: str) -> Message:
    return {"v": PROTOCOL, "type": "error", "message": message}


def _close(c: Any) -> None:
    try:
        c.close()
    except Exception:  # already closed or never registered with the manager
        log.debug("interp_magics: closing a panel comm failed", exc_info=True)


def _empty_device_cache() -> None:
    """Return freed GPU memory to the driver, when torch already uses CUDA."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        # is_initialized: never start CUDA just to empty a cache it never filled.
        if cuda is not None and cuda.is_initialized():
            cuda.empty_cache()
    except Exception:
        log.debug("interp_magics: emptying the CUDA cache failed", exc_info=True)


def get_bridge(shell: Any) -> KernelBridge | None:
    """Return the bridge of ``shell`` while the extension is loaded there, else None."""
    magics = sys.modules.get("interp_magics.magics")  # not imported: never loaded
    if shell is None or magics is None:
        return None
    bridge = magics.get_bridge(shell)
    return bridge if isinstance(bridge, KernelBridge) else None


def cache_listing(shell: Any) -> CacheListing:
    """Return the caches bound in ``shell``'s namespace as a displayable table."""
    bridge = get_bridge(shell) or KernelBridge(shell, None)
    snap = bridge.snapshot()
    return CacheListing(caches=snap["caches"], total_bytes=snap["total_bytes"])


def snapshot_display() -> Any:
    """Return the current shell's snapshot as an ``application/json`` display object.

    For front ends that cannot open comms: they evaluate this through ``user_expressions``
    and read the ``application/json`` entry of the reply (``not-loaded`` without the
    extension).
    """
    from IPython import get_ipython
    from IPython.display import JSON

    bridge = get_bridge(get_ipython())
    data = bridge.snapshot() if bridge is not None else {"v": PROTOCOL, "type": "not-loaded"}
    return JSON(data)  # type: ignore[no-untyped-call]
