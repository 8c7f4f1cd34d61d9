"""Probes with controls: "is X linearly decodable here, and is that more than chance?"

:func:`probe` fits a classifier to activations with stratified k-fold cross-validation and never
reports it alone: by default it also runs a shuffled-label permutation test (``n_permutations``
refits on permuted labels, exact permutation p-value), a random-features control (Gaussian
features of the same shape), chance levels that account for class imbalance (majority rate and a
label-frequency guesser) with a binomial test, bootstrap confidence intervals for accuracy and
balanced accuracy, and, when asked, a control task (Hewitt & Liang, 2019) with selectivity,
control representations (e.g. a randomly initialised model) and a mutual-information estimate.

:func:`probe_layers` probes every layer of an :class:`~interp_magics.cache.ActivationCache` and
corrects the layer-wise p-values for multiple comparisons (``statsmodels``' ``multipletests``).

Speed: for the ridge probe (default), permuted labels only change the right-hand side of the
ridge system, so all permutations of a fold are solved with one factorisation and matrix
products. The logistic probe fits all permutations together with a batched majorise-minimise
Newton iteration (one Hessian bound per fold). Other scikit-learn estimators, including the small
MLP, are refitted per permutation (slower; the ETA is shown).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import events
from .errors import CaptureError
from .stats import (
    Chance,
    balanced_accuracy,
    binomial_p_value,
    bootstrap_ci,
    chance_levels,
    correct,
    permutation_p_value,
)
from .stats import (
    accuracy as accuracy_stat,
)

if TYPE_CHECKING:
    import pandas as pd

    from .cache import ActivationCache
    from .widgets.probes import ProbePanel

__all__ = [
    "LayerProbeReport",
    "ProbeError",
    "ProbeReport",
    "probe",
    "probe_layers",
    "random_init_features",
]

CONTROLS = ("shuffled", "random_features", "majority")


class ProbeError(CaptureError):
    """Inputs a probe cannot use; the message says what to fix."""


@dataclass
class ControlResult:
    """Cross-validated accuracy of one control, with its bootstrap 95% CI."""

    name: str
    accuracy: float
    ci: tuple[float, float]
    detail: str = ""


@dataclass
class ProbeReport:
    """A probe's held-out accuracy together with its controls, uncertainty and tests."""

    accuracy: float
    accuracy_ci: tuple[float, float]
    balanced_accuracy: float
    balanced_ci: tuple[float, float]
    n_examples: int
    classes: list[str]
    class_counts: list[int]
    chance: Chance
    binomial_p: float  # correct predictions vs the majority-class rate
    permutation: dict[str, Any] | None  # n, p_value, null_mean, null_ci
    controls: dict[str, ControlResult]
    selectivity: float | None
    mutual_info: dict[str, float] | None
    estimator: str
    cv: int
    seed: int
    grouped: bool
    predictions: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    name: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def p_value(self) -> float:
        """Return the permutation p-value (or the binomial one when no permutation test ran)."""
        return float(self.permutation["p_value"]) if self.permutation else self.binomial_p

    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per measure: the probe, each control and the chance levels."""
        import pandas as pd

        rows = [
            {
                "measure": "probe",
                "accuracy": self.accuracy,
                "ci_low": self.accuracy_ci[0],
                "ci_high": self.accuracy_ci[1],
                "p_value": self.p_value,
            },
            {
                "measure": "probe (balanced)",
                "accuracy": self.balanced_accuracy,
                "ci_low": self.balanced_ci[0],
                "ci_high": self.balanced_ci[1],
                "p_value": None,
            },
        ]
        if self.permutation:
            lo, hi = self.permutation["null_ci"]
            rows.append(
                {
                    "measure": "shuffled labels",
                    "accuracy": self.permutation["null_mean"],
                    "ci_low": lo,
                    "ci_high": hi,
                    "p_value": None,
                }
            )
        for c in self.controls.values():
            rows.append(
                {
                    "measure": c.name,
                    "accuracy": c.accuracy,
                    "ci_low": c.ci[0],
                    "ci_high": c.ci[1],
                    "p_value": None,
                }
            )
        rows.append(
            {
                "measure": "majority class",
                "accuracy": self.chance.majority,
                "ci_low": None,
                "ci_high": None,
                "p_value": self.binomial_p,
            }
        )
        rows.append(
            {
                "measure": "frequency guess",
                "accuracy": self.chance.frequency,
                "ci_low": None,
                "ci_high": None,
                "p_value": None,
            }
        )
        return pd.DataFrame(rows)

    def describe(self) -> str:
        """Return the report as text: every number a reader needs, not only the accuracy."""
        lo, hi = self.accuracy_ci
        name = f" ({self.name})" if self.name else ""
        grouped = " by group" if self.grouped else ""
        head = (
            f"ProbeReport{name}: {self.estimator} probe, {self.cv}-fold CV{grouped}, "
            f"{self.n_examples} examples, {len(self.classes)} classes, seed {self.seed}"
        )
        lines = [
            head,
            f"accuracy {self.accuracy:.3f} [95% CI {lo:.3f}, {hi:.3f}]; balanced accuracy "
            f"{self.balanced_accuracy:.3f} [{self.balanced_ci[0]:.3f}, {self.balanced_ci[1]:.3f}]",
            f"chance: majority class {self.chance.majority:.3f}, "
            f"frequency guess {self.chance.frequency:.3f}; "
            f"binomial test vs majority p = {_p(self.binomial_p)}",
        ]
        if self.permutation:
            nlo, nhi = self.permutation["null_ci"]
            lines.append(
                f"shuffled labels: {self.permutation['null_mean']:.3f} [{nlo:.3f}, {nhi:.3f}] over "
                f"{self.permutation['n']} permutations; "
                f"permutation p = {_p(self.permutation['p_value'])}"
            )
        for c in self.controls.values():
            lines.append(
                f"{c.name}: {c.accuracy:.3f} [{c.ci[0]:.3f}, {c.ci[1]:.3f}]"
                + (f" ({c.detail})" if c.detail else "")
            )
        if self.selectivity is not None:
            lines.append(f"selectivity (probe - control task): {self.selectivity:+.3f}")
        if self.mutual_info:
            lines.append(
                "mutual information of the probe's 1-D projection with the label: "
                f"{self.mutual_info['mi']:.3f} nats "
                f"(shuffled labels: {self.mutual_info['mi_shuffled']:.3f})"
            )
        lines.extend(self.notes)
        return "\n".join(lines)

    def widget(self) -> ProbePanel:
        """Return the probe panel for this report."""
        from .widgets.probes import ProbePanel

        return ProbePanel(self)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget()._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return self.describe()


@dataclass
class LayerProbeReport:
    """Probes of every layer, with p-values corrected across layers."""

    reports: list[ProbeReport]
    layers: list[str]
    correction: str
    alpha: float
    p_raw: np.ndarray
    p_corrected: np.ndarray
    significant: np.ndarray

    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per layer: accuracy with CI, controls, raw and corrected p-values."""
        import pandas as pd

        rows = []
        for layer, r, p, pc, s in zip(
            self.layers, self.reports, self.p_raw, self.p_corrected, self.significant, strict=True
        ):
            row: dict[str, Any] = {
                "layer": layer,
                "accuracy": r.accuracy,
                "ci_low": r.accuracy_ci[0],
                "ci_high": r.accuracy_ci[1],
                "balanced_accuracy": r.balanced_accuracy,
            }
            if r.permutation:
                row["shuffled"] = r.permutation["null_mean"]
            for c in r.controls.values():
                row[c.name] = c.accuracy
            if r.selectivity is not None:
                row["selectivity"] = r.selectivity
            row.update(
                {
                    "majority": r.chance.majority,
                    "p_raw": p,
                    "p_corrected": pc,
                    "significant": bool(s),
                }
            )
            rows.append(row)
        return pd.DataFrame(rows)

    def describe(self) -> str:
        """Return a per-layer summary with raw and corrected p-values side by side."""
        lines = [
            f"LayerProbeReport: {len(self.layers)} layers, {self.reports[0].estimator} probes, "
            f"p-values corrected across layers with {self.correction} (alpha {self.alpha})"
        ]
        for layer, r, p, pc, s in zip(
            self.layers, self.reports, self.p_raw, self.p_corrected, self.significant, strict=True
        ):
            ctrl = ", ".join(f"{c.name} {c.accuracy:.3f}" for c in r.controls.values())
            shuffled = f"shuffled {r.permutation['null_mean']:.3f}, " if r.permutation else ""
            lines.append(
                f"  {layer}: accuracy {r.accuracy:.3f} "
                f"[{r.accuracy_ci[0]:.3f}, {r.accuracy_ci[1]:.3f}]; "
                f"{shuffled}{ctrl}; p raw {_p(p)}, corrected {_p(pc)}{' *' if s else ''}"
            )
        lines.append(
            "* significant after correction; majority-class rate "
            f"{self.reports[0].chance.majority:.3f}"
        )
        return "\n".join(lines)

    def widget(self) -> ProbePanel:
        """Return the probe panel (per-layer curves) for this sweep."""
        from .widgets.probes import ProbePanel

        return ProbePanel(self)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget()._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return self.describe()


