"""Runs of a model with an SAE spliced in: checked setup, the unedited run, edited features.

The model runs through patching's :class:`~interp_magics.patching.runner.Runner`, so the metric
is read the way patching reads it (only the scored position, only the answer rows) and
blocks before the SAE are not recomputed: each edited run starts at the block holding the
splice from the unedited run's residual stream. Several features are edited per forward: the
batch is stacked once per feature and feature ``j``'s copy has only feature ``j`` edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core.adapters import Target
from ..core.capturing import capture
from ..core.errors import CaptureError
from ..core.options import parse_positions, resolve_positions
from ..core.traced import is_nnsight, unwrap
from ..patching.inputs import checked_sweep
from ..patching.metrics import Metric, MetricError, as_metric
from ..patching.runner import Batch, Runner
from .inputs import FeatureError, data_batches
from .sites import FeatureSite, feature_site


@dataclass
class Setup:
    """A checked feature analysis: the splice, the runner and metric, the batch, the positions
    edited (None: every real token), and the block edited runs start at (None: the first)."""

    site: FeatureSite
    runner: Runner
    metric: Metric
    batch: Batch
    positions: torch.Tensor | None
    start: int | None
    batch_tokens: int
    progress: bool

    @property
    def mask(self) -> torch.Tensor:
        """``[batch, pos]`` real tokens (1) and padding (0)."""
        return self.batch["attention_mask"]


@dataclass
class Reference:
    """The unedited spliced run: metric per example, the features and the start block's input."""

    values: torch.Tensor  # [B], CPU
    features: torch.Tensor  # [B, T, n_features], on the runner's device
    resid: torch.Tensor | None  # [B, T, d] input of block `start`


def prepare(
    model: Any,
    inputs: Any,
    site: Any,
    metric: Any,
    *,
    tokenizer: Any,
    positions: Any,
    batch_tokens: int,
    progress: bool,
) -> Setup:
    """Return the checked setup; raises before any forward on bad input."""
    module: nn.Module = unwrap(model) if is_nnsight(model) else model
    fs = feature_site(module, site)
    if metric is None:
        raise MetricError("give a metric, e.g. patching.logit_diff(correct_ids, wrong_ids)")
    metric_obj = as_metric(metric)
    if isinstance(batch_tokens, bool) or not isinstance(batch_tokens, int) or batch_tokens < 1:
        raise FeatureError(f"batch_tokens must be a positive number of tokens, got {batch_tokens}")
    batches = data_batches(inputs, tokenizer if tokenizer is not None else _tok(module), 1 << 30)
    if len(batches) != 1:
        raise FeatureError("inputs must be one batch (token ids, a tokenizer output or texts)")
    sweep = checked_sweep(
        module, metric_obj, batches[0], "resid_pre", ("layer",), None, batch_tokens, progress
    )
    batch = sweep.on_device(batches[0])
    length = int(batch["input_ids"].shape[1])
    pos = None
    if positions is not None:
        try:
            chosen = resolve_positions(parse_positions(positions), length)  # type: ignore[arg-type]
        except CaptureError as exc:
            raise FeatureError(str(exc)) from None
        pos = torch.tensor(sorted(set(chosen)), device=sweep.runner.device)
    start = _start_block(sweep.runner, [fs.target, *([fs.source] if fs.source else [])])
    return Setup(fs, sweep.runner, metric_obj, batch, pos, start, sweep.stack_tokens, progress)


def _tok(model: nn.Module) -> Any:
    return getattr(model, "tokenizer", None)


def _start_block(runner: Runner, targets: list[Target]) -> int | None:
    """Return the block an edited run can start at (every target runs in or after it), or
    None when the run must start at the embeddings."""
    layers_path = getattr(runner.adapter, "layers_path", None)
    if layers_path is None:
        return None
    starts = []
    for target in targets:
        rest = target.path.removeprefix(f"{layers_path}.")
        head = rest.split(".")[0]
        if rest == target.path or not head.isdigit():
            return None  # outside the blocks (embeddings, final norm)
        block = int(head)
        # A block's own input is read before the run's injected residual stream replaces it.
        starts.append(block - 1 if rest == head and target.io == "input" else block)
    start = min(starts)
    return start if start > 0 else None


