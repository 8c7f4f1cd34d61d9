"""Attribution patching: the whole sweep to first order, and its check by exact patching.

Patching a cell changes the metric by about ``(source - base) . d metric / d activation``: one
forward and one backward of the base run give every cell at once (the reference runs are the
other forward). :func:`verify_top_cells` patches the largest cells, and as many cells drawn at
random, exactly and reports the approximation's sign and size errors on both, because the
first-order estimate can be far off where the metric saturates, and can miss cells entirely.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .exact import exact_sweep
from .runner import Batch, Hook
from .sweep import Run, Sweep

#: Runs the ``(layer, head, pos)`` cells given exactly: per-example metrics of the whole sweep.
Exact = Callable[[set[tuple[int, int | None, int | None]]], torch.Tensor]


def attribution_sweep(
    sweep: Sweep, base_batch: Batch, source: dict[int, torch.Tensor], hooks: list[Hook]
) -> torch.Tensor:
    """Return per-example first-order estimates ``[layer, (head), (pos), batch]`` of patching.

    The estimates are changes from the base run of ``base_batch`` (run with ``hooks``).
    """
    runner, layers = sweep.runner, sweep.layers
    live: dict[int, torch.Tensor] = {}
    extra = [*hooks, (runner.embedding(), "forward", _requires_grad), *_keep_hooks(sweep, live)]
    examples = torch.arange(base_batch["input_ids"].shape[0])
    with torch.enable_grad():
        logits = runner.run(base_batch, examples, extra_hooks=extra, scored_only=False)
        values = runner.metric.score(logits, examples.to(logits.device), runner.clean_logprobs)
        # Each example's metric depends only on its own activations: the gradient of the sum
        # gives every example the gradient of its own metric.
        grads = torch.autograd.grad(values.sum(), [live[layer] for layer in layers])
    return torch.stack(
        [
            contribution(sweep, live[layer].detach(), grad, source[layer])
            for layer, grad in zip(layers, grads, strict=True)
        ]
    )


def _requires_grad(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
    # Gradients must reach the activations even when the model's weights are frozen.
    return output if output.requires_grad else output.detach().requires_grad_(True)


def _keep_hooks(sweep: Sweep, live: dict[int, torch.Tensor]) -> list[Hook]:
    """Return hooks that store each layer's activation at the site, in the graph, in ``live``."""
    runner = sweep.runner
    hooks: list[Hook] = []
    for layer in sweep.layers:
        if sweep.site == "resid_pre":
            module, io, select = runner.adapter.blocks[layer], "input", None
        elif sweep.site == "resid_post":
            module, io, select = runner.adapter.blocks[layer], "output", None
        else:
            module, io, select = runner.module(sweep.site, layer)
        hooks.append((module, *_keeper(live, layer, io, select)))
    return hooks


