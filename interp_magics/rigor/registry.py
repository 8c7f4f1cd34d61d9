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
"""Marks a citation clause naming a section of the methodology guide the rules follow.

The guide does not ship with the package, so no finding cites it: :func:`reference` drops such
clauses (or, when a rule cites nothing else, puts the published work the section rests on in
their place, :data:`GUIDE_SOURCES`) and points at the rule's page, which carries the full
references."""

GUIDE_SOURCES = {
    "Controls and Baselines": "Hewitt & Liang 2019, Designing and Interpreting Probes with "
    "Control Tasks",
    "Statistical Rigor": "Bouthillier et al. 2021, Accounting for Variance in Machine Learning "
    "Benchmarks",
    "Reproducibility": "Pimentel et al. 2019, A Large-Scale Study About Quality and "
    "Reproducibility of Jupyter Notebooks",
    "Multiple Validation Methods": "Geiger et al. 2021, Causal Abstractions of Neural Networks",
    "Common Pitfalls 1": "Jain & Wallace 2019, Attention is not Explanation",
    "Common Pitfalls 2": "Bolukbasi et al. 2021, An Interpretability Illusion for BERT",
}
"""The published work each cited section of the methodology guide rests on."""

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
    reference: str  # the citation: published work and the rule's page (see reference())
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
        cited = reference(rule_id, cite)
        RULES[rule_id] = Rule(rule_id, severity, title, fix, cited, alternatives, check)
        ordered = sorted(RULES.items(), key=lambda item: (FAMILIES.index(item[0][:3]), item[0]))
        RULES.clear()  # in place: modules that imported RULES hold this dict
        RULES.update(ordered)
        return check

    return register


def reference(rule_id: str, cite: str) -> str:
    """Return what findings of ``rule_id`` cite: the published work in ``cite``, and its page.

    Clauses (``;``-separated) naming the methodology guide are dropped, since users do not
    have it; if nothing else is cited, the work behind the guide's section takes their place.
    The page (``interp-rigor --explain RULE``) ships with the package and has full references.
    """
    clauses = [c.strip() for c in cite.split(";") if c.strip()]
    published = [c for c in clauses if METHODOLOGY not in c]
    if not published:
        published = [
            source
            for clause in clauses
            for section, source in GUIDE_SOURCES.items()
            if f"§{section}" in clause
        ]
    return "; ".join([*published, f"rule page: interp-rigor --explain {rule_id}"])