def region(setup: Setup) -> torch.Tensor:
    """Return ``[batch, pos]`` where edits apply: real tokens, at the chosen positions."""
    where = setup.mask.bool().clone()
    if setup.positions is not None:
        keep = torch.zeros_like(where)
        keep[:, setup.positions] = True
        where &= keep
    return where


def reference(setup: Setup) -> Reference:
    """Return the unedited run (no gradients)."""
    runner, fs = setup.runner, setup.site
    keys = [fs.key] + ([f"resid_pre.{setup.start}"] if setup.start is not None else [])
    examples = torch.arange(setup.batch["input_ids"].shape[0])
    with (
        torch.inference_mode(),
        runner.probe_blocks(),
        capture(runner.model, keys, device=runner.device) as acts,
    ):
        logits = runner.run(setup.batch, examples)
    if setup.metric.needs_clean_distribution():  # kl_to_clean: the unedited run is "clean"
        runner.clean_logprobs = logits.float().log_softmax(-1)
    values = checked_values(runner.score(logits, examples), len(examples))
    resid = acts[keys[1]] if setup.start is not None else None
    return Reference(values, acts[fs.key], resid)


def checked_values(values: torch.Tensor, n: int) -> torch.Tensor:
    """Return ``values`` once they are one finite number per example."""
    if values.shape != (n,):
        raise MetricError(
            f"the metric gave shape {tuple(values.shape)}; it must give one value per example"
        )
    if not torch.isfinite(values).all():
        raise MetricError(
            "the metric is not finite on the unedited run; check the answer tokens and positions"
        )
    return values


def edited_values(
    setup: Setup, ref: Reference, features: torch.Tensor, values: torch.Tensor, desc: str
) -> torch.Tensor:
    """Return the metric ``[len(features), batch]`` with each feature set to ``values`` alone.

    ``values`` is ``[len(features), batch, pos]``, feature ``j``'s value where edits apply
    (:func:`region`), or one number for all; elsewhere each feature keeps its own activation.
    Several features run per forward (``batch_tokens``), each on its own copy of the batch.
    """
    from tqdm.auto import tqdm

    runner = setup.runner
    b, t = setup.batch["input_ids"].shape
    where = region(setup)
    per = max(1, setup.batch_tokens // max(1, b * t))
    out = torch.empty(len(features), b)
    hook_module = setup.site.splice.features
    bar = tqdm(total=len(features), desc=desc, unit="feature", disable=not setup.progress)
    try:
        with torch.inference_mode():
            for lo in range(0, len(features), per):
                chunk = features[lo : lo + per].to(runner.device)
                k = len(chunk)
                examples = torch.arange(b).repeat(k)
                rows = torch.arange(k * b, device=runner.device)
                column = chunk.repeat_interleave(b)
                new = (
                    values[lo : lo + k].to(runner.device).reshape(k * b, t)
                    if values.ndim
                    else values.to(runner.device).expand(k * b, t)
                )
                mask = where.repeat(k, 1)
                edit = _editor(rows, column, mask, new)
                resid = None
                if ref.resid is not None:
                    resid = ref.resid[examples.to(ref.resid.device)]
                logits = runner.run(
                    setup.batch,
                    examples,
                    start=setup.start or 0,
                    resid=resid,
                    extra_hooks=[(hook_module, "forward", edit)],
                )
                out[lo : lo + k] = runner.score(logits, examples).reshape(k, b)
                bar.update(k)
    finally:
        bar.close()
    return out


def _editor(
    rows: torch.Tensor, column: torch.Tensor, where: torch.Tensor, new: torch.Tensor
) -> Any:
    """Return a forward hook that sets feature ``column[r]`` of row ``r`` to ``new[r]`` at the
    positions ``where[r]`` (every other feature and position keeps its activation)."""

    def edit(mod: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        edited = output.clone()
        current = edited[rows, :, column]  # [rows, pos]
        edited[rows, :, column] = torch.where(where, new.to(edited.dtype), current)
        return edited

    return edit
