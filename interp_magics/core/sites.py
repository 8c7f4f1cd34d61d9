"""The site grammar: which parts of a model a pattern names.

A pattern is one of

* a glob over ``named_modules()`` paths. ``*`` matches within one path component,
  ``**`` matches any number of components, ``?`` one character, and braces expand before
  matching: ``h.{0-3}`` is ``h.0 h.1 h.2 h.3``, ``{attn,mlp}`` is ``attn mlp``;
* a canonical site name (``resid_pre``, ``resid_post``, ``attn_out``, ``mlp_out``,
  ``pattern``), optionally followed by a layer: ``resid_pre`` (every layer), ``resid_pre.3``,
  ``resid_pre.-1`` (last layer), ``resid_pre.{0-3}``. Canonical sites go through the
  architecture adapters in :mod:`interp_magics.core.adapters`.

This module only parses and matches strings; it knows nothing about torch.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CANONICAL_SITES: tuple[str, ...] = (
    "resid_pre",
    "resid_post",
    "attn_out",
    "mlp_out",
    "head_out",
    "pattern",
)

_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:-|\.\.)\s*(-?\d+)\s*$")
_CANONICAL = re.compile(r"^(?P<site>[a-z_]+)(?:\.(?P<layer>-?\d+|\*))?$")


class PatternError(ValueError):
    """A pattern is malformed (unbalanced braces, empty alternatives, reversed range)."""


def expand_braces(pattern: str) -> list[str]:
    """Return the patterns a brace expression stands for, in order.

    ``"h.{0-2}.attn"`` gives ``["h.0.attn", "h.1.attn", "h.2.attn"]``; ``"{attn,mlp}"`` gives
    ``["attn", "mlp"]``; several groups give their cartesian product.
    """
    if pattern.count("{") != pattern.count("}"):
        raise PatternError(f"unbalanced braces in pattern {pattern!r}")
    parts: list[list[str]] = []
    pos = 0
    for match in _BRACE.finditer(pattern):
        parts.append([pattern[pos : match.start()]])
        parts.append(_alternatives(match.group(1), pattern))
        pos = match.end()
    parts.append([pattern[pos:]])
    out = ["".join(p) for p in itertools.product(*parts)]
    if any("{" in p or "}" in p for p in out):
        raise PatternError(f"nested braces are not supported in pattern {pattern!r}")
    return out


def _alternatives(body: str, pattern: str) -> list[str]:
    ranged = _RANGE.match(body)
    if ranged:
        lo, hi = int(ranged.group(1)), int(ranged.group(2))
        if lo > hi:
            raise PatternError(
                f"range {{{body}}} in {pattern!r} runs backwards; write {{{hi}-{lo}}}"
            )
        return [str(i) for i in range(lo, hi + 1)]
    items = [item.strip() for item in body.split(",")]
    if not body.strip() or any(not item for item in items):
        raise PatternError(f"empty alternative in {{{body}}} of pattern {pattern!r}")
    return items


@functools.lru_cache(maxsize=512)
def glob_regex(pattern: str, *, stop: str = ".") -> re.Pattern[str]:
    """Return the compiled regex for one brace-free glob; ``*`` does not cross ``stop`` chars."""
    not_stop = "[^" + re.escape(stop) + "]"
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append(not_stop + "*")
            i += 1
        elif pattern[i] == "?":
            out.append(not_stop)
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def match_names(pattern: str, names: Iterable[str], *, stop: str = ".") -> list[str]:
    """Return the names (in their given order) that the glob ``pattern`` matches."""
    regex = _union_regex(tuple(expand_braces(pattern)), stop)
    return [n for n in names if regex.match(n)]


@functools.lru_cache(maxsize=256)
def _union_regex(patterns: tuple[str, ...], stop: str) -> re.Pattern[str]:
    return re.compile("|".join(glob_regex(p, stop=stop).pattern for p in patterns))


def is_glob(pattern: str) -> bool:
    """Return True when ``pattern`` contains glob or brace syntax."""
    return any(c in pattern for c in "*?{")


@dataclass(frozen=True)
class CanonicalSite:
    """A canonical site request: ``site`` at ``layer`` (None means every layer)."""

    site: str
    layer: int | None


def parse_canonical(pattern: str) -> list[CanonicalSite] | None:
    """Return the canonical sites ``pattern`` names, or None if it is not a canonical name."""
    try:
        expanded = expand_braces(pattern)
    except PatternError:
        return None
    sites: list[CanonicalSite] = []
    for item in expanded:
        m = _CANONICAL.match(item)
        if not m or m.group("site") not in CANONICAL_SITES:
            return None
        layer = m.group("layer")
        sites.append(CanonicalSite(m.group("site"), None if layer in (None, "*") else int(layer)))
    return sites


def generalise(name: str) -> str:
    """Return ``name`` with numeric components replaced by ``*`` (``h.3.mlp`` -> ``h.*.mlp``)."""
    return ".".join("*" if part.isdigit() else part for part in name.split("."))


def closest_names(pattern: str, names: Sequence[str], n: int = 5) -> list[str]:
    """Return up to ``n`` real names (generalised over layer numbers) closest to ``pattern``."""
    shapes = list(dict.fromkeys(generalise(name) for name in names if name))
    target = generalise(_BRACE.sub("*", pattern))
    found = difflib.get_close_matches(target, shapes, n=n, cutoff=0.5)
    if not found:
        # A partial name ("mlp") should still point at the full paths that contain it.
        tail = target.rsplit(".", 1)[-1].strip("*")
        found = [s for s in shapes if tail and tail in s][:n]
    return found
