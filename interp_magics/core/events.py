"""In-process notifications of analyses the core ran.

The core emits one record per analysis (a capture, a probe, a patching sweep). The notebook
layer (``ledger.py``) subscribes while the IPython extension is loaded; the core never imports
it, so plain-Python use has no subscribers and pays nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .records import Record

Subscriber = Callable[[dict[str, Any]], None]

_lock = threading.Lock()
_subscribers: list[Subscriber] = []


def subscribe(callback: Subscriber) -> Callable[[], None]:
    """Return a function that unsubscribes ``callback``; it receives every emitted record."""
    with _lock:
        if callback not in _subscribers:
            _subscribers.append(callback)

    def unsubscribe() -> None:
        with _lock:
            if callback in _subscribers:
                _subscribers.remove(callback)

    return unsubscribe


def emit(record: Record) -> None:
    """Send ``record`` as plain data to every subscriber; a failing subscriber is skipped."""
    with _lock:
        targets = list(_subscribers)
    if not targets:
        return
    data = record.to_dict()
    for callback in targets:
        try:
            callback(dict(data))
        except Exception:  # bookkeeping must never break an analysis
            continue


def subscribers() -> list[Subscriber]:
    """Return the current subscribers (for tests and for checking a clean unload)."""
    with _lock:
        return list(_subscribers)
