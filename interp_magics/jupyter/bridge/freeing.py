"""The panel's "Free" action: delete a cache from the kernel and say what memory came back.

Deleting the name is not enough: IPython's output history (``Out``, ``_N``, ``_``, the display
hook) keeps a displayed cache alive, and a tensor taken out of the cache (``x = acts[...]``)
keeps its memory. Weak references taken before the deletion tell afterwards what really went
away, so the reply never claims memory that is still held.
"""

from __future__ import annotations

import gc
import logging
import re
import sys
import weakref
from collections.abc import Callable
from typing import Any

from ...core.units import format_bytes
from .protocol import PROTOCOL, Message, text
from .snapshots import cache_type, is_listed, listed_names

_OUTPUT_NAME = re.compile(r"_\d+$")  # IPython's _1, _2, ... output history names

log = logging.getLogger(__name__)


def refused_busy(name: str) -> Message:
    """Return the ``freed`` reply refusing to free ``name`` while a cell or capture runs."""
    return {
        **_freed(name),
        "ok": False,
        "busy": True,
        "bytes": 0,
        "message": "busy: a cell is running; free it when the cell finishes",
    }


def free_cache(shell: Any, name: str, forget: Callable[[Any], None]) -> tuple[Message, bool]:
    """Return the ``freed`` reply after deleting the cache bound to ``name`` in ``shell``.

    Deletes the name and the references IPython's output history holds, calls ``forget``
    with the cache (the snapshot memo), collects garbage and empties the CUDA cache. The
    second item says whether the name was removed; ``ok`` in the reply says whether all of
    the cache's memory was released.
    """
    ns = shell.user_ns
    obj = ns.get(name)
    kind = cache_type()
    if not is_listed(name) or kind is None or obj is None or not issubclass(type(obj), kind):
        shown = obj is not None and not name.startswith("_")
        what = f" ({name!r} is a {type(obj).__name__})" if shown else ""
        return {
            **_freed(name),
            "ok": False,
            "bytes": 0,
            "message": f"no activation cache named {name!r} in this kernel{what}",
        }, False
    nbytes = int(obj.nbytes)
    # Weak references tell afterwards what really went away: the cache object, and each
    # tensor (one taken out with x = acts[...] keeps its memory alive).
    cache_ref = weakref.ref(obj)
    tensor_refs = [(_storage_ref(t), t.element_size() * t.nelement()) for t in obj.values()]
    others = sorted(k for k, v in listed_names(shell) if v is obj and k != name)
    del ns[name]
    _forget_outputs(shell, obj)
    forget(obj)
    del obj  # the last reference this function holds: collect it below
    gc.collect()
    _empty_device_cache()
    released = sum(size for ref, size in tensor_refs if ref() is None)
    alive = cache_ref() is not None
    return {**_freed(name), **_outcome(name, nbytes, released, alive, others)}, True


def _freed(name: str) -> Message:
    return {"v": PROTOCOL, "type": "freed", "name": text(name)}


def _forget_outputs(shell: Any, obj: Any) -> None:
    """Drop references IPython's output history holds to ``obj`` (Out, _, _N, ...)."""
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


def _outcome(name: str, nbytes: int, released: int, alive: bool, others: list[str]) -> Message:
    """Return ``ok``, ``bytes`` and ``message`` of the reply: what was really given back."""
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


def _empty_device_cache() -> None:
    """Return freed GPU memory to the driver, when torch already uses CUDA."""
    # A sys.modules check, not an import: freeing never imports torch (or starts CUDA).
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        # is_initialized: never start CUDA just to empty a cache it never filled.
        if cuda is not None and cuda.is_initialized():
            cuda.empty_cache()
    except Exception:
        log.debug("interp_magics: emptying the CUDA cache failed", exc_info=True)
