"""Exact patching and ablation of an nnsight model through traces: the sweep, run where the model
lives (in-process, or on NDIF with ``remote=True``).

Each remote trace is a network round trip, so patched cells travel together: a chunk of cells is
one trace over the base batch repeated once per cell, in which each layer's site is edited in
place for the rows of the cells at that layer (nnsight applies assignments to ``.output`` and
``.input`` where the model runs) and only the logits the metric reads come back (one position per
row, the metric's vocabulary rows). The reference runs are one trace each, which also save the
source activations. The statistics, normalisation and ledger record are those of every sweep.

Supported: exact patching (denoising or noising with counterfactual prompts) by ``("layer",)`` or
``("layer", "pos")`` at ``resid_pre``, ``resid_post``, ``attn_out`` or ``mlp_out``, with metrics
whose reads are known (the built-in ones, or a function whose positions and rows were found).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..core.traced import envoy
from .inputs import PatchingError
from .metrics import Metric
from .sweep import Run, Sweep

#: Sites a traced sweep can edit in place.
TRACED_SITES = ("resid_pre", "resid_post", "attn_out", "mlp_out")


@dataclass(frozen=True)
class Edit:
    """Write ``values`` into the site of one layer, at ``rows`` (and ``positions``, or all)."""

    node: Any
    io: str
    index: int | None
    rows: torch.Tensor
    positions: torch.Tensor | None
    values: torch.Tensor


def check_traceable(sweep: Sweep, method: str) -> None:
    """Raise PatchingError unless this sweep can run through nnsight traces."""
    if method != "exact":
        raise PatchingError(
            "through an nnsight trace only method='exact' runs (attribution needs a backward "
            "pass through the remote model); patch locally for attribution"
        )
    if sweep.site not in TRACED_SITES or "head" in sweep.axes:
        raise PatchingError(
            f"through an nnsight trace the sites are {', '.join(TRACED_SITES)} by ('layer',) or "
            f"('layer', 'pos'); got site={sweep.site!r}, by={sweep.axes!r}"
        )
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
    site = {layer: s.detach().cpu() for layer, s in zip(sweep.layers, saved, strict=True)}
    return Run(batch, values, {}, site)


def traced_sweep(wrapped: Any, sweep: Sweep, base: Run, source: Run, remote: bool) -> torch.Tensor:
    """Return the metric per example of every patched cell ``[layers, (positions,) examples]``."""
    n, length = (int(x) for x in base.batch["input_ids"].shape)
    by_pos = "pos" in sweep.axes
    cells = [
        (layer, pos) for layer in sweep.layers for pos in (range(length) if by_pos else [None])
    ]
    per_chunk = max(1, sweep.batch_tokens // max(1, n * length))
    targets = {layer: sweep.runner.adapter.target(sweep.site, layer) for layer in sweep.layers}
    out = torch.empty(len(cells), n)
    for start, chunk in _chunks(cells, per_chunk, sweep.progress):
        k = len(chunk)
        batch = {
            key: value.repeat(k, *([1] * (value.ndim - 1))) for key, value in base.batch.items()
        }
        examples = torch.arange(n).repeat(k)
        edits = []
        for layer in sweep.layers:
            at = [i for i, (cell_layer, _) in enumerate(chunk) if cell_layer == layer]
            if not at:
                continue
            rows = torch.cat([torch.arange(i * n, (i + 1) * n) for i in at])
            src = source.site[layer]
            if by_pos:
                positions = torch.tensor([chunk[i][1] for i in at]).repeat_interleave(n)
                values = src[torch.arange(n).repeat(len(at)), positions]
            else:
                positions, values = None, src.repeat(len(at), *([1] * (src.ndim - 1)))
            t = targets[layer]
            index = t.select if isinstance(t.select, int) else None
            edits.append(Edit(envoy(wrapped, t.path), t.io, index, rows, positions, values))
        _, picked = _trace(wrapped, batch, edits, [], _reads(sweep.metric, examples), remote)
        scores = sweep.metric.score(picked, examples, sweep.runner.clean_logprobs).float().cpu()
        out[start : start + k] = scores.view(k, n)
    shape = (len(sweep.layers), length, n) if by_pos else (len(sweep.layers), n)
    return out.view(shape)


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
            if edit.positions is None:
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


def _chunks(cells: list[Any], size: int, progress: bool) -> Iterator[tuple[int, list[Any]]]:
    """Yield ``(start, cells)`` chunks of at most ``size`` cells, with a progress bar."""
    from tqdm.auto import tqdm

    total = math.ceil(len(cells) / size)
    for i in tqdm(range(total), desc="traced patching", unit="trace", disable=not progress):
        yield i * size, cells[i * size : (i + 1) * size]
