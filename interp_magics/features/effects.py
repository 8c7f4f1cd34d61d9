"""The causal effect of single features: ablate each one, keep everything else, score a metric.

:func:`ablate_features` sets one feature at a time to zero (or to its mean) at every real
token (or at ``positions``) of an SAE spliced into the model, keeping the SAE's error term,
and reports each feature's change in a metric with a t-interval and a corrected test.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core import events
from ..core.records import AblationRecord
from ..patching.significance import stat_options
from ..patching.sweep import BATCH_TOKENS
from ..patching.uncertainty import MAX_T
from .inputs import FeatureError, feature_indices
from .result import FeatureEffects, summarise
from .runs import Reference, Setup, edited_values, prepare, reference, region


def ablate_features(
    model: Any,
    inputs: Any,
    site: Any,
    features: Any = None,
    metric: Any = None,
    *,
    kind: str = "zero",
    positions: Any = None,
    tokenizer: Any = None,
    alpha: float = 0.05,
    correction: str = MAX_T,
    flips: int = 9999,
    seed: int = 0,
    batch_tokens: int = BATCH_TOKENS,
    progress: bool = True,
) -> FeatureEffects:
    """Return each feature's effect on ``metric`` when it alone is ablated.

    Args:
        model: the model with an SAE attached (:func:`~.sites.attach_sae` or ``spliced``).
        inputs: token ids, a tokenizer's output, or texts (with ``tokenizer``): one batch.
        site: the attached SAE: its key (``"sae:resid_post.1"``), its site
            (``"resid_post.1"``) or the FeatureSite.
        features: feature indices (default: every feature active somewhere in the batch; the
            others cannot change anything and are left out).
        metric: ``patching.logit_diff(...)``, ``patching.logprob(...)`` or a function of the
            logits (``[batch, pos, vocab] -> [batch]``).
        kind: ``"zero"``, or ``"mean"``: the feature's mean over the batch's real tokens at
            each position (as patching's mean ablation).
        positions: ablate only at these positions (default: every real token).
        alpha, correction, flips, seed: the interval level is ``1 - alpha``; the sign-flip tests
            are corrected across features by ``correction`` (``"max-t"``, ``"none"``, or a
            ``multipletests`` method); see :mod:`interp_magics.patching.uncertainty`.
        batch_tokens: tokens one stacked forward may hold (several features per forward).

    Changes are each example's metric with the feature ablated minus the same example's metric
    with the SAE spliced in unedited; a feature whose ablation changes nothing gets p = 1.
    """
    if kind not in ("zero", "mean"):
        raise FeatureError(f"kind must be 'zero' or 'mean', not {kind!r}")
    options = stat_options(alpha, correction, flips, seed)
    setup = prepare(
        model,
        inputs,
        site,
        metric,
        tokenizer=tokenizer,
        positions=positions,
        batch_tokens=batch_tokens,
        progress=progress,
    )
    chosen = None if features is None else feature_indices(features, setup.site.n_features)
    ref = reference(setup)
    chosen, run, values = _ablated_runs(setup, ref, chosen, kind)
    result = summarise(
        values - ref.values,
        chosen,
        ref.values,
        site=setup.site.key,
        method=f"{kind} ablation",
        metric=setup.metric.name,
        options=options,
        model=type(setup.runner.model).__name__,
    )
    if len(run) < len(chosen):
        result.notes.append(
            f"{len(chosen) - len(run)} features are not active where they would be ablated: "
            "their ablation changes nothing (p = 1, not run)"
        )
    events.emit(
        AblationRecord(
            ablation=kind,
            site=setup.site.key,
            by=["feature"],
            metric=setup.metric.name,
            cells=len(chosen),
            p_values=len(chosen),
            corrected=options.correction != "none",
            correction=None if options.correction == "none" else options.correction,
        )
    )
    return result


def _ablated_runs(
    setup: Setup, ref: Reference, chosen: torch.Tensor | None, kind: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the features reported (default: every one the ablation edits), those actually
    run, and the metric ``[feature, example]`` of each ablated (unedited where nothing
    changes: exactly the reference run)."""
    acts = ref.features.float()
    value = _ablated_value(setup, acts, kind)  # [B, T, n] or a scalar 0
    changed = _changed(acts, value, region(setup)).cpu()  # [n]: the ablation edits something
    if chosen is None:
        chosen = changed.nonzero().flatten()
        if chosen.numel() == 0:
            raise FeatureError(
                "no feature is active in this batch at the ablated positions; nothing to ablate"
            )
    run = chosen[changed[chosen]]
    values = ref.values.repeat(len(chosen), 1)
    if run.numel():
        per_feature = value
        if value.ndim:  # [B, T, n] -> [features run, B, T]
            per_feature = value[:, :, run.to(acts.device)].permute(2, 0, 1)
        index = {int(f): i for i, f in enumerate(chosen.tolist())}
        got = edited_values(setup, ref, run, per_feature, desc=f"{kind}-ablating features")
        values[[index[int(f)] for f in run.tolist()]] = got
    return chosen, run, values


def _ablated_value(setup: Setup, acts: torch.Tensor, kind: str) -> torch.Tensor:
    """Return what an ablated feature is set to: zeros, or its masked batch mean per position."""
    if kind == "zero":
        return torch.zeros((), device=acts.device)
    m = setup.mask.to(acts.device, acts.dtype)[..., None]  # [B, T, 1]
    mean = (acts * m).sum(0) / m.sum(0).clamp_min(1)  # [T, n]
    return mean.expand_as(acts)


def _changed(acts: torch.Tensor, value: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Return ``[n]``: whether setting each feature to ``value`` changes it anywhere it applies."""
    differs = (acts != value) & where.to(acts.device)[..., None]
    return differs.flatten(0, 1).any(0)