def _p(p: float) -> str:
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


# -- inputs ---------------------------------------------------------------------------------------


def _features(x: Any, name: str = "X") -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise ProbeError(f"{name} must be numeric activations, not {arr.dtype}")
    if arr.ndim != 2:
        raise ProbeError(
            f"{name} has shape {arr.shape}; a probe needs [examples, features]: pick a position "
            "(e.g. acts[:, -1]) or use probe_layers(cache, y, position='last')"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ProbeError(f"{name} is empty (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise ProbeError(
            f"{name} has {int(bad.sum())} NaN or infinite values in {len(rows)} examples (e.g. row "
            f"{int(rows[0])}); drop those examples or fix the activations (float16 overflow?)"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def _labels(y: Any, n: int, name: str = "y") -> tuple[np.ndarray, list[str]]:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ProbeError(f"{name} must be one label per example (1-D), got shape {arr.shape}")
    if len(arr) != n:
        raise ProbeError(
            f"{name} has {len(arr)} labels but there are {n} examples; give one label per example"
        )
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ProbeError(
                f"{name} looks continuous (e.g. {_example_value(arr)}); a probe classifies: pass "
                "class labels (integers, strings or booleans), or bin the values first"
            )
        arr = arr.astype(np.int64)
    classes, codes = np.unique(arr, return_inverse=True)
    if len(classes) < 2:
        raise ProbeError(
            f"{name} has a single class ({classes[0]!r}); a probe needs at least two classes "
            "to tell apart"
        )
    return codes.astype(np.int64), [str(c) for c in classes]


def _example_value(arr: np.ndarray) -> Any:
    bad = arr[~(arr == np.round(arr))]
    return (bad[:1] if len(bad) else arr[:1]).tolist()[0]


def _folds(
    codes: np.ndarray, cv: int, seed: int, groups: Any
) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if not isinstance(cv, int) or cv < 2:
        raise ProbeError(f"cv must be an integer of at least 2 folds, got {cv!r}")
    counts = np.bincount(codes)
    if counts.min() < cv:
        raise ProbeError(
            f"a class has only {int(counts.min())} examples but cv={cv} folds need at least {cv} "
            "per class; lower cv or add examples of the rare class"
        )
    if groups is None:
        splitter = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(codes)), codes))
    g = np.asarray(groups)
    if len(g) != len(codes):
        raise ProbeError(f"groups has {len(g)} entries for {len(codes)} examples")
    if len(np.unique(g)) < cv:
        raise ProbeError(
            f"groups has {len(np.unique(g))} distinct groups; cv={cv} needs at least {cv}"
        )
    splitter_g = StratifiedGroupKFold(n_splits=cv, shuffle=True, random_state=seed)
    return list(splitter_g.split(np.zeros(len(codes)), codes, g))


