"""The edit lines of ``%%intervene``: one edit a line, names taken from the notebook.

Grammar (one line; blank lines and ``#`` comments are skipped)::

    OPERATION SITE [VALUE] [@ POSITIONS] [heads=H,..] [units=U,..] [during=all|prompt|new]
                                        [coef=NUMBER] [mask=NAME]

- OPERATION: ``set``, ``add``, ``scale``, ``zero``, ``mean``, ``project_out``,
  ``project_onto``, ``apply``;
- SITE: a site pattern (``resid_post.1``, ``head_out.{0-2}``, ``sae:resid_post.1``, a glob);
- VALUE: a Python expression over the notebook's names (``steer*4``, ``-probe.direction``,
  ``clean_cache``, ``my_fn``), evaluated with no builtins; every operation but ``zero`` needs
  one;
- POSITIONS: ``-1``, ``3,5,-1`` or a slice ``3:7`` (no spaces), as the ``positions`` keyword.

Examples::

    add resid_post.1 steer*4 @ -1
    zero head_out.1 heads=2,3
    scale mlp_out.0 0.5 @ 3:7
    project_out resid_post.2 probe_dir
    set attn_out.1 cache
    mean resid_post.0 clean_cache
    apply resid_post.1 my_fn during=new
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from typing import Any

from . import edit as constructors
from .edits import OPERATIONS, Edit
from .errors import InterventionError

_OPTION = re.compile(r"^(heads|units|during|coef|positions|mask)=(.*)$")
_POSITIONS = re.compile(r"^(-?\d+(,-?\d+)*|-?\d*:-?\d*(:\d+)?)$")
_INDICES = re.compile(r"^-?\d+(,-?\d+)*$")
USAGE = (
    "OPERATION SITE [VALUE] [@ POSITIONS] [heads=2,3] [units=..] [during=all|prompt|new] "
    "[coef=N], e.g. 'add resid_post.1 steer*4 @ -1'"
)


def parse_edits(lines: list[str] | str, namespace: Mapping[str, Any]) -> list[Edit]:
    """Return the edits ``lines`` describe, values looked up in ``namespace``.

    Raises :class:`InterventionError` naming the line (1-based), its text and what was
    expected.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    edits = []
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            edits.append(_parse_line(text, namespace))
        except InterventionError as exc:
            raise InterventionError(f"line {number} ({text!r}): {exc}") from None
    return edits


def _parse_line(text: str, namespace: Mapping[str, Any]) -> Edit:
    tokens = text.split()
    op = tokens[0]
    if op not in OPERATIONS:
        raise InterventionError(
            f"unknown operation {op!r}; expected one of {', '.join(OPERATIONS)}"
        )
    if len(tokens) < 2:
        raise InterventionError(f"{op} needs a site; write {USAGE}")
    site = tokens[1]
    options: dict[str, str] = {}
    rest: list[str] = []
    positions: str | None = None
    i = 2
    while i < len(tokens):
        token = tokens[i]
        option = _OPTION.match(token)
        if option:
            if option.group(1) in options:
                raise InterventionError(f"{option.group(1)}= is given twice")
            options[option.group(1)] = option.group(2)
        elif token == "@" and i + 1 < len(tokens) and _POSITIONS.match(tokens[i + 1]):
            positions = tokens[i + 1]
            i += 1
        elif token.startswith("@") and _POSITIONS.match(token[1:]):
            positions = token[1:]
        else:
            rest.append(token)
        i += 1
    if positions is not None and "positions" in options:
        raise InterventionError("give positions once: either '@ POSITIONS' or positions=")
    positions = positions if positions is not None else options.pop("positions", None)
    if positions is not None and not _POSITIONS.match(positions):
        raise InterventionError(
            f"cannot read positions {positions!r}; write -1, 3,5 or 3:7 (no spaces)"
        )
    kwargs: dict[str, Any] = {
        "positions": positions,
        "heads": _indices(options.pop("heads", None), "heads"),
        "units": _indices(options.pop("units", None), "units"),
        "during": options.pop("during", None),
    }
    expression = " ".join(rest)
    if op == "zero":
        if expression:
            raise InterventionError(f"zero takes no value, but {expression!r} follows the site")
        _no_extra(options, op)
        return constructors.zero(site, **kwargs)
    if not expression:
        raise InterventionError(f"{op} needs a value after the site; write {USAGE}")
    value = evaluate(expression, namespace)
    if op == "add" and "coef" in options:
        coef = evaluate(options.pop("coef"), namespace)
        if isinstance(coef, bool) or not isinstance(coef, (int, float)):
            raise InterventionError(f"coef must be a number, got {type(coef).__name__}")
        kwargs["coef"] = float(coef)
    if op == "mean" and "mask" in options:
        kwargs["mask"] = evaluate(options.pop("mask"), namespace)
    _no_extra(options, op)
    build: Callable[..., Edit] = getattr(constructors, op)
    return build(site, value, **kwargs)


def _no_extra(options: dict[str, str], op: str) -> None:
    if options:
        name = next(iter(options))
        where = {"coef": "add", "mask": "mean"}.get(name, "")
        raise InterventionError(f"{name}= is an option of {where}, not of {op}")


def _indices(text: str | None, name: str) -> list[int] | None:
    if text is None:
        return None
    if not _INDICES.match(text):
        raise InterventionError(f"cannot read {name}={text!r}; write {name}=2 or {name}=2,3")
    return [int(part) for part in text.split(",")]


def evaluate(expression: str, namespace: Mapping[str, Any]) -> Any:
    """Return the value of a Python expression over ``namespace`` (no builtins, no dunder names)."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise InterventionError(
            f"cannot read the value {expression!r} as a Python expression ({exc.msg})"
        ) from None
    for node in ast.walk(tree):
        name = getattr(node, "attr", None) or getattr(node, "id", None)
        if isinstance(name, str) and name.startswith("__"):
            raise InterventionError(f"{name!r} is not allowed in an edit's value")
    scope = {**namespace, "__builtins__": {}}  # globals, so a lambda's body sees the names too
    try:
        return eval(compile(tree, "<intervene>", "eval"), scope)
    except NameError as exc:
        raise InterventionError(
            f"{exc} in {expression!r}; define it in the notebook before the cell"
        ) from None
    except Exception as exc:  # the user's expression: say what it raised
        raise InterventionError(
            f"evaluating {expression!r} raised {type(exc).__name__}: {exc}"
        ) from None
