"""What a code cell does, read with ``ast`` (never executed).

IPython syntax (magics, ``!shell`` escapes) is first turned into the calls IPython would make,
so ``%probe acts y`` is seen as a call to the ``%probe`` magic, and the body of a cell magic that
runs Python (``%%activations``, ``%%time``, ...) is read as code. A cell that still does not parse
is read in parts, so one syntax error does not hide the rest of the cell.

Reading is linear in the cell's size (the rule in :mod:`interp_magics.rigor.rules`): IPython
syntax is converted in one pass (:mod:`~interp_magics.rigor.syntax`), source segments come
from lines split once, and magics are read at most MAX_MAGIC_DEPTH deep.

The module is past 400 lines because one tree walk records every fact (calls, names,
assignments, loops, functions) in a single pass: splitting the visitor would walk each tree
once per fact kind.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .syntax import Escape, convert

#: Cell magics whose body is Python code.
PYTHON_CELL_MAGICS = {"activations", "time", "timeit", "capture", "prun", "debug", "memit"}
#: Line magics whose argument is a Python statement.
PYTHON_LINE_MAGICS = {"time", "timeit", "prun", "debug", "memit"}
#: A cell that does not parse is read in groups of about this many lines, and a group that
#: does not parse line by line: at most MAX_SINGLE_LINES lines of a cell, since a broken cell
#: longer than that is pasted data, not code (and a parse a line costs more than the cell).
LINE_GROUP = 100
MAX_SINGLE_LINES = 20_000
#: A line where a top-level statement starts (a group of lines may end before it).
_STATEMENT_START = re.compile(r"(?!(?:else|elif|except|finally)\b)[^\s#)\]}]")
_LOOP_IDS = itertools.count(1)
#: How many magics deep their code is read (``%time %time stmt`` is two). Nobody writes
#: deeper nesting by hand; the magics themselves are recorded at any depth.
MAX_MAGIC_DEPTH = 4


@dataclass
class Call:
    """One call in a cell."""

    name: str  # as written, dotted: "np.random.permutation", "clf.fit", "%probe"
    line: int  # 1-based line in the cell
    in_loop: bool
    loop: int | None  # identifies the innermost enclosing loop
    args: list[str] = field(default_factory=list)  # source of positional arguments
    kwargs: dict[str, str] = field(default_factory=dict)  # source of keyword arguments
    receiver: str = ""  # source of the object a method is called on ("clf" in clf.fit)
    #: The names the statement around the call binds ("r", "p" in ``r, p = pearsonr(a, b)``).
    assigned: tuple[str, ...] = ()
    #: The last component of the name ("fit" for "clf.fit"); rules ask for it often.
    short: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.short = self.name.rsplit(".", 1)[-1]


@dataclass
class Assignment:
    """A statement that binds names (``=``, ``+=``, a ``for`` target): what from what."""

    targets: tuple[str, ...]  # the names bound (``y`` for ``y[i] = ...``: y is changed)
    reads: frozenset[str]  # the names its value (or the loop's iterable) reads
    line: int


@dataclass
class Function:
    """A function defined in the cell: its name, parameters and the calls in its body."""

    name: str
    line: int
    calls: list[Call]
    names: set[str]


@dataclass
class CodeFacts:
    """Facts about one code cell."""

    calls: list[Call] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # identifiers and attribute names used
    strings: list[tuple[str, int]] = field(default_factory=list)  # string constants and lines
    # (target name, number of strings, line) of list literals of strings
    string_lists: list[tuple[str, int, int]] = field(default_factory=list)
    functions: dict[str, Function] = field(default_factory=dict)
    # lines assigning to .output / .input (nnsight-style interventions)
    output_writes: list[int] = field(default_factory=list)
    loops: dict[int, str] = field(
        default_factory=dict
    )  # loop id -> its header ("layer in range(6)")
    assignments: list[Assignment] = field(default_factory=list)
    last_read: dict[str, int] = field(default_factory=dict)  # name -> last line reading it
    parse_error: str | None = None

    def called(self, *shorts: str) -> list[Call]:
        """Return the calls whose last name component is one of ``shorts``."""
        wanted = set(shorts)
        return [c for c in self.calls if c.short in wanted]


#: The longest source text kept for one argument, keyword value or receiver. Longer ones are
#: inline data (a pasted array, a long string); their first characters are kept. Without a
#: limit, a chain ``x.f(...).g(...)...`` would copy the chain again for every call in it.
SEGMENT_LIMIT = 10_000
#: Line breaks as the parser counts them (``ast`` line numbers): not form feeds or the other
#: separators ``str.splitlines`` knows.
_LINE_BREAK = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")


class _Segments:
    """The source text of ast nodes, with the code split into lines once.

    ``ast.get_source_segment`` splits (and encodes) the whole source again on every call, so
    reading a cell's arguments with it costs the cell's length per call: quadratic.
    """

    def __init__(self, code: str) -> None:
        self.lines = _LINE_BREAK.split(code)
        self.encoded: dict[int, bytes] = {}

    def _cut(self, row: int, start: int, end: int | None) -> str:
        """Return line ``row`` (0-based) from byte column ``start`` to ``end``, as text."""
        line = self.lines[row] if row < len(self.lines) else ""
        if line.isascii():  # the usual case: byte columns are character columns
            return line[start:end]
        if row not in self.encoded:
            self.encoded[row] = line.encode("utf-8")
        return self.encoded[row][start:end].decode("utf-8", "replace")

    def __call__(self, node: ast.AST) -> str:
        """Return the source of ``node`` (at most SEGMENT_LIMIT characters; "" if unknown)."""
        first, last = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
        start, end = getattr(node, "col_offset", None), getattr(node, "end_col_offset", None)
        if first is None or last is None or start is None or end is None:
            return ""
        if first == last:
            return self._cut(first - 1, start, min(end, start + 4 * SEGMENT_LIMIT))[:SEGMENT_LIMIT]
        parts, size = [self._cut(first - 1, start, None)], 0
        for row in range(first, last):
            size += len(parts[-1])
            if size >= SEGMENT_LIMIT:
                break
            parts.append(self._cut(row, 0, end if row == last - 1 else None))
        return "".join(parts)[:SEGMENT_LIMIT]


def _dotted(node: ast.AST) -> str:
    parts = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            break
        elif isinstance(node, ast.Call):
            parts.append(_dotted(node.func) + "()")
            break
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            parts.append("?")
            break
    return ".".join(reversed(parts))


class _Reader(ast.NodeVisitor):
    def __init__(
        self,
        source: str,
        facts: CodeFacts,
        offset: int = 0,
        escapes: dict[tuple[int, int], Escape] | None = None,
        depth: int = 0,
    ) -> None:
        self._seg = _Segments(source)
        self.facts = facts
        self.offset = offset
        self.escapes = escapes or {}  # placeholder (line, column) -> the escape it stands for
        self.depth = depth  # how many magics this code is the body of
        self.loops: list[int] = []
        self.function: Function | None = None
        self.binding: tuple[str, ...] = ()  # the names the statement being read binds
        self.reads: set[str] | None = None  # the names its value reads, while it is read

    # ast.NodeVisitor's own visit looks the method up by name for every node and walks every
    # field, Load and Store markers included; a large cell has hundreds of thousands of nodes.
    _methods: ClassVar[dict[type, Any]] = {}

    def visit(self, node: ast.AST) -> None:
        """Visit ``node`` with its ``visit_<Class>`` method (looked up once a class)."""
        kind = type(node)
        try:
            method = self._methods[kind]
        except KeyError:
            method = getattr(type(self), f"visit_{kind.__name__}", type(self).generic_visit)
            self._methods[kind] = method
        method(self, node)

    def generic_visit(self, node: ast.AST) -> None:
        """Visit the child nodes of ``node``, skipping the expression-context markers."""
        for name in node._fields:
            if name == "ctx":
                continue
            value = getattr(node, name, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def _loop(self, node: ast.AST) -> None:
        # A number of its own, not id(node): a cell read in parts frees each part's tree, and
        # a later part's loop could get a freed loop's id.
        loop = next(_LOOP_IDS)
        self.loops.append(loop)
        if isinstance(node, (ast.For, ast.AsyncFor)):
            self.facts.loops[loop] = f"{self._seg(node.target)} in {self._seg(node.iter)}"
            reads = {n.id for n in ast.walk(node.iter) if isinstance(n, ast.Name)}
            self._bound(_targets(node.target), reads, node.lineno)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            self.facts.loops[loop] = " ".join(
                f"{self._seg(g.target)} in {self._seg(g.iter)}" for g in node.generators
            )
        self.generic_visit(node)
        self.loops.pop()

    visit_For = visit_While = visit_AsyncFor = _loop
    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _loop

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        outer = self.function
        self.function = Function(node.name, node.lineno + self.offset, [], set())
        self.facts.functions[node.name] = self.function
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Name(self, node: ast.Name) -> None:
        self.facts.names.add(node.id)
        if isinstance(node.ctx, ast.Load):
            self.facts.last_read[node.id] = node.lineno + self.offset
            if self.reads is not None:
                self.reads.add(node.id)
        if self.function is not None:
            self.function.names.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.facts.names.add(node.attr)
        if self.function is not None:
            self.function.names.add(node.attr)
        self.generic_visit(node)

    def _body(self, code: str, offset: int) -> None:
        """Read the Python a magic runs (``%time stmt``, a ``%%time`` cell's body) as code.

        Only MAX_MAGIC_DEPTH magics deep: each level reads the text again, so ``%time %time
        ... x`` a thousand deep would cost a thousand times the line.
        """
        if self.depth < MAX_MAGIC_DEPTH:
            _read(code, self.facts, offset, self.depth + 1)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            self.facts.strings.append((node.value, getattr(node, "lineno", 1) + self.offset))
        elif node.value is Ellipsis and self.escapes:
            escape = self.escapes.get((node.lineno, node.col_offset))
            if escape is not None:  # a placeholder: read the call IPython writes there
                self._escape(escape, node.lineno)

    def _escape(self, escape: Escape, row: int) -> None:
        """Record what visiting ``escape.line``, ``get_ipython().<method>(args)``, records.

        Built, not parsed (a parse per ``!`` line costs more than the rest of the cell): the
        steps of visit_Call, visit_Attribute, visit_Name and visit_Constant on that call, in
        their order. test_escape_placeholders_give_the_facts_of_the_written_calls checks
        that both give the same facts.
        """
        line, in_loop = row + self.offset, bool(self.loops)
        loop = self.loops[-1] if self.loops else None
        if escape.method == "run_line_magic":
            magic, text = escape.args
            call = Call(f"%{magic}", line, in_loop, loop, text.split())
            if magic in PYTHON_LINE_MAGICS:
                self._body(text, line - 1)  # %time stmt: the statement is code
        else:
            quoted = [repr(escape.args[0])[:SEGMENT_LIMIT]]
            name = f"get_ipython().{escape.method}"
            call = Call(name, line, in_loop, loop, quoted, {}, "get_ipython()", self.binding)
        shell = Call("get_ipython", line, in_loop, loop, [], {}, "", self.binding)
        self._record(call)
        self.facts.names.add(escape.method)  # visit_Attribute
        if self.function is not None:
            self.function.names.add(escape.method)
        self._record(shell)
        self.visit_Name(ast.Name(id="get_ipython", ctx=_LOAD, lineno=row))
        for arg in escape.args:
            self.visit_Constant(ast.Constant(value=arg, lineno=row))

    def _record(self, call: Call) -> None:
        self.facts.calls.append(call)
        if self.function is not None:
            self.function.calls.append(call)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Attribute)
                and target.value.attr in ("output", "input")
            ):
                self.facts.output_writes.append(node.lineno + self.offset)
            if isinstance(target, ast.Attribute) and target.attr in ("output", "input", "value"):
                self.facts.output_writes.append(node.lineno + self.offset)
            if isinstance(node.value, (ast.List, ast.Tuple)) and isinstance(target, ast.Name):
                n = sum(
                    isinstance(e, ast.Constant) and isinstance(e.value, str)
                    for e in node.value.elts
                )
                if n >= 2:
                    self.facts.string_lists.append((target.id, n, node.lineno + self.offset))
        self._binding(node, tuple(n for t in node.targets for n in _targets(t)))

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._binding(node, _targets(node.target))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._binding(node, _targets(node.target))

    def _binding(
        self, node: ast.Assign | ast.AugAssign | ast.AnnAssign, names: tuple[str, ...]
    ) -> None:
        """Read an assignment: its calls learn the names it binds, and it is recorded."""
        outer = (self.binding, self.reads)
        self.binding, self.reads = names, set()
        if isinstance(node, ast.AugAssign):
            self.reads.update(names)  # x += y reads x
        self.generic_visit(node)
        reads = self.reads
        self.binding, self.reads = outer
        if self.reads is not None:  # a walrus inside another statement's value
            self.reads |= reads
        self._bound(names, reads, node.lineno)

    def _bound(self, names: tuple[str, ...], reads: set[str], line: int) -> None:
        if names:
            self.facts.assignments.append(Assignment(names, frozenset(reads), line + self.offset))

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func)
        args = [self._seg(a) for a in node.args]
        kwargs = {k.arg: self._seg(k.value) for k in node.keywords if k.arg}
        line = node.lineno + self.offset
        if name.endswith("run_line_magic") and node.args and isinstance(node.args[0], ast.Constant):
            magic = str(node.args[0].value)
            text = (
                node.args[1].value
                if len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                else ""
            )
            call = Call(
                f"%{magic}",
                line,
                bool(self.loops),
                self.loops[-1] if self.loops else None,
                str(text).split(),
            )
            if magic in PYTHON_LINE_MAGICS and isinstance(text, str):
                self._body(text, line - 1)  # %time stmt: the statement is code
        elif (
            name.endswith("run_cell_magic")
            and len(node.args) >= 3
            and isinstance(node.args[0], ast.Constant)
        ):
            magic = str(node.args[0].value)
            line_text = node.args[1].value if isinstance(node.args[1], ast.Constant) else ""
            call = Call(f"%%{magic}", line, bool(self.loops), None, str(line_text).split())
            body = node.args[2].value if isinstance(node.args[2], ast.Constant) else ""
            if magic in PYTHON_CELL_MAGICS and isinstance(body, str):
                self._body(body, line)
        else:
            receiver = self._seg(node.func.value) if isinstance(node.func, ast.Attribute) else ""
            call = Call(
                name,
                line,
                bool(self.loops),
                self.loops[-1] if self.loops else None,
                args,
                kwargs,
                receiver,
                self.binding,
            )
        self.facts.calls.append(call)
        if self.function is not None:
            self.function.calls.append(call)
        self.generic_visit(node)


_LOAD = ast.Load()


def _targets(node: ast.AST) -> tuple[str, ...]:
    """Return the names an assignment target binds or changes (``a, b``; ``y`` of ``y[i]``)."""
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(n for e in node.elts for n in _targets(e))
    if isinstance(node, (ast.Starred, ast.Subscript)):
        return _targets(node.value)
    return ()


def _read(source: str, facts: CodeFacts, offset: int = 0, depth: int = 0) -> None:
    code, escapes = convert(source)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        facts.parse_error = f"{type(exc).__name__}: {getattr(exc, 'msg', exc)}"
        lines = code.splitlines()
        for (row, _), escape in escapes.items():  # read as IPython writes them
            lines[row - 1] = escape.line.rstrip("\n")
        _read_what_parses(lines, facts, offset, depth)
        return
    try:
        _Reader(code, facts, offset, escapes, depth).visit(tree)
    except RecursionError:
        facts.parse_error = "RecursionError: the cell is nested too deeply to read"


def _read_what_parses(lines: list[str], facts: CodeFacts, offset: int, depth: int) -> None:
    """Read the parts of a cell that parse, so one bad line does not hide the rest of it.

    The lines go in groups of about LINE_GROUP, each ending where a top-level statement
    starts; a group that does not parse is read line by line, up to MAX_SINGLE_LINES lines a
    cell (parsing each line of a long broken cell alone would cost more than the cell).
    """
    start, singles = 0, 0
    while start < len(lines):
        end = min(len(lines), start + LINE_GROUP)
        while end < len(lines) and not _STATEMENT_START.match(lines[end]):
            end += 1
        text = "\n".join(lines[start:end])
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            for i in range(start, min(end, start + MAX_SINGLE_LINES - singles)):
                try:
                    line = lines[i].strip()
                    _Reader(line, facts, offset + i, depth=depth).visit(ast.parse(line))
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    continue
            singles += end - start
        else:
            with contextlib.suppress(RecursionError):  # parse_error already says it is partial
                _Reader(text, facts, offset + start, depth=depth).visit(tree)
        start = end


def code_facts(source: str) -> CodeFacts:
    """Return the facts of one code cell's source."""
    facts = CodeFacts()
    _read(source, facts)
    return facts
