"""A probe's controls: what the same probe scores where there should be nothing to find.

Shuffled labels (the permutation test), random features of the same shape, a control task
(Hewitt & Liang, 2019: each word type gets a random label, giving selectivity), other
representations of the same examples (e.g. a randomly initialised model), chance levels with a
binomial test, and a mutual-information estimate with a shuffled-label reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..stats import (
    Chance,
    binomial_p_value,
    bootstrap_ci,
    chance_levels,
    permutation_p_value,
)
from ..stats import (
    accuracy as accuracy_stat,
)
from .fits import cross_validate
from .inputs import Folds, ProbeError, ProbeInputs, folds, labels
from .result import ControlResult

CONTROLS = ("shuffled", "random_features", "majority")


def check_controls(controls: Sequence[str]) -> None:
    """Return nothing; raise :class:`ProbeError` for a control name not in :data:`CONTROLS`."""
    unknown = set(controls) - set(CONTROLS)
    if unknown:
        raise ProbeError(f"unknown controls {sorted(unknown)}; choose from {', '.join(CONTROLS)}")


def accuracy_ci(hits: np.ndarray, seed: int) -> tuple[float, float]:
    """Return the bootstrap 95% CI of the accuracy of held-out ``hits`` (1 correct, 0 wrong)."""
    return bootstrap_ci([hits], accuracy_stat, seed=seed)


# -- shuffled labels ----------------------------------------------------------------------------


def permutations(codes: np.ndarray, n: int, seed: int, groups: Any) -> np.ndarray:
    """Return ``[n, examples]`` permuted label codes (within groups when groups are given)."""
    rng = np.random.default_rng(seed + 1)
    if groups is None:
        return (
            np.stack([rng.permutation(codes) for _ in range(n)])
            if n
            else np.zeros((0, len(codes)), dtype=np.int64)
        )
    g = np.asarray(groups)
    out = np.tile(codes, (n, 1))
    for value in np.unique(g):
        idx = np.nonzero(g == value)[0]
        for i in range(n):
            out[i, idx] = codes[idx][rng.permutation(len(idx))]
    return out


def permutation_test(
    accuracy: float, null_correct: np.ndarray, n_examples: int
) -> dict[str, Any] | None:
    """Return the permutation test of ``accuracy`` (None when no permutation ran)."""
    if not len(null_correct):
        return None
    null = null_correct / n_examples
    return {
        "n": len(null_correct),
        "p_value": permutation_p_value(accuracy, null),
        "null_mean": float(null.mean()),
        "null_ci": (float(np.percentile(null, 2.5)), float(np.percentile(null, 97.5))),
        "null": null,
    }


# -- the same probe on other features or labels -------------------------------------------------


def run_controls(
    p: ProbeInputs, which: Sequence[str]
) -> tuple[dict[str, ControlResult], ControlResult | None]:
    """Return the controls of probe ``p`` by name, and the control task's result (if it has one).

    Random features (when in ``which``), one control per other representation, and the control
    task on its own folds when every control class has enough examples for them.
    """
    found: dict[str, ControlResult] = {}
    if "random_features" in which:
        noise = np.random.default_rng(p.seed + 4).standard_normal(p.x.shape).astype(np.float32)
        found["random features"] = _control(
            p, "random features", noise, p.codes, p.k, p.splits, "Gaussian, same shape"
        )
    for key, f in p.others.items():
        found[key] = _control(p, key, f, p.codes, p.k, p.splits)
    if p.task is None:
        return found, None
    enough = np.bincount(p.task).min() >= p.cv
    task_splits = folds(p.task, p.cv, p.seed, p.groups) if enough else p.splits
    k = len(np.unique(p.task))
    task = _control(p, "control task", p.x, p.task, k, task_splits, "Hewitt & Liang")
    found["control task"] = task
    return found, task


def _control(
    p: ProbeInputs,
    name: str,
    x: np.ndarray,
    codes: np.ndarray,
    k: int,
    splits: Folds,
    detail: str = "",
) -> ControlResult:
    """Return the cross-validated accuracy of probe ``p``'s estimator on ``x`` and ``codes``."""
    no_perms = np.zeros((0, len(codes)), dtype=np.int64)
    pred = cross_validate(p.estimator, x, codes, k, splits, no_perms).predictions
    hits = (pred == codes).astype(float)
    return ControlResult(name, float(hits.mean()), accuracy_ci(hits, p.seed), detail)


def control_task_codes(
    control_task: Any, control_labels: Any, codes: np.ndarray, seed: int
) -> np.ndarray | None:
    """Return the control task's label codes: given, or drawn per word type; None without one."""
    if control_labels is not None:
        return labels(control_labels, len(codes), "control_labels")[0]
    if control_task is None:
        return None
    types = np.asarray(control_task)
    if len(types) != len(codes):
        raise ProbeError(f"control_task has {len(types)} entries for {len(codes)} examples")
    # Each word type gets one label drawn from the label mix.
    rng = np.random.default_rng(seed + 2)
    freq = np.bincount(codes) / len(codes)
    mapping = {t: rng.choice(len(freq), p=freq) for t in np.unique(types)}
    return np.array([mapping[t] for t in types], dtype=np.int64)


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


def chance_test(codes: np.ndarray, k: int, hits: np.ndarray, test: bool) -> tuple[Chance, float]:
    """Return the chance levels, and the binomial p-value of ``hits`` vs the majority rate.

    The p-value is NaN unless ``test`` (the ``"majority"`` control) is asked for.
    """
    levels = chance_levels(np.bincount(codes, minlength=k))
    p = binomial_p_value(int(hits.sum()), len(codes), levels.majority) if test else math.nan
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
