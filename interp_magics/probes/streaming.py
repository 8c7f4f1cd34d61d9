"""Probes over activations that do not fit in memory: rows read chunk by chunk, ridge fitted
exactly from sufficient statistics, logistic by the same solver as in memory, one pass per step.

:class:`Rows` stands for ``[examples, features]`` activations kept elsewhere (a dask array, for
instance one tensor of an activation store): the probe's checks, its folds and its controls read
them a chunk of rows at a time. The ridge probe needs no more than each training fold's
sufficient statistics: the feature sums and cross-products (``X'X``, ``features x features``),
then ``X'Y`` for every label vector of a batch of permutations, accumulated chunk by chunk in
float64; test scores are computed chunk by chunk too. So the permutation test is the in-memory
one (the same folds, permutations and tie-breaking), in memory bounded by the chunk size and
``features x features``.

The logistic probe has no sufficient statistics: its solver (:mod:`.logistic`) reads the fold's
rows once per majorise-minimise step, a chunk at a time, for every label vector of a batch at
once. It runs the in-memory probe's iteration with the same stopping rule, so it gives the same
fits (to the solver's tolerance), at the cost of one pass over the fold's rows per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch

from . import logistic
from .inputs import ProbeError

#: (targets of label codes, classes of scores): how a ridge classifier encodes and decides.
Codec = tuple[Callable[[np.ndarray, int], np.ndarray], Callable[[np.ndarray, int], np.ndarray]]

#: Rows read at a time (bounds the memory a streaming probe uses).
CHUNK_ROWS = 8192


class Rows:
    """``[examples, features]`` activations read a chunk of rows at a time (a dask array)."""

    def __init__(self, array: Any, name: str = "X") -> None:
        if len(array.shape) != 2:
            raise ProbeError(
                f"{name} has shape {tuple(array.shape)}; a probe needs [examples, features]: pick "
                "a position (e.g. store['resid_post.3'][:, 0])"
            )
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise ProbeError(f"{name} is empty (shape {tuple(array.shape)})")
        if not np.issubdtype(np.dtype(array.dtype), np.number):
            raise ProbeError(f"{name} must be numeric activations, not {array.dtype}")
        self.array = array
        self.name = name
        self.shape = (int(array.shape[0]), int(array.shape[1]))

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def chunks(self, index: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Yield float64 chunks of the rows ``index`` (sorted, every row when None), in order."""
        rows = np.arange(len(self)) if index is None else np.asarray(index)
        for start in range(0, len(rows), CHUNK_ROWS):
            part = rows[start : start + CHUNK_ROWS]
            block = self.array[part]
            block = block.compute() if hasattr(block, "compute") else block
            yield np.asarray(block, dtype=np.float64)

    def check(self) -> None:
        """Raise ProbeError for non-finite values or the same vector in every example."""
        first: np.ndarray | None = None
        spread = top = 0.0
        offset = 0
        for block in self.chunks():
            bad = ~np.isfinite(block)
            if bad.any():
                row = offset + int(np.nonzero(bad)[0][0])
                raise ProbeError(
                    f"{self.name} has NaN or infinite values (e.g. row {row}); drop those "
                    "examples or fix the activations (float16 overflow?)"
                )
            if first is None:
                first = block[:1]
            spread = max(spread, float(np.abs(block - first).max()))
            top = max(top, float(np.abs(block).max()))
            offset += len(block)
        if spread <= 1e-6 * max(1.0, top):
            raise ProbeError(
                f"{self.name} is the same vector in every example; nothing can be decoded from it"
            )


def cluster_for(x: Any) -> Any:
    """Return the active ``dask.distributed`` client to fit the folds of ``x`` on, or None.

    Only rows kept elsewhere go to a cluster (in-memory features are fitted here).
    """
    return active_client() if isinstance(x, Rows) else None


def active_client() -> Any:
    """Return the active ``dask.distributed`` client, or None (also on a worker: no tasks
    from within a task)."""
    try:
        from distributed import get_client, get_worker
    except ImportError:
        return None
    try:
        get_worker()
    except ValueError:  # not on a worker: the caller may use a client
        pass
    else:
        return None
    try:
        return get_client()
    except ValueError:  # no client is active
        return None


def as_rows(x: Any, name: str = "X") -> Rows | None:
    """Return ``x`` as :class:`Rows` when it is an array kept elsewhere (dask), else None."""
    if type(x).__module__.startswith("dask.") and hasattr(x, "compute"):
        rows = Rows(x, name)
        rows.check()
        return rows
    return None


class GaussianRows(Rows):
    """Standard-normal features of a given shape, generated chunk by chunk from ``seed``:
    the same numbers as ``np.random.default_rng(seed).standard_normal(shape)``, in row order."""

    def __init__(self, shape: tuple[int, int], seed: int) -> None:
        self.shape = shape
        self.seed = seed
        self.name = "random features"

    def chunks(self, index: np.ndarray | None = None) -> Iterator[np.ndarray]:
        wanted = np.arange(self.shape[0]) if index is None else np.asarray(index)
        rng = np.random.default_rng(self.seed)
        for start in range(0, self.shape[0], CHUNK_ROWS):
            n = min(CHUNK_ROWS, self.shape[0] - start)
            block = rng.standard_normal((n, self.shape[1])).astype(np.float32)
            take = wanted[(wanted >= start) & (wanted < start + n)] - start
            if len(take):
                yield block[take].astype(np.float64)


