"""The panel protocol: message types, versions, limits, and checks on what the front end sends.

Every message carries ``"v": PROTOCOL``. The front end sends ``hello`` (as the comm's open
data), ``refresh`` and ``free``; the kernel sends ``snapshot``, ``freed`` and ``error``. The
limits keep every message small whatever the notebook holds, and :func:`jsonable` makes user
data valid JSON (no NaN, short strings, shallow) before it is sent. ``labextension/src/
protocol.ts`` is the front end's side of the same protocol.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ...version import __version__

PROTOCOL = 1
SUPPORTED_VERSIONS = (1,)
TARGET = "interp_magics"  # the comm target's name
MAX_COMMS = 8  # a page reload opens a new comm before the old one is noticed closed
MAX_ENTRIES = 200  # tensors listed per cache
MAX_ENTRY_BYTES = 256 * 1024  # JSON of the tensor lists over all caches
MAX_LEDGER = 500  # newest ledger entries sent
MAX_LEDGER_BYTES = 256 * 1024
MAX_TEXT = 200  # longest string copied from user data (names, keys, ledger values)

REQUESTS = frozenset({"hello", "refresh", "free"})
"""The message types the front end sends."""

Message = dict[str, Any]


def text(value: Any) -> str:
    """Return ``str(value)`` cut to MAX_TEXT characters (an ellipsis marks the cut)."""
    shown = str(value)
    return shown if len(shown) <= MAX_TEXT else shown[: MAX_TEXT - 1] + "…"


def jsonable(value: Any, depth: int = 0) -> Any:
    """Return ``value`` as small, valid JSON data (no NaN, short strings, shallow)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return text(value)
    if depth < 3 and isinstance(value, dict):
        return {text(k): jsonable(v, depth + 1) for k, v in list(value.items())[:64]}
    if depth < 3 and isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in list(value)[:64]]
    return text(value)


def request_data(msg: Any) -> Any:
    """Return the data the front end sent in a comm message (None when there is none)."""
    return (msg.get("content") or {}).get("data") if isinstance(msg, dict) else None


def check(data: Any, types: Iterable[str]) -> Message | None:
    """Return an error message for a malformed request, or None when it is well formed."""
    allowed = sorted(types)
    if not isinstance(data, dict):
        return error(
            f"expected a JSON object like {{'v': 1, 'type': '{allowed[0]}'}}, "
            f"got {type(data).__name__}"
        )
    version = data.get("v")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        return error(
            f"unsupported protocol version {jsonable(version)!r}: this kernel's interp_magics "
            f"{__version__} speaks version {', '.join(map(str, SUPPORTED_VERSIONS))}; "
            "update interp-magics in the kernel or the JupyterLab extension so they match"
        )
    kind = data.get("type")
    if kind not in allowed:
        return error(f"unknown message type {jsonable(kind)!r}; expected {', '.join(allowed)}")
    return None


def error(message: str) -> Message:
    """Return an ``error`` message saying ``message``."""
    return {"v": PROTOCOL, "type": "error", "message": message}
