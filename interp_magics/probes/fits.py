"""The probe's estimators behind one interface, and the one cross-validation loop they share.

:func:`cross_validate` owns the loop: for each fold it fits the real labels, then the permuted
labels in batches, and collects the out-of-fold predictions and each permutation's correct
count. An :class:`Estimator` supplies only how one training fold is fitted to a batch of label
vectors:

- :class:`Ridge`: permuted labels only change the right-hand side of the ridge system, so a
  fold's whole batch is solved with one Cholesky factorisation and matrix products.
- :class:`Logistic`: L2 logistic regression (one-vs-rest), every label vector of a batch fitted
  together by a majorise-minimise Newton iteration with one Hessian bound per fold.
- :class:`Refit`: any scikit-learn-style estimator (the small MLP too), refitted per label vector
  (slower; a progress bar, and a warning when the refits will take minutes).

The module is past 400 lines on purpose: the estimators implement the loop's batch protocol,
and keeping them beside the loop keeps that protocol in one place.
"""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np
import torch

from . import logistic
from .inputs import Folds, ProbeError

Fitted = tuple[np.ndarray, np.ndarray | None]
"""Test predictions ``[m, test]`` of ``m`` fits, and their decision scores ``[m, test, columns]``
when asked for (None for an estimator that has none)."""


class FoldFit(Protocol):
    """The fits on one training fold, for a batch of label vectors at a time."""

    def __call__(self, labels: np.ndarray, with_scores: bool) -> Fitted:
        """Return the fits to label vectors ``labels`` ``[m, train]``, tested on the test fold."""


FitFold = Callable[[np.ndarray, np.ndarray], FoldFit]
"""Prepares the fits on one fold from its train and test indices."""


@dataclass
class CrossValidation:
    """Out-of-fold results for the real labels, and the permutation test's correct counts."""

    predictions: np.ndarray  # class code per example
    scores: np.ndarray | None  # decision scores [examples, columns], when the estimator has them
    null_correct: np.ndarray  # correct out-of-fold predictions per permutation
    null_class_correct: np.ndarray | None = None  # [permutations, classes] correct per class
    margin: float | None = None  # summed held-out margin of the true class (real labels)
    null_margin: np.ndarray | None = None  # the same per permutation (None: no scores)


