"""Causal-claim rules (CAU): causal wording, and how interventions are measured and made."""

from __future__ import annotations

import re

from ...core.records import AblationRecord, EdgeAttributionRecord, PatchRecord
from ..facts import Call
from ..notebook import Cell
from ..registry import METHODOLOGY, Hit, rule
from .context import Context
from .interventions import Intervention, components, interventions, supports

COMPONENT = re.compile(
    r"(heads?|layers?|neurons?|mlps?|attention|circuits?|features?|directions?|residual|"
    r"components?|L\d+H\d+|positions?)",
    re.I,
)
CAUSAL = re.compile(
    r"\b(is responsible for|are responsible for|implements?|"
    # "circuit", but not the OV / QK circuits of a head (terms of its weights, Elhage et al.)
    r"(?<!OV )(?<!QK )(?<!value )(?<!key )(?<!-value )(?<!-key )circuit|causes?|causally|"
    r"drives?|"
    # "computes", not the noun ("memory and compute")
    r"(?<!and )(?<!less )(?<!more )(?<!of )(?<!much )computes?|mechanisms?|mechanistically|"
    r"the model uses|is used (?:by the model )?to|"
    r"mediates?|underlies|does (?!not\b)\w{1,30}(?:ion|ing)|"
    r"(?:is|are) doing (?:[\w-]{1,20}\s{1,3}){0,5}?[\w-]{1,30}(?:ion|ing)|"
    r"(?:happens|occurs|takes place|is (?:done|performed|carried out)) (?:in|by|at))\b",
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
    about_components = (c for c in ctx.claims(CAUSAL) if COMPONENT.search(c.sentence))
    unsupported = (c for c in about_components if not supports(ctx, c.sentence))
    if claim := next(unsupported, None):
        said = f'causal wording ("{claim.match.group(0)}") about a model component in '
        said += f'"{excerpt(claim.sentence)}", but '
        if not ctx.shared(interventions):
            return [
                claim.hit(
                    said + "the notebook has only correlational evidence (no patching or ablation)"
                )
            ]
        named = ", ".join(_named(part) for part in components(claim.sentence))
        return [claim.hit(said + f"no intervention in the notebook touches {named}")]
    return []


def _named(part: tuple[int | None, int | None]) -> str:
    """Return how a message names a component: "head 1.2", "layer 3" or "head 2"."""
    layer, head = part
    if head is None:
        return f"layer {layer}"
    return f"head {head}" if layer is None else f"head {layer}.{head}"


def excerpt(sentence: str, limit: int = 90) -> str:
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
    kinds = [(cell, c.line, _metric_kind(ctx, c)) for cell, c in patches]
    # hand-written interventions whose score the code shows (a softmax, a log-probability)
    kinds += [(f.cell, f.line, f.metric) for f in _hand_written(ctx) if f.metric and f.cell]
    ran = ctx.records(PatchRecord)
    names = [record.metric.lower() for record, _ in ran]
    all_prob = all(_is_probability(n) for n in names)
    if kinds and all(k == "prob" for _, _, k in kinds) and all_prob:
        cell, line, _ = kinds[0]
        return [
            Hit(
                cell,
                line,
                "patching is scored only by a probability or accuracy, which saturates and hides "
                "effects",
            )
        ]
    if not kinds and names and all_prob and (where := ran[0][1]):
        return [Hit(where, 1, f"patching is scored only by {ran[0][0].metric}", "ledger")]
    return []


def _hand_written(ctx: Context) -> list[Intervention]:
    """Return the interventions the notebook makes by its own code (hooks, nnsight, pyvene)."""
    return [f for f in ctx.shared(interventions) if f.how not in ("api", "ledger")]


def _is_probability(metric: str) -> bool:
    """Whether a metric's name says it is a probability or accuracy (not a log-probability)."""
    lowered = metric.lower()
    return any(w in lowered for w in PROB_WORDS) and "log" not in lowered


def _metric_kind(ctx: Context, call: Call) -> str:
    """Return "good", "prob" or "unknown" for the metric a patching call uses."""
    src = _metric_source(call)
    if re.search(r"logit_diff|logprob|log_softmax|kl_to_clean|log_prob", src):
        return "good"
    if kind := ctx.shared(_metric_definitions).get(src):
        return kind
    return "prob" if _is_probability(src) else "unknown"


def _metric_definitions(ctx: Context) -> dict[str, str]:
    """Return "good" or "prob" for each name the code defines as a metric, first definition first.

    Read once per check: looking through every cell again for each patching call is quadratic.
    """
    kinds: dict[str, str] = {}
    for cell in ctx.nb.code():
        for name, f in (cell.facts.functions if cell.facts else {}).items():
            if kind := _function_kind(name, f.names):
                kinds.setdefault(name, kind)
        for line in cell.lines:
            target, eq, value = line.partition("=")
            if eq and target.strip() and (kind := _expression_kind(value.lstrip())):
                kinds.setdefault(target.strip(), kind)
    return kinds


def _function_kind(name: str, names: set[str]) -> str:
    """Return "good" or "prob" for a metric function by the names its body uses, else ""."""
    if {"log_softmax", "logprob", "log_prob"} & names or (
        "logit" in name.lower() and "diff" in name.lower()
    ):
        return "good"
    if {"softmax", "argmax", "accuracy_score", "probs", "prob"} & names:
        return "prob"
    return ""


def _expression_kind(value: str) -> str:
    """Return "good" or "prob" for the expression a metric name is assigned, else ""."""
    if re.search(r"logit_diff|logprob|kl_to_clean|log_softmax", value):
        return "good"
    if re.search(r"softmax|argmax|accuracy|prob", value):
        return "prob"
    return ""


def _metric_source(call: Call) -> str:
    """Return the source of the metric a patching call passes (keyword, position or flag)."""
    if call.name == "%patch":
        m = re.search(r"--metric\s+(\S+)", " ".join(call.args))
        return m.group(1) if m else ""
    src = call.kwargs.get("metric") or (
        call.args[3] if call.short == "activation_patch" and len(call.args) > 3 else ""
    )
    return src or (call.args[-1] if call.args else "")


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
    made: list[tuple[Cell, int | None, str]] = []
    for cell, call in ctx.find(PATCH_CALLS):
        noisy = "noise" in call.kwargs or (
            call.name == "%patch" and "--noise" in " ".join(call.args)
        )
        made.append((cell, call.line, "noise" if noisy else "counterfactual"))
    for cell, call in ctx.find({"ablate"}):
        kind = call.kwargs.get("kind") or (call.args[3] if len(call.args) > 3 else "'zero'")
        made.append((cell, call.line, "zero" if "zero" in kind else "other"))
    # hooks and edits written by hand: Gaussian noise, zeros, or something on distribution
    made += [(f.cell, f.line, f.corruption) for f in _hand_written(ctx) if f.cell]
    for patch, where in ctx.records(PatchRecord):
        if where:
            noisy = "noise" in patch.corruption.lower()
            made.append((where, None, "noise" if noisy else "counterfactual"))
    for ablation, where in ctx.records(AblationRecord):
        if where:
            made.append((where, None, "zero" if ablation.ablation == "zero" else "other"))
    if made and all(k in ("noise", "zero") for _, _, k in made):
        first, line, _ = made[0]
        return [
            Hit(
                first,
                line or 1,
                "the only interventions are Gaussian-noise corruption or zero ablation, which push "
                "activations off-distribution",
                "static" if line else "ledger",
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
    alternatives="verify_top, or an exact patching run of the same site; for edge attribution "
    "(EAP, EAP-IG), scores.verify(top=k) or %eap --verify K",
)
def unverified_attribution_patching(ctx: Context) -> list[Hit]:
    """Flag attribution patching (of nodes or edges) with no exact patching to check it.

    Attribution patching is a linear approximation that misses or misranks large effects;
    exact patching of its top cells (or edges) confirms what it found.
    """
    edges = _unverified_edge_attribution(ctx)
    if edges:
        return edges
    # sites: what exact patching covers; an attribution run of a named site needs one there
    attribution: list[tuple[Cell, Call, str]] = []
    exact: set[str] = set()
    for cell, call in ctx.find(PATCH_CALLS):
        method = call.kwargs.get("method", "") if call.name != "%patch" else " ".join(call.args)
        verified = call.kwargs.get("verify_top", "0") not in ("0", "") or "--verify-top" in method
        if "attribution" in method:
            if not verified:
                attribution.append((cell, call, _site(call)))
        else:
            exact.add(_site(call))
    for cell, call in ctx.calls():
        if "attribution_patch" in call.name or call.short in ("attribution_patching", "atp"):
            attribution.append((cell, call, ""))  # a site this rule cannot read: any exact run
    ran = ctx.records(PatchRecord)
    exact |= {patch.site for patch, _ in ran if patch.method == "exact"}
    unverified = [(w, p.site) for p, w in ran if p.method == "attribution" and not p.verified]
    for cell, call, site in attribution:
        if not exact or (site and site not in exact):
            where = f" of {site}" if site and exact else ""
            return [
                Hit(
                    cell,
                    call.line,
                    f"attribution-patching rankings{where} are used without checking the top "
                    "cells by exact patching" + (" of the same site" if where else ""),
                )
            ]
    for cell_or_none, site in unverified:
        if (not exact or site not in exact) and cell_or_none:
            return [
                Hit(
                    cell_or_none, 1, "attribution patching ran without exact verification", "ledger"
                )
            ]
    return []


def _unverified_edge_attribution(ctx: Context) -> list[Hit]:
    """Flag edge attribution (``eap``, ``%eap``) whose edges no exact edge patch checked."""
    verified = any(c.short == "verify" for _, c in ctx.calls()) or any(
        "--verify" in " ".join(c.args) for _, c in ctx.find({"%eap"})
    )
    for cell, call in ctx.find({"eap", "%eap"}):
        if not verified:
            return [
                Hit(
                    cell,
                    call.line,
                    "edge-attribution scores are used without checking the top edges by exact "
                    "edge patching",
                )
            ]
    ran = ctx.records(EdgeAttributionRecord)
    verified = verified or any(record.verified for record, _ in ran)  # .verify() records too
    for record, where in ran:
        if not record.verified and not verified and where:
            return [Hit(where, 1, "edge attribution ran without exact verification", "ledger")]
    return []


def _site(call: Call) -> str:
    """Return the site a patching call patches (``site=`` or ``--site``; resid_pre by default)."""
    if call.name == "%patch":
        m = re.search(r"--site[= ](\S+)", " ".join(call.args))
        return m.group(1) if m else "resid_pre"
    return call.kwargs.get("site", "'resid_pre'").strip("'\"")
