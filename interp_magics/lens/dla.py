"""Direct logit attribution: each part's direct contribution to a logit difference.

The logit difference is ``(U[correct] - U[wrong]) . norm(x) (+ the unembedding biases)`` with
``x`` the last residual stream at the scored position. ``x`` is a sum of parts
(:mod:`.components`); the final norm is not linear, but with its scale frozen at the value this
run gave it (LayerNorm: centre each part, divide by the run's standard deviation; RMSNorm:
divide by the run's root mean square; both times the norm's weight) it is, and the norm's bias
becomes a part of its own. So each part gets ``(U[correct] - U[wrong]) . frozen_norm(part)``
and the parts sum to the logit difference the model itself gives.

A part's direct contribution is not its total effect: it ignores what later layers do with it
(see ``patching`` for causal effects).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..core import events
from ..core.records import LensRecord
from ..patching.metrics import LogitDiff, Metric, logit_diff
from ..patching.uncertainty import t_interval
from .components import Component, Split, split_residual
from .dla_result import DLAResult
from .inputs import LensError, LensModel, lens_batch, lens_model
from .readout import FrozenNorm, Readout


def dla_metric(metric: Any) -> LogitDiff:
    """Return ``metric`` as a logit difference: a ``patching.logit_diff(...)`` object, a pair
    ``(correct, wrong)`` of ids (each one id or one per example), or ids ``[batch, 2]``."""
    if isinstance(metric, LogitDiff):
        return metric
    if isinstance(metric, Metric) or callable(metric):
        raise LensError(
            "direct logit attribution decomposes a logit difference (linear in the logits); "
            "give patching.logit_diff(correct, wrong) or a pair of answer ids (correct, wrong)"
        )
    if isinstance(metric, torch.Tensor) and metric.ndim == 2 and metric.shape[1] == 2:
        return logit_diff(metric[:, 0], metric[:, 1])
    if isinstance(metric, (tuple, list)) and len(metric) == 2:
        return logit_diff(metric[0], metric[1])
    raise LensError(
        "metric must be patching.logit_diff(correct, wrong), a pair (correct, wrong) of answer "
        f"ids, or ids of shape [batch, 2]; got {type(metric).__name__}"
    )


def dla(
    model: Any,
    inputs: Any,
    metric: Any,
    *,
    tokenizer: Any = None,
    level: float = 0.95,
    remote: bool = False,
) -> DLAResult:
    """Return each component's direct contribution to a logit difference, per example.

    Args:
        model: a HuggingFace GPT-2, GPT-NeoX/Pythia or Llama-family causal LM (plain,
            dispatched by accelerate, or wrapped by nnsight and run here).
        inputs: token ids, a tokenizer's output, or texts (with ``tokenizer``).
        metric: ``patching.logit_diff(correct, wrong, position=...)`` (by default the last real
            token of each example is scored), a pair ``(correct, wrong)`` of answer ids, or ids
            of shape ``[batch, 2]``.
        tokenizer: for texts and token labels (default: ``model.tokenizer`` if it has one).
        level: coverage of the t-intervals over examples of each component's mean.
        remote: not supported; True raises :class:`~.inputs.LensError`.

    Components: the token embedding (and learned position embedding), every attention head
    ``(layer, head)``, each attention output projection's bias, every MLP, the final norm's
    bias and the unembedding's bias where the model has them. They sum to the model's own
    logit difference (``result.total``) up to float rounding (``result.unexplained``).
    """
    lm = lens_model(model, tokenizer, remote=remote)
    ld = dla_metric(metric)
    if not 0 < level < 1:
        raise LensError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")
    batch = lens_batch(inputs, lm.tokenizer)
    n_ex = int(batch["input_ids"].shape[0])
    ld.check_batch(n_ex)
    ld.check_vocab(lm.vocab_size)
    positions = ld.resolve_positions(batch["attention_mask"].cpu())
    correct = ld.correct.expand(n_ex) if ld.correct.numel() == 1 else ld.correct
    wrong = ld.wrong.expand(n_ex) if ld.wrong.numel() == 1 else ld.wrong
    readout = Readout(lm.module, lm.anatomy)
    norm = readout.frozen_norm()  # an unknown norm is refused before the forward pass
    split = split_residual(lm, batch, positions)
    components, values, scale = _attribute(readout, norm, split, correct, wrong, lm)
    rows = torch.arange(n_ex)
    total = split.logits[rows, correct] - split.logits[rows, wrong]
    low, high = t_interval(values.numpy(), level)
    events.emit(LensRecord(lens="dla", layers=lm.n_layers, metric=ld.name))
    return DLAResult(
        components=components,
        values=values,
        total=total,
        ci_low=torch.from_numpy(np.asarray(low)),
        ci_high=torch.from_numpy(np.asarray(high)),
        level=level,
        metric=ld.name,
        model=lm.name,
        n_layers=lm.n_layers,
        n_heads=lm.anatomy.n_heads,
        positions=positions.clone(),
        correct=correct.clone(),
        wrong=wrong.clone(),
        scale=scale,
        norm="LayerNorm" if norm.kind == "layer" else "RMSNorm",
        input_ids=batch["input_ids"].cpu(),
        attention_mask=batch["attention_mask"].cpu(),
        tokenizer=lm.tokenizer,
        attn_error=split.attn_error,
    )


def _attribute(
    readout: Readout,
    norm: FrozenNorm,
    split: Split,
    correct: torch.Tensor,
    wrong: torch.Tensor,
    lm: LensModel,
) -> tuple[list[Component], torch.Tensor, torch.Tensor]:
    """Return the components, their contributions ``[component, example]`` and the frozen
    scale ``[example]``, once the parts add up to the stream and the norm is the one frozen."""
    tol = _rounding(split.dtype, lm.n_layers)
    _check_split(split.error, split.final, lm.name, tol)
    scale = norm.scale(split.final)
    actual = readout.normed(split.final).detach().to("cpu", torch.float64)
    frozen = norm.apply(split.final, scale) + (norm.bias if norm.bias is not None else 0.0)
    if float((frozen - actual).abs().max()) > tol * max(1.0, float(actual.abs().max())):
        raise LensError(
            f"the final norm ({type(readout.norm).__name__}) does not compute the "
            f"{'LayerNorm' if norm.kind == 'layer' else 'RMSNorm'} formula this attribution "
            "freezes, so its components would not sum to the logits"
        )
    w_c, b_c = readout.rows(correct)
    w_w, b_w = readout.rows(wrong)
    direction = w_c - w_w  # [example, d_model]
    values = (norm.apply(split.vectors, scale) * direction).sum(-1)
    components = list(split.components)
    extra: list[torch.Tensor] = []
    if norm.bias is not None:
        components.append(Component("final norm bias", "norm_bias"))
        extra.append((norm.bias * direction).sum(-1))
    if b_c is not None and b_w is not None:
        components.append(Component("unembed bias", "unembed_bias"))
        extra.append(b_c - b_w)
    if extra:
        values = torch.cat([values, torch.stack(extra)])
    return components, values, scale


def _rounding(dtype: torch.dtype, n_layers: int) -> float:
    """Return the relative error that float rounding of a residual stream in ``dtype`` may
    reach over ``n_layers`` blocks (1e-4 at least; a check beyond it finds a real mismatch)."""
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    return min(0.1, max(1e-4, 4 * eps * (2 * n_layers + 2)))


def _check_split(error: float, final: torch.Tensor, name: str, tol: float) -> None:
    """Raise LensError when the parts do not add up to the residual stream (float rounding
    of the residual sum aside)."""
    if error > tol * max(1.0, float(final.abs().max())):
        raise LensError(
            f"the embeddings, attention and MLP outputs of {name} do not add up to its last "
            f"residual stream (off by {error:.3g}): its blocks do something between a "
            "sub-layer's output and the residual stream (a norm after attention, a scaled "
            "embedding) that direct logit attribution does not model"
        )
