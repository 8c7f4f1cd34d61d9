"""A probe's controls: what the same probe scores where there should be nothing to find.

Shuffled labels (the permutation test), random features of the same shape, a control task
(Hewitt & Liang, 2019: each word type gets a random label, giving selectivity), other
representations of the same examples (e.g. a randomly initialised model), chance levels with a
binomial test, and a mutual-information estimate with a shuffled-label reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch

from ..stats import (
    Chance,
    balanced_accuracy,
    binomial_p_value,
    bootstrap_ci,
    chance_levels,
    group_bootstrap_ci,
    grouped_proportion_ci,
    weighted_accuracy,
    weighted_balanced_accuracy,
    wilson_ci,
)
from ..stats import (
    accuracy as accuracy_stat,
)
from .fits import cross_validate
from .inputs import Folds, ProbeError, ProbeInputs, folds, labels
from .result import ControlResult
from .streaming import GaussianRows, Rows

CONTROLS = ("shuffled", "random_features", "majority")


def check_controls(controls: Sequence[str]) -> None:
    """Return nothing; raise :class:`ProbeError` for a control name not in :data:`CONTROLS`."""
    unknown = set(controls) - set(CONTROLS)
    if unknown:
        raise ProbeError(f"unknown controls {sorted(unknown)}; choose from {', '.join(CONTROLS)}")


def accuracy_ci(
    hits: np.ndarray, seed: int, groups: Any = None, level: float = 0.95
) -> tuple[float, float]:
    """Return the 95% CI of the accuracy of held-out ``hits`` (1 correct, 0 wrong).

    Independent examples: the Wilson score interval of the correct count (it never collapses,
    e.g. at accuracy 1.0). Grouped examples: the Wilson interval at the effective sample size
    from a cluster-robust variance (each group one unit when every hit agrees). Either covers the
    accuracy of the fitted fold models on new examples (new groups) from the same distribution.
    """
    h = np.asarray(hits, dtype=float)
    if groups is None:
        return wilson_ci(float(h.sum()), len(h), level)
    return grouped_proportion_ci(h, np.asarray(groups), level)


def balanced_ci(
    codes: np.ndarray, pred: np.ndarray, seed: int, groups: Any = None
) -> tuple[float, float]:
    """Return the 95% CI of balanced accuracy: bootstrap over examples, or over whole groups.

    Where the bootstrap degenerates (every class recalled perfectly, or not at all) it falls back
    to the mean of the per-class Wilson intervals.
    """
    if groups is None:
        lo, hi = bootstrap_ci([codes, pred], balanced_accuracy, seed=seed)
    else:
        lo, hi = group_bootstrap_ci(
            partial(weighted_balanced_accuracy, codes, pred), np.asarray(groups), seed=seed
        )
    if np.isfinite(lo) and hi > lo:
        return lo, hi
    per_class = [
        wilson_ci(float((pred[codes == c] == c).sum()), int((codes == c).sum()))
        for c in np.unique(codes)
    ]
    return float(np.mean([b[0] for b in per_class])), float(np.mean([b[1] for b in per_class]))


def difference_ci(
    a: np.ndarray, b: np.ndarray, seed: int, groups: Any = None
) -> tuple[float, float]:
    """Return the 95% CI of ``mean(a) - mean(b)`` over paired examples (or whole groups)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if groups is None:
        return bootstrap_ci([d], accuracy_stat, seed=seed)
    return group_bootstrap_ci(partial(weighted_accuracy, d), np.asarray(groups), seed=seed)


# -- the same probe on other features or labels -------------------------------------------------


