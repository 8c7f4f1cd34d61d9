"""Exact patching and ablation of an nnsight model through traces: the sweep, run where the model
lives (in-process, or on NDIF with ``remote=True``).

Each remote trace is a network round trip, so patched cells travel together: a chunk of cells is
one trace over the base batch repeated once per cell, in which each layer's site is edited in
place for the rows of the cells at that layer (nnsight applies assignments to ``.output`` and
``.input`` where the model runs) and only the logits the metric reads come back (one position per
row, the metric's vocabulary rows). The reference runs are one trace each, which also save the
source activations. The statistics, normalisation and ledger record are those of every sweep.

Attribution patching is one more trace: the base run's site activations are kept in the graph,
the metric is scored inside the trace and its gradient saved at every layer's site (nnsight's
``backward()`` context), so the whole first-order sweep costs the reference traces plus one;
``verify_top`` re-runs its cells by exact traced patching.

Supported: exact and attribution patching (denoising or noising with counterfactual prompts)
and ablation, at
``resid_pre``, ``resid_post``, ``attn_out``, ``mlp_out`` by layer (and position), and at
``head_out`` by layer and head (and position), with metrics whose reads are known (the built-in
ones, or a function whose positions and rows were found).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..core.traced import envoy
from .attribution import contribution
from .inputs import PatchingError
from .metrics import Metric
from .sweep import Run, Sweep

#: A patched cell: (layer, head or None, position or None).
Cell = tuple[int, int | None, int | None]


@dataclass(frozen=True)
class Edit:
    """Write ``values`` into the site of one layer, at ``rows`` (and ``positions``, or all)."""

    node: Any
    io: str
    index: int | None
    rows: torch.Tensor
    positions: torch.Tensor | None
    values: torch.Tensor
    heads: torch.Tensor | None = None  # per-head sites: the head of each row
    n_heads: int | None = None  # per-head sites: the last dim splits into this many heads


def check_traceable(sweep: Sweep) -> None:
    """Raise PatchingError unless this sweep can run through nnsight traces."""
    if sweep.metric.reads_all_logits:
        raise PatchingError(
            "this metric function reads logits at positions that could not be found, so a trace "
            "would have to send back every logit; use a built-in metric (logit_diff, logprob) or "
            "a function of one position per example"
        )


def traced_reference(
    wrapped: Any, sweep: Sweep, batch: dict[str, torch.Tensor], remote: bool, keep: bool = False
) -> Run:
    """Return the unpatched run of ``batch``, its site activations saved.

    ``keep`` keeps its next-token log-probabilities on the runner for ``kl_to_clean``.
    """
    targets = [sweep.runner.adapter.target(sweep.site, layer) for layer in sweep.layers]
    saves = [
        (envoy(wrapped, t.path), t.io, t.select if isinstance(t.select, int) else None)
        for t in targets
    ]
    n = int(batch["input_ids"].shape[0])
    examples = torch.arange(n)
    saved, picked = _trace(wrapped, batch, [], saves, _reads(sweep.metric, examples), remote)
    if keep:
        sweep.runner.clean_logprobs = picked.float().log_softmax(-1)
    values = sweep.metric.score(picked, examples, sweep.runner.clean_logprobs).float().cpu()
    site = {
        layer: _split(s.detach().cpu(), t.heads)
        for layer, s, t in zip(sweep.layers, saved, targets, strict=True)
    }
    return Run(batch, values, {}, site)


def traced_attribution(
    wrapped: Any, sweep: Sweep, base: Run, source: Run, remote: bool
) -> torch.Tensor:
    """Return first-order estimates of every patched cell ``[layers, (heads,) (positions,) n]``.

    One trace of the base batch: each layer's site activation is kept in the graph, the metric
    is scored inside the trace and back-propagated, and each site's gradient is saved; a cell's
    estimate is ``(source - base) . gradient`` (the change from the base run's metric).
    """
    targets = [sweep.runner.adapter.target(sweep.site, layer) for layer in sweep.layers]
    nodes = [
        (envoy(wrapped, t.path), t.io, t.select if isinstance(t.select, int) else None)
        for t in targets
    ]
    n = int(base.batch["input_ids"].shape[0])
    examples = torch.arange(n)
    reads = _reads(sweep.metric, examples)
    metric, clean = sweep.metric, sweep.runner.clean_logprobs
    kwargs = {"remote": True} if remote else {}
    saved: list[Any] = []
    with torch.enable_grad(), wrapped.trace(**base.batch, **kwargs):
        values = []
        for node, io, index in nodes:
            value = node.output if io == "output" else node.input
            if index is not None:
                value = value[index]
            elif isinstance(value, tuple):
                value = value[0]
            if not value.requires_grad:
                # frozen weights: the first site becomes where gradients start
                value.requires_grad_(True)
            values.append(value)
        output = wrapped.output
        logits = output.logits if hasattr(output, "logits") else output[0]
        at = torch.arange(logits.shape[0], device=logits.device)
        picked = logits[at, reads.positions.to(logits.device)]
        if reads.rows is not None:
            picked = picked[:, reads.rows.to(logits.device)]
        score = metric.score(picked, examples.to(picked.device), clean)
        # each example's metric depends only on its own activations: the gradient of the sum
        # gives every example the gradient of its own metric
        total: Any = score.sum()  # an nnsight proxy: its backward() is a context
        with total.backward():
            # appended, not assigned: names bound inside a trace do not come back out of it
            for value in reversed(values):
                saved.append(value.grad.save())
    grads = [getattr(g, "value", g).detach().cpu() for g in reversed(saved)]
    return torch.stack(
        [
            contribution(sweep, base.site[layer], grad, source.site[layer])
            for layer, grad in zip(sweep.layers, grads, strict=True)
        ]
    )


def _split(value: torch.Tensor, heads: int | None) -> torch.Tensor:
    """Return ``value`` with its last dim split into ``heads`` (as a hooked capture stores it)."""
    return value if heads is None else value.view(*value.shape[:-1], heads, -1)


def traced_sweep(
    wrapped: Any,
    sweep: Sweep,
    base: Run,
    source: Run,
    remote: bool,
    only: set[Cell] | None = None,
    desc: str = "traced patching",
) -> torch.Tensor:
    """Return the metric per example of every patched cell ``[layers, (heads,) (positions,) n]``.

    ``only`` limits the traces to those ``(layer, head, pos)`` cells; every other cell keeps the
    base run's values.
    """
    n, length = (int(x) for x in base.batch["input_ids"].shape)
    heads = range(sweep.runner.n_heads) if "head" in sweep.axes else [None]
    positions = range(length) if "pos" in sweep.axes else [None]
    every = [(layer, h, p) for layer in sweep.layers for h in heads for p in positions]
    index = {cell: i for i, cell in enumerate(every)}
    cells = every if only is None else [c for c in every if c in only]
    per_chunk = max(1, sweep.batch_tokens // max(1, n * length))
    targets = {layer: sweep.runner.adapter.target(sweep.site, layer) for layer in sweep.layers}
    out = base.values.float().cpu().repeat(len(every), 1)
    for chunk in _chunks(cells, per_chunk, sweep.progress, desc):
        k = len(chunk)
        batch = {
            key: value.repeat(k, *([1] * (value.ndim - 1))) for key, value in base.batch.items()
        }
        examples = torch.arange(n).repeat(k)
        edits = [
            _edit(wrapped, targets[layer], chunk, layer, source.site[layer], n)
            for layer in sweep.layers
            if any(cell[0] == layer for cell in chunk)
        ]
        _, picked = _trace(wrapped, batch, edits, [], _reads(sweep.metric, examples), remote)
        scores = sweep.metric.score(picked, examples, sweep.runner.clean_logprobs).float().cpu()
        out[[index[cell] for cell in chunk]] = scores.view(k, n)
    shape = [len(sweep.layers)]
    shape += [len(heads)] if "head" in sweep.axes else []
    shape += [length] if "pos" in sweep.axes else []
    return out.view(*shape, n)


def _edit(
    wrapped: Any, target: Any, chunk: list[Cell], layer: int, src: torch.Tensor, n: int
) -> Edit:
    """Return the edit of ``layer``'s site for the cells of ``chunk`` at that layer.

    Cell ``i`` of the chunk owns rows ``i*n .. i*n+n-1`` (one copy of the batch); ``src`` holds
    the source activations, ``[n, T, H, d_head]`` for a per-head site.
    """
    at = [i for i, cell in enumerate(chunk) if cell[0] == layer]
    rows = torch.cat([torch.arange(i * n, (i + 1) * n) for i in at])
    ex = torch.arange(n).repeat(len(at))
    head_ids = None if chunk[at[0]][1] is None else torch.tensor([chunk[i][1] for i in at])
    pos_ids = None if chunk[at[0]][2] is None else torch.tensor([chunk[i][2] for i in at])
    heads = None if head_ids is None else head_ids.repeat_interleave(n)
    positions = None if pos_ids is None else pos_ids.repeat_interleave(n)
    if heads is None:
        values = src[ex] if positions is None else src[ex, positions]
    else:
        values = src[ex, :, heads] if positions is None else src[ex, positions, heads]
    index = target.select if isinstance(target.select, int) else None
    n_heads = target.heads if heads is not None else None
    return Edit(
        envoy(wrapped, target.path), target.io, index, rows, positions, values, heads, n_heads
    )


@dataclass(frozen=True)
class Reads:
    """What a trace sends back: row ``r``'s logits at ``positions[r]``, vocabulary ``rows``."""

    positions: torch.Tensor
    rows: torch.Tensor | None


def _reads(metric: Metric, examples: torch.Tensor) -> Reads:
    if metric.positions_ is None:
        raise PatchingError("the metric's positions are not resolved")
    return Reads(metric.positions_[examples], metric.rows())


def _trace(
    wrapped: Any,
    batch: dict[str, torch.Tensor],
    edits: list[Edit],
    saves: Sequence[tuple[Any, str, int | None]],
    reads: Reads,
    remote: bool,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Return the saved site values and the metric's logits from one trace with ``edits``.

    Edits and saves must come in the order the model runs (one layer after the other).
    """
    kwargs = {"remote": True} if remote else {}
    saved: list[Any] = []
    with torch.no_grad(), wrapped.trace(**batch, **kwargs):
        # Plain Python and torch over envoys: runs in-process, or as it is on a remote server.
        for edit in edits:
            value = edit.node.output if edit.io == "output" else edit.node.input
            if edit.index is not None:
                value = value[edit.index]
            elif isinstance(value, tuple):
                value = value[0]
            rows = edit.rows.to(value.device)
            new = edit.values.to(device=value.device, dtype=value.dtype)
            if edit.heads is not None:
                # a view [N, T, H, d_head] of the concatenated heads: writes reach the model
                split = value.view(*value.shape[:-1], edit.n_heads, -1)
                heads = edit.heads.to(value.device)
                if edit.positions is None:
                    split[rows, :, heads] = new
                else:
                    split[rows, edit.positions.to(value.device), heads] = new
            elif edit.positions is None:
                value[rows] = new
            else:
                value[rows, edit.positions.to(value.device)] = new
        for node, io, index in saves:
            value = node.output if io == "output" else node.input
            if index is not None:
                value = value[index]
            elif isinstance(value, tuple):
                value = value[0]
            saved.append(value.save())
        output = wrapped.output
        logits = output.logits if hasattr(output, "logits") else output[0]
        at = torch.arange(logits.shape[0], device=logits.device)
        picked = logits[at, reads.positions.to(logits.device)]
        if reads.rows is not None:
            picked = picked[:, reads.rows.to(logits.device)]
        kept = picked.save()
    return [getattr(v, "value", v) for v in saved], getattr(kept, "value", kept).detach().cpu()


def _chunks(cells: list[Any], size: int, progress: bool, desc: str) -> Iterator[list[Any]]:
    """Yield chunks of at most ``size`` cells, with a progress bar."""
    from tqdm.auto import tqdm

    total = math.ceil(len(cells) / size)
    for i in tqdm(range(total), desc=desc, unit="trace", disable=not progress):
        yield cells[i * size : (i + 1) * size]
