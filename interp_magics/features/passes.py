"""The two streaming passes of :func:`~.dashboard_data.dashboard_data` over a dataset.

Memory is bounded by the number of features, never by the activations: per feature the
first pass keeps counts, maxima and the top-k (activation, token) pairs (a running
``torch.topk`` over the concatenation of the best so far and the batch); the second keeps a
histogram on bins from 0 to the maximum the first found, and the window of activations
around each top token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..core.adapters import call_model
from ..core.hooks import HookSet
from .inputs import Batch, FeatureError
from .sites import FeatureSite


def stream(
    model: nn.Module,
    fs: FeatureSite,
    batches: list[Batch],
    device: torch.device,
    consume: Callable[[torch.Tensor, torch.Tensor], None],
    progress: bool,
    desc: str,
) -> None:
    """Run the model over ``batches`` and hand each batch's features ``[B, T, n]`` (float32)
    and real-token mask to ``consume``; the hook is owned and removed in ``finally``."""
    from tqdm.auto import tqdm

    seen: list[torch.Tensor] = []

    def keep(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        seen.append(output.detach())

    hooks = HookSet("features")
    hooks.add(fs.splice.features.register_forward_hook(keep), fs.key, "forward")
    try:
        for batch in tqdm(batches, desc=desc, unit="batch", disable=not progress):
            seen.clear()
            on_device = {key: v.to(device) for key, v in batch.items()}
            with torch.inference_mode():
                call_model(model, on_device)
            if len(seen) != 1:
                raise FeatureError(
                    f"{fs.key} ran {len(seen)} times in one forward; it must run once per batch"
                )
            acts = seen[0].float()
            consume(acts, on_device["attention_mask"].to(acts.device).bool())
    finally:
        hooks.remove_all()


class FirstPass:
    """Running counts, maxima and top-k (activation, global token index) per feature."""

    def __init__(self, n: int, k: int, device: torch.device) -> None:
        self.k = k
        self.values = torch.full((k, n), -torch.inf, device=device)
        self.tokens = torch.full((k, n), -1, dtype=torch.long, device=device)
        self.counts = torch.zeros(n, dtype=torch.long, device=device)
        self.maxes = torch.zeros(n, device=device)
        self.offset = 0  # tokens (padding included) of the batches seen
        self.offset_real = 0
        self.shapes: list[tuple[int, int]] = []

    def add(self, acts: torch.Tensor, mask: torch.Tensor) -> None:
        b, t, n = acts.shape
        self.shapes.append((b, t))
        acts = acts.to(self.values.device)
        mask = mask.to(acts.device)
        real = mask[..., None]
        self.counts += ((acts > 0) & real).sum((0, 1))
        flat = acts.masked_fill(~real, -torch.inf).reshape(b * t, n)
        self.maxes = torch.maximum(self.maxes, flat.max(0).values.clamp_min(0))
        top = flat.topk(min(self.k, b * t), dim=0)
        values = torch.cat([self.values, top.values])
        tokens = torch.cat([self.tokens, top.indices + self.offset])
        best = values.topk(self.k, dim=0)
        self.values = best.values
        self.tokens = tokens.gather(0, best.indices)
        self.offset += b * t
        self.offset_real += int(mask.sum())


class SecondPass:
    """Histograms on bins from 0 to each feature's max, and the windows of its top tokens."""

    def __init__(self, first: FirstPass, bins: int, before: int, after: int) -> None:
        k, n = first.values.shape
        device = first.values.device
        self.bins = bins
        self.before, self.after = before, after
        self.maxes = first.maxes
        self.top_tokens = torch.where(first.values > 0, first.tokens, -1)
        self.hist = torch.zeros(n, bins, dtype=torch.long, device=device)
        self.windows = torch.zeros(k, n, before + after + 1, device=device)
        self.offset = 0

    def add(self, acts: torch.Tensor, mask: torch.Tensor) -> None:
        b, t, n = acts.shape
        acts = acts.to(self.hist.device)
        mask = mask.to(acts.device)
        flat = acts.reshape(b * t, n)
        real = mask.reshape(b * t)
        scale = torch.where(self.maxes > 0, self.bins / self.maxes, 0.0)
        rows = max(1, (1 << 22) // max(n, 1))  # bounds the temporaries to ~32 MiB
        for lo in range(0, b * t, rows):
            part = flat[lo : lo + rows]
            fires = (part > 0) & real[lo : lo + rows, None]
            index = (part * scale).long().clamp_(0, self.bins - 1)
            self.hist.scatter_add_(1, index.T, fires.T.long())
        inside = (self.top_tokens >= self.offset) & (self.top_tokens < self.offset + b * t)
        slot, feat = inside.nonzero(as_tuple=True)
        if slot.numel():
            local = self.top_tokens[slot, feat] - self.offset
            ex, pos = local // t, local % t
            span = pos[:, None] + torch.arange(-self.before, self.after + 1, device=acts.device)
            valid = (span >= 0) & (span < t)
            span = span.clamp(0, t - 1)
            vals = acts[ex[:, None], span, feat[:, None]]
            real = valid & mask[ex[:, None], span]
            self.windows[slot, feat] = torch.where(real, vals, 0.0)
        self.offset += b * t
