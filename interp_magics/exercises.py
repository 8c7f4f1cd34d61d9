"""Answer checks for the tutorial notebooks' exercises: a clear right, or a hint."""

from __future__ import annotations


def check(ok: bool, *, right: str, hint: str) -> None:
    """Print "Right: <right>" when ``ok``, else "Not yet: <hint>"."""
    print(f"Right: {right}" if ok else f"Not yet: {hint}")
