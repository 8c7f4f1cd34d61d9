"""Per-cell uncertainty of a sweep: t-intervals over examples and sign-flip tests, corrected.

Every cell of a patching or ablation sweep is a paired comparison: each example's metric with the
cell patched against the same example unpatched. The per-example changes ``d`` are what the
statistics read:

- the interval is a Student t-interval over examples for the mean change (``level`` coverage
  when the changes are roughly normal; the calibration benchmark measures it when they are not);
- the test of "no effect" flips the sign of each example's change at random (the null: changes
  are symmetric around 0) and compares the t-statistic with its flipped copies. With ``n``
  examples and ``2**n`` at most ``flips`` sign patterns, every pattern is enumerated (exact);
  otherwise ``flips`` seeded random patterns are drawn (p-values add one, so never 0);
- the same sign patterns are applied to every cell at once, so the sweep-wide correction by the
  maximum |t| over cells (Westfall & Young's single-step max-T) keeps the cells' dependence and
  controls the family-wise error; any ``statsmodels`` ``multipletests`` method can be named
  instead.

Cells whose changes are all 0 (the patch changed nothing) are no tests: p = 1, and they are left
out of the family that is corrected.

Sign flips test the null that each example's change is symmetric about 0. A mean-zero null with
skewed changes is not covered, and no test of a mean can be (Bahadur & Savage, 1956): in
simulation, strongly skewed changes (skewness 1.4) raise the max-t family-wise error to about
0.1 at alpha 0.05. The sweep's pooled skewness (each tested cell's changes centred and scaled,
their third moment pooled over cells, so even 8 examples give a usable estimate) is reported,
and the summary says so when it exceeds ``SKEWED``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..stats import CORRECTIONS as MULTIPLETESTS

#: The default sweep-wide correction: the max-|t| sign-flip null over every tested cell.
MAX_T = "max-t"
#: Corrections by name: max-t, "none", or a method of statsmodels' multipletests.
CORRECTIONS = (MAX_T, "none", *MULTIPLETESTS)

#: Pooled skewness beyond which a sweep's summary warns that sign flips may be liberal.
SKEWED = 0.5

#: Changes smaller than this fraction of the metric's scale are float rounding, not effects.
ROUNDING = 1e-5


@dataclass(frozen=True)
class CellStats:
    """Per-cell statistics of the mean change, each an array of the cells' shape.

    ``mean`` is the mean change over examples, ``low``/``high`` its t-interval, ``t`` the
    t-statistic, ``p`` the sign-flip p-value, ``p_corrected`` corrected across the sweep by
    ``correction``; ``tested`` marks the cells that changed at all (the family corrected);
    ``skewness`` is the pooled skewness of the tested cells' per-example changes (0 when none).
    """

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    t: np.ndarray
    p: np.ndarray
    p_corrected: np.ndarray
    tested: np.ndarray
    correction: str
    flips: int
    exact: bool
    level: float
    skewness: float = 0.0


@dataclass(frozen=True)
class StatOptions:
    """How a sweep's cells are tested: level ``1 - alpha``, the correction, sign patterns, seed."""

    alpha: float = 0.05
    correction: str = MAX_T
    flips: int = 9999
    seed: int = 0


