"""The shuffled-label permutation test: permutations that respect the design, and its p-value.

A p-value is only valid when the null is computed the way the observed statistic is: the same
folds, estimator and stopping rule, and permutations that respect the design. Labels are
permuted within each test fold (every permuted fit sees the fold label counts the real fit saw);
whole groups exchange labels when a label is constant within groups (type-level labels); labels
that vary within groups are permuted within them. A design that allows too few distinct
labellings for p < 0.05 is refused before any fit.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..stats import permutation_p_value, tie_broken_p_value
from .inputs import Folds, ProbeError


@dataclass(frozen=True)
class PermutationScheme:
    """How labels are permuted so that the null is computed the way the observed fit was.

    Items (examples, or whole groups) exchange labels only with items of the same stratum (a
    test fold, or a group within one): each permutation keeps every fold's label counts, so the
    observed and permuted fits see the same fold logic.
    """

    kind: str  # "within test folds", "between groups", "within groups"
    item: np.ndarray  # the item of each example
    item_labels: np.ndarray  # the label of each item
    item_stratum: np.ndarray  # the stratum of each item
    log_labellings: float  # log of the number of distinct labellings the scheme reaches

    @property
    def n_labellings(self) -> float:
        """Return the number of distinct labellings (inf when past float range)."""
        return math.exp(self.log_labellings) if self.log_labellings < 700 else math.inf

    def describe(self) -> str:
        """Return one line saying how labels are permuted and how fine the p-value can be."""
        m = self.n_labellings
        count = f"{m:.0f}" if m < 1e6 else "more than a million"
        return f"labels permuted {self.kind} ({count} distinct labellings)"


def permutation_scheme(codes: np.ndarray, groups: Any, splits: Folds | None) -> PermutationScheme:
    """Return the permutation scheme that respects the design of ``codes``, ``groups``, ``splits``.

    No groups: labels are permuted within each test fold. Groups whose label is constant (a
    type-level label): whole groups exchange labels, within each test fold. Labels that vary
    within groups: labels are permuted within each group (and fold).
    """
    n = len(codes)
    fold = np.zeros(n, dtype=np.int64)
    for i, (_, te) in enumerate(splits or []):
        fold[te] = i
    if groups is None:
        return _scheme("within test folds", np.arange(n), codes, fold)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    # A group split across test folds (explicit folds may do that) is one unit per fold.
    _, unit = np.unique(fold * (int(g.max()) + 1) + g, return_inverse=True)
    first = np.unique(unit, return_index=True)[1]
    constant = np.all(codes == codes[first][unit])
    if constant:
        return _scheme("between groups", unit, codes[first], fold[first])
    return _scheme("within groups", np.arange(n), codes, unit)


def _scheme(
    kind: str, item: np.ndarray, labels_: np.ndarray, stratum: np.ndarray
) -> PermutationScheme:
    log_count = 0.0
    for s_ in np.unique(stratum):
        counts = np.bincount(labels_[stratum == s_])
        log_count += math.lgamma(counts.sum() + 1) - sum(math.lgamma(c + 1) for c in counts)
    return PermutationScheme(kind, item, labels_, stratum, log_count)


def permutations(
    codes: np.ndarray, n: int, seed: int, groups: Any = None, splits: Folds | None = None
) -> np.ndarray:
    """Return ``[n, examples]`` permuted label codes following :func:`permutation_scheme`.

    Without ``splits`` the whole data set is one fold.
    """
    return draw_permutations(permutation_scheme(codes, groups, splits), n, seed)


def draw_permutations(scheme: PermutationScheme, n: int, seed: int) -> np.ndarray:
    """Return ``[n, examples]`` label codes drawn from ``scheme`` (seeded)."""
    if not n:
        return np.zeros((0, len(scheme.item)), dtype=np.int64)
    rng = np.random.default_rng(seed + 1)
    order = np.argsort(scheme.item_stratum, kind="stable")
    stratum = scheme.item_stratum[order].astype(np.float64)
    # Random keys in [stratum, stratum + 1): sorting them shuffles items within their stratum.
    shuffled = np.argsort(rng.random((n, len(order))) + stratum, axis=1)
    item_perm = np.empty((n, len(order)), dtype=np.int64)
    item_perm[:, order] = scheme.item_labels[order][shuffled]
    return item_perm[:, scheme.item]


def permutation_test(
    accuracy: float,
    null_correct: np.ndarray,
    n_examples: int,
    null_balanced: np.ndarray | None = None,
    scheme: PermutationScheme | None = None,
    margin: float | None = None,
    null_margin: np.ndarray | None = None,
) -> dict[str, Any] | None:
    """Return the permutation test of ``accuracy`` (None when no permutation ran).

    With held-out margins (the fast paths, and estimators with a ``decision_function``), ties
    in accuracy are broken by the summed margin of the true class (``tie_break``).
    """
    if not len(null_correct):
        return None
    null = null_correct / n_examples
    if margin is not None and null_margin is not None:
        p_value = tie_broken_p_value(accuracy, null, margin, null_margin)
    else:
        p_value = permutation_p_value(accuracy, null)
    out: dict[str, Any] = {
        "n": len(null_correct),
        "p_value": p_value,
        "tie_break": "held-out margin" if null_margin is not None else None,
        "null_mean": float(null.mean()),
        "null_ci": (float(np.percentile(null, 2.5)), float(np.percentile(null, 97.5))),
        "null": null,
    }
    if null_balanced is not None:
        out["null_balanced_mean"] = float(np.nanmean(null_balanced))
    if scheme is not None:
        out["scheme"] = scheme.kind
        out["n_labellings"] = scheme.n_labellings
    return out


def null_balanced_accuracy(perms: np.ndarray, class_correct: np.ndarray, k: int) -> np.ndarray:
    """Return each permutation's balanced accuracy from its per-class correct counts."""
    m = len(perms)
    totals = np.bincount((perms + k * np.arange(m)[:, None]).ravel(), minlength=m * k)
    totals = totals.reshape(m, k).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(totals > 0, class_correct / np.maximum(totals, 1), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmean(recall, axis=1))


def check_scheme(scheme: PermutationScheme, n_permutations: int) -> list[str]:
    """Return notes on the permutation test's resolution; raise when it can never reject.

    A scheme that reaches fewer than 20 distinct labellings cannot give p < 0.05 (the smallest
    p-value is one over that count), so the test is refused with what to change.
    """
    m = scheme.n_labellings
    if m < 20:
        groups = scheme.kind == "between groups"
        raise ProbeError(
            f"no valid permutation test for this design: labels can only be permuted "
            f"{scheme.kind} ({'whole groups keep their label, ' if groups else ''}and permutations "
            f"keep each test fold's labels), which allows {m:.0f} distinct labellings, so the "
            f"smallest possible p-value is {1 / max(m, 1):.3f}. Add "
            f"{'groups' if groups else 'examples'}, use fewer folds (cv=2 or 3), or drop "
            "'shuffled' from controls and report the interval instead"
        )
    if m < n_permutations + 1:
        return [
            f"the permutation test reaches only {m:.0f} distinct labellings ({scheme.kind}): "
            f"p-values are no finer than {1 / m:.3g} (valid, but coarse)"
        ]
    return []
