"""Calibration of the probe's tests and intervals, proved by simulation.

For each setting, null data sets (labels independent of the features) are probed and the
permutation p-values counted: the false-positive rate at alpha 0.05 and 0.10 should sit within
alpha's binomial error (``alpha +- 1.96 sqrt(alpha (1 - alpha) / n)``). Settings: ridge and
logistic probes, 40, 60 and 100 examples, 2 and 3 classes, balanced and 90/10 (80/10/10 for 3
classes), ungrouped and grouped (pairs of examples sharing a group effect and a label, so the
labels are permuted between whole groups). Also the binomial test's false-positive rate
(ungrouped), the coverage of the 95% accuracy interval (the fitted fold models' accuracy on new
examples or groups, measured on 20,000 fresh ones; goal 93-97%), and the permutation test's power
at a few effect sizes.

The p-values are computed by the same steps as :func:`interp_magics.probes.probe` (its folds,
permutation scheme, estimators and p-value; ``tests/test_probe_calibration.py`` checks that they
equal ``probe()``'s), without its other controls, so that a thousand data sets per setting run in
minutes. When ``benchmarks/calibration_patching.py`` exists, its rows (``run(quick)``) join the
table.

    .venv/bin/python benchmarks/calibration.py            # 1,000 nulls per setting, 2 processes
    .venv/bin/python benchmarks/calibration.py --quick    # 200 per setting, fewer settings

Results: a table on stdout and ``benchmarks/results/calibration.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
PERMUTATIONS = 99  # p-values in steps of 1/100: alpha 0.05 and 0.10 are attainable exactly
FEATURES = 2
GROUP_SIZE = 2


def _threads() -> None:
    import torch

    torch.set_num_threads(1)  # tiny problems: thread start-up would dominate


def class_sizes(n: int, k: int, balanced: bool) -> np.ndarray:
    """Return the class sizes of ``n`` units: equal, or 90/10 (80/10/10 for 3 classes)."""
    if balanced:
        sizes = np.full(k, n // k)
        sizes[: n - sizes.sum()] += 1
        return sizes
    minority = max(1, round(0.1 * n))
    return np.array([n - (k - 1) * minority] + [minority] * (k - 1))


def null_data(
    n: int, k: int, balanced: bool, grouped: bool, rng: np.random.Generator, delta: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Return features, labels and groups (None ungrouped) of one simulated data set.

    Grouped: pairs of examples share a random group effect and one label. ``delta`` shifts the
    first feature by class (0: the null, labels independent of the features).
    """
    units = n // GROUP_SIZE if grouped else n
    unit_labels = np.repeat(np.arange(k), class_sizes(units, k, balanced))
    rng.shuffle(unit_labels)
    if grouped:
        groups = np.repeat(np.arange(units), GROUP_SIZE)
        x = rng.standard_normal((units, FEATURES))[groups] + rng.standard_normal((n, FEATURES))
        y = unit_labels[groups]
    else:
        groups, x, y = None, rng.standard_normal((n, FEATURES)), unit_labels
    x[:, 0] += delta * (y == 0)
    return x, y, groups


def folds_for(y: np.ndarray, groups: np.ndarray | None) -> int:
    """Return the number of folds: 5, or fewer when the rarest class has fewer units."""
    units = y if groups is None else y[np.unique(groups, return_index=True)[1]]
    return int(min(5, np.bincount(units).min()))


