"""The two public entry points: :func:`activation_patch` and :func:`ablate`.

Each checks every input first (:mod:`.inputs`), then runs the unpatched reference runs
(:mod:`.sweep`), the sweep itself (:mod:`.exact` or :mod:`.attribution`), builds the
:class:`~.result.PatchResult` and records what was done in the kernel's ledger.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..core import events
from ..core.records import AblationRecord, PatchRecord
from ..core.traced import is_nnsight, skeleton, unwrap
from .attribution import attribution_sweep, verification_summary, verify_top_cells
from .corruption import ablation_sources, corruption_hooks
from .exact import exact_sweep
from .inputs import (
    PatchingError,
    ablation_metric,
    as_batch,
    check_noise_positions,
    checked_sweep,
    model_tokenizer,
    paired_batches,
    patch_metric,
    sweep_axes,
)
from .result import PatchResult, axis_labels
from .runner import Hook
from .significance import cell_fields, small_gap, stat_options, tests_for_ledger
from .sweep import BATCH_TOKENS, Run, Sweep, reference_run
from .uncertainty import MAX_T, StatOptions


def activation_patch(
    model: nn.Module,
    clean: Any,
    corrupt: Any = None,
    metric: Any = None,
    *,
    site: str = "resid_pre",
    by: Sequence[str] | str = ("layer", "pos"),
    method: str = "exact",
    direction: str = "denoising",
    layers: Sequence[int] | None = None,
    noise: float | None = None,
    noise_positions: Sequence[int] | None = None,
    seed: int = 0,
    verify_top: int = 0,
    tokenizer: Any = None,
    batch_tokens: int = BATCH_TOKENS,
    progress: bool = True,
    alpha: float = 0.05,
    correction: str = MAX_T,
    flips: int = 9999,
    trace: bool = False,
    remote: bool = False,
) -> PatchResult:
    """Return the effect on ``metric`` of patching ``site`` cell by cell between two runs.

    Args:
        model: a HuggingFace GPT-2, GPT-NeoX/Pythia, Llama-family or BERT-family model.
        clean, corrupt: tokenizer outputs or token-id tensors of equal shape (symmetric token
            replacement: each corrupted prompt tokenises to the same length as its clean one).
            With ``noise`` instead of ``corrupt``, the corrupted run is the clean input with
            Gaussian noise on the token embeddings.
        metric: ``logit_diff(correct, wrong)``, ``logprob(answer)``, ``kl_to_clean()`` or a
            function ``logits [batch, pos, vocab] -> [batch]``.
        site: ``resid_pre``, ``resid_post``, ``attn_out``, ``mlp_out``, or ``head_out``.
        by: the axes of the sweep: ``("layer", "pos")``, ``("layer",)``, ``("layer", "head")``
            or ``("layer", "head", "pos")`` (heads patch ``head_out``).
        method: ``"exact"`` (every cell patched and run) or ``"attribution"`` (gradient
            approximation from two forwards and one backward).
        direction: ``"denoising"`` (run corrupted, patch clean in) or ``"noising"`` (run
            clean, patch corrupted in).
        layers: restrict the sweep to these layers.
        noise: standard deviation of the embedding noise, in units of the embeddings' own
            standard deviation (3 is the usual choice); ``noise_positions`` limits it to those
            token positions (default: every real token). ``seed`` fixes the noise.
        verify_top: with ``method="attribution"``, exactly patch the k cells of largest
            magnitude and k cells drawn at random (``seed``), and report attribution's sign and
            size errors on both.
        tokenizer: for token labels on the position axis (default: ``model.tokenizer`` when
            the model carries one, as TransformerLens models and ``toy.load()`` do).
        batch_tokens: how many tokens one stacked forward may hold (memory knob).
        progress: show a progress bar with ETA.
        alpha: the level of the per-cell intervals (``1 - alpha``) and of ``significant``.
        correction: how the per-cell tests are corrected across the sweep: ``"max-t"`` (the
            maximum |t| over cells under the same sign flips), ``"none"``, or a
            ``statsmodels.stats.multitest.multipletests`` method (``"holm"``, ``"fdr_bh"``...).
        flips: random sign patterns per test when ``2**batch`` exceeds it (else all, exact).
        trace: for an nnsight model, run the sweep through nnsight traces (cells batched into
            as few traces as ``batch_tokens`` allows) instead of hooking its module here.
        remote: like ``trace``, on NDIF (nnsight's API key must be set). Attribution through a
            trace scores the metric inside it (its code runs where the model runs).

    Values are normalised so the corrupted run scores 0 and the clean run 1 (batch means first,
    then rescaled); raw and per-example values are kept too. Every cell also gets a t-interval
    over examples and a sign-flip test of "no change from the unpatched run", corrected across
    the sweep (see :mod:`.uncertainty`). A warning says when the clean-corrupted gap is small
    against its standard error, since normalised values then divide by noise.
    """
    if trace or remote:
        return _traced_patch(
            model,
            clean,
            corrupt,
            metric,
            site=site,
            by=by,
            method=method,
            direction=direction,
            layers=layers,
            noise=noise,
            tokenizer=tokenizer,
            batch_tokens=batch_tokens,
            progress=progress,
            options=stat_options(alpha, correction, flips, seed),
            remote=remote,
            verify_top=verify_top,
        )
    tokenizer, model = _local(model, tokenizer)
    options = stat_options(alpha, correction, flips, seed)
    metric_obj = patch_metric(metric, method, direction, verify_top)
    site, axes = sweep_axes(site, by)
    clean_b, corrupt_b = paired_batches(clean, corrupt, noise)
    check_noise_positions(noise_positions, int(clean_b["input_ids"].shape[1]))
    sweep = checked_sweep(model, metric_obj, clean_b, site, axes, layers, batch_tokens, progress)
    clean_b, corrupt_b = sweep.on_device(clean_b), sweep.on_device(corrupt_b)
    hooks, corruption = corruption_hooks(sweep.runner, clean_b, noise, noise_positions, seed)
    # Every check has passed: now the runs (clean first, so kl_to_clean has its reference).
    clean_run = reference_run(sweep, clean_b, keep_logprobs=metric_obj.needs_clean_distribution())
    corrupt_run = reference_run(sweep, corrupt_b, hooks=hooks)
    per_example, verification = _patched(
        sweep, (clean_run, corrupt_run), hooks, method, direction, (verify_top, seed)
    )
    other = corrupt_b if corrupt is not None else None
    labels = axis_labels(sweep, clean_b, other, model_tokenizer(model, tokenizer))
    return _patch_result(
        sweep,
        (clean_run, corrupt_run),
        per_example,
        labels,
        verification,
        method=method,
        direction=direction,
        corruption=corruption,
        verify_top=verify_top,
        options=options,
    )


def _traced_patch(
    wrapped: Any,
    clean: Any,
    corrupt: Any,
    metric: Any,
    *,
    site: str,
    by: Any,
    method: str,
    direction: str,
    layers: Sequence[int] | None,
    noise: float | None,
    tokenizer: Any,
    batch_tokens: int,
    progress: bool,
    options: StatOptions,
    remote: bool,
    verify_top: int,
) -> PatchResult:
    """Return :func:`activation_patch`'s result for an nnsight model, run through traces."""
    from .traced import check_traceable, traced_attribution, traced_reference, traced_sweep

    _nnsight_only(wrapped)
    if noise is not None:
        raise PatchingError("noise corruption is not traced: give corrupted prompts instead")
    tokenizer = tokenizer if tokenizer is not None else getattr(wrapped, "tokenizer", None)
    # Remotely the weights stay on NDIF: the local module (meta weights) gives the structure only.
    module = skeleton(wrapped, remote)
    metric_obj = patch_metric(metric, method, direction, verify_top)
    site, axes = sweep_axes(site, by)
    clean_b, corrupt_b = paired_batches(clean, corrupt, noise)
    sweep = checked_sweep(
        module,
        metric_obj,
        clean_b,
        site,
        axes,
        layers,
        batch_tokens,
        progress,
        weights_here=not remote,
    )
    check_traceable(sweep)
    keep = metric_obj.needs_clean_distribution()
    clean_run = traced_reference(wrapped, sweep, clean_b, remote, keep=keep)
    corrupt_run = traced_reference(wrapped, sweep, corrupt_b, remote)
    base, source = (
        (corrupt_run, clean_run) if direction == "denoising" else (clean_run, corrupt_run)
    )
    verification = None
    if method == "exact":
        per_example = traced_sweep(wrapped, sweep, base, source, remote)
    else:
        per_example = base.values + traced_attribution(wrapped, sweep, base, source, remote)
        if verify_top:
            verification = verify_top_cells(
                sweep,
                base,
                source.site,
                per_example,
                verify_top,
                options.seed,
                exact=lambda cells: traced_sweep(
                    wrapped, sweep, base, source, remote, only=cells, desc="verifying"
                ),
            )
    labels = axis_labels(sweep, clean_b, corrupt_b, tokenizer)
    return _patch_result(
        sweep,
        (clean_run, corrupt_run),
        per_example,
        labels,
        verification,
        method=method,
        direction=direction,
        corruption="counterfactual prompts",
        verify_top=verify_top if verification is not None else 0,
        options=options,
    )


def _nnsight_only(model: Any) -> None:
    """Raise PatchingError unless ``model`` is an nnsight model (what traces can run)."""
    if not is_nnsight(model):
        raise PatchingError(
            f"trace=True and remote=True need an nnsight model (NNsight(module), "
            f"TransformersModel, LanguageModel); {type(model).__name__} runs here: drop them"
        )


def _local(model: Any, tokenizer: Any) -> tuple[Any, nn.Module]:
    """Return the tokenizer and the torch module to run: an nnsight model's wrapped module
    (its tokenizer too, which nnsight keeps on the wrapper), else ``model`` itself."""
    if is_nnsight(model):
        tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    return tokenizer, unwrap(model)


def _patched(
    sweep: Sweep,
    runs: tuple[Run, Run],
    noise_hooks: list[Hook],
    method: str,
    direction: str,
    verify: tuple[int, int],
) -> tuple[torch.Tensor, dict[str, Any] | None]:
    """Return the per-example metric of every patched cell and, with ``verify_top``, its check.

    ``runs`` are the clean and corrupted reference runs. Denoising runs the corrupted input (with
    its noise) and patches clean activations in; noising runs the clean input and patches
    corrupted activations in. ``verify`` is ``(verify_top, seed)``.
    """
    verify_top, seed = verify
    clean_run, corrupt_run = runs
    denoising = direction == "denoising"
    base, source = (corrupt_run, clean_run) if denoising else (clean_run, corrupt_run)
    if method == "exact":
        return exact_sweep(sweep, base, source.site), None
    contrib = attribution_sweep(sweep, base.batch, source.site, noise_hooks if denoising else [])
    per_example = base.values + contrib
    if not verify_top:
        return per_example, None
    return per_example, verify_top_cells(sweep, base, source.site, per_example, verify_top, seed)


def _patch_result(
    sweep: Sweep,
    runs: tuple[Run, Run],
    per_example: torch.Tensor,
    labels: dict[str, list[str]],
    verification: dict[str, Any] | None,
    *,
    method: str,
    direction: str,
    corruption: str,
    verify_top: int,
    options: StatOptions,
) -> PatchResult:
    """Return the result of a patching sweep, normalised, and record the sweep in the ledger.

    ``runs`` are the clean and corrupted reference runs: values are batch means rescaled so the
    corrupted run scores 0 and the clean run 1 (raw differences when the two are equal).
    """
    clean_run, corrupt_run = runs
    clean_mean, corrupt_mean = float(clean_run.values.mean()), float(corrupt_run.values.mean())
    raw = per_example.mean(-1)
    span = clean_mean - corrupt_mean
    notes = []
    normalised = abs(span) > 1e-12
    values = (raw - corrupt_mean) / span if normalised else raw - corrupt_mean
    if not normalised:
        notes.append(
            "clean and corrupted baselines are equal, so values are raw differences from the "
            "corrupted run"
        )
    elif gap := small_gap(clean_run.values - corrupt_run.values):
        notes.append(gap)
        warnings.warn(gap, UserWarning, stacklevel=3)
    if verification is not None:
        verification["summary"] = verification_summary(verification, span if normalised else 1.0)
    base = corrupt_run if direction == "denoising" else clean_run
    stats = cell_fields(
        per_example,
        base.values,
        offset=float(base.values.mean()) - corrupt_mean,
        factor=1 / span if normalised else 1.0,
        options=options,
    )
    site, axes, metric = sweep.site, sweep.axes, sweep.metric
    result = PatchResult(
        values=values,
        raw=raw,
        per_example=per_example,
        axes=axes,
        labels=labels,
        metric=metric.name,
        site=site,
        method=method,
        direction=direction,
        corruption=corruption,
        clean_baseline=clean_mean,
        corrupt_baseline=corrupt_mean,
        clean_per_example=clean_run.values,
        corrupt_per_example=corrupt_run.values,
        normalised=normalised,
        verification=verification,
        notes=notes,
        **stats,
    )
    events.emit(
        PatchRecord(
            method=method,
            direction=direction,
            site=site,
            by=list(axes),
            metric=metric.name,
            corruption=corruption,
            cells=int(values.numel()),
            verified=int(verify_top),
            normalised=normalised,
            **tests_for_ledger(result),
        )
    )
    return result


def ablate(
    model: nn.Module,
    inputs: Any,
    sites: str = "attn_out",
    kind: str = "mean",
    *,
    metric: Any = None,
    by: Sequence[str] | str = ("layer",),
    layers: Sequence[int] | None = None,
    seed: int = 0,
    resamples: int = 5,
    tokenizer: Any = None,
    batch_tokens: int = BATCH_TOKENS,
    progress: bool = True,
    alpha: float = 0.05,
    correction: str = MAX_T,
    flips: int = 9999,
    trace: bool = False,
    remote: bool = False,
) -> PatchResult:
    """Return the change in ``metric`` when each cell of ``sites`` is ablated.

    ``kind``: ``"mean"`` (the default: replace by the batch mean at each position, over real
    tokens), ``"resample"`` (by another example's activation: at each position only examples
    with a real token there give their values, and each example's metric is averaged over
    ``resamples`` derangements drawn from ``seed``) or ``"zero"`` (by zeros, which puts the model
    off its distribution: rule CAU003 flags it as the only intervention). Values are
    ``metric(ablated) - metric(clean)``: negative where the component is necessary for what the
    metric measures. Each cell gets a t-interval over examples and a sign-flip test of no
    change, corrected across the sweep by ``correction`` (as in :func:`activation_patch`).
    ``trace`` and ``remote`` run an nnsight model's sweep through traces, as there.
    """
    traced = trace or remote
    if traced:
        _nnsight_only(model)
        tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        wrapped, model = model, skeleton(model, remote)
    else:
        tokenizer, model = _local(model, tokenizer)
    options = stat_options(alpha, correction, flips, seed)
    if kind == "resample" and (isinstance(resamples, bool) or int(resamples) < 1):
        raise PatchingError(f"resamples must be a positive number of derangements, got {resamples}")
    metric_obj = ablation_metric(metric, kind)
    site, axes = sweep_axes(sites, by)
    batch = as_batch(inputs, "inputs")
    if kind == "resample" and batch["input_ids"].shape[0] < 2:
        raise PatchingError(
            "resample ablation takes activations from other examples: give at least 2"
        )
    sweep = checked_sweep(
        model,
        metric_obj,
        batch,
        site,
        axes,
        layers,
        batch_tokens,
        progress,
        weights_here=not remote,
    )
    keep = metric_obj.needs_clean_distribution()
    if traced:
        from .traced import check_traceable, traced_reference, traced_sweep

        check_traceable(sweep)
        run = traced_reference(wrapped, sweep, batch, remote, keep=keep)
    else:
        batch = sweep.on_device(batch)
        run = reference_run(sweep, batch, keep_logprobs=keep)
    sources = ablation_sources(run, kind, seed, int(resamples) if kind == "resample" else 1)
    per_example = torch.stack(
        [
            traced_sweep(wrapped, sweep, run, Run(run.batch, run.values, {}, source), remote)
            if traced
            else exact_sweep(sweep, run, source, desc=f"{kind} ablation")
            for source in sources
        ]
    ).mean(0)
    raw = per_example.mean(-1)
    clean_mean = float(run.values.mean())
    what = f"{kind} ablation"
    if kind == "resample":
        what += f" ({len(sources)} derangements over real tokens, seed {seed})"
    result = PatchResult(
        values=raw - clean_mean,
        raw=raw,
        per_example=per_example,
        axes=axes,
        labels=axis_labels(sweep, batch, None, model_tokenizer(model, tokenizer)),
        metric=metric_obj.name,
        site=site,
        method=f"{kind}-ablation",
        direction=None,
        corruption=what,
        clean_baseline=clean_mean,
        corrupt_baseline=None,
        clean_per_example=run.values,
        corrupt_per_example=None,
        normalised=False,
        **cell_fields(per_example, run.values, offset=0.0, factor=1.0, options=options),
    )
    events.emit(
        AblationRecord(
            ablation=kind,
            site=site,
            by=list(axes),
            metric=metric_obj.name,
            cells=int(result.values.numel()),
            **tests_for_ledger(result),
        )
    )
    return result
