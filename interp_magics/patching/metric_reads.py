"""Which logits a user's metric function reads: one position per example, and which rows.

A metric written the usual way (``logits[:, -1, a] - logits[:, -1, b]``) reads a few entries
of the ``[batch, pos, vocab]`` logits. When a sweep knows which, it unembeds only those rows at
those positions and reuses every unchanged prefix, as it does for the built-in metrics.

The reads are found, then proved, on random logits of the real shape:

1. the gradient of the metric's sum marks every entry it depends on smoothly; it must mark
   exactly one position per example (the candidate rows are the union over examples);
2. on two fresh random draws, the metric evaluated on logits that are NaN everywhere except
   the candidate entries must equal, exactly, the metric on the whole draw. NaN propagates
   through every arithmetic read, so an entry the gradient missed (an ``argmax``, a mask, a
   comparison) turns the result NaN or changes it, and the function is then given full logits.

Anything else (an error, a non-finite result, no gradient, several positions per example)
falls back to full logits: the fast path is taken only when it is proved to give the same
numbers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

#: Above this many logits entries, probing costs more than it can save: full logits instead.
MAX_PROBE_ENTRIES = 64_000_000


@dataclass(frozen=True)
class Reads:
    """The logits a metric function reads: ``positions[b]`` of example ``b``, ``rows`` of the
    vocabulary (None: every row)."""

    positions: torch.Tensor
    rows: torch.Tensor | None


def takes_mask(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes the attention mask as a second argument (``fn(logits, mask)``)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def call_metric(
    fn: Callable[..., Any], logits: torch.Tensor, mask: torch.Tensor, with_mask: bool
) -> torch.Tensor:
    """Return ``fn(logits)`` (or ``fn(logits, mask)``) as a tensor."""
    out = fn(logits, mask) if with_mask else fn(logits)
    return out if isinstance(out, torch.Tensor) else torch.as_tensor(out)


def infer_reads(
    fn: Callable[..., Any], mask: torch.Tensor, vocab: int, *, seed: int = 0
) -> Reads | None:
    """Return the logits ``fn`` reads for a batch with attention ``mask``, or None (full logits)."""
    batch, length = mask.shape
    if batch * length * vocab > MAX_PROBE_ENTRIES or batch == 0:
        return None
    with_mask = takes_mask(fn)
    generator = torch.Generator().manual_seed(seed)
    probe = torch.randn(batch, length, vocab, generator=generator).requires_grad_(True)
    try:
        out = call_metric(fn, probe, mask, with_mask)
        if out.shape != (batch,) or not out.requires_grad or not torch.isfinite(out).all():
            return None
        (grad,) = torch.autograd.grad(out.sum(), probe, allow_unused=True)
    except Exception:  # whatever a user's function raises here, full logits still work
        return None
    if grad is None:
        return None
    read = grad.ne(0)
    at_positions = read.any(-1)  # [batch, pos]
    if not bool((at_positions.sum(1) == 1).all()):
        return None
    positions = at_positions.int().argmax(1)
    rows: torch.Tensor | None = read.any(1).any(0).nonzero().flatten()
    assert rows is not None
    if rows.numel() == 0:
        return None
    if rows.numel() > vocab // 2:
        rows = None  # most of the row: unembedding all of it costs no more
    reads = Reads(positions, rows)
    for _ in range(2):
        draw = torch.randn(batch, length, vocab, generator=generator)
        try:
            with torch.no_grad():
                whole = call_metric(fn, draw, mask, with_mask)
                only = call_metric(
                    fn, sparse_logits(draw, reads, batch, length, vocab), mask, with_mask
                )
        except Exception:
            return None
        if not (torch.isfinite(only).all() and torch.equal(whole, only)):
            return None
    return reads


def read_values(logits: torch.Tensor, reads: Reads) -> torch.Tensor:
    """Return the entries of full ``logits`` that ``reads`` names, ``[batch, rows]``."""
    picked = logits[torch.arange(logits.shape[0]), reads.positions]
    return picked if reads.rows is None else picked[:, reads.rows]


def sparse_logits(
    values: torch.Tensor, reads: Reads, batch: int, length: int, vocab: int
) -> torch.Tensor:
    """Return ``[batch, length, vocab]`` logits, NaN except the entries ``reads`` names.

    ``values`` is either the full logits or the read entries alone (``[batch, rows]``).
    """
    if values.dim() == 3:
        values = read_values(values, reads)
    shape = (batch, length, vocab)
    if values.requires_grad:  # attribution differentiates through it: a tensor of its own
        out = torch.full(shape, float("nan"), dtype=values.dtype, device=values.device)
    else:
        out = _nan_buffer(shape, values.dtype, values.device)
    index = torch.arange(batch, device=values.device)
    positions = reads.positions.to(values.device)
    if reads.rows is None:
        out[index, positions] = values
    else:
        rows = reads.rows.to(values.device)
        out[index[:, None], positions[:, None], rows[None, :]] = values
    return out


_BUFFERS: dict[tuple[tuple[int, ...], torch.dtype, torch.device], torch.Tensor] = {}


def _nan_buffer(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Return a NaN tensor of ``shape``, reused across calls: a sweep scores hundreds of
    patched runs of one shape, and it writes the same entries each time (the ones the metric
    reads; the others stay NaN, and the metric was proved not to read them)."""
    key = (shape, dtype, device)
    if key not in _BUFFERS:
        _BUFFERS.clear()  # one shape at a time: a sweep's batch
        _BUFFERS[key] = torch.full(shape, float("nan"), dtype=dtype, device=device)
    return _BUFFERS[key]
