"""CAU006: circuits and mechanisms claimed without a faithfulness or completeness check."""

from __future__ import annotations

import re

from ...core.records import FaithfulnessRecord
from ..registry import Hit, rule
from .causal import excerpt
from .context import Context

#: A circuit or mechanism, not the OV / QK circuits of one head's weights (Elhage et al. 2021).
CIRCUIT = re.compile(
    r"(?<!OV )(?<!QK )(?<!value )(?<!key )(?<!-value )(?<!-key )\bcircuit\b(?! discovery)|"
    r"\bmechanism\b",
    re.I,
)
#: Components named in a claim: heads, MLPs, neurons, layers, "L9H6", "9.6".
PARTS = re.compile(
    r"\b(?:heads?|mlps?|neurons?|layers?|components?|features?|L\d{1,3}H\d{1,3}|\d{1,2}\.\d{1,2})\b",
    re.I,
)
#: What makes a sentence a claim that the components are the circuit, not a mention of one.
CIRCUIT_CLAIM = re.compile(
    r"\b(?:consists? of|(?:is|are) made (?:up )?of|(?:is |are )?composed of|includes?|"
    r"(?:is|are) formed by|implements?|performs?|forms?|constitutes?|makes? up|"
    r"(?:is|are) responsible for|"
    r"(?:is|are) (?:the|our) (?:\w{1,20} ){0,2}?(?:circuit|mechanism))\b",
    re.I,
)
#: Wording that announces or asks rather than claims ("we will find the circuit").
NOT_A_CLAIM = re.compile(
    r"\b(?:we will|we'll|let's|let us|how to|try to|trying to|in order to|to find|to discover|"
    r"to identify|to look for|you can|you could|could be|might be|may be|whether|"
    r"hypothes[ie]s|exercise|goal)\b|\?",
    re.I,
)
#: Code names that check a circuit against the whole model.
FAITHFULNESS_CODE = re.compile(
    r"faithful|completeness|minimality|ablate_(?:all_)?(?:except|but|outside|others?)|"
    r"keep_only|circuit_(?:mask|ablat|only|metric|performance|score)|"
    r"(?:mean|resample)_ablate_(?:except|outside|non_circuit|rest)|non_circuit|outside_circuit",
    re.I,
)
#: Text that states how much of the model's behaviour the circuit recovers.
FAITHFULNESS_TEXT = re.compile(
    r"\b(?:faithfulness|faithful|completeness|minimality|recovers? \d{1,3}(?:\.\d{1,3})?\s?%|"
    r"\d{1,3}(?:\.\d{1,3})?\s?% of the (?:full model|model's|original|clean|logit diff|"
    r"performance|behaviou?r)|everything (?:else|outside)[^.\n]{0,40}ablat)",
    re.I,
)


@rule(
    "CAU006",
    severity="warning",
    title="circuit claimed without a faithfulness check",
    fix="keep the circuit and mean- or resample-ablate everything outside it, and report how "
    "much of the full model's metric it recovers (faithfulness), and what ablating the circuit "
    "from the full model leaves (completeness)",
    cite="Wang et al. 2022, Interpretability in the Wild: a Circuit for Indirect Object "
    "Identification in GPT-2 small; Chan et al. 2022, Causal Scrubbing; Conmy et al. 2023, "
    "Towards Automated Circuit Discovery",
    alternatives="a faithfulness score (the circuit alone, the rest ablated, against the full "
    "model), completeness or minimality checks, causal scrubbing",
)
def circuit_without_faithfulness(ctx: Context) -> list[Hit]:
    """Flag a circuit or mechanism claimed when nothing checks that it accounts for the behaviour.

    Patching finds components that matter one at a time; that they together do the task is a
    further claim. Only running the circuit alone (everything else ablated) shows how much of
    the behaviour it carries, and ablating it from the model shows what it leaves out.
    """
    claim = next(
        (
            c
            for c in ctx.claims(CIRCUIT_CLAIM, cited=False)
            if CIRCUIT.search(c.sentence)
            and PARTS.search(c.sentence)
            and not NOT_A_CLAIM.search(c.sentence)
        ),
        None,
    )
    if claim is None or _checks_faithfulness(ctx):
        return []
    return [
        claim.hit(
            f'a circuit or mechanism is claimed ("{excerpt(claim.sentence)}") but nothing '
            "checks that it accounts for the behaviour: no run of the circuit with everything "
            "outside it ablated, no faithfulness or completeness score"
        )
    ]


def _checks_faithfulness(ctx: Context) -> bool:
    """Whether the code, the text or the ledger checks the circuit against the whole model."""
    if ctx.records(FaithfulnessRecord):
        return True
    if any(FAITHFULNESS_CODE.search(name) for name in ctx.names()):
        return True
    return any(FAITHFULNESS_TEXT.search(sentence) for _, _, sentence in ctx.sentences())
