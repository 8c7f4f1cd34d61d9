"""Reading the magics' arguments: variables of the notebook, quoted values, lists, ``-o`` names.

Every problem is a :class:`~IPython.core.error.UsageError` whose message says what to write
instead, so IPython shows it without a traceback.
"""

from __future__ import annotations

import difflib
import keyword
from typing import Any

from IPython.core.error import UsageError


def unquote(text: str) -> str:
    """Return ``text`` stripped, without one pair of matching surrounding quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def lookup(shell: Any, expr: str) -> Any:
    """Return the object a dotted name (``model.transformer``) refers to in the notebook."""
    expr = unquote(expr)
    head, *rest = expr.split(".")
    ns = shell.user_ns
    if not head.isidentifier():
        raise UsageError(f"{expr!r} is not a variable name; pass the name of the model variable")
    if head not in ns:
        near = difflib.get_close_matches(head, [k for k in ns if not k.startswith("_")], n=3)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        raise UsageError(f"name {head!r} is not defined in the notebook.{hint}")
    obj = ns[head]
    for i, attr in enumerate(rest):
        if not hasattr(obj, attr):
            where = ".".join([head, *rest[:i]])
            raise UsageError(f"{where!r} has no attribute {attr!r}")
        obj = getattr(obj, attr)
    return obj


def lookup_optional(shell: Any, expr: str | None) -> Any:
    """Return :func:`lookup` of ``expr``, or None when the option was not given."""
    return lookup(shell, expr) if expr else None


def output_name(name: str) -> str:
    """Return the variable name an ``-o`` option gives (checked to be a valid name)."""
    name = unquote(name)
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"-o {name!r} is not a valid variable name")
    return name


def stored(shell: Any, out: str | None, value: Any) -> Any:
    """Return ``value`` after binding it to the ``-o`` variable ``out`` (when one was given)."""
    if out:
        shell.user_ns[output_name(out)] = value
    return value


def int_or_text(text: str) -> int | str:
    """Return ``text`` as an int when it spells one (``-1``, ``3``), else unchanged."""
    return int(text) if text.lstrip("-").isdigit() else text


def comma_list(text: str) -> list[str]:
    """Return the non-empty, stripped items of a comma-separated option."""
    return [x.strip() for x in unquote(text).split(",") if x.strip()]


def layer_numbers(text: str) -> list[int]:
    """Return the layers a ``--layers`` option names: ``{0-3}``, ``0,5`` or both."""
    from ..core.sites import expand_braces

    text = unquote(text)
    try:
        return [int(x) for part in text.split(",") for x in expand_braces(part)]
    except ValueError:
        raise UsageError(f"--layers {text!r}: write e.g. {{0-3}} or 0,5") from None


def head_pair(text: str) -> tuple[int, int]:
    """Return the (layer, head) a ``--head LAYER,HEAD`` option names."""
    parts = unquote(text).replace(" ", "").split(",")
    if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
        raise UsageError(f"--head {text!r}: write LAYER,HEAD, e.g. --head 3,5")
    return int(parts[0]), int(parts[1])


def current_notebook(shell: Any) -> str | None:
    """Return the path of the notebook this kernel runs, or None when it cannot be found.

    What the front end names, else, under nbclient and nbconvert, the notebook in the working
    directory holding this kernel's code (:func:`~.notebook_finder.find_notebook`). Raises
    UsageError when several notebooks match equally.
    """
    from .notebook_finder import find_notebook

    return find_notebook(shell)
