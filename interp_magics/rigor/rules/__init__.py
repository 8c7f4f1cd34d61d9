r"""The rules: which methodological gaps the checker reports, and how it recognises them.

One module a family: probes (PRB), statistics (STA), reproducibility (REP), causal claims
(CAU), attention (ATT) and examples (EXM). Importing this package registers every rule in
:data:`~interp_magics.rigor.registry.RULES`. Rules read two sources of evidence through a
:class:`Context`: the notebook (code read with ``ast``, markdown read for claims, saved
outputs) and, when given, the ledger of analyses the kernel actually ran.

Linear time. A check must never take more than linear time in the notebook's size: a notebook
sent to the Jupyter server is checked while the server waits. Every regular expression of the
checker (the rules here, and :mod:`~interp_magics.rigor.notebook`, ``facts`` and ``syntax``)
follows these rules, which ``tests/test_rigor_speed.py`` checks on each compiled pattern:

- no unbounded quantifier inside another (``(?:\w+\.)*``);
- no two unbounded quantifiers that can take the same character next to each other, or with
  only optional items between them (``\s*(?:-->)?\s*$``, ``\d*\.?\d+``);
- a quantifier that can run to the end of the line (``.*``, ``[^x]*``) comes last;
- a pattern used with ``search`` does not start with an unbounded quantifier, and under
  MULTILINE none after ``^`` crosses newlines (``^\s*`` crosses every blank line below);
- bounded quantifiers (``{0,40}``) cost a constant and are fine; no pattern is built from
  notebook text (only from fixed words, through ``re.escape``).

Passes over the notebook are linear too: each cell is split into lines once
(:attr:`~interp_magics.rigor.notebook.Cell.lines`, where lines over MAX_LINE characters are
left out), results several rules read are computed once a check (:meth:`Context.shared`), and
no rule searches every cell or output again for each claim or call.
"""

from __future__ import annotations

from ..registry import RULES, Hit, Rule
from . import (
    attention,
    causal,
    circuits,
    directions,
    examples,
    probes,
    reproducibility,
    statistics,
)
from .context import Context

__all__ = [
    "RULES",
    "Context",
    "Hit",
    "Rule",
    "attention",
    "causal",
    "circuits",
    "directions",
    "examples",
    "probes",
    "reproducibility",
    "statistics",
]
