"""Probe with a 1000-permutation test: ours vs scikit-learn's permutation_test_score, in one run.

Data: 10,000 x 768 float32 activations (Gaussian), 2 balanced classes carried by a weak linear
direction (held-out accuracy about 0.6). 5-fold stratified CV, 1000 label permutations.

- Ours: ``probes.probe(X, y)`` with every default control (permutation test, random-features
  control, chance levels and binomial test, bootstrap CIs), ridge probe; also the logistic probe.
- scikit-learn: ``permutation_test_score(LogisticRegression(), X, y, cv=5)``, timed with a few
  permutations and scaled to 1000 (each permutation is the same 5 fits); and the same with
  ``RidgeClassifier``. Both single process (their BLAS uses both cores).

    .venv/bin/python benchmarks/bench_probes.py          # about 3 minutes
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from interp_magics import probes

RESULTS = Path(__file__).parent / "results"
N, D, PERMS, CV = 10_000, 768, 1000, 5


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D)).astype(np.float32)
    w = rng.standard_normal(D)
    y = (x @ w / np.sqrt(D) + 2.0 * rng.standard_normal(N) > 0).astype(int)
    return x, y


def sklearn_time(estimator, x, y, perms: int) -> tuple[float, float]:
    """Return (seconds for the unpermuted CV + 1000 permutations, its accuracy), scaled."""
    from sklearn.model_selection import StratifiedKFold, permutation_test_score

    cv = StratifiedKFold(CV, shuffle=True, random_state=0)
    start = time.perf_counter()
    score, _, _ = permutation_test_score(
        estimator, x, y, cv=cv, n_permutations=perms, random_state=0
    )
    seconds = time.perf_counter() - start
    return seconds * (PERMS + 1) / (perms + 1), float(score)


def main() -> None:
    from sklearn.linear_model import LogisticRegression, RidgeClassifier

    warnings.simplefilter("ignore")
    x, y = data()
    probes.probe(x[:500, :64], y[:500], n_permutations=10, progress=False)  # warm-up
    start = time.perf_counter()
    report = probes.probe(x, y, n_permutations=PERMS, cv=CV, progress=False)
    ours_ridge = time.perf_counter() - start
    start = time.perf_counter()
    logistic = probes.probe(
        x,
        y,
        n_permutations=PERMS,
        cv=CV,
        estimator="logistic",
        controls=("shuffled",),
        progress=False,
    )
    ours_logistic = time.perf_counter() - start
    sk_logistic, sk_logistic_acc = sklearn_time(LogisticRegression(max_iter=1000), x, y, 4)
    sk_ridge, sk_ridge_acc = sklearn_time(RidgeClassifier(), x, y, 10)
    result = {
        "data": [N, D],
        "permutations": PERMS,
        "cv": CV,
        "ours_ridge_full_report_s": ours_ridge,
        "ours_ridge_accuracy": report.accuracy,
        "ours_ridge_p": report.permutation["p_value"],
        "ours_logistic_s": ours_logistic,
        "ours_logistic_accuracy": logistic.accuracy,
        "sklearn_logistic_s_scaled": sk_logistic,
        "sklearn_logistic_accuracy": sk_logistic_acc,
        "sklearn_ridge_s_scaled": sk_ridge,
        "sklearn_ridge_accuracy": sk_ridge_acc,
        "speedup_vs_sklearn_logistic": sk_logistic / ours_ridge,
        "logistic_speedup_vs_sklearn_logistic": sk_logistic / ours_logistic,
        "speedup_vs_sklearn_ridge": sk_ridge / ours_ridge,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "probes.json").write_text(json.dumps(result, indent=2))
    print(f"{N} x {D}, {CV}-fold CV, {PERMS} permutations")
    print(
        f"ours, ridge probe + all default controls: {ours_ridge:6.1f} s (accuracy {report.accuracy:.3f}, p {report.permutation['p_value']:.4f})"
    )
    print(
        f"ours, logistic probe + permutation test:  {ours_logistic:6.1f} s (accuracy {logistic.accuracy:.3f})"
    )
    print(
        f"sklearn permutation_test_score, LogisticRegression: {sk_logistic:7.0f} s scaled from 4 permutations (accuracy {sk_logistic_acc:.3f})"
    )
    print(
        f"sklearn permutation_test_score, RidgeClassifier:    {sk_ridge:7.0f} s scaled from 10 permutations (accuracy {sk_ridge_acc:.3f})"
    )
    print(
        f"speed-up: ridge report vs sklearn logistic {result['speedup_vs_sklearn_logistic']:.0f}x, "
        f"our logistic vs sklearn logistic {result['logistic_speedup_vs_sklearn_logistic']:.0f}x, "
        f"ridge vs sklearn ridge {result['speedup_vs_sklearn_ridge']:.0f}x"
    )


if __name__ == "__main__":
    main()