def _permutations(codes: np.ndarray, n: int, seed: int, groups: Any) -> np.ndarray:
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


# -- the fits -----------------------------------------------------------------------------------


def _targets(codes: np.ndarray, k: int) -> np.ndarray:
    """Ridge-classifier targets: one ±1 column for 2 classes, one per class otherwise."""
    if k == 2:
        return (2.0 * codes - 1.0)[..., None]
    out = -np.ones((*codes.shape, k), dtype=np.float32)
    np.put_along_axis(out, codes[..., None], 1.0, axis=-1)
    return out


def _decide(scores: np.ndarray, k: int) -> np.ndarray:
    return (scores[..., 0] > 0).astype(np.int64) if k == 2 else scores.argmax(-1)


class _RidgeFold:
    """The ridge system of one training fold: factorised once, solved for many targets."""

    def __init__(self, xtr: torch.Tensor, xte: torch.Tensor, alpha: float) -> None:
        mu = xtr.mean(0)
        self.xc, self.xq = xtr - mu, xte - mu
        # Primal (features x features) or dual (examples x examples), whichever is smaller.
        self.primal = self.xc.shape[1] <= self.xc.shape[0]
        gram = (self.xc.T @ self.xc if self.primal else self.xc @ self.xc.T).double()
        gram.diagonal().add_(alpha)
        self.chol = torch.linalg.cholesky(gram)

    def scores(self, y: torch.Tensor) -> torch.Tensor:
        """Return test-fold scores of the ridge fit (with intercept) to training targets ``y``."""
        ybar = y.mean(0)
        yc = y - ybar
        dtype = self.xc.dtype
        if self.primal:
            w = torch.cholesky_solve((self.xc.T @ yc).double(), self.chol).to(dtype)
            return self.xq @ w + ybar
        a = torch.cholesky_solve(yc.double(), self.chol).to(dtype)
        return self.xq @ (self.xc.T @ a) + ybar


