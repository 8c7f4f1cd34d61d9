"""Turning what the user passed into checked batches and a sweep, before any model runs.

Every check a sweep can make up front is made here, so a bad argument fails in a second with a
message that says what to fix, not after minutes of patched runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..core.errors import CaptureError
from .metrics import CallableMetric, KLToClean, Metric, MetricError, as_metric
from .runner import PATCH_SITES, Batch, Runner
from .sweep import Sweep


class PatchingError(CaptureError):
    """Inputs a patching run cannot use; the message says what to fix."""


def patch_metric(metric: Any, method: str, direction: str, verify_top: int) -> Metric:
    """Return ``metric`` as a :class:`Metric`, once the options of a patching sweep agree."""
    if metric is None:
        raise PatchingError("give a metric, e.g. patching.logit_diff(correct_ids, wrong_ids)")
    metric_obj = as_metric(metric)
    if method not in ("exact", "attribution"):
        raise PatchingError(f"method must be 'exact' or 'attribution', not {method!r}")
    if direction not in ("denoising", "noising"):
        raise PatchingError(f"direction must be 'denoising' or 'noising', not {direction!r}")
    if verify_top and method != "attribution":
        raise PatchingError(
            "verify_top checks attribution patching; use it with method='attribution'"
        )
    if isinstance(metric_obj, KLToClean) and method == "attribution":
        raise PatchingError(
            "kl_to_clean has zero gradient at the clean run, so attribution cannot use it; use "
            "logit_diff or logprob, or method='exact'"
        )
    return metric_obj


def ablation_metric(metric: Any, kind: str) -> Metric:
    """Return ``metric`` as a :class:`Metric`, once ``kind`` names an ablation."""
    if metric is None:
        raise PatchingError(
            "give a metric, e.g. metric=patching.logit_diff(correct_ids, wrong_ids)"
        )
    if kind not in ("zero", "mean", "resample"):
        raise PatchingError(f"kind must be 'zero', 'mean' or 'resample', not {kind!r}")
    return as_metric(metric)


def sweep_axes(site: str, by: Sequence[str] | str) -> tuple[str, tuple[str, ...]]:
    """Return the site to patch and the axes of the sweep (heads are patched at ``head_out``)."""
    axes = (by,) if isinstance(by, str) else tuple(by)
    allowed = {("layer",), ("layer", "pos"), ("layer", "head"), ("layer", "head", "pos")}
    if axes not in allowed:
        raise PatchingError(
            f"by={axes!r} is not supported; use ('layer',), ('layer', 'pos'), ('layer', 'head') or "
            "('layer', 'head', 'pos')"
        )
    if "head" in axes:
        if site not in ("attn_out", "head_out"):
            raise PatchingError(f"per-head patching is done at site='head_out', not {site!r}")
        site = "head_out"
    elif site == "head_out":
        raise PatchingError(
            "site='head_out' patches heads: use by=('layer', 'head') or ('layer', 'head', 'pos')"
        )
    if site not in PATCH_SITES:
        raise PatchingError(f"unknown site {site!r}; patching supports {', '.join(PATCH_SITES)}")
    return site, axes


def as_batch(inputs: Any, name: str) -> Batch:
    """Return a tokenizer output or a tensor of token ids as a batch with an attention mask."""
    if isinstance(inputs, torch.Tensor):
        ids = inputs if inputs.ndim == 2 else inputs.unsqueeze(0)
        if ids.dtype.is_floating_point:
            raise PatchingError(f"{name} must hold token ids (integers), not {ids.dtype}")
        return {"input_ids": ids.long(), "attention_mask": torch.ones_like(ids, dtype=torch.long)}
    if isinstance(inputs, Mapping):
        if "input_ids" not in inputs:
            raise PatchingError(
                f"{name} has no input_ids (keys: {sorted(inputs)}); pass a tokenizer output"
            )
        ids = torch.as_tensor(inputs["input_ids"])
        if ids.ndim == 1:
            ids = ids.unsqueeze(0)
        out: Batch = {"input_ids": ids.long()}
        mask = inputs.get("attention_mask")
        out["attention_mask"] = (
            torch.ones_like(ids, dtype=torch.long)
            if mask is None
            else torch.as_tensor(mask).reshape(ids.shape).long()
        )
        for key, value in inputs.items():
            if key not in out and isinstance(value, torch.Tensor) and value.shape[:2] == ids.shape:
                out[key] = value
        return out
    raise PatchingError(
        f"{name} must be a tokenizer output (with input_ids) or a tensor of token ids, "
        f"not {type(inputs).__name__}"
    )


def paired_batches(clean: Any, corrupt: Any, noise: float | None) -> tuple[Batch, Batch]:
    """Return the clean and corrupted batches, checked to line up position by position.

    With ``noise`` instead of ``corrupt``, the corrupted batch is the clean one (the noise is
    added to its embeddings during the run).
    """
    clean_b = as_batch(clean, "clean")
    if corrupt is None and noise is None:
        raise PatchingError(
            "give corrupt (counterfactual prompts) or noise=... (Gaussian noise on embeddings)"
        )
    if corrupt is not None and noise is not None:
        raise PatchingError("give either corrupt or noise, not both")
    if noise is not None and (not math.isfinite(noise) or noise <= 0):
        raise PatchingError(
            f"noise must be a positive number (a multiple of the embeddings' std), got {noise}"
        )
    corrupt_b = clean_b if corrupt is None else as_batch(corrupt, "corrupt")
    _check_pair(clean_b, corrupt_b)
    return clean_b, corrupt_b


def check_noise_positions(positions: Sequence[int] | None, length: int) -> None:
    """Raise :class:`PatchingError` unless ``noise_positions`` are token positions of the input."""
    if positions is None:
        return
    bad = [p for p in positions if isinstance(p, bool) or not -length <= int(p) < length]
    if bad:
        raise PatchingError(
            f"noise_positions {bad} are outside the {length} token positions of the input; give "
            f"positions in 0..{length - 1} (negative ones count from the end)"
        )


def _check_pair(clean: Batch, corrupt: Batch) -> None:
    c, k = clean["input_ids"].shape, corrupt["input_ids"].shape
    if c[0] != k[0]:
        raise PatchingError(
            f"clean has {c[0]} examples but corrupt has {k[0]}; pair each prompt with its "
            "counterfactual"
        )
    if c[1] != k[1]:
        raise PatchingError(
            f"clean prompts have {c[1]} tokens but corrupted ones have {k[1]}: patching compares "
            "the same positions, so each counterfactual must tokenise to the same length (replace "
            "a token with one of the same length, or pad both to one length yourself)"
        )
    if not torch.equal(clean["attention_mask"], corrupt["attention_mask"]):
        raise PatchingError(
            "clean and corrupted prompts are padded differently (their attention masks differ); "
            "pad them the same way so that positions line up"
        )


def checked_sweep(
    model: nn.Module,
    metric: Metric,
    batch: Batch,
    site: str,
    axes: tuple[str, ...],
    layers: Sequence[int] | None,
    batch_tokens: int,
    progress: bool,
    *,
    weights_here: bool = True,
) -> Sweep:
    """Return the sweep of ``site`` along ``axes`` over ``layers`` of ``model``, all checked.

    The checks that need the model: a known architecture, answer tokens inside its vocabulary,
    layers in range, and the metric's positions inside ``batch``. ``weights_here=False`` (a
    remote model's local skeleton) skips the check that its weights are loaded.
    """
    runner = Runner(model, metric, weights_here=weights_here)
    if runner.unembed is None and not isinstance(metric, CallableMetric):
        raise MetricError(
            f"{metric.name} reads next-token logits, but {type(model).__name__} has no language-"
            "model head (it returns hidden states); load the model with its head (e.g. "
            "AutoModelForCausalLM or AutoModelForMaskedLM), or pass a function of the model's "
            "output as the metric, e.g. lambda hidden: hidden[:, 0].norm(dim=-1)"
        )
    metric.check_batch(int(batch["input_ids"].shape[0]))
    vocab = _vocab_size(model, runner)
    if vocab is not None:
        metric.check_vocab(vocab)
    layer_list = _layers(runner, layers)
    if isinstance(metric, CallableMetric) and runner.unembed is not None and vocab is not None:
        metric.infer(batch["attention_mask"], vocab)
        runner.cache_kwarg = runner.cache_keyword()  # prefix reuse, now that reads are known
    metric.resolve_positions(batch["attention_mask"])
    return Sweep(runner, site, axes, layer_list, batch_tokens, progress)


def _vocab_size(model: nn.Module, runner: Runner) -> int | None:
    weight = getattr(runner.unembed, "weight", None)
    if isinstance(weight, torch.Tensor):
        return int(weight.shape[0])
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    return int(size) if size is not None else None


def _layers(runner: Runner, layers: Sequence[int] | None) -> list[int]:
    n = runner.n_layers
    if layers is None:
        return list(range(n))
    out = []
    for layer in layers:
        if not -n <= int(layer) < n:
            raise PatchingError(f"layer {layer} is out of range: the model has {n} layers")
        out.append(int(layer) % n)
    return sorted(set(out))


def model_tokenizer(model: nn.Module, tokenizer: Any) -> Any:
    """Return ``tokenizer``, else the one the model carries (``model.tokenizer``), else None."""
    return tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
