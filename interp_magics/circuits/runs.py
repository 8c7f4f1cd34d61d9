"""Checked inputs, the reference runs every circuit method starts from, and stacked edge runs.

:func:`prepare` checks everything a circuit analysis can check before a forward (the family,
the batches, the metric) by reusing patching's checks, so inputs fail the same way in both.
:func:`reference` records one unedited run: its metric, each block's input and every sender's
output. :func:`run_cells` runs many sender-to-receivers patches as copies along the batch,
each stacked forward starting at the earliest receiver's layer from the base run's cached
residual stream (nothing before a receiver changes).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.hooks import ForwardOverride, HookSet
from ..core.traced import is_nnsight, unwrap
from ..patching.inputs import PatchingError, as_batch, checked_sweep, paired_batches
from ..patching.metrics import KLToClean, Metric, MetricError, as_metric
from ..patching.runner import Batch, Runner
from ..patching.sweep import BATCH_TOKENS
from .edges import Edit, Recording, distinct_modules, edited
from .graph import Graph, graph_of
from .parts import Parts, parts_of


@dataclass
class Setup:
    """A checked circuit analysis: the model's graph and parts, its runner, metric and batches."""

    model: nn.Module
    graph: Graph
    parts: Parts
    runner: Runner
    metric: Metric
    clean: Batch
    corrupt: Batch | None
    batch_tokens: int = BATCH_TOKENS
    progress: bool = True


def prepare(
    model: Any,
    clean: Any,
    corrupt: Any,
    metric: Any,
    *,
    need_corrupt: bool = True,
    gradient: bool = False,
    batch_tokens: int = BATCH_TOKENS,
    progress: bool = True,
) -> Setup:
    """Return the checked setup of a circuit analysis; raises before any forward on bad input."""
    module: nn.Module = unwrap(model) if is_nnsight(model) else model
    graph = graph_of(module)
    if metric is None:
        raise MetricError("give a metric, e.g. patching.logit_diff(correct_ids, wrong_ids)")
    metric_obj = as_metric(metric)
    if gradient and isinstance(metric_obj, KLToClean):
        raise MetricError(
            "kl_to_clean has zero gradient at the clean run, so edge attribution cannot use it; "
            "use logit_diff or logprob"
        )
    if int(batch_tokens) < 1:
        raise PatchingError(f"batch_tokens must be a positive number of tokens, got {batch_tokens}")
    if corrupt is None:
        if need_corrupt:
            raise PatchingError("give corrupt: counterfactual prompts, one per clean prompt")
        clean_b, corrupt_b = as_batch(clean, "clean"), None
    else:
        clean_b, corrupt_b = paired_batches(clean, corrupt, None)
    sweep = checked_sweep(
        module, metric_obj, clean_b, "resid_pre", ("layer",), None, batch_tokens, progress
    )
    parts = parts_of(module, graph)
    return Setup(
        model=module,
        graph=graph,
        parts=parts,
        runner=sweep.runner,
        metric=metric_obj,
        clean=sweep.on_device(clean_b),
        corrupt=None if corrupt_b is None else sweep.on_device(corrupt_b),
        batch_tokens=sweep.stack_tokens,
        progress=progress,
    )


@dataclass
class Reference:
    """One unedited run: metric per example, each block's input, every sender's output."""

    batch: Batch
    values: torch.Tensor  # [B], on the CPU
    resid: dict[int, torch.Tensor]  # layer -> [B, T, d]; n_layers: the final norm's input
    senders: torch.Tensor  # [senders, B, T, d]
    cache: Any = None  # its keys and values (causal models), to reuse unchanged prefixes
    # (layer, name) -> query/key/value projection outputs [B, T, cols]: a stacked run that
    # starts at a layer reads that layer's unchanged projections from here
    projections: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)


def reference(setup: Setup, batch: Batch, *, keep_logprobs: bool = False) -> Reference:
    """Return the unedited run of ``batch``; ``keep_logprobs`` keeps it for ``kl_to_clean``."""
    runner = setup.runner
    examples = torch.arange(batch["input_ids"].shape[0])
    rec = Recording()
    # no_grad, not inference_mode: attribution later differentiates through these tensors.
    keep = runner.cache_kwarg is not None
    with torch.no_grad(), runner.probe_blocks(), edited(setup.parts, record=rec):
        logits = runner.run(batch, examples, keep_cache=keep, scored_only=False)
    if keep_logprobs:
        runner.clean_logprobs = logits.float().log_softmax(-1)
    values = runner.score(logits, examples)
    if values.shape != (len(examples),):
        raise MetricError(
            f"the metric gave shape {tuple(values.shape)}; it must give one value per example"
        )
    if not torch.isfinite(values).all():
        raise MetricError(
            "the metric is not finite on an unpatched run; check the answer tokens and positions"
        )
    cache = runner.last_cache if keep else None
    return Reference(batch, values, rec.resid, rec.senders(setup.parts), cache, rec.projections)


@dataclass(frozen=True)
class Cell:
    """One patch: sender ``sender``'s delta reaches receivers ``receivers`` (graph indices)."""

    sender: int
    receivers: tuple[int, ...]