def check_options(correction: str, alpha: float, flips: int) -> None:
    """Raise ValueError unless the options of the per-cell statistics are usable."""
    if not isinstance(correction, str) or correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}; got {correction!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (e.g. 0.05), got {alpha}")
    if int(flips) < 99:
        raise ValueError(f"flips must be at least 99 sign patterns (e.g. 9999), got {flips}")


def cell_stats(
    changes: np.ndarray,
    *,
    level: float = 0.95,
    correction: str = MAX_T,
    flips: int = 9999,
    seed: int = 0,
    scale: float | None = None,
) -> CellStats:
    """Return per-cell intervals and tests for ``changes`` of shape ``[*cells, examples]``.

    ``scale`` sets what counts as rounding (changes below ``ROUNDING * scale`` are 0; default:
    the largest |change|).
    """
    d = np.asarray(changes, dtype=np.float64)
    shape, n = d.shape[:-1], d.shape[-1]
    d = d.reshape(-1, n).copy()
    top = float(np.abs(d).max()) if d.size else 0.0
    d[np.abs(d) <= ROUNDING * (scale if scale is not None else top)] = 0.0
    mean = d.mean(1)
    low, high = t_interval(d, level)
    tested = np.any(d != 0, axis=1)
    t_obs = _t(d.sum(1), (d * d).sum(1), n)
    p, p_max, n_flips, exact = _sign_flip(d, t_obs, tested, flips, seed)
    p_corr = _corrected(p, p_max, tested, correction)
    return CellStats(
        mean=mean.reshape(shape),
        low=low.reshape(shape),
        high=high.reshape(shape),
        t=t_obs.reshape(shape),
        p=p.reshape(shape),
        p_corrected=p_corr.reshape(shape),
        tested=tested.reshape(shape),
        correction=correction,
        flips=n_flips,
        exact=exact,
        level=level,
        skewness=pooled_skewness(d[tested]),
    )


def pooled_skewness(d: np.ndarray) -> float:
    """Return the third moment of each row's centred, scaled values, pooled over rows.

    One cell of a few examples says little about skewness; a sweep's cells share the
    shape of their changes, so pooling them is what makes the estimate usable at small n.
    Rows without spread are left out.
    """
    if d.ndim != 2 or d.shape[1] < 3:
        return 0.0
    centred = d - d.mean(1, keepdims=True)
    sd = centred.std(1, ddof=1)
    keep = sd > 0
    if not keep.any():
        return 0.0
    z = centred[keep] / sd[keep, None]
    return float((z**3).mean())


def t_interval(d: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Return the Student t-interval ``(low, high)`` of the mean of each row of ``d``.

    One example gives no spread: its interval is infinite.
    """
    from scipy import stats

    n = d.shape[-1]
    mean = d.mean(-1)
    if n < 2:
        return np.full_like(mean, -np.inf), np.full_like(mean, np.inf)
    se = d.std(-1, ddof=1) / np.sqrt(n)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * se
    return mean - half, mean + half


def _t(sums: np.ndarray, squares: np.ndarray, n: int) -> np.ndarray:
    """Return one-sample t-statistics from sums and sums of squares (rows of any shape).

    Sign flips leave the sum of squares unchanged, so flipped statistics need only new sums.
    Zero spread with a nonzero mean gives an infinite t; no change at all gives 0.
    """
    if n < 2:
        return np.zeros_like(sums)
    mean = sums / n
    var = np.maximum(squares - n * mean * mean, 0.0) / (n - 1)
    se = np.sqrt(var / n)
    # Spread below rounding of the sums is no spread (all changes equal).
    tiny = se <= 1e-12 * np.maximum(np.abs(mean), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(tiny, np.sign(mean) * np.inf, mean / np.where(tiny, 1.0, se))
    return np.where(mean == 0, 0.0, t)


def _patterns(n: int, flips: int, seed: int) -> tuple[np.ndarray, bool]:
    """Return sign patterns ``[patterns, n]``: all ``2**n`` when few, else ``flips`` random."""
    if n <= 20 and 2**n <= flips:
        codes = np.arange(2**n)[:, None] >> np.arange(n)[None, :]
        return 1.0 - 2.0 * (codes & 1), True
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([-1.0, 1.0]), size=(flips, n)), False


def _sign_flip(
    d: np.ndarray, t_obs: np.ndarray, tested: np.ndarray, flips: int, seed: int
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Return per-cell and max-|t| sign-flip p-values, the number of patterns, and exactness."""
    cells, n = d.shape
    p = np.ones(cells)
    p_max = np.ones(cells)
    if n < 2 or not tested.any():
        return p, p_max, 0, False
    signs, exact = _patterns(n, flips, seed)
    dt = d[tested]
    obs = np.abs(t_obs[tested])
    squares = (dt * dt).sum(1)
    # Observed and flipped statistics meet at ties; rounding must not split a tie.
    bar = obs * (1 - 1e-9)
    above = np.zeros(len(dt))
    above_max = np.zeros(len(dt))
    for start in range(0, len(signs), 512):
        s = signs[start : start + 512]
        flipped = np.abs(_t(s @ dt.T, squares[None, :], n))  # [patterns, cells]
        above += (flipped >= bar[None, :]).sum(0)
        biggest = flipped.max(1)
        above_max += (biggest[:, None] >= bar[None, :]).sum(0)
    total = len(signs)
    if exact:
        p[tested], p_max[tested] = above / total, above_max / total
    else:  # the observed pattern counts as one draw of the null
        p[tested] = (above + 1) / (total + 1)
        p_max[tested] = (above_max + 1) / (total + 1)
    return p, p_max, total, exact


def _corrected(p: np.ndarray, p_max: np.ndarray, tested: np.ndarray, correction: str) -> np.ndarray:
    """Return p-values corrected across the tested cells (untested cells keep p = 1)."""
    if correction == MAX_T:
        return p_max
    if correction == "none" or not tested.any():
        return p.copy()
    from statsmodels.stats.multitest import multipletests

    out = np.ones_like(p)
    out[tested] = multipletests(p[tested], method=correction)[1]
    return out


def on_value_scale(stats: CellStats, offset: float, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Return the interval ``(low, high)`` mapped from mean changes to ``(change + offset) *
    factor``, the scale a result's values are on (a negative factor swaps the ends)."""
    a, b = (stats.low + offset) * factor, (stats.high + offset) * factor
    return np.minimum(a, b), np.maximum(a, b)


def describe_stats(stats: CellStats, n: int, alpha: float) -> str:
    """Return how the intervals and tests of a sweep were made, and how many cells passed."""
    tested = int(stats.tested.sum())
    passed = int((stats.p_corrected < alpha).sum())
    how = (
        f"all {stats.flips} sign patterns (exact)"
        if stats.exact
        else f"{stats.flips} random sign patterns"
    )
    correction = {MAX_T: "max-|t| over cells (Westfall-Young)", "none": "no correction"}.get(
        stats.correction, f"multipletests {stats.correction!r}"
    )
    text = (
        f"{stats.level:.0%} t-intervals over {n} examples; sign-flip tests of no effect on "
        f"{tested} changed cells ({how}), corrected by {correction}: {passed} significant at "
        f"alpha {alpha:g}"
    )
    if n < 6:
        floor = 2 / 2**n
        text += (
            f" (with {n} examples no two-sided sign-flip p-value is below {floor:.3g}; "
            "use more examples)"
        )
    if abs(stats.skewness) > SKEWED and passed:
        text += (
            f". Per-example changes are skewed (pooled skewness {stats.skewness:+.2f}): sign "
            "flips assume changes symmetric about 0 under no effect, and with skewed changes "
            "they can be liberal (family-wise error about 2x alpha in simulation); treat "
            "p-values near alpha with care or add examples"
        )
    return text