def run_controls(
    p: ProbeInputs, which: Sequence[str]
) -> tuple[dict[str, ControlResult], ControlResult | None, list[str]]:
    """Return the controls of probe ``p`` by name, the control task's result and notes.

    Random features (when in ``which``), one control per other representation, and the control
    task on folds where its word types recur (refused, with a note, when ``groups`` keep types
    apart).
    """
    found: dict[str, ControlResult] = {}
    notes: list[str] = []
    if "random_features" in which:
        noise: Any = (
            GaussianRows(p.x.shape, p.seed + 4)  # the same numbers, generated chunk by chunk
            if isinstance(p.x, Rows)
            else np.random.default_rng(p.seed + 4).standard_normal(p.x.shape).astype(np.float32)
        )
        found["random features"] = _control(
            p, "random features", noise, p.codes, p.splits, "Gaussian, same shape"
        )
    for key, f in p.others.items():
        found[key] = _control(p, key, f, p.codes, p.splits)
    if p.task is None:
        return found, None, notes
    task_splits = _task_splits(p)
    refused = _types_do_not_recur(p, task_splits)
    if refused:
        return found, None, [refused]
    task = _control(p, "control task", p.x, p.task, task_splits, "Hewitt & Liang")
    found["control task"] = task
    return found, task, notes


def _task_splits(p: ProbeInputs) -> Folds:
    """Return the control task's folds: stratified on its own labels when cv is a fold count."""
    assert p.task is not None
    if isinstance(p.cv, (int, np.integer)) and np.bincount(p.task).min() >= p.cv:
        return folds(p.task, int(p.cv), p.seed, p.groups)
    return p.splits


def _types_do_not_recur(p: ProbeInputs, splits: Folds) -> str:
    """Return why the control task cannot be learned on ``splits`` ("" when it can).

    The control task is a per-type memorisation task: a test example can only be got right when
    its word type was seen in training. When ``groups`` keep (nearly) every type on one side,
    the control task is unlearnable by design and selectivity would be noise.
    """
    if p.types is None or p.groups is None:
        return ""
    seen = np.zeros(len(p.types), dtype=bool)
    for tr, te in splits:
        seen[te] = np.isin(p.types[te], p.types[tr])
    if seen.mean() >= 0.5:
        return ""
    return (
        f"control task not run: with these groups only {seen.mean():.0%} of test examples have a "
        "word type seen in training, and the control task (a random label per type) can only be "
        "learned by memorising types, so its accuracy and the selectivity would be noise. "
        "Group by something types recur across (e.g. sentences), or run the control task "
        "without groups in a separate probe"
    )


def _control(
    p: ProbeInputs,
    name: str,
    x: np.ndarray,
    codes: np.ndarray,
    splits: Folds,
    detail: str = "",
) -> ControlResult:
    """Return the cross-validated accuracy of probe ``p``'s estimator on ``x`` and ``codes``."""
    k = int(codes.max()) + 1
    no_perms = np.zeros((0, len(codes)), dtype=np.int64)
    pred = cross_validate(p.estimator, x, codes, k, splits, no_perms).predictions
    hits = (pred == codes).astype(float)
    return ControlResult(
        name,
        float(hits.mean()),
        accuracy_ci(hits, p.seed, p.groups),
        detail,
        balanced_accuracy=float(balanced_accuracy(codes, pred)),
        balanced_ci=balanced_ci(codes, pred, p.seed, p.groups),
        hits=hits,
        chance=chance_levels(np.bincount(codes, minlength=k)).frequency,
        balanced_hits=balanced_hits(codes, pred),
    )


