"""The last block computed at the scored positions only, in runs that are only scored.

A run that is scored, not recorded, reads the last block's output through the final norm and
the unembedding at one position per row (the metric's). Everything the last block computes
for other positions is never read, so three of its parts run for the scored rows alone:

- the MLP;
- the attention output projection (its input is the heads' outputs);
- the queries: keys and values are still computed at every position, since the scored query
  attends to them, but the other positions' queries read 0 (their attention output is finite
  and unread).

Outputs at other positions read 0. Values at the scored positions are the model's own up to
float rounding (a matrix product over fewer rows may round its last bit differently).

A module whose ``forward`` is already replaced keeps it: the MLP and the output projection
call accelerate's offload loader on the scored rows; a query projection whose outputs are
read from a base run (path patching's first block) is left whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from ..core.anatomy import Anatomy, linear_weights
from ..core.hooks import ForwardOverride, HookSet
from ..core.modules import find_module

if TYPE_CHECKING:
    from .runner import Runner


def restrict_last_block(
    runner: Runner, hooks: HookSet, examples: torch.Tensor, prefix: int = 0
) -> None:
    """Install, into ``hooks``, the last block's MLP, output projection and queries computed
    at each row's scored position only (rows are copies of ``examples``)."""
    metric = runner.metric
    if metric.reads_all_logits or runner.unembed is None or metric.positions_ is None:
        return
    device = runner.device
    positions = metric.positions_.to(device)[examples.to(device)] - prefix
    index = torch.arange(len(examples), device=device)
    last = runner.n_layers - 1
    module, io, _ = runner.module("mlp_out", last)
    if io == "output":
        _at_scored(hooks, module, index, positions)
    anatomy = runner.anatomy
    if anatomy is None:
        return  # a family without an anatomy (BERT): only its MLP is known to be a module
    _at_scored(hooks, runner.module("head_out", last)[0], index, positions)
    projection = find_module(runner.model, anatomy.in_block(last, anatomy.qkv_paths[0]))
    _queries_at_scored(runner, hooks, projection, anatomy, index, positions)


def _at_scored(
    hooks: HookSet, module: nn.Module, index: torch.Tensor, positions: torch.Tensor
) -> None:
    """Make ``module`` (position-wise) compute at ``(index, positions)`` only; 0 elsewhere."""
    previous = module.forward  # accelerate's wrapper, when it has one: kept and called

    def forward(hidden: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if hidden.ndim != 3 or hidden.shape[0] != len(index):
            return previous(hidden, *args, **kwargs)
        at = (index.to(hidden.device), positions.to(hidden.device))
        out = previous(hidden[at].unsqueeze(1), *args, **kwargs)
        if not isinstance(out, torch.Tensor):
            return previous(hidden, *args, **kwargs)
        full = out.new_zeros((*hidden.shape[:2], out.shape[-1]))
        full[at] = out[:, 0]
        return full

    hooks.add(ForwardOverride(module, forward), "", "forward_override")


def _queries_at_scored(
    runner: Runner,
    hooks: HookSet,
    module: nn.Module,
    anatomy: Anatomy,
    index: torch.Tensor,
    positions: torch.Tensor,
) -> None:
    """Make the last block's query projection compute queries at the scored positions only."""
    if "forward" in module.__dict__:
        return  # already replaced (outputs read from a base run, an offload loader): left whole
    if anatomy.qkv == "separate":
        _at_scored(hooks, module, index, positions)  # its whole output is queries
        return
    weight, bias = linear_weights(module)
    if weight.device.type == "meta":
        return
    split = runner.split_cache.get(id(module))
    version = (weight._version, weight.data_ptr())
    if split is None or split[0] != version:
        queries = anatomy.query_columns().to(weight.device)
        keep = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
        keep[queries] = False
        others = keep.nonzero().flatten()

        def part(cols: torch.Tensor) -> tuple[torch.Tensor | slice, torch.Tensor, Any]:
            b = None if bias is None else bias[cols].contiguous()
            return _span(cols), weight[cols].contiguous(), b

        split = (version, part(queries), part(others))
        runner.split_cache[id(module)] = split
    _, (q_cols, wq, bq), (o_cols, wo, bo) = split
    width = weight.shape[0]

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if x.ndim != 3 or x.shape[0] != len(index):
            return type(module).forward(module, x, *args, **kwargs)
        rows, pos = index.to(x.device), positions.to(x.device)
        out = x.new_zeros((*x.shape[:2], width))
        out[:, :, o_cols] = F.linear(x, wo, bo)
        scored = F.linear(x[rows, pos], wq, bq)  # [N, queries]
        if isinstance(q_cols, slice):
            out[rows, pos, q_cols] = scored
        else:
            out[rows[:, None], pos[:, None], q_cols[None, :]] = scored
        return out

    hooks.add(ForwardOverride(module, forward), "", "forward_override")


def _span(cols: torch.Tensor) -> torch.Tensor | slice:
    """Return sorted column numbers as a slice when they are one contiguous run."""
    n = cols.numel()
    if n and int(cols[-1]) - int(cols[0]) + 1 == n:
        return slice(int(cols[0]), int(cols[0]) + n)
    return cols
