"""Causal-claim rules (CAU): causal wording, and how interventions are measured and made."""

from __future__ import annotations

import re

from ...core.records import AblationRecord, PatchRecord
from ..facts import Call
from ..notebook import Cell
from ..registry import METHODOLOGY, Hit, rule
from .context import Context

COMPONENT = re.compile(
    r"(heads?|layers?|neurons?|mlps?|attention|circuits?|features?|directions?|residual|"
    r"components?|L\d+H\d+|positions?)",
    re.I,
)
CAUSAL = re.compile(
    r"\b(is responsible for|are responsible for|implements?|circuit|causes?|causally|drives?|"
    r"computes?|the mechanism|mechanistically|the model uses|is used (?:by the model )?to)\b",
    re.I,
)
PROB_WORDS = ("prob", "acc", "softmax", "correct")
PATCH_CALLS = {"activation_patch", "%patch"}


@rule(
    "CAU001",
    severity="error",
    title="causal wording with only correlational evidence",
    fix="test the claim with an intervention (activation patching or ablation), or word it as "
    'correlational ("is encoded in", "predicts")',
    cite=f"{METHODOLOGY} §Multiple Validation Methods; Geiger et al. 2021, Causal Abstractions "
    "of Neural Networks",
    alternatives="activation patching, ablation, causal scrubbing, steering, or hooks that write "
    "activations",
)
def causal_claim_without_intervention(ctx: Context) -> list[Hit]:
    """Flag causal wording about a model component when nothing intervened on the model.

    Probes, attention maps and correlations show what is present, not what the model uses;
    "head 3 implements X" needs the model's behaviour to change when head 3 is changed.
    """
    if ctx.interventions():
        return []
    about_components = (c for c in ctx.claims(CAUSAL) if COMPONENT.search(c.sentence))
    if claim := next(about_components, None):
        return [
            claim.hit(
                f'causal wording ("{claim.match.group(0)}") about a model component in '
                f'"{_excerpt(claim.sentence)}", but the notebook has only correlational evidence '
                "(no patching or ablation)"
            )
        ]
    return []