class _StreamingRidgeFold:
    """The ridge system of one training fold from its sufficient statistics (primal form)."""

    def __init__(
        self, rows: Rows, tr: np.ndarray, te: np.ndarray, alpha: float, k: int, codec: Codec
    ) -> None:
        self._targets, self._decide = codec
        self.rows, self.tr, self.te, self.k = rows, np.sort(tr), np.sort(te), k
        # the folds' own order of examples, to return results in it
        self.tr_order = np.argsort(np.argsort(tr))
        self.te_order = np.argsort(np.argsort(te))
        d = rows.shape[1]
        total = np.zeros(d)
        gram = np.zeros((d, d))
        for block in rows.chunks(self.tr):
            total += block.sum(0)
            gram += block.T @ block
        n = len(tr)
        self.mu = total / n
        gram -= n * np.outer(self.mu, self.mu)
        gram[np.diag_indices(d)] += alpha
        self.chol = torch.linalg.cholesky(torch.from_numpy(gram))

    def __call__(
        self, labels: np.ndarray, with_scores: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        m, n_train = labels.shape
        y = self._targets(labels, self.k).astype(np.float64)  # [m, train, columns]
        y = np.transpose(y, (1, 0, 2)).reshape(n_train, -1)[np.argsort(self.tr_order)]
        ybar = y.mean(0)
        yc = y - ybar
        xty = np.zeros((self.rows.shape[1], y.shape[1]))
        at = 0
        for block in self.rows.chunks(self.tr):
            xty += (block - self.mu).T @ yc[at : at + len(block)]
            at += len(block)
        w = torch.cholesky_solve(torch.from_numpy(xty), self.chol).numpy()
        scores = np.concatenate(
            [(block - self.mu) @ w + ybar for block in self.rows.chunks(self.te)]
        )
        scores = scores[self.te_order]  # back to the fold's order of test examples
        s3 = np.transpose(scores.reshape(len(scores), m, -1), (1, 0, 2))
        return self._decide(s3, self.k), (s3 if with_scores else None)


def streaming_ridge(rows: Rows, alpha: float, k: int, codec: Codec) -> AbstractContextManager[Any]:
    """Return the fold factory of a streaming ridge probe over ``rows``.

    ``codec`` is the in-memory ridge's pair (label codes to targets, scores to classes), so the
    two probes encode and decide alike.
    """
    return nullcontext(lambda tr, te: _StreamingRidgeFold(rows, tr, te, alpha, k, codec))


def _with_intercept(block: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.hstack([block, np.ones((len(block), 1))]))


class _StreamingLogisticFold:
    """The logistic fits of one training fold, its rows read chunk by chunk for every step."""

    def __init__(
        self,
        rows: Rows,
        tr: np.ndarray,
        te: np.ndarray,
        lam: float,
        max_iter: int,
        tol: float,
        k: int,
        codec: Codec,
    ) -> None:
        self._targets, self._decide = codec
        self.rows, self.tr, self.te, self.k = rows, np.sort(tr), np.sort(te), k
        self.tr_order = np.argsort(np.argsort(tr))
        self.te_order = np.argsort(np.argsort(te))
        self.max_iter, self.tol = max_iter, tol
        d = rows.shape[1]
        gram = torch.zeros((d + 1, d + 1), dtype=torch.float64)
        for block in rows.chunks(self.tr):
            xa = _with_intercept(block)
            gram += xa.T @ xa
        self.pen = logistic.penalty(d, lam, torch.float64)
        self.chol = logistic.bound_factor(gram, self.pen)

    def _tx(self, r: torch.Tensor) -> torch.Tensor:
        out, at = torch.zeros((self.rows.shape[1] + 1, r.shape[1]), dtype=r.dtype), 0
        for block in self.rows.chunks(self.tr):
            out += _with_intercept(block).T @ r[at : at + len(block)]
            at += len(block)
        return out

    def _gradient(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out, at = torch.zeros_like(z), 0
        for block in self.rows.chunks(self.tr):
            xa = _with_intercept(block)
            out += xa.T @ (torch.sigmoid(xa @ z) - y[at : at + len(block)])
            at += len(block)
        return out

    def __call__(
        self, labels: np.ndarray, with_scores: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        m, n_train = labels.shape
        y = (self._targets(labels, self.k).astype(np.float64) + 1) / 2  # [m, train, columns]
        y = np.transpose(y, (1, 0, 2)).reshape(n_train, -1)[np.argsort(self.tr_order)]
        w = logistic.solve(
            self._tx,
            self._gradient,
            torch.from_numpy(np.ascontiguousarray(y)),
            self.chol,
            self.pen,
            n_train,
            self.max_iter,
            self.tol,
        )
        scores = torch.cat([_with_intercept(b) @ w for b in self.rows.chunks(self.te)]).numpy()
        scores = scores[self.te_order]
        s3 = np.transpose(scores.reshape(len(scores), m, -1), (1, 0, 2))
        return self._decide(s3, self.k), (s3 if with_scores else None)


def streaming_logistic(
    rows: Rows, lam: float, max_iter: int, tol: float, k: int, codec: Codec
) -> AbstractContextManager[Any]:
    """Return the fold factory of a streaming L2 logistic probe (penalty ``lam``) over ``rows``."""
    return nullcontext(
        lambda tr, te: _StreamingLogisticFold(rows, tr, te, lam, max_iter, tol, k, codec)
    )
