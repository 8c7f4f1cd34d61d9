"""The logistic probe's solver: many L2 logistic regressions at once, whatever holds the data.

The bound ``X'X / 4 + diag(penalty)`` (Böhning 1992) majorises every fit's Hessian, so a
majorise-minimise Newton step for all targets at once is two matrix products and one triangular
solve with a factorisation made once per fold. The solver sees the training data only through
two products, ``X'r`` and the gradient ``X'(sigmoid(X z) - y)``, so the in-memory probe and the
streaming one (chunks read from a store, one pass per step) run the very same iteration.

Each fit stops by one rule that looks only at its own training objective: when the largest
entry of its gradient, per training example, is below ``tol`` (or after ``max_iter`` steps;
Nesterov momentum keeps that to tens of steps even with hundreds of features). The real labels
and every permutation are thus fitted by the same estimator, whatever the batch they are solved
in, and no fit ever looks at the test fold.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: ``X' r`` for ``r`` ``[train, m]``: the training rows (with their intercept column) times r.
Transposed = Callable[[torch.Tensor], torch.Tensor]
#: ``X'(sigmoid(X z) - y)`` for weights ``z`` ``[features + 1, m]`` and 0/1 targets ``y``.
Gradient = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def penalty(features: int, lam: float, dtype: torch.dtype) -> torch.Tensor:
    """Return the L2 penalty per weight ``[features + 1]``; the intercept (last) is free."""
    pen = torch.full((features + 1,), lam, dtype=dtype)
    pen[-1] = 0.0
    return pen


def bound_factor(gram: torch.Tensor, pen: torch.Tensor) -> torch.Tensor:
    """Return the Cholesky factor of the Hessian bound ``gram / 4 + diag(pen)`` (float64).

    ``gram`` is ``X'X`` of the training rows with their intercept column.
    """
    bound = gram.double() / 4
    bound.diagonal().add_(pen.double() + 1e-8)
    factor: torch.Tensor = torch.linalg.cholesky(bound)
    return factor


def solve(
    tx: Transposed,
    gradient: Gradient,
    y: torch.Tensor,
    chol: torch.Tensor,
    pen: torch.Tensor,
    n_train: int,
    max_iter: int,
    tol: float,
) -> torch.Tensor:
    """Return the weights ``[features + 1, m]`` of the fits to 0/1 targets ``y`` ``[train, m]``.

    Accelerated (Nesterov) majorise-minimise steps from the ridge solution, momentum restarted
    per fit when a step goes uphill; a fit stops when its own training gradient is below ``tol``
    per example.
    """
    dtype = y.dtype
    pen = pen.to(dtype)[:, None]
    w = torch.cholesky_solve((tx(y - 0.5)).double() * 4, chol).to(dtype)  # ridge start
    prev, t = w.clone(), torch.ones(y.shape[1], dtype=dtype)
    active, ya = torch.arange(y.shape[1]), y
    limit = tol * n_train
    for _ in range(max_iter):
        # index_select, not w[:, active]: column indexing is slow on small tensors
        wa, pa, ta = (
            torch.index_select(w, 1, active),
            torch.index_select(prev, 1, active),
            t[active],
        )
        tn = (1 + torch.sqrt(1 + 4 * ta * ta)) / 2
        z = wa + (ta - 1) / tn * (wa - pa)
        grad = gradient(z, ya) + pen * z
        going = grad.abs().amax(0) > limit  # each fit's own rule: its training gradient
        w.index_copy_(1, active, z)  # a converged fit keeps z
        if not bool(going.any()):
            break
        if not bool(going.all()):
            keep = torch.nonzero(going)[:, 0]
            active, ya, tn = active[keep], torch.index_select(ya, 1, keep), tn[keep]
            z, wa, grad = (torch.index_select(v, 1, keep) for v in (z, wa, grad))
        new = z - torch.cholesky_solve(grad.double(), chol).to(dtype)
        uphill = ((new - wa) * grad).sum(0) > 0
        t[active] = torch.where(uphill, torch.ones_like(tn), tn)
        prev.index_copy_(1, active, wa)
        w.index_copy_(1, active, new)
    return w
