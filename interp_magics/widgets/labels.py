"""Token labels for static (matplotlib) figures, drawn exactly as written.

matplotlib reads any text holding an even number of ``$`` signs as math: a token ``$$`` then
fails to render and ``${{x}}$`` recurses until Python gives up. Tokens are data, never markup,
so every label taken from a tokenizer goes through :func:`literal` (for calls that accept only
strings) or is drawn with :data:`LITERAL_TEXT` (for calls that accept text properties).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Text properties that make matplotlib draw a string as written: no mathtext, no TeX.
LITERAL_TEXT: dict[str, Any] = {"parse_math": False, "usetex": False}


def literal(text: object) -> str:
    """Return ``text`` as a string matplotlib draws verbatim under default settings.

    Every ``$`` gets one backslash: matplotlib then finds no math and removes exactly that
    backslash again when drawing (a ``\\$`` already in the token keeps its own backslash).
    TeX rendering (``text.usetex``) is a different language: draw with :data:`LITERAL_TEXT`
    there instead.
    """
    return str(text).replace("$", r"\$")


def literal_labels(labels: Iterable[object]) -> list[str]:
    """Return each label made literal with :func:`literal`."""
    return [literal(label) for label in labels]
