"""The rigor checker: methodological gaps in an interpretability notebook, with fixes.

``check(notebook, ledger=...)`` reads a notebook (never executing it) and, when given, the ledger
of analyses a kernel actually ran, and returns :class:`Finding` objects: the rule, where it is
(cell index, cell id, execution count, line), what is missing, a concrete fix and a citation.
The rules are registered in :data:`RULES` (:mod:`interp_magics.rigor.registry`) by the family
modules of :mod:`interp_magics.rigor.rules`; ``interp-rigor`` is the command line.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator
from typing import Any

from .ledger import read_ledger
from .notebook import Notebook, NotebookError, Suppression, load
from .registry import RULES, Hit, Rule
from .report import Finding, Findings
from .rules import Context

__all__ = ["RULES", "Finding", "Findings", "NotebookError", "Rule", "check"]


def _selected(select: Iterable[str] | None, ignore: Iterable[str] | None) -> list[Rule]:
    chosen = set(RULES)
    for group, keep in ((select, True), (ignore, False)):
        if group is None:
            continue
        names = {s.strip().upper() for s in group if s.strip()}
        matched = {r for r in RULES for n in names if r.startswith(n)}
        unknown = [n for n in names if not any(r.startswith(n) for r in RULES)]
        if unknown:
            raise NotebookError(
                f"unknown rule(s) {', '.join(sorted(unknown))}; rules are {', '.join(RULES)}"
            )
        chosen = chosen & matched if keep else chosen - matched
    return [RULES[r] for r in RULES if r in chosen]


def check(
    notebook: Any,
    *,
    ledger: Any = None,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    suppress: bool = True,
    name: str | None = None,
) -> Findings:
    """Return the findings for ``notebook`` (a path, an nbformat node or a dict).

    Args:
        ledger: the kernel's :class:`~interp_magics.jupyter.ledger.Ledger` (or its JSON),
            adding what actually ran to what the notebook's text shows.
        select, ignore: rule ids or prefixes (``"PRB"``, ``"STA001"``) to run or skip.
        suppress: honour ``# rigor: ignore[RULE] -- reason`` comments, ``rigor-ignore:RULE``
            cell tags and notebook/cell metadata; with False every finding is reported.
    """
    with _collector_paused():
        nb = notebook if isinstance(notebook, Notebook) else load(notebook, name=name)
        return _findings(nb, Context(nb, read_ledger(ledger)), _selected(select, ignore), suppress)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the duration of a check.

    A large cell's syntax tree and facts are hundreds of thousands of objects, and every
    collection walks them all: about half of the time of reading a 1 MB cell. They hold no
    reference cycles, so reference counting frees them anyway; collection resumes afterwards
    (unless it was off before).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _findings(nb: Notebook, ctx: Context, rules: list[Rule], suppress: bool) -> Findings:
    """Return the findings of ``rules`` on ``nb``, suppressed as its comments and tags ask."""
    findings = Findings()
    by_rule: dict[str, list[Suppression]] = {}  # one lookup a hit, however many there are
    for s in nb.suppressions:
        by_rule.setdefault(s.rule, []).append(s)
    for rule in rules:
        for hit in rule.check(ctx):
            reason, message = (
                _suppression(rule, hit, by_rule.get(rule.id, [])) if suppress else ("", hit.message)
            )
            findings.append(
                Finding(
                    rule=rule.id,
                    severity=rule.severity,
                    cell_id=hit.cell.id,
                    cell_index=hit.cell.index,
                    line=max(1, hit.line),
                    message=message,
                    fix=rule.fix,
                    reference=rule.reference,
                    execution_count=hit.cell.execution_count,
                    notebook=nb.name,
                    source=hit.source,
                    suppressed=bool(reason),
                    reason=reason,
                    json_line=hit.cell.json_line,
                )
            )
    findings.sort(key=lambda f: (f.cell_index, f.line, f.rule))
    return findings


def _suppression(rule: Rule, hit: Hit, notebook_wide: list[Suppression]) -> tuple[str, str]:
    """Return why ``hit`` is suppressed ("" if it is not) and its message.

    ``notebook_wide`` are the notebook's suppressions of ``rule``. An unexplained suppression
    is refused, and the message says why.
    """
    unexplained: list[str] = []  # where a suppression without a reason is (each place once)
    for s in [*hit.cell.suppressions, *notebook_wide]:
        if s.rule != rule.id or s.cell_id not in (None, hit.cell.id):
            continue
        if s.reason:
            return f"{s.reason} ({s.where})", hit.message
        if s.where not in unexplained:
            unexplained.append(s.where)
    notes = "".join(
        f" (the {where} ignoring {rule.id} gives no reason, so it does not suppress; add one "
        "after ' -- ')"
        for where in unexplained
    )
    return "", hit.message + notes
