"""The rigor checker: methodological gaps in an interpretability notebook, with fixes.

``check(notebook, ledger=...)`` reads a notebook (never executing it) and, when given, the ledger
of analyses a kernel actually ran, and returns :class:`Finding` objects: the rule, where it is
(cell index, cell id, execution count, line), what is missing, a concrete fix and a citation.
The rules are registered in :data:`RULES` (:mod:`interp_magics.rigor.registry`) by the family
modules of :mod:`interp_magics.rigor.rules`; ``interp-rigor`` is the command line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .ledger import read_ledger
from .notebook import Notebook, NotebookError, load
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
    nb = notebook if isinstance(notebook, Notebook) else load(notebook, name=name)
    ctx = Context(nb, read_ledger(ledger))
    findings = Findings()
    for rule in _selected(select, ignore):
        for hit in rule.check(ctx):
            reason, message = _suppression(nb, rule, hit) if suppress else ("", hit.message)
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


def _suppression(nb: Notebook, rule: Rule, hit: Hit) -> tuple[str, str]:
    """Return why ``hit`` is suppressed ("" if it is not) and its message.

    An unexplained suppression is refused, and the message says why.
    """
    message = hit.message
    for s in [*hit.cell.suppressions, *nb.suppressions]:
        if s.rule != rule.id or s.cell_id not in (None, hit.cell.id):
            continue
        if s.reason:
            return f"{s.reason} ({s.where})", message
        message += (
            f" (the {s.where} ignoring {rule.id} gives no reason, so it does not "
            "suppress; add one after ' -- ')"
        )
    return "", message
