"""Statistics used by probes and reports: intervals, tests and multiple-comparison correction.

Thin, documented wrappers over scipy and statsmodels, so every report computes them one way:

- :func:`bootstrap_ci`: bootstrap confidence interval (``scipy.stats.bootstrap``);
- :func:`wilson_ci`: the Wilson score interval of a proportion (where a bootstrap degenerates);
- :func:`group_bootstrap_ci`: a percentile bootstrap that resamples whole groups;
- :func:`grouped_proportion_ci`: a proportion's interval from groups (Wilson at the effective size);
- :func:`permutation_p_value`: the exact permutation p-value
  ``(1 + #{null >= observed}) / (1 + n)``;
- :func:`tie_broken_p_value`: the same with ties broken by a second statistic;
- :func:`binomial_p_value`: one-sided binomial test of correct predictions against chance
  (``scipy.stats.binomtest``);
- :func:`chance_levels`: majority-class rate and the accuracy of a label-frequency guesser;
- :func:`correct`: p-values corrected across tests (``statsmodels.stats.multitest.multipletests``).
"""

from __future__ import annotations

import math
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
                    # resamples in batches of about 2e6 values: memory flat in the sample size
                    batch=max(1, int(2e6 // len(arrays[0]))),
                )
            except (ValueError, FloatingPointError):
                continue
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return low, high
    value = float(statistic(*arrays, axis=-1))
    return value, value


def wilson_ci(
    successes: float, n: float, level: float = 0.95, df: float | None = None
) -> tuple[float, float]:
    """Return the Wilson score interval of ``successes`` out of ``n`` (non-integer ``n`` allowed).

    Unlike a bootstrap it never collapses: all ``n`` correct gives ``[n / (n + z^2), 1]``. With
    ``df``, ``z`` is Student's t quantile on ``df`` degrees of freedom (few groups).
    """
    from scipy.stats import norm, t

    if n <= 0:
        return 0.0, 1.0
    q = 0.5 + level / 2
    z = float(norm.ppf(q) if df is None else t.ppf(q, df))
    p = min(max(successes / n, 0.0), 1.0)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def grouped_proportion_ci(
    hits: np.ndarray, groups: np.ndarray, level: float = 0.95
) -> tuple[float, float]:
    """Return an interval for the proportion of ``hits`` when examples come in correlated groups.

    The Wilson interval at the effective sample size ``p(1 - p) / se^2``, with ``se`` the
    cluster-robust standard error of the proportion (a ratio estimator over groups, with the
    ``G / (G - 1)`` small-sample factor), never more than the number of examples, and the t
    quantile on ``G - 1`` degrees of freedom; when every hit is equal (``se = 0``) each group
    counts as one observation.
    """
    h = np.asarray(hits, dtype=float)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(g.max()) + 1
    if n_groups < 2:
        return wilson_ci(float(h.mean()), 1.0, level)
    p = float(h.mean())
    sums = np.bincount(g, weights=h, minlength=n_groups)
    sizes = np.bincount(g, minlength=n_groups)
    var = n_groups / (n_groups - 1) * float(((sums - p * sizes) ** 2).sum()) / len(h) ** 2
    n_eff = float(n_groups) if var <= 0 or p in (0.0, 1.0) else min(len(h), p * (1 - p) / var)
    return wilson_ci(p * n_eff, n_eff, level, df=n_groups - 1)


def group_bootstrap_ci(
    statistic: Callable[[np.ndarray], np.ndarray],
    groups: np.ndarray,
    *,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Return the percentile bootstrap interval of ``statistic``, resampling whole groups.

    ``statistic`` takes example weights ``[resamples, examples]`` (how often each example was
    drawn, the count of its group) and returns one value per resample (NaN where undefined).
    """
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(g.max()) + 1
    rng = np.random.default_rng(seed)
    values = []
    batch = max(1, int(2e7 // max(1, len(g))))
    for start in range(0, n_resamples, batch):
        m = min(batch, n_resamples - start)
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=m)
        values.append(np.asarray(statistic(counts[:, g].astype(float))))
    v = np.concatenate(values)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    return float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """Return the exact permutation p-value of ``observed`` against ``null`` scores (one-sided).

    Counting the observed labelling as one of the permutations, ``(1 + #{null >= observed}) /
    (1 + len(null))`` is never 0 and is uniform under the null hypothesis.
    """
    null = np.asarray(null)
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + null.size))


def tie_broken_p_value(
    observed: float, null: np.ndarray, observed_tie: float, null_tie: np.ndarray
) -> float:
    """Return the exact permutation p-value of ``observed``, ties broken by a second statistic.

    A null score counts as at least as extreme when it is higher, or equal (to 1e-12) and its
    ``null_tie`` value is at least ``observed_tie`` (to float noise). Accuracy on a few dozen
    examples ties often, and counting every tie makes the test conservative; the lexicographic
    order keeps the test about accuracy first, and exact.
    """
    null, null_tie = np.asarray(null), np.asarray(null_tie)
    equal = np.abs(null - observed) <= 1e-12
    slack = 1e-6 * (1.0 + abs(observed_tie))  # float noise of refits of the same labels
    at_least = (null > observed + 1e-12) | (equal & (null_tie >= observed_tie - slack))
    return float((1 + np.sum(at_least)) / (1 + null.size))


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


def weighted_accuracy(hits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Return the weighted fraction correct, one value per row of ``weights`` ``[m, examples]``."""
    w = np.atleast_2d(weights)
    return np.asarray((w @ np.asarray(hits, dtype=float)) / w.sum(1))


def weighted_balanced_accuracy(
    y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Return the weighted mean per-class recall, one value per row of ``weights``.

    Classes with no weight in a row are left out of that row's mean (as unresampled classes).
    """
    w = np.atleast_2d(weights)
    hit = (np.asarray(y_true) == np.asarray(y_pred)).astype(float)
    recalls = []
    for c in np.unique(y_true):
        is_c = (np.asarray(y_true) == c).astype(float)
        total = w @ is_c
        recalls.append(np.where(total > 0, (w @ (is_c * hit)) / np.maximum(total, 1e-300), np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row with no class at all: NaN
        return np.asarray(np.nanmean(np.stack(recalls), axis=0))


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
