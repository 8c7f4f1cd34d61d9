"""The rules: which methodological gaps the checker reports, and how it recognises them.

One module a family: probes (PRB), statistics (STA), reproducibility (REP), causal claims
(CAU), attention (ATT) and examples (EXM). Importing this package registers every rule in
:data:`~interp_magics.rigor.registry.RULES`. Rules read two sources of evidence through a
:class:`Context`: the notebook (code read with ``ast``, markdown read for claims, saved
outputs) and, when given, the ledger of analyses the kernel actually ran.
"""

from __future__ import annotations

from ..registry import RULES, Hit, Rule
from . import attention, causal, examples, probes, reproducibility, statistics
from .context import Context

__all__ = [
    "RULES",
    "Context",
    "Hit",
    "Rule",
    "attention",
    "causal",
    "examples",
    "probes",
    "reproducibility",
    "statistics",
]
