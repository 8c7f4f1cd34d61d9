"""The statistics of a steering sweep: is the vector's effect more than a random direction's?

Inputs are per-prompt changes of the metric from coefficient 0: the vector's ``[C, n]`` and
``K`` random directions' (same norm) ``[K, C, n]``, at ``C`` coefficients over ``n`` prompts.
At each coefficient:

- the vector's mean change gets a Student t-interval over prompts (it covers the mean change
  over the population the prompts were drawn from);
- the random directions' mean change is the mean of their ``K`` per-direction means, and their
  *band* is the t prediction interval for one more random direction's mean change,
  ``mean +- t(K-1) * sd * sqrt(1 + 1/K)``: where the vector's mean would fall if it were just
  another random direction;
- two tests, each Holm-corrected across the tested coefficients (:func:`holm`, the values of
  ``statsmodels.stats.multitest.multipletests(method="holm")``): a paired t-test over prompts
  of the vector's change against the random directions' mean change on the same prompt (does
  the vector differ from *these* directions, prompt by prompt?), and a t-test of the vector's
  mean change against the spread of the random directions' means, ``K - 1`` degrees of freedom
  (would a new random direction do as well?). The second is what the paired test alone cannot say:
  random directions differ from each other, so with many prompts any one of them would differ
  from the others' average. A coefficient is *significant* when both reject at ``alpha``
  (an intersection-union test, so the family-wise error stays at most ``alpha``).

Coefficients where nothing changed (coefficient 0) are not tests. Both tests assume roughly
normal changes (per-prompt differences; per-direction means); ``tests/test_steering.py``
measures the family-wise false-positive rate and the intervals' coverage by simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..patching.uncertainty import t_interval


@dataclass(frozen=True)
class DoseResponse:
    """Per-coefficient statistics of a sweep, each an array ``[C]``.

    ``mean``/``low``/``high``: the vector's mean change and its t-interval; ``control_mean``/
    ``control_low``/``control_high``: the random directions' mean change and prediction band;
    ``p_prompts``/``p_directions``: the two tests, Holm-corrected; ``p``: the larger of the two
    (the intersection-union test's p-value); ``significant``: ``p < alpha``; ``tested``: the
    coefficients that changed anything. ``slope`` is the least-squares slope of the vector's
    mean change on the coefficient.
    """

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    control_mean: np.ndarray
    control_low: np.ndarray
    control_high: np.ndarray
    p_prompts: np.ndarray
    p_directions: np.ndarray
    p: np.ndarray
    significant: np.ndarray
    tested: np.ndarray
    alpha: float
    slope: float


def dose_response(
    coefficients: np.ndarray, steer: np.ndarray, controls: np.ndarray, *, alpha: float = 0.05
) -> DoseResponse:
    """Return the statistics of a sweep from per-prompt changes (see the module docstring).

    ``steer`` is ``[C, n]`` and ``controls`` ``[K, C, n]`` (K >= 2), both changes from
    coefficient 0.
    """
    from scipy import stats

    coef = np.asarray(coefficients, dtype=np.float64)
    d = np.asarray(steer, dtype=np.float64)
    r = np.asarray(controls, dtype=np.float64)
    k, c, n = r.shape
    if d.shape != (c, n) or coef.shape != (c,) or k < 2:
        raise ValueError(
            f"need steer [C, n], controls [K >= 2, C, n] and C coefficients; got "
            f"{d.shape}, {r.shape}, {coef.shape}"
        )
    mean = d.mean(1)
    low, high = t_interval(d, 1 - alpha)
    diff = d - r.mean(0)  # the vector against the random directions, prompt by prompt
    tested = np.any(d != 0, axis=1) | np.any(r != 0, axis=(0, 2))
    p_prompts = np.ones(c)
    for i in np.flatnonzero(tested):
        p_prompts[i] = _one_sample_p(diff[i])
    per_direction = r.mean(2)  # [K, C]
    control_mean = per_direction.mean(0)
    spread = per_direction.std(0, ddof=1) * np.sqrt(1 + 1 / k)
    quantile = stats.t.ppf(1 - alpha / 2, k - 1)
    control_low, control_high = control_mean - quantile * spread, control_mean + quantile * spread
    p_directions = np.ones(c)
    for i in np.flatnonzero(tested):
        gap = mean[i] - control_mean[i]
        if spread[i] > 0:
            p_directions[i] = 2 * stats.t.sf(abs(gap) / spread[i], k - 1)
        else:
            p_directions[i] = 0.0 if gap != 0 else 1.0
    if tested.any():
        p_prompts[tested] = holm(p_prompts[tested])
        p_directions[tested] = holm(p_directions[tested])
    p = np.maximum(p_prompts, p_directions)
    slope = float(np.polyfit(coef, mean, 1)[0]) if c >= 2 and np.ptp(coef) > 0 else 0.0
    return DoseResponse(
        mean=mean,
        low=low,
        high=high,
        control_mean=control_mean,
        control_low=control_low,
        control_high=control_high,
        p_prompts=p_prompts,
        p_directions=p_directions,
        p=p,
        significant=tested & (p < alpha),
        tested=tested,
        alpha=alpha,
        slope=slope,
    )


def holm(p: np.ndarray) -> np.ndarray:
    """Return Holm's step-down adjusted p-values (valid under any dependence between tests).

    The values of ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]`` (a test
    checks it), computed here because that function calls ``gc.collect()`` on every Holm
    correction, which costs about 0.1 s in a process holding a model.
    """
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p)
    m = len(p)
    stepped = np.maximum.accumulate(p[order] * np.arange(m, 0, -1))
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def _one_sample_p(x: np.ndarray) -> float:
    """Return the two-sided one-sample t-test p-value of mean 0 (no spread: 0 or 1)."""
    from scipy import stats

    if len(x) < 2:
        return 1.0
    if np.ptp(x) <= 1e-12 * max(float(np.abs(x).max()), 1e-300):
        return 0.0 if float(np.abs(x).max()) > 0 else 1.0
    return float(stats.ttest_1samp(x, 0.0).pvalue)
