"""Byte sizes: reading ``"2GiB"`` and writing ``18.0 MiB``, one spelling for the whole package.

Plain standard library, so the kernel bridge and the server can format sizes without torch.
"""

from __future__ import annotations

import re

from .errors import CaptureError

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_bytes(value: int | float | str | None) -> int | None:
    """Return a byte count from an int or a string such as ``"2GiB"``, ``"500MB"``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise CaptureError("max_bytes must be a number of bytes or a size like '2GiB'")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise CaptureError(f"max_bytes must be positive, got {value}")
        return int(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise CaptureError(
            f"cannot read size {value!r}; write a number of bytes or e.g. '512MiB', '2GB'"
        )
    size = int(float(m.group(1)) * _UNITS[unit])
    if size <= 0:
        raise CaptureError(f"max_bytes must be positive, got {value!r}")
    return size


def format_bytes(n: int | float) -> str:
    """Return ``n`` bytes as a short human string (binary units)."""
    size = float(n)
    if abs(size) < 1024:
        return f"{int(size)} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if abs(size) < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"