def balanced_hits(codes: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Return per-example hits weighted so that their mean is the balanced accuracy."""
    counts = np.bincount(codes).astype(float)
    present = int((counts > 0).sum())
    return np.asarray((pred == codes) * len(codes) / (present * counts[codes]))


def control_notes(controls: Mapping[str, ControlResult]) -> list[str]:
    """Return warnings about degenerate controls: saturated, or far below chance."""
    notes = []
    for c in controls.values():
        if c.name == "control task" and c.ci[0] > 0.95:
            notes.append(
                f"control task saturated ({c.accuracy:.3f}): the representation memorises every "
                "word type, so selectivity only restates the probe's distance from 1.0; use more "
                "word types (or fewer examples per type)"
            )
        if c.chance is not None and c.ci[1] < c.chance:
            notes.append(
                f"{c.name} scores far below chance ({c.accuracy:.3f}, 95% CI up to {c.ci[1]:.3f}, "
                f"chance {c.chance:.3f}): a sign of a cross-validation artefact (near-duplicate "
                "examples with different labels across folds, or class balance shifting between "
                "train and test), not of 'nothing decodable'; read it with care"
            )
    return notes


def control_task_codes(
    control_task: Any, control_labels: Any, codes: np.ndarray, seed: int
) -> np.ndarray | None:
    """Return the control task's label codes ``0..k-1``: given, or drawn per word type.

    Codes are re-encoded after drawing, so a class that no type drew leaves no gap (a gap would
    make a class the probe can never predict). None without a control task.
    """
    if control_labels is not None:
        return labels(control_labels, len(codes), "control_labels")[0]
    if control_task is None:
        return None
    types = control_types(control_task, len(codes))
    # Each word type gets one label drawn from the label mix.
    rng = np.random.default_rng(seed + 2)
    freq = np.bincount(codes) / len(codes)
    mapping = {t: rng.choice(len(freq), p=freq) for t in np.unique(types)}
    drawn = np.array([mapping[t] for t in types], dtype=np.int64)
    used, recoded = np.unique(drawn, return_inverse=True)
    if len(used) < 2:
        raise ProbeError(
            "the control task drew one label for every word type; it needs more word types "
            "(or pass control_labels=)"
        )
    return recoded.astype(np.int64)


def control_types(control_task: Any, n: int) -> np.ndarray:
    """Return the word type of each of ``n`` examples, checked."""
    types = np.asarray(control_task)
    if types.ndim != 1 or len(types) != n:
        raise ProbeError(f"control_task has {types.size} entries for {n} examples")
    return types


def random_init_features(
    model: Any, inputs: Mapping[str, Any], keys: Sequence[str], *, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Return activations at ``keys`` of a randomly re-initialised copy of ``model`` on ``inputs``.

    The copy has the same architecture and configuration and fresh random weights (``seed``), so
    what a probe finds in it is what the architecture and the input tokens alone give away.
    """
    from ..core.adapters import call_model
    from ..core.capturing import capture

    config = getattr(model, "config", None)
    if config is None:
        raise ProbeError("a random-init control needs a HuggingFace model (with a config)")
    torch.manual_seed(seed)
    copy = type(model)(config).eval()
    if hasattr(config, "_attn_implementation"):
        copy.set_attn_implementation(config._attn_implementation)
    with torch.no_grad(), capture(copy, list(keys)) as acts:
        call_model(copy, dict(inputs))
    return {key: acts[key] for key in keys}


# -- chance and information ---------------------------------------------------------------------


def chance_test(
    codes: np.ndarray, k: int, hits: np.ndarray, test: bool, grouped: bool = False
) -> tuple[Chance, float]:
    """Return the chance levels, and the binomial p-value of ``hits`` vs the majority rate.

    The p-value is NaN unless ``test`` (the ``"majority"`` control) is asked for, and NaN for
    grouped examples: the binomial test counts examples as independent, which grouped ones are
    not (use the permutation p-value then).
    """
    levels = chance_levels(np.bincount(codes, minlength=k))
    ok = test and not grouped
    p = binomial_p_value(int(hits.sum()), len(codes), levels.majority) if ok else math.nan
    return levels, p


def mutual_information(scores: np.ndarray, codes: np.ndarray, seed: int) -> dict[str, float]:
    """Return the mutual information (nats) of the out-of-fold 1-D projection with the labels.

    ``mi_shuffled`` is its mean over five shuffles of the labels, the reference it should beat.
    """
    from sklearn.feature_selection import mutual_info_classif

    if scores.shape[1] == 1:
        proj = scores[:, 0]
    else:  # the main direction of the out-of-fold class scores
        centred = scores - scores.mean(0)
        proj = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
    mi = float(mutual_info_classif(proj[:, None], codes, random_state=seed)[0])
    rng = np.random.default_rng(seed + 3)
    shuffled = float(
        np.mean(
            [
                mutual_info_classif(proj[:, None], rng.permutation(codes), random_state=seed)[0]
                for _ in range(5)
            ]
        )
    )
    return {"mi": mi, "mi_shuffled": shuffled}