def _excerpt(sentence: str, limit: int = 90) -> str:
    """Return ``sentence`` on one line, shortened to ``limit`` characters for a message."""
    text = " ".join(sentence.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@rule(
    "CAU002",
    severity="warning",
    title="patching scored only by probability or accuracy",
    fix="score patching with a logit difference or log-probability (patching.logit_diff, "
    "patching.logprob)",
    cite="Zhang & Nanda 2024, Towards Best Practices of Activation Patching; Heimersheim & "
    "Nanda 2024",
    alternatives="logit difference, log-probability, KL divergence",
)
def patching_scored_by_probability(ctx: Context) -> list[Hit]:
    """Flag patching whose every metric is a probability or an accuracy.

    Probabilities saturate: near 0 or 1 a large change in the model moves them little, so
    effects are missed or ranked wrongly; logit differences and log-probabilities do not.
    """
    patches = ctx.find(PATCH_CALLS | {"generic_activation_patch"}) + [
        (cell, c) for cell, c in ctx.calls() if c.short.startswith("get_act_patch")
    ]
    kinds = [(cell, c, _metric_kind(ctx, c)) for cell, c in patches]
    ran = ctx.records(PatchRecord)
    names = [record.metric.lower() for record, _ in ran]
    all_prob = all(_is_probability(n) for n in names)
    if kinds and all(k == "prob" for _, _, k in kinds) and all_prob:
        cell, call, _ = kinds[0]
        return [
            Hit(
                cell,
                call.line,
                "patching is scored only by a probability or accuracy, which saturates and hides "
                "effects",
            )
        ]
    if not kinds and names and all_prob and (where := ran[0][1]):
        return [Hit(where, 1, f"patching is scored only by {ran[0][0].metric}", "ledger")]
    return []


def _is_probability(metric: str) -> bool:
    """Whether a metric's name says it is a probability or accuracy (not a log-probability)."""
    lowered = metric.lower()
    return any(w in lowered for w in PROB_WORDS) and "log" not in lowered


def _metric_kind(ctx: Context, call: Call) -> str:
    """Return "good", "prob" or "unknown" for the metric a patching call uses."""
    src = _metric_source(call)
    if re.search(r"logit_diff|logprob|log_softmax|kl_to_clean|log_prob", src):
        return "good"
    for cell in ctx.nb.code():
        if kind := _metric_defined_in(cell, src):
            return kind
    return "prob" if _is_probability(src) else "unknown"


def _metric_source(call: Call) -> str:
    """Return the source of the metric a patching call passes (keyword, position or flag)."""
    if call.name == "%patch":
        m = re.search(r"--metric\s+(\S+)", " ".join(call.args))
        return m.group(1) if m else ""
    src = call.kwargs.get("metric") or (
        call.args[3] if call.short == "activation_patch" and len(call.args) > 3 else ""
    )
    return src or (call.args[-1] if call.args else "")


def _metric_defined_in(cell: Cell, src: str) -> str:
    """Return "good" or "prob" when ``cell`` defines the metric ``src`` names, else ""."""
    if cell.facts and src in cell.facts.functions:
        f = cell.facts.functions[src]
        if {"log_softmax", "logprob", "log_prob"} & f.names or (
            "logit" in src.lower() and "diff" in src.lower()
        ):
            return "good"
        if {"softmax", "argmax", "accuracy_score", "probs", "prob"} & f.names:
            return "prob"
    for line in cell.lines if src else []:
        m = re.match(rf"\s*{re.escape(src)}\s*=\s*(.+)", line)
        if m and re.search(r"logit_diff|logprob|kl_to_clean|log_softmax", m.group(1)):
            return "good"
        if m and re.search(r"softmax|argmax|accuracy|prob", m.group(1)):
            return "prob"
    return ""


@rule(
    "CAU003",
    severity="warning",
    title="only Gaussian-noise corruption or zero ablation",
    fix="add counterfactual patching (symmetric token replacement) or mean / resample ablation",
    cite="Zhang & Nanda 2024; Chan et al. 2022, Causal Scrubbing",
    alternatives="counterfactual prompts, mean ablation, resample ablation",
)
def off_distribution_interventions(ctx: Context) -> list[Hit]:
    """Flag a notebook whose only interventions are Gaussian noise or zero ablation.

    Both put activations where the model never saw them, so an effect may come from breaking
    the model rather than from removing the information; counterfactual inputs and mean or
    resample ablation stay on distribution.
    """
    interventions: list[tuple[Cell, Call | None, str]] = []
    for cell, call in ctx.find(PATCH_CALLS):
        noisy = "noise" in call.kwargs or (
            call.name == "%patch" and "--noise" in " ".join(call.args)
        )
        interventions.append((cell, call, "noise" if noisy else "counterfactual"))
    for cell, call in ctx.find({"ablate"}):
        kind = call.kwargs.get("kind") or (call.args[3] if len(call.args) > 3 else "'zero'")
        interventions.append((cell, call, "zero" if "zero" in kind else "other"))
    for patch, where in ctx.records(PatchRecord):
        if where:
            noisy = "noise" in patch.corruption.lower()
            interventions.append((where, None, "noise" if noisy else "counterfactual"))
    for ablation, where in ctx.records(AblationRecord):
        if where:
            interventions.append((where, None, "zero" if ablation.ablation == "zero" else "other"))
    if interventions and all(k in ("noise", "zero") for _, _, k in interventions):
        first, how, _ = interventions[0]
        return [
            Hit(
                first,
                how.line if how else 1,
                "the only interventions are Gaussian-noise corruption or zero ablation, which push "
                "activations off-distribution",
                "static" if how else "ledger",
            )
        ]
    return []


@rule(
    "CAU004",
    severity="warning",
    title="attribution patching without exact verification",
    fix="verify the top cells by exact patching (activation_patch(..., "
    "method='attribution', verify_top=k))",
    cite="Kramár et al. 2024, AtP*; Syed et al. 2023, Attribution Patching Outperforms "
    "Automated Circuit Discovery",
    alternatives="verify_top, or an exact patching run of the same site",
)
def unverified_attribution_patching(ctx: Context) -> list[Hit]:
    """Flag attribution patching with no exact patching to check its top cells.

    Attribution patching is a linear approximation that misses or misranks large effects;
    exact patching of its top cells confirms what it found.
    """
    attribution, exact = [], False
    for cell, call in ctx.find(PATCH_CALLS):
        method = call.kwargs.get("method", "") if call.name != "%patch" else " ".join(call.args)
        verified = call.kwargs.get("verify_top", "0") not in ("0", "") or "--verify-top" in method
        if "attribution" in method:
            if not verified:
                attribution.append((cell, call))
        else:
            exact = True
    for cell, call in ctx.calls():
        if "attribution_patch" in call.name or call.short in ("attribution_patching", "atp"):
            attribution.append((cell, call))
    ran = ctx.records(PatchRecord)
    exact = exact or any(patch.method == "exact" for patch, _ in ran)
    unverified = [w for p, w in ran if p.method == "attribution" and not p.verified]
    if attribution and not exact:
        cell, call = attribution[0]
        return [
            Hit(
                cell,
                call.line,
                "attribution-patching rankings are used without checking the top cells by exact "
                "patching",
            )
        ]
    if unverified and not exact and (where := unverified[0]):
        return [Hit(where, 1, "attribution patching ran without exact verification", "ledger")]
    return []
