"""CAU005: interventions along a learned direction or subspace, and the baselines they need."""

from __future__ import annotations

import re

from ..registry import Hit, rule
from .context import Context
from .interventions import interventions

#: A random draw: a direction drawn at random to compare a learned one with.
RANDOM_DRAW = re.compile(
    r"\b(?:randn|rand|randn_like|rand_like|normal|standard_normal|ortho_group|"
    r"special_ortho_group|random_direction|random_vector|random_unit_vector)\("
)
#: The name a random baseline direction is bound to ("random_dir", "rand_vec", "baseline").
BASELINE_NAME = re.compile(r"rand|dir|vec|steer|baseline|control|null|subspace|basis", re.I)
#: ``name = ...random draw...`` on one line: the target, then the value.
ASSIGNMENT = re.compile(r"\s{0,40}([A-Za-z_][\w, ]{0,80}?)\s{0,3}=(?!=)(.*)")


@rule(
    "CAU005",
    severity="warning",
    title="learned-direction intervention without a baseline",
    fix="compare with a random direction of the same norm (or a random subspace of the same "
    "dimension) and with patching the whole component",
    cite="Makelov, Lange & Nanda 2023, Is This the Subspace You Are Looking For? An "
    "Interpretability Illusion for Subspace Activation Patching",
    alternatives="a random-direction or random-subspace baseline of the same norm or "
    "dimension; a full-component patch of the same site",
)
def direction_without_baseline(ctx: Context) -> list[Hit]:
    """Flag a steering vector, probe direction or learned subspace intervened on with no baseline.

    Patching or adding along a direction can change the output through a dormant pathway the
    model never uses, and any vector of that norm may move a metric: without a random
    direction of the same norm, and the whole component patched for comparison, the effect
    does not show that the direction is the one the model uses.
    """
    found = ctx.shared(interventions)
    along = [f for f in found if f.direction and f.cell is not None]
    if not along:
        return []
    whole = any(not f.direction and f.corruption == "other" for f in found)
    if whole or any(f.baseline for f in found) or _random_direction(ctx):
        return []
    first = along[0]
    assert first.cell is not None
    return [
        Hit(
            first.cell,
            first.line,
            "an intervention along a learned direction or subspace, with no random direction "
            "of the same norm and no whole-component patch to compare its effect with",
        )
    ]


def _random_direction(ctx: Context) -> bool:
    """Whether the code draws a random direction to compare with (``rand_dir = torch.randn(d)``)."""
    for cell in ctx.nb.code():
        for line in cell.lines:
            if "rand" not in line and "normal" not in line and "ortho" not in line:
                continue
            m = ASSIGNMENT.match(line)
            if m and RANDOM_DRAW.search(m.group(2)) and BASELINE_NAME.search(m.group(1)):
                return True
            if re.search(r"\brandom_(?:direction|vector|unit_vector|subspace)\b", line):
                return True
    return False
