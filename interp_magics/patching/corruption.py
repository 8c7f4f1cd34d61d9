"""Corruptions without a counterfactual prompt: embedding noise, and the values ablation puts in.

:func:`corruption_hooks` makes the corrupted run of a patching sweep from the clean input with
Gaussian noise on the token embeddings; :func:`ablation_source` gives the values a zero, mean or
resample ablation writes over each layer's activations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .runner import Batch, Hook, Runner
from .sweep import Run


def corruption_hooks(
    runner: Runner, batch: Batch, noise: float | None, positions: Sequence[int] | None, seed: int
) -> tuple[list[Hook], str]:
    """Return the hooks that corrupt the clean run, and the corruption in words.

    Without ``noise`` the corrupted run is the counterfactual prompts, and there are no hooks.
    """
    if noise is None:
        return [], "counterfactual prompts"
    hook = (runner.embedding(), "forward", _noise_hook(runner, batch, noise, positions, seed))
    return [hook], f"Gaussian noise on embeddings, std = {noise:g} x embedding std, seed {seed}"


def _noise_hook(
    runner: Runner, batch: Batch, scale: float, positions: Sequence[int] | None, seed: int
) -> Any:
    """Return a forward hook adding Gaussian noise to the token embeddings (a corruption)."""
    mask = batch["attention_mask"].bool().to(runner.device)
    where = torch.zeros_like(mask)
    if positions is None:
        where = mask
    else:
        where[:, list(positions)] = True
        where &= mask
    state: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        if "noise" not in state:
            gen = torch.Generator(device="cpu").manual_seed(seed)
            std = float(output[mask].float().std())
            noise = torch.randn(output.shape, generator=gen).to(output.device, output.dtype)
            state["noise"] = noise * scale * std * where[..., None]
        return output + state["noise"]

    return hook


def ablation_source(run: Run, kind: str, seed: int) -> dict[int, torch.Tensor]:
    """Return, per layer, the values a ``kind`` ablation writes over the activations of ``run``.

    ``"zero"``: zeros; ``"mean"``: the batch mean at each position over real tokens;
    ``"resample"``: another example's activations, by a derangement fixed by ``seed``.
    """
    if kind == "zero":
        return {layer: torch.zeros_like(act) for layer, act in run.site.items()}
    if kind == "resample":
        perm = _derangement(run.batch["input_ids"].shape[0], seed)
        return {layer: act[perm.to(act.device)] for layer, act in run.site.items()}
    mask = run.batch["attention_mask"].bool()
    return {layer: _masked_mean(act, mask) for layer, act in run.site.items()}


def _masked_mean(act: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return the mean of ``act`` over the real tokens of the batch, repeated for each example."""
    m = mask.reshape(*mask.shape, *([1] * (act.ndim - 2))).to(act.dtype)
    mean = (act * m).sum(0, keepdim=True) / m.sum(0, keepdim=True).clamp_min(1)
    return mean.expand_as(act).clone()


def _derangement(n: int, seed: int) -> torch.Tensor:
    """Return a random permutation of ``range(n)`` that moves every index (``n`` >= 2)."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    while bool((perm == torch.arange(n)).any()):  # every example takes another's values
        perm = torch.randperm(n, generator=gen)
    return perm