def margins(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Return each fit's summed held-out margin of the true class, ``[m]``.

    ``scores`` ``[m, test, columns]``: one column (2 classes, positive for class 1) or one per
    class. The margin is the true class's score minus the best other class's score; the
    permutation test breaks ties in accuracy with it, so the test has no ties to lose.
    """
    if k == 2:
        return np.asarray((scores[..., 0] * (2 * labels - 1)).sum(-1))
    true = np.take_along_axis(scores, labels[..., None], axis=-1)[..., 0]
    others = scores.copy()
    np.put_along_axis(others, labels[..., None], -np.inf, axis=-1)
    return np.asarray((true - others.max(-1)).sum(-1))


class Estimator(ABC):
    """One kind of probe: how a training fold is fitted to a batch of label vectors."""

    kind: str
    refits = False  # True when every permutation refits the estimator (the slow path)
    batch_elements = 40_000_000  # target entries per batch of permuted labels (bounds memory)

    @abstractmethod
    def fitting(
        self, x: np.ndarray, k: int, n_folds: int, n_perms: int, progress: bool
    ) -> AbstractContextManager[FitFold]:
        """Return a context for one cross-validation of ``x``; its value prepares each fold's fits.

        The slow path keeps its progress bar open in it; the fast paths need no context.
        """


def cross_validate(
    estimator: Estimator,
    x: np.ndarray,
    codes: np.ndarray,
    k: int,
    folds: Folds,
    perms: np.ndarray,
    progress: bool = False,
) -> CrossValidation:
    """Return out-of-fold predictions and scores, and each permutation's correct count.

    The one loop every estimator shares: on each fold the real labels are fitted alone, then the
    permuted labels ``perms`` ``[n_perms, examples]`` in batches of the estimator's size. Rows
    kept elsewhere (a store) with a ``dask.distributed`` client active fit their folds in
    parallel on the cluster; the parts are combined in fold order, so the result is the same.
    """
    from .streaming import cluster_for

    client = cluster_for(x)
    if client is not None:
        scattered = client.scatter(perms, broadcast=True)
        futures = [
            client.submit(_fold_on_worker, estimator, x, codes, k, tr, te, scattered, len(folds))
            for tr, te in folds
        ]
        parts = client.gather(futures)
    else:
        with estimator.fitting(x, k, len(folds), len(perms), progress) as fit_fold:
            parts = [_fold_part(estimator, fit_fold, codes, k, tr, te, perms) for tr, te in folds]
    return _combined(parts, folds, len(codes), k, len(perms))


@dataclass
class _FoldPart:
    """One fold's share of a cross-validation."""

    predictions: np.ndarray  # class codes of the test fold
    scores: np.ndarray | None  # [test, columns] scores of the real labels
    null_correct: np.ndarray
    null_class: np.ndarray
    margin: float | None  # None: no comparable scores (no tie-breaking)
    null_margin: np.ndarray | None


def _fold_part(
    estimator: Estimator,
    fit_fold: FitFold,
    codes: np.ndarray,
    k: int,
    tr: np.ndarray,
    te: np.ndarray,
    perms: np.ndarray,
) -> _FoldPart:
    """Return one fold's fits: the real labels alone, then the permutations in batches."""
    columns = 1 if k == 2 else k
    fit = fit_fold(tr, te)
    # The real labels alone: their fit does not depend on how permutations are batched.
    real, real_scores = fit(codes[tr][None], with_scores=True)
    margin = (
        float(margins(real_scores, codes[te][None], k)[0])
        if real_scores is not None and real_scores.shape[2] == columns
        else None
    )
    null_correct = np.zeros(len(perms), dtype=np.int64)
    null_class = np.zeros((len(perms), k), dtype=np.int64)
    null_margin: np.ndarray | None = np.zeros(len(perms)) if margin is not None else None
    batch = max(1, int(estimator.batch_elements // max(1, len(tr) * columns)))
    for start in range(0, len(perms), batch):
        p = perms[start : start + batch]
        truth = p[:, te]
        guesses, sc = fit(p[:, tr], with_scores=null_margin is not None)
        hit = guesses == truth
        null_correct[start : start + len(p)] += hit.sum(1)
        rows = truth + k * np.arange(len(p))[:, None]
        null_class[start : start + len(p)] += (
            np.bincount(rows.ravel(), weights=hit.ravel(), minlength=len(p) * k)
            .reshape(len(p), k)
            .astype(np.int64)
        )
        if null_margin is not None:
            if sc is None or sc.shape[2] != columns:
                margin = null_margin = None
            else:
                null_margin[start : start + len(p)] += margins(sc, truth, k)
    return _FoldPart(
        real[0],
        None if real_scores is None else real_scores[0],
        null_correct,
        null_class,
        margin,
        null_margin,
    )


def _fold_on_worker(
    estimator: Estimator,
    x: Any,
    codes: np.ndarray,
    k: int,
    tr: np.ndarray,
    te: np.ndarray,
    perms: np.ndarray,
    n_folds: int,
) -> _FoldPart:
    """Return one fold's fits, run on a cluster worker (its chunks read where it runs)."""
    import dask

    with (
        dask.config.set(scheduler="synchronous"),  # no tasks from within a task
        estimator.fitting(x, k, n_folds, len(perms), False) as fit_fold,
    ):
        return _fold_part(estimator, fit_fold, codes, k, tr, te, perms)


def _combined(
    parts: list[_FoldPart], folds: Folds, n: int, k: int, n_perms: int
) -> CrossValidation:
    """Return the cross-validation of the folds' parts (added up in fold order)."""
    pred = np.zeros(n, dtype=np.int64)
    scores: np.ndarray | None = None
    margin: float | None = 0.0
    null_margin: np.ndarray | None = np.zeros(n_perms)
    for (_, te), part in zip(folds, parts, strict=True):
        pred[te] = part.predictions
        if part.scores is not None:
            if scores is None:
                scores = np.zeros((n, part.scores.shape[1]))
            if scores.shape[1] == part.scores.shape[1]:  # a fold may miss a class
                scores[te] = part.scores
        if part.margin is None or part.null_margin is None or margin is None:
            margin = null_margin = None  # no comparable scores: no tie-breaking
        else:
            margin += part.margin
            assert null_margin is not None
            null_margin += part.null_margin
    null_correct = np.zeros(n_perms, dtype=np.int64)
    null_class = np.zeros((n_perms, k), dtype=np.int64)
    for part in parts:
        null_correct += part.null_correct
        null_class += part.null_class
    return CrossValidation(pred, scores, null_correct, null_class, margin, null_margin)


# -- the fast paths: one linear system per fold, solved for a whole batch -----------------------


def _targets(codes: np.ndarray, k: int) -> np.ndarray:
    """Ridge-classifier targets: one ±1 column for 2 classes, one per class otherwise."""
    if k == 2:
        return (2.0 * codes - 1.0)[..., None]
    out = -np.ones((*codes.shape, k), dtype=np.float32)
    np.put_along_axis(out, codes[..., None], 1.0, axis=-1)
    return out


def _decide(scores: np.ndarray, k: int) -> np.ndarray:
    return (scores[..., 0] > 0).astype(np.int64) if k == 2 else scores.argmax(-1)


class _LinearFold(ABC):
    """One training fold's linear fits, all label vectors of a batch solved together."""

    def __init__(self, k: int) -> None:
        self.k = k

    @abstractmethod
    def targets(self, labels: np.ndarray) -> torch.Tensor:
        """Return the regression targets ``[m, train, columns]`` of label vectors ``[m, train]``."""

    @abstractmethod
    def scores(self, y: torch.Tensor) -> torch.Tensor:
        """Return test scores ``[test, n]`` of the fits to the ``n`` target columns ``y``."""

    def __call__(self, labels: np.ndarray, with_scores: bool) -> Fitted:
        """Return test predictions ``[m, test]`` and (when asked) scores ``[m, test, columns]``."""
        m, n_train = labels.shape
        s = self.scores(self.targets(labels).permute(1, 0, 2).reshape(n_train, -1))
        s3 = s.reshape(len(s), m, -1).permute(1, 0, 2).numpy()
        return _decide(s3, self.k), (s3.astype(np.float64) if with_scores else None)


class _RidgeFold(_LinearFold):
    """The ridge system of one training fold: factorised once, solved for many targets."""

    def __init__(self, xtr: torch.Tensor, xte: torch.Tensor, alpha: float, k: int) -> None:
        super().__init__(k)
        mu = xtr.mean(0)
        self.xc, self.xq = xtr - mu, xte - mu
        # Primal (features x features) or dual (examples x examples), whichever is smaller.
        self.primal = self.xc.shape[1] <= self.xc.shape[0]
        gram = (self.xc.T @ self.xc if self.primal else self.xc @ self.xc.T).double()
        gram.diagonal().add_(alpha)
        self.chol = torch.linalg.cholesky(gram)

    def targets(self, labels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(_targets(labels, self.k)).to(self.xc.dtype)

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


class _LogisticFold(_LinearFold):
    """L2 logistic regressions of one training fold sharing one Hessian bound
    (:mod:`.logistic` is the solver; here the fold's rows are in memory)."""

    def __init__(
        self, xtr: torch.Tensor, xte: torch.Tensor, lam: float, max_iter: int, tol: float, k: int
    ) -> None:
        super().__init__(k)
        ones = torch.ones(len(xtr), 1, dtype=xtr.dtype)
        self.xa = torch.cat([xtr, ones], 1)
        self.xq = torch.cat([xte, torch.ones(len(xte), 1, dtype=xte.dtype)], 1)
        self.pen = logistic.penalty(xtr.shape[1], lam, xtr.dtype)
        self.chol = logistic.bound_factor(self.xa.T @ self.xa, self.pen)
        self.max_iter, self.tol = max_iter, tol

    def targets(self, labels: np.ndarray) -> torch.Tensor:
        return ((torch.from_numpy(_targets(labels, self.k)) + 1) / 2).to(self.xa.dtype)

    def scores(self, y: torch.Tensor) -> torch.Tensor:
        """Return test-fold scores of the fits to 0/1 targets ``y`` ``[ntr, m]``."""
        xa = self.xa
        w = logistic.solve(
            lambda r: xa.T @ r,
            lambda z, ya: xa.T @ (torch.sigmoid(xa @ z) - ya),
            y,
            self.chol,
            self.pen,
            len(xa),
            self.max_iter,
            self.tol,
        )
        return self.xq @ w


@dataclass
class Ridge(Estimator):
    """The ridge-classifier probe (penalty ``alpha``), solved in closed form."""

    alpha: float
    kind = "ridge"

    def fitting(
        self, x: np.ndarray, k: int, n_folds: int, n_perms: int, progress: bool
    ) -> AbstractContextManager[FitFold]:
        from .streaming import Rows, streaming_ridge

        if isinstance(x, Rows):  # kept elsewhere: from each fold's sufficient statistics
            return streaming_ridge(x, self.alpha, k, (_targets, _decide))
        # float64 while the features are small enough for it to be cheap
        xt = torch.from_numpy(x).to(torch.float64 if x.size <= 5_000_000 else torch.float32)
        return nullcontext(lambda tr, te: _RidgeFold(xt[tr], xt[te], self.alpha, k))


@dataclass
class Logistic(Estimator):
    """The L2 logistic-regression probe, C = 1/alpha as in scikit-learn.

    Every fit (real labels and permutations alike) iterates until its own training gradient is
    below ``tol`` per example, at most ``max_iter`` majorise-minimise steps.
    """

    alpha: float
    max_iter: int = 200
    tol: float = 1e-5
    kind = "logistic"
    batch_elements = 20_000_000  # the iteration keeps several arrays of the targets' size

    def fitting(
        self, x: np.ndarray, k: int, n_folds: int, n_perms: int, progress: bool
    ) -> AbstractContextManager[FitFold]:
        from .streaming import Rows, streaming_logistic

        lam = 1.0 / (1.0 / self.alpha if self.alpha > 0 else 1e6)  # 1/C, C capped at 1e6
        if isinstance(x, Rows):  # kept elsewhere: one pass over the fold's chunks per step
            return streaming_logistic(x, lam, self.max_iter, self.tol, k, (_targets, _decide))
        xt = torch.from_numpy(x).to(torch.float64 if x.size <= 5_000_000 else torch.float32)
        return nullcontext(
            lambda tr, te: _LogisticFold(xt[tr], xt[te], lam, self.max_iter, self.tol, k)
        )


# -- the slow path: scikit-learn estimators, refitted per label vector --------------------------


@dataclass
class Refit(Estimator):
    """Any scikit-learn-style estimator (``fit``/``predict``), refitted for every label vector."""

    kind: str
    estimator: Any
    refits = True

    @contextmanager
    def fitting(
        self, x: np.ndarray, k: int, n_folds: int, n_perms: int, progress: bool
    ) -> Iterator[FitFold]:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=n_folds * (1 + n_perms),
            desc="permutations",
            unit="fit",
            disable=not progress or not n_perms,
            leave=False,
        )
        try:
            yield partial(_RefitFold, _Refits(self.estimator, x, n_folds * n_perms, bar))
        finally:
            bar.close()


class _Refits:
    """The refits of one cross-validation: they share a progress bar and a cost estimate."""

    def __init__(self, estimator: Any, x: np.ndarray, n_refits: int, bar: Any) -> None:
        self.estimator, self.x, self.n_refits, self.bar = estimator, x, n_refits, bar
        self.timed = False

    def fit(self, tr: np.ndarray, y: np.ndarray) -> Any:
        """Return a fresh clone of the estimator fitted to ``x[tr]`` and labels ``y``."""
        from sklearn.base import clone

        start = time.perf_counter()
        model = _fit_quietly(clone(self.estimator), self.x[tr], y)
        if not self.timed:
            self.timed = True
            self._warn_if_slow(time.perf_counter() - start)
        self.bar.update(1)
        return model

    def _warn_if_slow(self, per_fit: float) -> None:
        total = per_fit * self.n_refits
        if total > 60:
            warnings.warn(
                f"the permutation test refits this estimator {self.n_refits} times (about "
                f"{total / 60:.0f} min); use the fast 'ridge' or 'logistic' probes, or fewer "
                "n_permutations",
                UserWarning,
                stacklevel=6,  # the caller of probe(), past fit, the fold, the loop and probe
            )


class _RefitFold:
    """One fold of the slow path: a refit per label vector, one after the other."""

    def __init__(self, refits: _Refits, tr: np.ndarray, te: np.ndarray) -> None:
        self.refits, self.tr, self.te = refits, tr, te

    def __call__(self, labels: np.ndarray, with_scores: bool) -> Fitted:
        """Return test predictions ``[m, test]`` and (when asked) scores ``[m, test, columns]``."""
        xte = self.refits.x[self.te]
        preds, scores = [], []
        for y in labels:
            model = self.refits.fit(self.tr, y)
            preds.append(np.asarray(model.predict(xte)))
            decision = getattr(model, "decision_function", None)
            if with_scores and decision is not None:
                d = np.asarray(decision(xte), dtype=np.float64)
                scores.append(d[:, None] if d.ndim == 1 else d)
        return np.stack(preds), (np.stack(scores) if scores else None)


def _fit_quietly(model: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """Return ``model`` fitted, without a convergence warning for each of thousands of refits."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def make_estimator(name: Any, seed: int, alpha: float) -> Estimator:
    """Return the estimator a probe asked for: a name, or a scikit-learn-style estimator."""
    if isinstance(name, str):
        if name == "ridge":
            return Ridge(alpha)
        if name == "logistic":
            return Logistic(alpha)
        if name == "mlp":
            from sklearn.neural_network import MLPClassifier

            return Refit(
                "mlp",
                MLPClassifier(
                    hidden_layer_sizes=(64,), alpha=1e-3, max_iter=300, random_state=seed
                ),
            )
        raise ProbeError(
            f"unknown estimator {name!r}; use 'ridge', 'logistic', 'mlp' or a scikit-learn "
            "estimator"
        )
    if not (hasattr(name, "fit") and hasattr(name, "predict")):
        raise ProbeError(
            "estimator must be 'ridge', 'logistic', 'mlp' or an object with fit and predict"
        )
    return Refit(type(name).__name__, name)