def _ridge(
    x: np.ndarray,
    codes: np.ndarray,
    k: int,
    folds: list[tuple[np.ndarray, np.ndarray]],
    perms: np.ndarray,
    alpha: float,
    dtype: torch.dtype,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return out-of-fold predictions, decision scores, and per-permutation correct counts."""
    n_out = 1 if k == 2 else k
    pred = np.zeros(len(codes), dtype=np.int64)
    scores = np.zeros((len(codes), n_out), dtype=np.float64)
    null_correct = np.zeros(len(perms), dtype=np.int64)
    xt = torch.from_numpy(x).to(dtype)
    for tr, te in folds:
        fold = _RidgeFold(xt[tr], xt[te], alpha)
        real = fold.scores(torch.from_numpy(_targets(codes[tr], k)).to(dtype))
        scores[te] = real.double().numpy()
        pred[te] = _decide(real.numpy(), k)
        # All permutations of this fold at once: only the right-hand side changes.
        chunk = max(1, int(4e7 // max(1, len(tr) * n_out)))
        for start in range(0, len(perms), chunk):
            p = perms[start : start + chunk]
            y = torch.from_numpy(_targets(p[:, tr], k)).to(dtype)  # [P, ntr, C]
            s = fold.scores(y.permute(1, 0, 2).reshape(len(tr), -1))  # [nte, P*C]
            s3 = s.reshape(len(te), len(p), n_out).permute(1, 0, 2).numpy()
            null_correct[start : start + len(p)] += (_decide(s3, k) == p[:, te]).sum(1)
    return pred, scores, null_correct


class _LogisticFold:
    """L2 logistic regressions of one training fold sharing one Hessian bound.

    The bound ``X'X / 4 + I / C`` (Böhning 1992) majorises every fit's Hessian, so a
    majorise-minimise Newton step for all targets at once is two matrix products and one
    triangular solve with a factorisation made once per fold.
    """

    def __init__(self, xtr: torch.Tensor, xte: torch.Tensor, lam: float, max_iter: int) -> None:
        self.xa = torch.cat([xtr, torch.ones(len(xtr), 1)], 1)
        self.xq = torch.cat([xte, torch.ones(len(xte), 1)], 1)
        bound = (self.xa.T @ self.xa).double() / 4
        penalty = torch.full((self.xa.shape[1],), lam, dtype=torch.float64)
        penalty[-1] = 0.0  # the intercept is not penalised
        bound.diagonal().add_(penalty + 1e-8)
        self.chol = torch.linalg.cholesky(bound)
        self.pen = penalty.float()[:, None]
        self.max_iter = max_iter

    def scores(self, y01: torch.Tensor) -> torch.Tensor:
        """Return test-fold scores of the fits to 0/1 targets ``y01`` ``[ntr, m]``."""
        xa, xq, chol = self.xa, self.xq, self.chol
        w = torch.cholesky_solve((xa.T @ (y01 - 0.5)).double() * 4, chol).float()  # ridge start
        last = None
        for _ in range(self.max_iter):
            grad = xa.T @ (torch.sigmoid(xa @ w) - y01) + self.pen * w
            w = w - torch.cholesky_solve(grad.double(), chol).float()
            decided = (xq @ w) > 0
            if last is not None and torch.equal(decided, last):
                break  # no test prediction changed: the accuracy is settled
            last = decided
        return xq @ w


def _logistic(
    x: np.ndarray,
    codes: np.ndarray,
    k: int,
    folds: list[tuple[np.ndarray, np.ndarray]],
    perms: np.ndarray,
    c_reg: float,
    max_iter: int = 30,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L2 logistic regression (one-vs-rest for more classes) for the real and permuted labels."""
    n_out = 1 if k == 2 else k
    pred = np.zeros(len(codes), dtype=np.int64)
    scores = np.zeros((len(codes), n_out), dtype=np.float64)
    null_correct = np.zeros(len(perms), dtype=np.int64)
    xt = torch.from_numpy(x)

    def zero_one(c: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(_targets(c, k)).float() + 1) / 2

    for tr, te in folds:
        fold = _LogisticFold(xt[tr], xt[te], 1.0 / c_reg, max_iter)
        real = fold.scores(zero_one(codes[tr]).reshape(len(tr), -1))
        scores[te] = real.double().numpy()
        pred[te] = _decide(real.reshape(len(te), n_out).numpy(), k)
        chunk = max(1, int(2e7 // max(1, len(tr) * n_out)))
        for start in range(0, len(perms), chunk):
            p = perms[start : start + chunk]
            s = fold.scores(zero_one(p[:, tr]).permute(1, 0, 2).reshape(len(tr), -1))
            s3 = s.reshape(len(te), len(p), n_out).permute(1, 0, 2).numpy()
            null_correct[start : start + len(p)] += (_decide(s3, k) == p[:, te]).sum(1)
    return pred, scores, null_correct


def _sklearn(
    estimator: Any,
    x: np.ndarray,
    codes: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    perms: np.ndarray,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Refit a scikit-learn-style estimator per fold and per permutation (the slow path)."""
    from sklearn.base import clone
    from tqdm.auto import tqdm

    pred = np.zeros(len(codes), dtype=np.int64)
    scores: np.ndarray | None = None
    start = time.perf_counter()
    for tr, te in folds:
        model = _fit_quietly(clone(estimator), x[tr], codes[tr])
        pred[te] = np.asarray(model.predict(x[te]))
        decision = getattr(model, "decision_function", None)
        if decision is not None:
            d = np.asarray(decision(x[te]), dtype=np.float64)
            d = d[:, None] if d.ndim == 1 else d
            scores = np.zeros((len(codes), d.shape[1])) if scores is None else scores
            if scores.shape[1] == d.shape[1]:
                scores[te] = d
    per_fit = (time.perf_counter() - start) / len(folds)
    total = per_fit * len(folds) * len(perms)
    if total > 60:
        warnings.warn(
            f"the permutation test refits this estimator {len(folds) * len(perms)} times (about "
            f"{total / 60:.0f} min); use the fast 'ridge' or 'logistic' probes, or fewer "
            "n_permutations",
            UserWarning,
            stacklevel=3,
        )
    null_correct = np.zeros(len(perms), dtype=np.int64)
    bar = tqdm(
        total=len(perms),
        desc="permutations",
        unit="perm",
        disable=not progress or not len(perms),
        leave=False,
    )
    try:
        for i, p in enumerate(perms):
            for tr, te in folds:
                model = _fit_quietly(clone(estimator), x[tr], p[tr])
                null_correct[i] += int((np.asarray(model.predict(x[te])) == p[te]).sum())
            bar.update(1)
    finally:
        bar.close()
    return pred, scores, null_correct


def _fit_quietly(model: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """Return ``model`` fitted, without a convergence warning for each of thousands of refits."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def _estimator(name: Any, seed: int, alpha: float) -> tuple[str, Any]:
    if isinstance(name, str):
        if name in ("ridge", "logistic"):
            return name, None
        if name == "mlp":
            from sklearn.neural_network import MLPClassifier

            return "mlp", MLPClassifier(
                hidden_layer_sizes=(64,), alpha=1e-3, max_iter=300, random_state=seed
            )
        raise ProbeError(
            f"unknown estimator {name!r}; use 'ridge', 'logistic', 'mlp' or a scikit-learn "
            "estimator"
        )
    if not (hasattr(name, "fit") and hasattr(name, "predict")):
        raise ProbeError(
            "estimator must be 'ridge', 'logistic', 'mlp' or an object with fit and predict"
        )
    return type(name).__name__, name


def _cross_validate(
    kind: str,
    est: Any,
    x: np.ndarray,
    codes: np.ndarray,
    k: int,
    folds: list[tuple[np.ndarray, np.ndarray]],
    perms: np.ndarray,
    alpha: float,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    if kind == "ridge":
        dtype = torch.float64 if x.size <= 5_000_000 else torch.float32
        return _ridge(x, codes, k, folds, perms, alpha, dtype)
    if kind == "logistic":
        return _logistic(x, codes, k, folds, perms, 1.0 / alpha if alpha > 0 else 1e6)
    return _sklearn(est, x, codes, folds, perms, progress)


def _control(
    name: str,
    kind: str,
    est: Any,
    x: np.ndarray,
    codes: np.ndarray,
    k: int,
    folds: list[tuple[np.ndarray, np.ndarray]],
    alpha: float,
    seed: int,
    detail: str = "",
) -> ControlResult:
    pred, _, _ = _cross_validate(
        kind, est, x, codes, k, folds, np.zeros((0, len(codes)), dtype=np.int64), alpha, False
    )
    correct_ = (pred == codes).astype(float)
    return ControlResult(
        name, float(correct_.mean()), bootstrap_ci([correct_], accuracy_stat, seed=seed), detail
    )


def _control_labels(word_types: Any, codes: np.ndarray, seed: int) -> np.ndarray:
    """Return control-task labels: each word type gets one label drawn from the label mix."""
    types = np.asarray(word_types)
    if len(types) != len(codes):
        raise ProbeError(f"control_task has {len(types)} entries for {len(codes)} examples")
    rng = np.random.default_rng(seed + 2)
    freq = np.bincount(codes) / len(codes)
    mapping = {t: rng.choice(len(freq), p=freq) for t in np.unique(types)}
    return np.array([mapping[t] for t in types], dtype=np.int64)


def _mutual_info(scores: np.ndarray, codes: np.ndarray, seed: int) -> dict[str, float]:
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


# -- public functions ---------------------------------------------------------------------------


def probe(
    X: Any,
    y: Any,
    *,
    controls: Sequence[str] = CONTROLS,
    n_permutations: int = 1000,
    cv: int = 5,
    seed: int = 0,
    groups: Any = None,
    estimator: Any = "ridge",
    alpha: float = 1.0,
    control_task: Any = None,
    control_labels: Any = None,
    control_features: Mapping[str, Any] | None = None,
    mutual_info: bool = False,
    name: str = "",
    progress: bool = True,
    _emit: bool = True,
) -> ProbeReport:
    """Return a cross-validated probe of labels ``y`` from activations ``X``, with its controls.

    Args:
        X: activations ``[examples, features]`` (tensor or array).
        y: one class label per example (integers, strings or booleans).
        controls: which of ``"shuffled"`` (permutation test), ``"random_features"`` and
            ``"majority"`` (chance levels and binomial test) to run; all by default.
        n_permutations: label permutations for the permutation test (exact p-value).
        cv: stratified folds. ``groups``: keep each group (sentence, word type) in one fold;
            permutations then shuffle labels within groups.
        estimator: ``"ridge"`` (ridge classifier, ``alpha``), ``"logistic"`` (L2 logistic
            regression, C = 1/alpha), ``"mlp"`` (one hidden layer of 64) or any scikit-learn-style
            estimator with ``fit``/``predict``.
        control_task: word types per example: each type gets a random label (seeded, from the label
            distribution) and the same probe is fitted to that control task; or
            ``control_labels``: the control task's labels directly. Gives selectivity.
        control_features: other representations of the same examples to probe the same way, by
            name, e.g. ``{"random-init model": X_random}``.
        mutual_info: also estimate the mutual information between the probe's out-of-fold 1-D
            projection and the label (nats), with a shuffled-label reference.
        seed: fixes folds, permutations, random features and bootstraps.
    """
    unknown = set(controls) - set(CONTROLS)
    if unknown:
        raise ProbeError(f"unknown controls {sorted(unknown)}; choose from {', '.join(CONTROLS)}")
    if not isinstance(n_permutations, int) or n_permutations < 0:
        raise ProbeError(f"n_permutations must be a non-negative integer, got {n_permutations!r}")
    if alpha < 0:
        raise ProbeError(f"alpha must be non-negative, got {alpha}")
    x = _features(X)
    codes, classes = _labels(y, len(x))
    k = len(classes)
    folds = _folds(codes, cv, seed, groups)
    kind, est = _estimator(estimator, seed, alpha)
    ctrl_codes = None
    if control_task is not None or control_labels is not None:
        if control_labels is not None:
            ctrl_codes = _labels(control_labels, len(x), "control_labels")[0]
        else:
            ctrl_codes = _control_labels(control_task, codes, seed)
    extra = {key: _features(f, key) for key, f in (control_features or {}).items()}
    for key, f in extra.items():
        if len(f) != len(x):
            raise ProbeError(f"control features {key!r} have {len(f)} examples, X has {len(x)}")
    # Every check has passed: now the fits.
    perms = _permutations(codes, n_permutations if "shuffled" in controls else 0, seed, groups)
    pred, scores, null_correct = _cross_validate(
        kind, est, x, codes, k, folds, perms, alpha, progress
    )
    hits = (pred == codes).astype(float)
    n = len(codes)
    accuracy = float(hits.mean())
    chance = chance_levels(np.bincount(codes, minlength=k))
    report_controls: dict[str, ControlResult] = {}
    if "random_features" in controls:
        noise = np.random.default_rng(seed + 4).standard_normal(x.shape).astype(np.float32)
        report_controls["random features"] = _control(
            "random features",
            kind,
            est,
            noise,
            codes,
            k,
            folds,
            alpha,
            seed,
            "Gaussian, same shape",
        )
    for key, f in extra.items():
        report_controls[key] = _control(key, kind, est, f, codes, k, folds, alpha, seed)
    selectivity = None
    if ctrl_codes is not None:
        ctrl_folds = (
            _folds(ctrl_codes, cv, seed, groups) if np.bincount(ctrl_codes).min() >= cv else folds
        )
        c = _control(
            "control task",
            kind,
            est,
            x,
            ctrl_codes,
            len(np.unique(ctrl_codes)),
            ctrl_folds,
            alpha,
            seed,
            "Hewitt & Liang",
        )
        report_controls["control task"] = c
        selectivity = accuracy - c.accuracy
    permutation = None
    if len(perms):
        null = null_correct / n
        permutation = {
            "n": len(perms),
            "p_value": permutation_p_value(accuracy, null),
            "null_mean": float(null.mean()),
            "null_ci": (float(np.percentile(null, 2.5)), float(np.percentile(null, 97.5))),
            "null": null,
        }
    notes = []
    if kind == "mlp" or est is not None:
        notes.append(f"{kind}: every permutation refits the estimator (scikit-learn path)")
    report = ProbeReport(
        accuracy=accuracy,
        accuracy_ci=bootstrap_ci([hits], accuracy_stat, seed=seed),
        balanced_accuracy=float(balanced_accuracy(codes, pred)),
        balanced_ci=bootstrap_ci([codes, pred], balanced_accuracy, seed=seed),
        n_examples=n,
        classes=classes,
        class_counts=np.bincount(codes, minlength=k).tolist(),
        chance=chance,
        binomial_p=binomial_p_value(int(hits.sum()), n, chance.majority)
        if "majority" in controls
        else math.nan,
        permutation=permutation,
        controls=report_controls,
        selectivity=selectivity,
        mutual_info=_mutual_info(scores, codes, seed)
        if mutual_info and scores is not None
        else None,
        estimator=kind,
        cv=cv,
        seed=seed,
        grouped=groups is not None,
        predictions=pred,
        labels=codes,
        name=name,
        notes=notes,
    )
    if _emit:
        events.emit(
            "probe",
            estimator=kind,
            controls=sorted([*controls, *report_controls]),
            n_permutations=len(perms),
            p_values=1,
            corrected=False,
            seed=seed,
            accuracy=accuracy,
        )
    return report


def _reduce(t: torch.Tensor, position: int | str, mask: torch.Tensor | None) -> torch.Tensor:
    """Return one feature vector per example from ``[batch, pos, d]`` activations."""
    if t.ndim == 2:
        return t
    if t.ndim != 3:
        raise ProbeError(
            f"cannot probe activations of shape {tuple(t.shape)}; expected [batch, pos, d]"
        )
    m = torch.ones(t.shape[:2]) if mask is None else mask.to(torch.float32)
    if position == "mean":
        return (t.float() * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)
    if position == "last":
        idx = (m * torch.arange(t.shape[1])).argmax(1)
        return t[torch.arange(t.shape[0]), idx]
    if position == "first":
        return t[:, 0]
    if isinstance(position, int):
        return t[:, position]
    raise ProbeError(f"position must be 'last', 'first', 'mean' or an index, not {position!r}")


def random_init_features(
    model: Any, inputs: Mapping[str, Any], keys: Sequence[str], *, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Return activations at ``keys`` of a randomly re-initialised copy of ``model`` on ``inputs``.

    The copy has the same architecture and configuration and fresh random weights (``seed``), so
    what a probe finds in it is what the architecture and the input tokens alone give away.
    """
    from .adapters import call_model
    from .capturing import capture

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


def probe_layers(
    cache: ActivationCache,
    y: Any,
    *,
    layers: str | Sequence[str] | None = None,
    position: int | str = "last",
    correction: str = "fdr_bh",
    alpha: float = 0.05,
    model: Any = None,
    inputs: Any = None,
    progress: bool = True,
    **kwargs: Any,
) -> LayerProbeReport:
    """Return probes of every layer of ``cache`` with p-values corrected across layers.

    Args:
        cache: captured activations; each selected key is one layer.
        y: a label per sequence (``[batch]``; each sequence gives one vector at ``position``:
            ``"last"`` real token, ``"first"``, ``"mean"`` over real tokens, or an index), or a
            label
            per token (``[batch, pos]``, with ``-1`` or ``None`` for tokens to skip); token-level
            probes keep each sentence in one fold unless ``groups`` says otherwise.
        layers: keys or a key pattern (default: ``resid_post.*`` if captured, else every output).
        correction: any ``statsmodels.stats.multitest.multipletests`` method (default ``fdr_bh``).
        model, inputs: when both are given, a randomly re-initialised copy of the model is run on
            the same inputs and probed the same way, layer by layer, as a control.
        kwargs: passed to :func:`probe` (controls, n_permutations, cv, seed, estimator, ...).
    """
    from tqdm.auto import tqdm

    from .stats import CORRECTIONS

    if correction not in CORRECTIONS:
        raise ProbeError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")
    keys = _layer_keys(cache, layers)
    mask = cache.attention_mask
    token_level, labels, groups, select = _token_labels(y, cache[keys[0]], mask)
    if token_level and kwargs.get("groups") is None:
        kwargs["groups"] = groups
    random_feats = None
    if model is not None and inputs is not None:
        random_feats = random_init_features(model, inputs, keys, seed=int(kwargs.get("seed", 0)))
    elif (model is None) != (inputs is None):
        raise ProbeError("the random-init control needs both model= and inputs=")
    reports = []
    for key in tqdm(keys, desc="probing layers", disable=not progress, leave=False):
        feats = _layer_features(cache[key], position, mask, token_level, select)
        extra = dict(kwargs.pop("control_features", {}) or {})
        if random_feats is not None:
            extra["random-init model"] = _layer_features(
                random_feats[key], position, mask, token_level, select
            )
        reports.append(
            probe(
                feats,
                labels,
                control_features=extra,
                name=key,
                progress=False,
                _emit=False,
                **kwargs,
            )
        )
    p_raw = np.array([r.p_value for r in reports])
    p_corr, reject = correct(p_raw, correction, alpha)
    result = LayerProbeReport(reports, keys, correction, alpha, p_raw, p_corr, reject)
    events.emit(
        "probe",
        estimator=reports[0].estimator,
        controls=sorted({*kwargs.get("controls", CONTROLS), *reports[0].controls}),
        n_permutations=reports[0].permutation["n"] if reports[0].permutation else 0,
        p_values=len(reports),
        corrected=True,
        correction=correction,
        seed=reports[0].seed,
        layers=len(keys),
    )
    return result


def _layer_keys(cache: ActivationCache, layers: str | Sequence[str] | None) -> list[str]:
    if layers is None:
        keys = cache.match("resid_post.*") or [
            k for k in cache.match("**") if ":" not in k and "#" not in k
        ]
    elif isinstance(layers, str):
        keys = cache.match(layers)
    else:
        keys = list(layers)
    missing = [k for k in keys if k not in cache]
    if not keys or missing:
        raise ProbeError(
            f"no activations for {missing or layers!r} in this cache; its keys are e.g. "
            f"{list(cache)[:4]}"
        )
    return keys


def _token_labels(
    y: Any, first: torch.Tensor, mask: torch.Tensor | None
) -> tuple[bool, np.ndarray, Any, Any]:
    arr = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y, dtype=object)
    if arr.ndim == 2:
        if first.ndim != 3 or arr.shape != tuple(first.shape[:2]):
            raise ProbeError(
                f"token labels have shape {arr.shape} but activations {tuple(first.shape[:2])}"
            )
        keep = np.array([[v is not None and v != -1 for v in row] for row in arr])
        if mask is not None:
            keep &= mask.numpy().astype(bool)
        rows, cols = np.nonzero(keep)
        labels = np.array([arr[r, c] for r, c in zip(rows, cols, strict=True)])
        if labels.dtype == object:
            labels = (
                labels.astype(str)
                if any(isinstance(v, str) for v in labels)
                else labels.astype(np.int64)
            )
        return True, labels, rows, (rows, cols)
    return (
        False,
        np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y),
        None,
        None,
    )


def _layer_features(
    t: torch.Tensor, position: int | str, mask: torch.Tensor | None, token_level: bool, select: Any
) -> torch.Tensor:
    if token_level:
        rows, cols = select
        return t[torch.as_tensor(rows), torch.as_tensor(cols)].float()
    return _reduce(t, position, mask).float()
