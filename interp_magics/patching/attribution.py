"""Attribution patching: the whole sweep to first order, and its check by exact patching.

Patching a cell changes the metric by about ``(source - base) . d metric / d activation``: one
forward and one backward of the base run give every cell at once (the reference runs are the
other forward). :func:`verify_top_cells` patches the largest cells exactly and reports how well
the approximation ranked them, because the first-order estimate can be far off where the
metric saturates.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .exact import exact_sweep
from .runner import Batch, Hook
from .sweep import Run, Sweep


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
        logits = runner.run(base_batch, examples, extra_hooks=extra)
        values = runner.metric.score(logits, examples.to(logits.device), runner.clean_logprobs)
        # Each example's metric depends only on its own activations: the gradient of the sum
        # gives every example the gradient of its own metric.
        grads = torch.autograd.grad(values.sum(), [live[layer] for layer in layers])
    return torch.stack(
        [
            _contribution(sweep, live[layer].detach(), grad, source[layer])
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


def _contribution(
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
) -> dict[str, Any]:
    """Return exact values of the ``k`` largest attribution cells and how well they agree.

    ``approx`` holds the attribution's per-example metrics; the summary line is added by
    :func:`verification_summary` once the result's scale is known.
    """
    from scipy.stats import spearmanr

    effect = approx.mean(-1) - base.values.mean()
    flat = effect.reshape(-1)
    k = min(k, flat.numel())
    cells = _top_cells(sweep, effect, k)
    exact = exact_sweep(
        sweep, base, source, only={(c[0], c[1], c[2]) for c in cells}, desc="verifying"
    )
    exact_effect = (exact.mean(-1) - base.values.mean()).reshape(-1)
    a = flat[[c[3] for c in cells]]
    e = exact_effect[[c[3] for c in cells]]
    rho = float(spearmanr(a.numpy(), e.numpy()).statistic) if k > 2 else float("nan")
    return {
        "cells": [
            {"layer": c[0], "head": c[1], "pos": c[2], "attribution": float(x), "exact": float(y)}
            for c, x, y in zip(cells, a.tolist(), e.tolist(), strict=True)
        ],
        "spearman": rho,
        "sign_agreement": float(((a > 0) == (e > 0)).float().mean()),
        "max_abs_error": float((a - e).abs().max()),
        "k": k,
    }


def _top_cells(
    sweep: Sweep, effect: torch.Tensor, k: int
) -> list[tuple[int, int | None, int | None, int]]:
    """Return ``(layer, head, pos, flat index)`` of the ``k`` cells of largest ``|effect|``."""
    top = torch.topk(effect.reshape(-1).abs(), k).indices
    cells = []
    for i in top.tolist():
        idx = list(torch.unravel_index(torch.tensor(i), effect.shape))
        layer = sweep.layers[int(idx[0])]
        rest = [int(x) for x in idx[1:]]
        head = rest.pop(0) if "head" in sweep.axes else None
        pos = rest.pop(0) if "pos" in sweep.axes else None
        cells.append((layer, head, pos, i))
    return cells


def verification_summary(v: dict[str, Any], span: float) -> str:
    """Return one line saying how well attribution ranked its top cells (errors / ``span``)."""
    return (
        f"attribution checked on its top {v['k']} cells by exact patching: Spearman rank "
        f"correlation {v['spearman']:.2f}, sign agreement {v['sign_agreement']:.0%}, largest error "
        f"{v['max_abs_error'] / abs(span):.3f} (normalised)"
    )
