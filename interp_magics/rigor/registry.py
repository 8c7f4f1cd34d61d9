"""The rule registry: what a rule is, and :data:`RULES`, every rule the checker runs, in order.

A rule is a check function registered with :func:`rule`, which carries everything a finding
reports besides its message (severity, title, fix, citation, accepted alternatives)::

    @rule("PRB001", severity="error", title=..., fix=..., cite=..., alternatives=...)
    def probe_without_control(ctx: Context) -> list[Hit]:
        ...  # the docstring says what the rule flags and why that is a gap

The families of rules live in :mod:`interp_magics.rigor.rules`, one module a family;
importing :mod:`interp_magics.rigor` registers all of them. :data:`RULES` keeps them in the
order of :data:`FAMILIES`, then by number, whatever order the modules are imported in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .notebook import Cell

if TYPE_CHECKING:
    from .rules.context import Context

METHODOLOGY = "interpretability-for-researchers.md"
"""The methodology guide the citations point to, by section."""

Severity = Literal["error", "warning"]

FAMILIES = ("PRB", "STA", "REP", "CAU", "ATT", "EXM")
"""Rule-id prefixes in the order rules are listed and run: probes, statistics,
reproducibility, causal claims, attention, examples."""


@dataclass
class Hit:
    """Where a rule fired, and what it says there."""

    cell: Cell
    line: int
    message: str
    source: str = "static"  # or "ledger"


Check = Callable[["Context"], list[Hit]]


@dataclass(frozen=True)
class Rule:
    """A methodological check: its id, what a finding reports, and the function that looks."""

    id: str
    severity: Severity
    title: str
    fix: str
    reference: str  # the citation
    alternatives: str  # accepted ways of doing it that must not be flagged
    check: Check = field(compare=False, repr=False)


RULES: dict[str, Rule] = {}
"""Every registered rule by id, ordered by family (:data:`FAMILIES`) and number."""


def rule(
    rule_id: str,
    /,
    *,
    severity: Severity,
    title: str,
    fix: str,
    cite: str,
    alternatives: str,
) -> Callable[[Check], Check]:
    """Return a decorator that registers its function as the check of rule ``rule_id``.

    Args:
        severity: "error" or "warning".
        title: a short name for the gap ("probe without a control").
        fix: a concrete fix, as the finding states it.
        cite: the literature (and methodology section) behind the rule.
        alternatives: the accepted ways of doing it, which the rule must not flag.
    """
    family, number = rule_id[:3], rule_id[3:]
    if family not in FAMILIES or len(number) != 3 or not number.isdigit():
        raise ValueError(f"rule id {rule_id!r} is not a family in {FAMILIES} and three digits")

    def register(check: Check) -> Check:
        if rule_id in RULES:
            raise ValueError(f"rule {rule_id} is registered twice")
        RULES[rule_id] = Rule(rule_id, severity, title, fix, cite, alternatives, check)
        ordered = sorted(RULES.items(), key=lambda item: (FAMILIES.index(item[0][:3]), item[0]))
        RULES.clear()  # in place: modules that imported RULES hold this dict
        RULES.update(ordered)
        return check

    return register