def probe_p_values(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None,
    estimator: str,
    cv: int,
    seed: int,
    n_permutations: int = PERMUTATIONS,
) -> tuple[float, float, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Return probe()'s permutation p-value, binomial p-value, hits and folds, by its own steps."""
    from interp_magics.probes.controls import chance_test
    from interp_magics.probes.fits import cross_validate, make_estimator
    from interp_magics.probes.inputs import features, folds, labels
    from interp_magics.probes.permute import (
        check_scheme,
        draw_permutations,
        permutation_scheme,
        permutation_test,
    )

    xf = features(x)
    codes, classes = labels(y, len(xf))
    splits = folds(codes, cv, seed, groups)
    scheme = permutation_scheme(codes, groups, splits)
    check_scheme(scheme, n_permutations)
    perms = draw_permutations(scheme, n_permutations, seed)
    fit = cross_validate(
        make_estimator(estimator, seed, 1.0), xf, codes, len(classes), splits, perms
    )
    hits = (fit.predictions == codes).astype(float)
    test = permutation_test(
        float(hits.mean()), fit.null_correct, len(codes), None, scheme, fit.margin, fit.null_margin
    )
    p = test["p_value"] if test else math.nan
    _, binomial = chance_test(codes, len(classes), hits, True, groups is not None)
    return p, binomial, hits, splits


# -- one setting at a time, in worker processes --------------------------------------------------


def _null_setting(args: tuple[str, int, int, bool, bool, int, int]) -> dict[str, Any]:
    estimator, n, k, balanced, grouped, n_sets, seed = args
    _threads()
    from interp_magics.probes import ProbeError

    rng = np.random.default_rng(seed)
    perm_p, binom_p = [], []
    refused = ""
    for i in range(n_sets):
        x, y, groups = null_data(n, k, balanced, grouped, rng)
        try:
            p, b, _, _ = probe_p_values(x, y, groups, estimator, folds_for(y, groups), i)
        except ProbeError as err:
            refused = str(err)
            continue
        perm_p.append(p)
        binom_p.append(b)
    return {
        "estimator": estimator,
        "n": n,
        "k": k,
        "balanced": balanced,
        "grouped": grouped,
        "perm": perm_p,
        "binom": binom_p,
        "refused": refused,
    }


def _coverage_setting(args: tuple[int, bool, int, int]) -> dict[str, Any]:
    """Return how often the 95% accuracy interval covers the fitted fold models' accuracy."""
    n, grouped, n_sets, seed = args
    _threads()
    from sklearn.linear_model import RidgeClassifier

    from interp_magics.probes.controls import accuracy_ci

    rng = np.random.default_rng(seed)
    covered, widths = 0, []
    for i in range(n_sets):
        x, y, groups = null_data(n, 2, True, grouped, rng, delta=1.0)
        _, _, hits, splits = probe_p_values(x, y, groups, "ridge", 5, i, n_permutations=0)
        lo, hi = accuracy_ci(hits, i, groups)
        fresh_x, fresh_y, _ = null_data(20_000, 2, True, grouped, rng, delta=1.0)
        truth = 0.0
        for tr, te in splits:  # each fold's model on new data, weighted as its test fold
            model = RidgeClassifier(alpha=1.0).fit(x[tr], y[tr])
            truth += len(te) / n * float((model.predict(fresh_x) == fresh_y).mean())
        covered += lo <= truth <= hi
        widths.append(hi - lo)
    return {"n": n, "grouped": grouped, "covered": covered, "sets": n_sets, "width": widths}


def _power_setting(args: tuple[str, float, int, int]) -> dict[str, Any]:
    estimator, delta, n_sets, seed = args
    _threads()
    rng = np.random.default_rng(seed)
    ps = []
    for i in range(n_sets):
        x, y, groups = null_data(60, 2, True, False, rng, delta=delta)
        ps.append(probe_p_values(x, y, groups, estimator, 5, i)[0])
    return {"estimator": estimator, "delta": delta, "perm": ps}


# -- the table -----------------------------------------------------------------------------------


def binomial_band(alpha: float, n: int) -> tuple[float, float]:
    """Return alpha's 95% binomial error band for a rate measured on ``n`` data sets."""
    half = 1.96 * math.sqrt(alpha * (1 - alpha) / max(n, 1))
    return alpha - half, alpha + half


def _rate_rows(
    setting: str, name: str, ps: list[float], conservative_ok: bool = False
) -> list[dict[str, Any]]:
    """Return the false-positive-rate rows at alpha 0.05 and 0.10 of the p-values ``ps``.

    ``conservative_ok``: a rate below the band passes (for a test only claimed to be
    conservative).
    """
    rows = []
    for alpha in (0.05, 0.10):
        observed = float(np.mean(np.asarray(ps) <= alpha + 1e-12)) if ps else math.nan
        lo, hi = binomial_band(alpha, len(ps))
        rows.append(
            {
                "setting": setting,
                "statistic": f"{name} FPR",
                "nominal": alpha,
                "observed": observed,
                "n": len(ps),
                "band": (lo, hi),
                "ok": bool((conservative_ok or lo <= observed) and observed <= hi),
            }
        )
    return rows


def null_rows(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the false-positive-rate rows of the null settings."""
    rows: list[dict[str, Any]] = []
    for r in results:
        design = (
            f"{'3' if r['k'] == 3 else '2'} classes {'balanced' if r['balanced'] else 'imbalanced'}"
        )
        setting = (
            f"{r['estimator']} n={r['n']} {design} {'grouped' if r['grouped'] else 'ungrouped'}"
        )
        if not r["perm"]:
            rows.append(
                {
                    "setting": setting,
                    "statistic": "refused",
                    "nominal": None,
                    "observed": None,
                    "n": 0,
                    "note": r["refused"][:120],
                }
            )
            continue
        rows.extend(_rate_rows(setting, "permutation", r["perm"]))
        if not r["grouped"] and r["estimator"] == "ridge":
            rows.extend(_rate_rows(setting, "binomial (approximate)", r["binom"]))
    return rows


def run_probes(quick: bool, n_sets: int | None = None, jobs: int = 2) -> list[dict[str, Any]]:
    """Return the probe calibration rows: false-positive rates, interval coverage and power."""
    sets = n_sets or (200 if quick else 1000)
    estimators = ("ridge", "logistic")
    sizes = (40, 100) if quick else (40, 60, 100)
    null_jobs = [
        (est, n, k, bal, grp, sets, 1000 * i)
        for i, (est, n, k, bal, grp) in enumerate(
            itertools.product(estimators, sizes, (2, 3), (True, False), (False, True))
        )
    ]
    coverage_jobs = [
        (n, g, sets, 7000 + i)
        for i, (n, g) in enumerate([(40, False), (100, False), (40, True), (100, True)])
    ]
    power_sets = max(50, sets // 5)
    power_jobs = [
        (est, d, power_sets, 9000 + i)
        for i, (est, d) in enumerate(itertools.product(estimators, (0.5, 1.0, 1.5)))
    ]
    with ProcessPoolExecutor(jobs) as pool:
        nulls = list(pool.map(_null_setting, null_jobs))
        coverage = list(pool.map(_coverage_setting, coverage_jobs))
        power = list(pool.map(_power_setting, power_jobs))
    rows = null_rows(nulls)
    for c in coverage:
        rate = c["covered"] / c["sets"]
        rows.append(
            {
                "setting": f"ridge n={c['n']} {'grouped (pairs)' if c['grouped'] else 'ungrouped'}",
                "statistic": "accuracy 95% CI coverage",
                "nominal": 0.95,
                "observed": rate,
                "n": c["sets"],
                "band": (0.93, 0.97),
                "ok": bool(0.93 <= rate <= 0.97),
                "note": f"mean width {np.mean(c['width']):.3f}",
            }
        )
    for p in power:
        rows.append(
            {
                "setting": f"{p['estimator']} n=60 balanced, shift {p['delta']}",
                "statistic": "power at 0.05",
                "nominal": None,
                "observed": float(np.mean(np.asarray(p["perm"]) <= 0.05)),
                "n": len(p["perm"]),
            }
        )
    return rows


def patching_rows(quick: bool) -> list[dict[str, Any]]:
    """Return the rows of ``benchmarks/calibration_patching.py`` when that file exists."""
    path = Path(__file__).parent / "calibration_patching.py"
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location("calibration_patching", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.run(quick))


def table(rows: list[dict[str, Any]]) -> str:
    """Return the rows as a fixed-width text table."""

    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = [
        f"{'setting':<52} {'statistic':<34} {'nominal':>7} {'observed':>8} {'n':>5}  band / note"
    ]
    for r in rows:
        band = r.get("band")
        extra = (
            f"[{band[0]:.3f}, {band[1]:.3f}]{'' if r.get('ok', True) else ' OUTSIDE'}"
            if band
            else ""
        )
        if r.get("note"):
            extra = f"{extra} {r['note']}".strip()
        lines.append(
            f"{r['setting']:<52} {r['statistic']:<34} {fmt(r['nominal']):>7} "
            f"{fmt(r['observed']):>8} {r['n']:>5}  {extra}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="200 nulls per setting, fewer settings"
    )
    parser.add_argument("--nulls", type=int, default=None, help="null data sets per setting")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = run_probes(args.quick, args.nulls, args.jobs) + patching_rows(args.quick)
    print(table(rows))
    inside = [r for r in rows if "ok" in r]
    print(
        f"\n{sum(r['ok'] for r in inside)} of {len(inside)} rates inside their band; "
        f"{time.perf_counter() - start:.0f} s"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calibration.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
