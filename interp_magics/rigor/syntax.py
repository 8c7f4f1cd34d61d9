"""IPython syntax (``!cmd``, ``%magic``, ``x = !cmd``, ``obj?``) turned into Python in linear time.

IPython's own ``TransformerManager.transform_cell`` finds one piece of special syntax, rewrites
it and tokenizes the whole cell again, up to 500 times: a cell of many ``!`` lines costs the
cell's length times the number of lines, and past 500 it gives up. Here one pass splits the cell
into logical lines (brackets, strings, comments and backslash continuations followed by hand)
and only the logical lines that can hold special syntax go through IPython's own token
transforms, each on its own: the same rewrite IPython makes, for the cost of reading the cell
once. An escape line (``!``, ``%`` ...) is read as IPython reads it after rewriting it: up to the
end of its line (and backslash continuations), whatever brackets or quotes it holds.

Patterns here follow the rule in :mod:`interp_magics.rigor.rules` (linear time).
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple, cast

#: Characters that start an escaped command at the start of a logical line (IPython's
#: ESCAPE_SINGLES), and the operators that start with one of them but are not escapes.
ESCAPES = frozenset("!?%,;/")
NOT_ESCAPES = ("!=", "%=", "//", "/=")
#: A cell holds IPython syntax only if this finds something. Per physical line, so a run of
#: blank lines is crossed once (``^\s*`` with MULTILINE would cross it from every line).
MAYBE_IPYTHON = re.compile(r"^[^\S\n]*[%!]|=[^\S\n]*[%!]|\?[^\S\n]*$", re.M)
#: What the scanner stops at in code: quotes, comments, brackets, backslashes, ``=`` and ``?``.
_SPECIAL = re.compile(r"[\"'#()\[\]{}\\=?]")
_OPERATOR_BEFORE_EQ = frozenset("=!<>:+-*/%&|^@~")
#: After an assignment's ``=``: the first character that is no space, unless it starts ``!=``
#: or ``%=``.
_AFTER_SPACES = re.compile(r"[ \t]*(?![!%]=)([^ \t]?)")


@functools.lru_cache(maxsize=1)
def _manager() -> Any:
    from IPython.core.inputtransformer2 import TransformerManager

    return cast(Any, TransformerManager)()  # IPython's transformers are untyped


class Logical(NamedTuple):
    """One logical line: ``lines[start:end]``, whether it may hold IPython syntax, and the
    column of the ``!``/``%``... it starts or assigns from, when on its first line (else -1)."""

    start: int
    end: int
    special: bool
    column: int = -1


class Escape(NamedTuple):
    """A one-line ``!cmd``, ``!!cmd``, ``%magic args``, ``x = !cmd`` or ``x = %magic args``:
    the ``get_ipython()`` method IPython calls for it, the call's string arguments, and the
    line IPython writes for it."""

    method: str  # "system", "getoutput" or "run_line_magic"
    args: tuple[str, ...]
    line: str


class Converted(NamedTuple):
    """A cell turned into Python, with placeholders for its one-line escapes.

    Each escape line is ``...`` (after its indentation or ``x = ``) in ``code``; ``escapes``
    maps the placeholder's (1-based line, byte column) to the escape it stands for. Reading
    the call from the escape costs far less than parsing the line IPython would write.
    """

    code: str
    escapes: dict[tuple[int, int], Escape]


#: Line separators ``str.splitlines`` knows but the parser does not count.
_ODD_BREAKS = re.compile("[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]|\r(?!\n)")


def python_code(source: str) -> str:
    """Return ``source`` with IPython syntax turned into the calls IPython would make.

    Plain Python comes back unchanged; so does a cell IPython's transforms cannot read.
    """
    return convert(source, placeholders=False).code


def convert(source: str, *, placeholders: bool = True) -> Converted:
    """Return ``source`` turned into Python (see :class:`Converted`; no placeholders when
    ``placeholders`` is false, nor in a cell with line separators the parser does not count).

    Plain Python comes back unchanged; so does a cell IPython's transforms cannot read.
    """
    if not MAYBE_IPYTHON.search(source):
        return Converted(source, {})
    manager = _manager()
    placeholders = placeholders and not _ODD_BREAKS.search(source)
    lines = (source if source.endswith("\n") else source + "\n").splitlines(keepends=True)
    escapes: dict[tuple[int, int], Escape] = {}
    try:
        for transform in manager.cleanup_transforms + manager.line_transforms:
            lines = transform(lines)
        out: list[str] = []
        for logical in logical_lines(lines):
            chunk = lines[logical.start : logical.end]
            if not logical.special:
                out += chunk
            elif found := _escape(chunk, logical.column):
                escape, placeholder = found
                if placeholders:
                    column = len(placeholder.encode("utf-8")) - 4  # where "..." starts
                    escapes[len(out) + 1, column] = escape
                out.append(placeholder if placeholders else escape.line)
            else:
                out += manager.do_token_transforms(chunk)
    except Exception:
        return Converted(source, {})
    return Converted("".join(out), escapes)


def _escape(chunk: list[str], column: int) -> tuple[Escape, str] | None:
    """Return a one-line escape as IPython rewrites it, and its placeholder line (None: let
    IPython's own search handle the chunk).

    Only what IPython's search would pick: nothing on the line comes before the ``!`` or
    ``%``, and no ``?`` ends the line (that is a help call).
    """
    line = chunk[0] if len(chunk) == 1 and column >= 0 else ""
    if not line or line.rstrip().endswith("?"):
        return None
    before, rest = line[:column], line[column:].rstrip()
    if not before.strip(" \t\f"):  # !cmd, !!cmd, %magic: IPython's EscapedCommand
        if rest.startswith("!!"):
            return _system("getoutput", before, rest[2:])
        if rest.startswith("!"):
            return _system("system", before, rest[1:])
        return _magic(before, rest[1:]) if rest.startswith("%") else None
    after = rest[1:2]
    if rest[0] == "!" and after not in ("!", "="):  # x = !cmd: SystemAssign
        return _system("getoutput", before, rest[1:])
    if rest[0] == "%" and after.isidentifier():  # x = %magic args: MagicAssign
        return _magic(before, rest[1:])
    return None


def _system(method: str, before: str, command: str) -> tuple[Escape, str]:
    call = f"get_ipython().{method}({command!r})"
    return Escape(method, (command,), f"{before}{call}\n"), f"{before}...\n"


def _magic(before: str, content: str) -> tuple[Escape, str]:
    name, _, args = content.partition(" ")
    call = f"get_ipython().run_line_magic({name!r}, {args!r})"
    return Escape("run_line_magic", (name, args), f"{before}{call}\n"), f"{before}...\n"


def logical_lines(lines: list[str]) -> list[Logical]:
    """Return the logical lines of ``lines`` (physical lines, with their line ends)."""
    out = []
    i, n = 0, len(lines)
    while i < n:
        start = i
        while i + 1 < n and lines[i].strip(" \t\f") in ("\\\n", "\\\r\n"):
            i += 1  # a line of only a backslash continues into the next: no token yet
        line = lines[i]
        first = len(line) - len(line.lstrip(" \t\f"))
        if line[first : first + 1] in ESCAPES and line[first : first + 2] not in NOT_ESCAPES:
            column = first if i == start else -1
            i = _continued(lines, i) + 1  # !cmd, %magic, ?obj ...: opaque to the line's end
            out.append(Logical(start, i, True, column))
            continue
        i, special, column = _scan_code(lines, i, first)
        out.append(Logical(start, i, special, column if i == start + 1 else -1))
    return out


def _continued(lines: list[str], i: int) -> int:
    """Return the last physical line of the backslash-continued line starting at ``i``."""
    while i + 1 < len(lines) and lines[i].endswith("\\\n"):
        i += 1
    return i


def _scan_code(lines: list[str], i: int, pos: int) -> tuple[int, bool, int]:
    """Return the line after the logical line of code starting at ``lines[i][pos]``, whether
    it may hold IPython syntax (``x = %magic``, ``x = !cmd``, a ``?``), and the column of the
    ``!`` or ``%`` an assignment starts with (-1 if none)."""
    depth, special, assigned = 0, False, False
    while i < len(lines):
        line, continued = lines[i], False
        while m := _SPECIAL.search(line, pos):
            c, pos = m.group(), m.end()
            if c in "\"'":
                i, line, pos = _skip_string(lines, i, m.start())
            elif c == "#":
                break  # a comment runs to the end of the line, backslash or not
            elif c in "([{":
                depth += 1
            elif c in ")]}":
                depth = max(0, depth - 1)
            elif c == "?":
                special = True
            elif c == "=" and depth == 0 and not assigned and _bare_eq(line, m.start()):
                assigned = True
                rest = _AFTER_SPACES.match(line, pos)
                if rest and rest.group(1) in ("!", "%"):  # x = !cmd: the rest is a command
                    return min(_continued(lines, i) + 1, len(lines)), True, rest.start(1)
            elif c == "\\" and line[pos : pos + 3] in ("", "\n", "\r\n"):
                continued = True  # the logical line goes on on the next line
        i, pos = i + 1, 0
        if depth == 0 and not continued:
            break
    return min(i, len(lines)), special, -1


def _bare_eq(line: str, at: int) -> bool:
    """Whether the ``=`` at ``line[at]`` is an assignment, not part of ``==``, ``<=``, ``+=``..."""
    before = line[at - 1] if at else ""
    return line[at + 1 : at + 2] != "=" and before not in _OPERATOR_BEFORE_EQ


def _skip_string(lines: list[str], i: int, at: int) -> tuple[int, str, int]:
    """Return ``(line index, line, position)`` just after the string opening at ``lines[i][at]``.

    An unterminated one-line string is read as the tokenizer reads it: a stray quote, after
    which the line is code again.
    """
    line = lines[i]
    quote = line[at : at + 3] if line[at : at + 3] in ('"""', "'''") else line[at]
    pos = at + len(quote)
    while True:
        end = _string_end(line, pos, quote)
        if end >= 0:
            return i, line, end
        if len(quote) == 1 and not line.rstrip("\r\n").endswith("\\"):
            return i, line, at + 1  # unterminated: the quote is a stray character
        if i + 1 >= len(lines):
            return i + 1, "", 0
        i, line, pos = i + 1, lines[i + 1], 0


def _string_end(line: str, pos: int, quote: str) -> int:
    """Return the position after ``quote`` closing a string in ``line`` from ``pos`` (-1: none)."""
    while True:
        close = line.find(quote, pos)
        if close < 0:
            return -1
        backslashes = 0
        while close - backslashes - 1 >= pos and line[close - backslashes - 1] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return close + len(quote)
        pos = close + 1