def _keeper(live: dict[int, torch.Tensor], layer: int, io: str, select: Any) -> tuple[str, Any]:
    """Return ``(kind, fn)`` of a hook storing the input or output of a module in ``live``."""
    if io == "input":

        def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            live[layer] = args[0] if args else kwargs["hidden_states"]

        return "forward_pre", pre

    def post(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        live[layer] = (
            output
            if isinstance(output, torch.Tensor)
            else output[select if isinstance(select, int) else 0]
        )

    return "forward", post


def contribution(
    sweep: Sweep, act: torch.Tensor, grad: torch.Tensor, source: torch.Tensor
) -> torch.Tensor:
    """Return one layer's estimates ``[(head), (pos), batch]``: ``(source - act) . grad``."""
    src = source.to(act.device)
    if sweep.site == "head_out":
        shape = (*act.shape[:2], sweep.runner.n_heads, -1)
        act, grad, src = act.reshape(shape), grad.reshape(shape), src.reshape(shape)
    contrib = ((src - act) * grad).sum(-1).float()  # [B, T] or [B, T, H]
    if sweep.site == "head_out":
        contrib = contrib.permute(0, 2, 1)  # [B, H, T]
    if "pos" not in sweep.axes:
        contrib = contrib.sum(-1)
    return contrib.movedim(0, -1).cpu()  # batch last


def verify_top_cells(
    sweep: Sweep,
    base: Run,
    source: dict[int, torch.Tensor],
    approx: torch.Tensor,
    k: int,
    seed: int = 0,
    exact: Exact | None = None,
) -> dict[str, Any]:
    """Return exact values of attribution's ``k`` largest cells and of ``k`` random others.

    ``approx`` holds the attribution's per-example metrics. The random cells (drawn with
    ``seed`` from the cells outside the top) show the errors where attribution saw little, which
    the top cells cannot. The summary line is added by :func:`verification_summary` once the
    result's scale is known. ``exact`` runs the chosen cells exactly (default: the hooked
    sweep; traced patching passes its traces).
    """
    effect = approx.mean(-1) - base.values.mean()
    flat = effect.reshape(-1)
    k = min(k, flat.numel())
    top = torch.topk(flat.abs(), k).indices
    rest = torch.ones(flat.numel(), dtype=torch.bool)
    rest[top] = False
    pool = rest.nonzero().reshape(-1)
    gen = torch.Generator().manual_seed(seed)
    sample = pool[torch.randperm(len(pool), generator=gen)[: min(k, len(pool))]]
    top_cells, random_cells = _cells_at(sweep, effect, top), _cells_at(sweep, effect, sample)
    chosen = {(c[0], c[1], c[2]) for c in top_cells + random_cells}
    if exact is None:
        exact_values = exact_sweep(sweep, base, source, only=chosen, desc="verifying")
    else:
        exact_values = exact(chosen)
    exact_effect = (exact_values.mean(-1) - base.values.mean()).reshape(-1)
    top_check = _agreement(top_cells, flat, exact_effect)
    return {
        **top_check,
        "k": k,
        "random": _agreement(random_cells, flat, exact_effect),
    }


def _agreement(
    cells: list[tuple[int, int | None, int | None, int]],
    approx: torch.Tensor,
    exact: torch.Tensor,
) -> dict[str, Any]:
    """Return attribution against exact patching on ``cells``: signs, sizes, ranks, errors.

    ``size_error`` is each cell's ``|attribution - exact| / |exact|`` over cells whose exact
    effect is not 0 (a relative error); ``max_abs_error`` is in the metric's units.
    """
    from scipy.stats import spearmanr

    idx = [c[3] for c in cells]
    a, e = approx[idx], exact[idx]
    scale = float(e.abs().max()) if len(idx) else 0.0
    moved = e.abs() > 1e-6 * max(scale, 1e-12)
    rel = ((a - e).abs() / e.abs())[moved]
    # a rank correlation needs values that vary: undefined (NaN, no warning) otherwise
    varies = len(idx) > 2 and bool((a != a[0]).any() and (e != e[0]).any())
    rho = float(spearmanr(a.numpy(), e.numpy()).statistic) if varies else float("nan")
    same = (torch.sign(a) == torch.sign(e)) | (~moved & (a.abs() <= 1e-6 * max(scale, 1e-12)))
    return {
        "cells": [
            {"layer": c[0], "head": c[1], "pos": c[2], "attribution": float(x), "exact": float(y)}
            for c, x, y in zip(cells, a.tolist(), e.tolist(), strict=True)
        ],
        "spearman": rho,
        "sign_agreement": float(same.float().mean()) if len(idx) else float("nan"),
        "size_error": [float(x) for x in rel.tolist()],
        "max_abs_error": float((a - e).abs().max()) if len(idx) else 0.0,
    }


def _cells_at(
    sweep: Sweep, effect: torch.Tensor, flat: torch.Tensor
) -> list[tuple[int, int | None, int | None, int]]:
    """Return ``(layer, head, pos, flat index)`` of the cells at flat indices ``flat``."""
    cells = []
    for i in flat.tolist():
        idx = list(torch.unravel_index(torch.tensor(i), effect.shape))
        layer = sweep.layers[int(idx[0])]
        rest = [int(x) for x in idx[1:]]
        head = rest.pop(0) if "head" in sweep.axes else None
        pos = rest.pop(0) if "pos" in sweep.axes else None
        cells.append((layer, head, pos, i))
    return cells


def verification_summary(v: dict[str, Any], span: float) -> str:
    """Return one line on attribution's errors: signs and sizes first, then ranks.

    Errors are divided by ``span`` (the clean-corrupted gap of a normalised result).
    """

    def part(check: dict[str, Any], what: str) -> str:
        if not check["cells"]:
            return f"{what}: none"
        sizes = check["size_error"]
        median = statistics.median(sizes) if sizes else 0.0
        size = (
            f"sizes off by {min(sizes):.0%}-{max(sizes):.0%} (median {median:.0%})"
            if sizes
            else "no exact effect to compare sizes with"
        )
        return (
            f"{what}: signs agree on {check['sign_agreement']:.0%}, {size}, largest error "
            f"{check['max_abs_error'] / abs(span):.3f}"
        )

    random = v["random"]
    top_part = part(v, f"top {v['k']} cells")
    random_part = part(random, f"{len(random['cells'])} random cells")
    return (
        f"attribution checked by exact patching; {top_part}; {random_part}; Spearman rank "
        f"correlation on the top cells {v['spearman']:.2f}"
    )
