"""Calibration of the per-cell statistics of patching and ablation sweeps, by simulation.

Each simulated sweep is a matrix of per-example changes ``[cells, examples]`` (what a sweep
hands to :func:`interp_magics.patching.uncertainty.cell_stats`, the code path every
``activation_patch`` and ``ablate`` result goes through). Cells share examples: each example
has its own offset common to every cell (correlation 0.5 between cells), as real sweeps do.

- False positives under the null (every cell's changes have mean 0): the per-cell sign-flip
  test at alpha 0.05 and 0.10 (one cell per simulated sweep, so the count is binomial), and the
  family-wise error of the sweep-wide corrections (max-|t| over cells; Benjamini-Hochberg, whose
  false discovery rate is the family-wise error when every cell is null) against the same test
  uncorrected. Changes are normal (the sign-flip null holds exactly) or centred
  exponential (skewed: mean 0 but not symmetric, where the studentised statistic is only
  asymptotically valid).
- Coverage of the 95% per-cell t-interval of the mean change against the known mean (0.3,
  examples' sd 1), normal and skewed.

- How often a sweep's summary names skewed changes (pooled skewness beyond
  ``uncertainty.SKEWED``): under normal changes (a false warning) and under skewed ones.

Rows: setting, statistic, nominal, observed, n (simulations), and the binomial standard error.

    .venv/bin/python benchmarks/calibration_patching.py           # 2,000 simulations a setting
    .venv/bin/python benchmarks/calibration_patching.py --quick   # 200
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from interp_magics.patching.uncertainty import SKEWED, cell_stats

CELLS = 24  # e.g. 3 layers x 8 positions
EFFECT = 0.3


def simulate(
    rng: np.random.Generator, n: int, shape: str, mean: float = 0.0, cells: int = CELLS
) -> np.ndarray:
    """Return one sweep's per-example changes ``[cells, n]`` with the given mean."""

    def noise(size: tuple[int, ...]) -> np.ndarray:
        if shape == "normal":
            return rng.standard_normal(size)
        return rng.exponential(1.0, size) - 1.0  # mean 0, sd 1, skewed

    shared = noise((1, n))  # each example's offset, common to every cell
    own = noise((cells, n))
    return mean + (shared + own) / math.sqrt(2)


def null_rows(sims: int, n: int, shape: str, flips: int, seed: int) -> list[dict[str, object]]:
    """Return the false-positive rows of one null setting."""
    rng = np.random.default_rng(seed)
    hits = {key: 0 for key in ("cell05", "cell10", "maxt", "bh", "none", "skew")}
    for s in range(sims):
        d = simulate(rng, n, shape)
        maxt = cell_stats(d, flips=flips, seed=s)
        bh = cell_stats(d, flips=flips, seed=s, correction="fdr_bh")
        hits["cell05"] += bool(maxt.p[0] <= 0.05)
        hits["cell10"] += bool(maxt.p[0] <= 0.10)
        hits["maxt"] += bool((maxt.p_corrected <= 0.05).any())
        hits["bh"] += bool((bh.p_corrected <= 0.05).any())
        hits["none"] += bool((maxt.p <= 0.05).any())
        hits["skew"] += bool(abs(maxt.skewness) > SKEWED)
    setting = f"null, {shape}, {n} examples, {CELLS} cells"
    spec = [
        ("cell05", "per-cell false-positive rate at alpha 0.05", 0.05),
        ("cell10", "per-cell false-positive rate at alpha 0.10", 0.10),
        ("maxt", "family-wise error, max-t corrected, alpha 0.05", 0.05),
        ("bh", "family-wise error, Benjamini-Hochberg, alpha 0.05", 0.05),
        ("none", "family-wise error, uncorrected, alpha 0.05", 0.05),
    ]
    rows = [_row(setting, text, nominal, hits[key] / sims, sims) for key, text, nominal in spec]
    # Not a rate with a nominal level: how often the skewness note's condition holds.
    rows.append(
        _row(setting, "skewness beyond the summary's threshold", 0.0, hits["skew"] / sims, sims)
    )
    return rows


def coverage_rows(sims: int, n: int, shape: str, seed: int) -> list[dict[str, object]]:
    """Return the coverage row of the 95% t-interval against a known mean change."""
    rng = np.random.default_rng(seed)
    covered = 0
    for s in range(sims):
        d = simulate(rng, n, shape, mean=EFFECT)
        stats = cell_stats(d, flips=99, seed=s)
        covered += bool(stats.low[0] <= EFFECT <= stats.high[0])
    setting = f"effect {EFFECT}, {shape}, {n} examples"
    return [_row(setting, "coverage of the 95% per-cell t-interval", 0.95, covered / sims, sims)]


def _row(
    setting: str, statistic: str, nominal: float, observed: float, n: int
) -> dict[str, object]:
    return {
        "setting": setting,
        "statistic": statistic,
        "nominal": nominal,
        "observed": observed,
        "n": n,
        "binomial_se": math.sqrt(nominal * (1 - nominal) / n),
    }


def run(quick: bool) -> list[dict[str, object]]:
    """Return the calibration rows: 200 simulations a setting when ``quick``, else 2,000."""
    sims = 200 if quick else 2000
    flips = 999 if quick else 9999
    sizes = (8, 16) if quick else (8, 16, 40)
    rows: list[dict[str, object]] = []
    for i, n in enumerate(sizes):
        for j, shape in enumerate(("normal", "skewed")):
            rows += null_rows(sims, n, shape, flips, seed=100 * i + j)
            rows += coverage_rows(sims, n, shape, seed=1000 + 100 * i + j)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 simulations a setting")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = run(args.quick)
    for r in rows:
        off = abs(r["observed"] - r["nominal"]) > 2 * r["binomial_se"]  # type: ignore[operator]
        flag = "  <-" if off and r["nominal"] else ""
        print(
            f"{r['setting']:<36} {r['statistic']:<48} nominal {r['nominal']:.2f} "
            f"observed {r['observed']:.3f} (n {r['n']}){flag}"
        )
    print(f"{time.perf_counter() - start:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
