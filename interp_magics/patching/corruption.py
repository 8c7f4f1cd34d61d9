"""Corruptions without a counterfactual prompt: embedding noise, and the values ablation puts in.

:func:`corruption_hooks` makes the corrupted run of a patching sweep from the clean input with
Gaussian noise on the token embeddings; :func:`ablation_sources` gives the values a zero, mean or
resample ablation writes over each layer's activations (one set per resampling draw).
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
        where[:, [int(p) for p in positions]] = True
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


def ablation_sources(
    run: Run, kind: str, seed: int, draws: int = 1
) -> list[dict[int, torch.Tensor]]:
    """Return, per draw and layer, the values a ``kind`` ablation writes over ``run``'s activations.

    ``"zero"``: zeros; ``"mean"``: the batch mean at each position over real tokens (one draw);
    ``"resample"``: another example's activations (:func:`resample_donors`), ``draws`` seeded
    derangements from ``seed``.
    """
    if kind == "zero":
        return [{layer: torch.zeros_like(act) for layer, act in run.site.items()}]
    mask = run.batch["attention_mask"].bool()
    if kind == "mean":
        return [{layer: _masked_mean(act, mask) for layer, act in run.site.items()}]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(draws):
        donors = resample_donors(mask.cpu(), gen)
        pos = torch.arange(donors.shape[1]).expand_as(donors)
        out.append(
            {
                layer: act[donors.to(act.device), pos.to(act.device)]
                for layer, act in run.site.items()
            }
        )
    return out


def resample_donors(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Return ``[batch, pos]``: which example gives each example its values at each position.

    A derangement of the examples (drawn from ``gen``) picks each example's donor. Where the
    donor has no real token (padding), the first example in a second seeded order that has one
    there gives the value instead; where no other example has one, and at the example's own pad
    positions, it keeps its own value. So a pad's activation is never written into a real token.
    """
    b, t = mask.shape
    perm = _derangement(b, gen)
    donors = perm[:, None].expand(b, t).clone()
    pos = torch.arange(t).expand(b, t)
    missing = mask & ~mask[donors, pos]
    if bool(missing.any()):
        order = torch.randperm(b, generator=gen).tolist()
        for i, p in missing.nonzero().tolist():
            others = [j for j in order if j != i and bool(mask[j, p])]
            donors[i, p] = others[0] if others else i
    own = torch.arange(b)[:, None].expand(b, t)
    return torch.where(mask, donors, own)


def _masked_mean(act: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return the mean of ``act`` over the real tokens of the batch, repeated for each example."""
    m = mask.reshape(*mask.shape, *([1] * (act.ndim - 2))).to(act.dtype)
    mean = (act * m).sum(0, keepdim=True) / m.sum(0, keepdim=True).clamp_min(1)
    return mean.expand_as(act).clone()


def _derangement(n: int, gen: torch.Generator) -> torch.Tensor:
    """Return a random permutation of ``range(n)`` that moves every index (``n`` >= 2)."""
    perm = torch.randperm(n, generator=gen)
    while bool((perm == torch.arange(n)).any()):  # every example takes another's values
        perm = torch.randperm(n, generator=gen)
    return perm