def run_cells(
    setup: Setup,
    base: Reference,
    delta: torch.Tensor,
    cells: list[Cell],
    *,
    desc: str = "path patching",
) -> torch.Tensor:
    """Return the metric ``[cells, B]`` of each cell run on ``base`` with its sender's
    ``delta[sender]`` (``delta``: ``[senders, B, T, d]``) added to its receivers' inputs.

    Three things keep it fast without changing a value: a cell whose sender's delta is 0
    everywhere is exactly the base run and is not run; cells are grouped by their earliest
    receiver's layer and each stacked forward starts there from the base run's residual
    stream; on causal models, positions before a chunk's earliest nonzero delta are unchanged
    at every layer, so they come from the base run's KV cache and only the rest is computed.
    """
    from tqdm.auto import tqdm

    graph = setup.graph
    b, t = base.batch["input_ids"].shape
    n_layers = graph.anatomy.n_layers
    out = base.values.repeat(len(cells), 1)
    nonzero = delta.ne(0).any(-1).any(1)  # [senders, T]
    first = torch.where(nonzero.any(1), nonzero.int().argmax(1), t).tolist()
    groups: dict[int, list[int]] = defaultdict(list)
    for i, cell in enumerate(cells):
        if cell.receivers and first[cell.sender] < t:
            start = min(graph.receivers[r].layer for r in cell.receivers)
            groups[min(start, n_layers - 1)].append(i)
    per = max(1, setup.batch_tokens // max(1, b * t))
    total = sum(len(v) for v in groups.values())
    bar = tqdm(total=total, desc=desc, unit="cell", disable=not setup.progress or total == 0)
    try:
        with torch.inference_mode():
            for start in sorted(groups):
                # Cells in order of their first changed position keep each chunk's prefix long.
                todo = sorted(groups[start], key=lambda i: first[cells[i].sender])
                for k in range(0, len(todo), per):
                    chunk = todo[k : k + per]
                    prefix = _prefix(setup, base, min(first[cells[i].sender] for i in chunk))
                    out[chunk] = _run_chunk(
                        setup, base, delta, [cells[i] for i in chunk], start, prefix
                    )
                    bar.update(len(chunk))
    finally:
        bar.close()
    return out


def _prefix(setup: Setup, base: Reference, first_change: int) -> int:
    """Return how many leading positions a stacked run may take from the base run's cache."""
    positions = setup.metric.positions_
    if base.cache is None or setup.runner.cache_kwarg is None or positions is None:
        return 0
    return max(0, min(first_change, int(positions.min())))


def _run_chunk(
    setup: Setup,
    base: Reference,
    delta: torch.Tensor,
    cells: list[Cell],
    start: int,
    prefix: int,
) -> torch.Tensor:
    """Return the metric ``[len(cells), B]`` of cells stacked into one forward from ``start``,
    positions before ``prefix`` taken from the base run's cache."""
    runner = setup.runner
    b = base.batch["input_ids"].shape[0]
    device = runner.device
    examples = torch.arange(b).repeat(len(cells))
    edits = []
    for c, cell in enumerate(cells):
        rows = torch.arange(c * b, (c + 1) * b, device=device)
        edits += [Edit(r, rows, delta[cell.sender][:, prefix:]) for r in cell.receivers]
    resid = _stacked(base.resid[start], len(cells), prefix).to(device)
    kwargs: dict[str, Any] = {"prefix": prefix, "cache": base.cache} if prefix else {}
    hooks = HookSet("patching")
    try:
        _reuse_projections(hooks, setup.parts, base, start, len(cells), prefix)
        with edited(setup.parts, edits):
            logits = runner.run(base.batch, examples, start=start, resid=resid, **kwargs)
    finally:
        hooks.remove_all()
    return runner.score(logits, examples).reshape(len(cells), b)


def _stacked(x: torch.Tensor, copies: int, prefix: int) -> torch.Tensor:
    """Return ``copies`` copies of the batch ``x`` ``[B, T, ...]`` along the batch, from
    position ``prefix`` on (rows ``c * B + i`` are example ``i``, as ``run_cells`` stacks)."""
    part = x[:, prefix:]
    return part.repeat(copies, *([1] * (part.ndim - 1)))


def _reuse_projections(
    hooks: HookSet, parts: Parts, base: Reference, start: int, copies: int, prefix: int
) -> None:
    """Make layer ``start``'s query/key/value projections return the base run's outputs.

    A stacked run starts at ``start`` from the base run's residual stream, so those projections
    would compute exactly what the base run did; receivers' own columns are still written in by
    their hooks, which run on the returned output. This saves a quarter of the first block.
    """
    for name, module in distinct_modules(parts.qkv[start]).items():
        cached = base.projections.get((start, name))
        if cached is None:
            continue

        def forward(x: torch.Tensor, *args: Any, cached: torch.Tensor = cached, **kw: Any) -> Any:
            return _stacked(cached, copies, prefix).to(x.device, x.dtype)

        hooks.add(ForwardOverride(module, forward), "", "forward_override")
