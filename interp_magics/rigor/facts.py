"""What a code cell does, read with ``ast`` (never executed).

IPython syntax (magics, ``!shell`` escapes) is first turned into the calls IPython would make,
so ``%probe acts y`` is seen as a call to the ``%probe`` magic, and the body of a cell magic that
runs Python (``%%activations``, ``%%time``, ...) is read as code. A cell that still does not parse
is read line by line, so one syntax error does not hide the rest of the cell.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from typing import Any

#: Cell magics whose body is Python code.
PYTHON_CELL_MAGICS = {"activations", "time", "timeit", "capture", "prun", "debug", "memit"}
#: Line magics whose argument is a Python statement.
PYTHON_LINE_MAGICS = {"time", "timeit", "prun", "debug", "memit"}


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

    @property
    def short(self) -> str:
        """The last component of the name ("fit" for "clf.fit")."""
        return self.name.rsplit(".", 1)[-1]


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
    parse_error: str | None = None

    def called(self, *shorts: str) -> list[Call]:
        """Return the calls whose last name component is one of ``shorts``."""
        wanted = set(shorts)
        return [c for c in self.calls if c.short in wanted]


@functools.lru_cache(maxsize=1)
def _transformer() -> Any:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


_IPYTHON_SYNTAX = re.compile(r"^\s*[%!]|[=]\s*[%!]|\?\s*$", re.M)


def _python(source: str) -> str:
    """Return ``source`` with IPython syntax turned into plain Python (best effort)."""
    if not _IPYTHON_SYNTAX.search(source):
        return source  # plain Python: IPython's transformer would return it unchanged
    try:
        return str(_transformer().transform_cell(source))
    except Exception:
        return source


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
    def __init__(self, source: str, facts: CodeFacts, offset: int = 0) -> None:
        self.source = source
        self.facts = facts
        self.offset = offset
        self.loops: list[int] = []
        self.function: Function | None = None

    def _seg(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source, node) or ""

    def _loop(self, node: ast.AST) -> None:
        self.loops.append(id(node))
        if isinstance(node, (ast.For, ast.AsyncFor)):
            self.facts.loops[id(node)] = f"{self._seg(node.target)} in {self._seg(node.iter)}"
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            self.facts.loops[id(node)] = " ".join(
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
        if self.function is not None:
            self.function.names.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.facts.names.add(node.attr)
        if self.function is not None:
            self.function.names.add(node.attr)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            self.facts.strings.append((node.value, getattr(node, "lineno", 1) + self.offset))

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
        self.generic_visit(node)

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
                _read(text, self.facts, offset=line - 1)  # %time stmt: the statement is code
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
                _read(body, self.facts, offset=line)
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
            )
        self.facts.calls.append(call)
        if self.function is not None:
            self.function.calls.append(call)
        self.generic_visit(node)


def _read(source: str, facts: CodeFacts, offset: int = 0) -> None:
    code = _python(source)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        facts.parse_error = f"{type(exc).__name__}: {getattr(exc, 'msg', exc)}"
        # Read what parses, line by line, so one bad line does not hide the rest of the cell.
        for i, line in enumerate(code.splitlines()):
            try:
                small = ast.parse(line.strip())
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue
            _Reader(line.strip(), facts, offset + i).visit(small)
        return
    try:
        _Reader(code, facts, offset).visit(tree)
    except RecursionError:
        facts.parse_error = "RecursionError: the cell is nested too deeply to read"


def code_facts(source: str) -> CodeFacts:
    """Return the facts of one code cell's source."""
    facts = CodeFacts()
    _read(source, facts)
    return facts
