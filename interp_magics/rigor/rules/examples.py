"""Example rules (EXM): general claims that rest on selected examples."""

from __future__ import annotations

import re

from ..registry import METHODOLOGY, Hit, rule
from .context import Context

GENERALISING = re.compile(
    r"\b(always|consistently|in general|generally|universally|every (?:example|input|prompt)|"
    r"all (?:examples|inputs|prompts)|"
    r"the model (?:has )?learn(?:s|ed|t)|robustly)\b",
    re.I,
)
#: What a general claim must be about to need a sample: the model or its parts, not the maths
#: ("the difference generally gets smaller as the matrices get bigger").
ABOUT_THE_MODEL = re.compile(
    r"\b(?:model|network|net|transformer|gpt|llm|heads?|layers?|neurons?|features?|"
    r"circuits?|mlps?|attention|directions?|represent\w{0,10}|activat\w{0,6}|predict\w{0,6}|"
    r"encod\w{0,5}|it learns?)\b",
    re.I,
)
#: General wording that is about the model's inputs by itself ("holds for all inputs").
ABOUT_INPUTS = re.compile(r"every |all |the model", re.I)
#: Wording that imagines rather than states ("we might want to see that it consistently ...").
HYPOTHETICAL = re.compile(r"\b(?:might|would|could|want to|wish|hope to|ideally)\b", re.I)
TOP_K_CALLS = ("topk", "nlargest", "argsort", "most_common")
# a list literal of strings bound to one of these names holds hand-picked examples
EXAMPLE_LIST = re.compile(r"example|prompt|sentence|input|text", re.I)


@rule(
    "EXM001",
    severity="warning",
    title="general claims from top-k or hand-picked examples",
    fix="report a quantitative measure over a held-out or randomly sampled set, and show "
    "random examples next to the top ones",
    cite=f"{METHODOLOGY} §Common Pitfalls 2 (Cherry-Picking)",
    alternatives="randomly sampled examples, dataset-level metrics",
)
def claims_from_picked_examples(ctx: Context) -> list[Hit]:
    """Flag general wording ("always", "the model learned") when examples were only selected.

    Top-activating or hand-written examples show what a feature can do at its strongest, not
    what it does in general; a claim about all inputs needs a measure over a random sample.
    """
    top_k = any(c.short in TOP_K_CALLS for _, c in ctx.calls())
    hand_picked = any(
        EXAMPLE_LIST.search(name)
        for cell in ctx.nb.code()
        if cell.facts
        for name, _, _ in cell.facts.string_lists
    )
    if not (top_k or hand_picked) or ctx.find({"sample", "choice"}):
        return []
    about = (
        c
        for c in ctx.claims(GENERALISING)
        if (ABOUT_INPUTS.match(c.match.group(0)) or ABOUT_THE_MODEL.search(c.sentence))
        and not HYPOTHETICAL.search(c.sentence)
    )
    if claim := next(about, None):
        word = claim.match.group(0)
        return [claim.hit(f'general wording ("{word}") rests on top-k or hand-picked examples')]
    return []
