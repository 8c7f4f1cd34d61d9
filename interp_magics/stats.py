"""Statistics used by probes and reports: intervals, tests and multiple-comparison correction.

Thin, documented wrappers over scipy and statsmodels, so every report computes them one way:

- :func:`bootstrap_ci`: bootstrap confidence interval (``scipy.stats.bootstrap``);
- :func:`permutation_p_value`: the exact permutation p-value
  ``(1 + #{null >= observed}) / (1 + n)``;
- :func:`binomial_p_value`: one-sided binomial test of correct predictions against chance
  (``scipy.stats.binomtest``);
- :func:`chance_levels`: majority-class rate and the accuracy of a label-frequency guesser;
- :func:`correct`: p-values corrected across tests (``statsmodels.stats.multitest.multipletests``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Methods of ``statsmodels.stats.multitest.multipletests``.
CORRECTIONS = (
    "bonferroni",
    "sidak",
    "holm-sidak",
    "holm",
    "simes-hochberg",
    "hommel",
    "fdr_bh",
    "fdr_by",
    "fdr_tsbh",
    "fdr_tsbky",
)


def bootstrap_ci(
    data: Sequence[np.ndarray],
    statistic: Callable[..., float],
    *,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Return the ``level`` bootstrap confidence interval of ``statistic`` over paired samples.

    ``data`` is one or more arrays resampled together (rows stay paired); ``statistic`` takes
    them and an ``axis`` keyword (vectorised over resamples). The BCa interval is used up to 2,000
    samples (its jackknife costs one evaluation per sample), the percentile interval beyond; for
    degenerate samples (e.g. every prediction correct) the interval collapses to the observed value.
    """
    from scipy.stats import bootstrap

    arrays = tuple(np.asarray(a) for a in data)
    if len(arrays[0]) < 2:
        value = float(statistic(*arrays, axis=-1))
        return value, value
    rng = np.random.default_rng(seed)
    methods = ("BCa", "percentile") if len(arrays[0]) <= 2000 else ("percentile",)
    for method in methods:
        # scipy warns when BCa is undefined (e.g. every prediction correct); the percentile
        # interval below is the fallback, so the warning would only be noise.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = bootstrap(
                    arrays,
                    statistic,
                    paired=True,
                    vectorized=True,
                    confidence_level=level,
                    n_resamples=n_resamples,
                    method=method,
                    random_state=rng,
                    batch=max(1, int(2e7 // len(arrays[0]))),
                )
            except (ValueError, FloatingPointError):
                continue
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return low, high
    value = float(statistic(*arrays, axis=-1))
    return value, value


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """Return the exact permutation p-value of ``observed`` against ``null`` scores (one-sided).

    Counting the observed labelling as one of the permutations, ``(1 + #{null >= observed}) /
    (1 + len(null))`` is never 0 and is uniform under the null hypothesis.
    """
    null = np.asarray(null)
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + null.size))


@dataclass(frozen=True)
class Chance:
    """Chance levels of a classification task with imbalanced classes."""

    majority: float  # accuracy of always predicting the most frequent class
    frequency: float  # expected accuracy of guessing classes at their frequencies: sum p_k^2


def chance_levels(counts: Sequence[int] | np.ndarray) -> Chance:
    """Return the majority-class rate and the label-frequency guesser's expected accuracy."""
    c = np.asarray(counts, dtype=float)
    p = c / c.sum()
    return Chance(majority=float(p.max()), frequency=float((p**2).sum()))


def binomial_p_value(correct: int, total: int, chance: float) -> float:
    """Return the one-sided binomial p-value of ``correct`` successes in ``total`` vs ``chance``."""
    from scipy.stats import binomtest

    if total == 0:
        return 1.0
    return float(
        binomtest(
            int(correct), int(total), min(max(chance, 0.0), 1.0), alternative="greater"
        ).pvalue
    )


def correct(
    p_values: Sequence[float] | np.ndarray, method: str = "fdr_bh", alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(corrected p-values, rejected)`` for a family of tests."""
    from statsmodels.stats.multitest import multipletests

    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; use one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p, np.zeros(0, dtype=bool)
    reject, corrected, _, _ = multipletests(p, alpha=alpha, method=method)
    return np.asarray(corrected), np.asarray(reject)


def accuracy(correct: np.ndarray, axis: int = -1) -> Any:
    """Return the fraction of correct predictions (vectorised over ``axis``)."""
    return np.mean(correct, axis=axis)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, axis: int = -1) -> Any:
    """Return the mean per-class recall over the classes present (vectorised over ``axis``)."""
    y_true, y_pred = np.moveaxis(y_true, axis, -1), np.moveaxis(y_pred, axis, -1)
    recalls = []
    for c in np.unique(y_true):
        is_c = y_true == c
        count = is_c.sum(-1)
        hit = (is_c & (y_pred == c)).sum(-1)
        recalls.append(np.where(count > 0, hit / np.maximum(count, 1), np.nan))
    return np.nanmean(np.stack(recalls), axis=0)
