"""Attention rules (ATT): attention weights read as an explanation."""

from __future__ import annotations

import re

from ..registry import METHODOLOGY, Hit, rule
from .context import Context
from .interventions import supports

ATTENTION_CALLS = {
    "%attention",
    "attention_patterns",
    "AttentionView",
    "attention_heads",
    "head_view",
    "model_view",
    "patterns_from_cache",
    "detect_head",  # TransformerLens head detectors score heads by their attention pattern
}
ATTENTION_CLAIM = re.compile(
    r"\b(attends? to|attention (?:to|shows|reveals|explains)|pays attention|"
    r"focus(?:es)? on|looks? at|"
    # a head's role read from its pattern: "an induction head", "the induction stripe"
    r"(?:induction|previous[- ]token|duplicate[- ]token|name[- ]mover|copying|successor)"
    r"[- ](?:heads?|stripes?))\b",
    re.I,
)


@rule(
    "ATT001",
    severity="warning",
    title="attention used as explanation without an intervention",
    fix="test the heads causally (patch or ablate them) before explaining behaviour by where "
    "they attend",
    cite="Jain & Wallace 2019, Attention is not Explanation; Wiegreffe & Pinter 2019; "
    f"{METHODOLOGY} §Common Pitfalls 1",
    alternatives="patching or ablating the heads shown",
)
def attention_as_explanation(ctx: Context) -> list[Hit]:
    """Flag wording about where a model attends, from attention maps with no intervention.

    Attention weights show where information may move, not what the model uses: different
    weights can give the same output, and a head can attend somewhere without effect.
    """
    views = ctx.find(ATTENTION_CALLS) or [
        (cell, c) for cell, c in ctx.calls() if c.kwargs.get("output_attentions") == "True"
    ]
    if not views and not any(
        "attentions" in (cell.facts.names if cell.facts else set()) for cell in ctx.nb.code()
    ):
        return []
    unsupported = (c for c in ctx.claims(ATTENTION_CLAIM) if not supports(ctx, c.sentence))
    if claim := next(unsupported, None):
        return [
            claim.hit(
                "attention weights are read as an explanation, but nothing tests whether that "
                "attention matters"
            )
        ]
    return []
