"""What every sweep shares: its settings and the unpatched runs it patches between.

A :class:`Sweep` names the runner, the site, the axes of the grid and the layers, so the exact
sweep, the gradient attribution and its verification take one argument for all of them. A
:class:`Run` is one unpatched forward with what a sweep reads from it: the metric per example,
the residual stream a patched run starts from, the activations at the site, and its KV cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..core.capturing import capture
from .metrics import Metric, MetricError
from .runner import Batch, Hook, Runner, to_device

#: Token budget of one stacked forward: rows x sequence length (a memory knob; on a CPU a
#: smaller stack can run faster, see ``Runner.stack_tokens``).
BATCH_TOKENS = 8192


@dataclass(frozen=True)
class Sweep:
    """One sweep: patch ``site`` of ``layers`` cell by cell along ``axes``, run by ``runner``."""

    runner: Runner
    site: str
    axes: tuple[str, ...]
    layers: list[int]
    batch_tokens: int = BATCH_TOKENS
    progress: bool = True

    @property
    def stack_tokens(self) -> int:
        """Return how many tokens one stacked local forward holds (see ``Runner.stack_tokens``)."""
        return self.runner.stack_tokens(self.batch_tokens)

    @property
    def metric(self) -> Metric:
        """Return the metric every run of the sweep is scored by."""
        return self.runner.metric

    def on_device(self, batch: Mapping[str, torch.Tensor]) -> Batch:
        """Return ``batch`` on the model's device."""
        return to_device(batch, self.runner.device)


@dataclass
class Run:
    """One unpatched run: its metric per example, residual stream and site activations."""

    batch: Batch
    values: torch.Tensor  # [B]
    resid: dict[int, torch.Tensor]  # layer -> resid_pre [B, T, d]
    site: dict[int, torch.Tensor]  # layer -> activation at the site
    cache: Any = None  # its keys and values (causal models), to reuse unchanged prefixes


def reference_run(
    sweep: Sweep,
    batch: Batch,
    *,
    hooks: list[Hook] | None = None,
    keep_logprobs: bool = False,
) -> Run:
    """Return the unpatched run of ``batch`` (with ``hooks``, e.g. embedding noise, installed).

    ``keep_logprobs`` keeps its next-token distribution on the runner for ``kl_to_clean``.
    """
    runner, site, layers = sweep.runner, sweep.site, sweep.layers
    patterns = [f"resid_pre.{layer}" for layer in layers]
    if site != "resid_pre":
        patterns += [f"{site}.{layer}" for layer in layers]
    examples = torch.arange(batch["input_ids"].shape[0])
    with (
        torch.inference_mode(),
        runner.probe_blocks(),
        capture(runner.model, patterns, device=runner.device) as acts,
    ):
        logits = runner.run(batch, examples, extra_hooks=hooks, keep_cache=True, scored_only=False)
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
    resid = {layer: acts[f"resid_pre.{layer}"] for layer in layers}
    site_acts = (
        resid if site == "resid_pre" else {layer: acts[f"{site}.{layer}"] for layer in layers}
    )
    return Run(batch, values, resid, site_acts, runner.last_cache if runner.cache_kwarg else None)
