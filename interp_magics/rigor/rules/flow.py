"""What feeds what across the notebook: which calls' results reach which other calls.

Rules ask whether a result is used for what it claims to be: a shuffled-label control only
counts when the shuffled labels reach a probe's fit, a correction only for the p-values that
reach it. Names are followed through assignments (``y_null = y[perm]``), loops (``for p in
ps``) and containers filled in place (``pvals.append(p)``), in notebook order.

One backward pass over the notebook's statements answers the question for every source at
once (the names needed by a sink later on, growing as the pass moves up), so the cost is linear
in the notebook's size however many sources and sinks there are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ..facts import Assignment, Call
from ..notebook import Cell
from .context import Context

#: Methods that put their arguments into the object they are called on.
FILLING = {"append", "extend", "insert", "add", "update", "appendleft", "put"}
#: How many sinks on one line a call is looked for in (a line of thousands of calls would
#: otherwise cost their square).
MAX_SINKS_A_LINE = 32
_WORD = re.compile(r"[A-Za-z_]\w{0,99}")


def words(call: Call) -> set[str]:
    """Return the identifiers in a call's arguments, keyword values and receiver."""
    return {
        w
        for text in (call.receiver, *call.args, *call.kwargs.values())
        for w in _WORD.findall(text)
    }


def reaching(
    ctx: Context,
    sources: Iterable[tuple[Cell, Call]],
    is_sink: Callable[[Call], bool],
    in_place: bool = False,
    receiver: bool = False,
) -> set[int]:
    """Return the ``id`` of each source call whose result reaches a sink call after it.

    A result reaches a sink through the names the source's statement binds (or, with
    ``in_place``, the names the source changes: its first argument, as ``rng.shuffle(y)``
    does; with ``receiver``, the object it is called on, as ``scaler.fit(X)`` changes
    ``scaler``), or directly when the source is written inside the sink's arguments.
    """
    wanted = {id(call): (cell.index, call) for cell, call in sources}
    if not wanted:
        return set()
    reached: set[int] = set()
    needed: set[str] = set()
    for cell in reversed(ctx.nb.code()):
        facts = cell.facts
        if facts is None:
            continue
        # (line, order, item): at one line, sinks first, then what fills or binds names
        steps: list[tuple[int, int, Call | Assignment]] = [(c.line, 1, c) for c in facts.calls]
        steps += [(a.line, 0, a) for a in facts.assignments]
        # the sinks (and fillings) on the line being read: a call written inside one of them
        # reaches it; the outer call comes first (a stable sort keeps the visiting order)
        sinks_here: list[Call] = []
        for line, _, call in sorted(steps, key=lambda s: (s[0], s[1]), reverse=True):
            if sinks_here and sinks_here[0].line != line:
                sinks_here = []
            if isinstance(call, Assignment):
                if needed.intersection(call.targets):
                    needed.update(call.reads)
                continue
            if is_sink(call):
                needed |= words(call)
                sinks_here.append(call)
            if call.short in FILLING and call.receiver in needed:
                needed |= words(call)
                sinks_here.append(call)  # what is written in its arguments reaches the sink
            changed = call.args[:1] if in_place else [call.receiver] if receiver else []
            if id(call) in wanted and _reaches(call, needed, sinks_here, changed):
                reached.add(id(call))
    return reached


def _reaches(call: Call, needed: set[str], sinks_here: list[Call], changed: list[str]) -> bool:
    """Whether ``call``'s result (the names it binds or ``changed``) is among the ``needed``
    names, or the call is written inside a sink."""
    if any(n != "_" and n in needed for n in (*call.assigned, *changed)):
        return True
    written = f"{call.short}("
    return any(
        any(written in a for a in (*s.args, *s.kwargs.values()))
        for s in sinks_here[:MAX_SINKS_A_LINE]
        if s is not call
    )


def used_later(ctx: Context, cell: Cell, call: Call) -> bool:
    """Whether the result of ``call`` is used: not bound, or a name it binds is read later."""
    names = [n for n in call.assigned if n != "_"]
    if not call.assigned:
        return True  # inside another call, printed or shown
    after = False
    for other in ctx.nb.code():
        if other.facts is None:
            continue
        if other is cell:
            after = True
            if any(other.facts.last_read.get(n, 0) > call.line for n in names):
                return True
        elif after and set(names) & other.facts.names:
            return True
    return False


def _bound_names(ctx: Context) -> set[str]:
    """Return every name the notebook binds by assignment or ``def`` (computed once a check)."""
    out: set[str] = set()
    for cell in ctx.nb.code():
        if cell.facts is not None:
            out.update(n for a in cell.facts.assignments for n in a.targets)
            out.update(cell.facts.functions)
    return out


def package_probe(ctx: Context, call: Call) -> bool:
    """Whether ``call`` is this package's ``probe``/``probe_layers``/``%probe``.

    ``probe(X)`` is also how a torch probe (``probe = nn.Linear(d, 2)``) is applied: a name
    the notebook binds itself is not the package's function.
    """
    if call.name == "%probe" or call.name.endswith(("probes.probe", "probes.probe_layers")):
        return True
    return call.name in ("probe", "probe_layers") and call.name not in ctx.shared(_bound_names)


def _function_calls(ctx: Context) -> set[int]:
    """Return the ``id`` of every call written in a function body (computed once a check)."""
    return {
        id(c)
        for cell in ctx.nb.code()
        if cell.facts is not None
        for f in cell.facts.functions.values()
        for c in f.calls
    }


def in_function(ctx: Context, call: Call) -> bool:
    """Whether ``call`` is written in the body of a function the notebook defines."""
    return id(call) in ctx.shared(_function_calls)
