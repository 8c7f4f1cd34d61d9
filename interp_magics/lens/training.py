"""Training a tuned lens: the package's translators fitted to the model's final distribution.

The objective is the tuned-lens paper's (and the package's ``train_loop``): for every layer
``l`` but the last, KL(final || lens_l(h_l)) at every real token, summed over layers and
averaged over tokens. The recipe follows the package's defaults too: SGD with Nesterov momentum
0.9, learning rate ``lr * (1 - 0.9)`` decaying linearly to 0, weight decay 1e-3 (towards the
identity, since translators are residual), gradients clipped to norm 1. The model is frozen:
only the translators get gradients (``torch.autograd.grad``), so nothing accumulates in the
model's ``.grad``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from ..core.adapters import call_model
from ..core.placement import input_device
from .inputs import Batch, LensError, LensModel, lens_batch, lens_model
from .readout import Readout
from .tuned import check_lens, new_tuned_lens

MOMENTUM = 0.9


def _batches(data: Any, tokenizer: Any, batch_size: int) -> list[Batch]:
    """Return the training batches: texts and id tensors are cut into ``batch_size`` rows;
    an iterable of tokenizer outputs or id tensors is used batch by batch."""
    if isinstance(data, str):
        data = [data]
    if isinstance(data, torch.Tensor):
        ids = data if data.ndim == 2 else data.unsqueeze(0)
        return [lens_batch(part, tokenizer) for part in torch.split(ids, batch_size)]
    items = list(data) if isinstance(data, Iterable) else [data]
    if not items:
        raise LensError("no training data: give texts, token ids or batches")
    if all(isinstance(t, str) for t in items):
        return [
            lens_batch(items[i : i + batch_size], tokenizer)
            for i in range(0, len(items), batch_size)
        ]
    return [lens_batch(item, tokenizer) for item in items]


def train_tuned_lens(
    model: Any,
    texts_or_batches: Any,
    *,
    steps: int = 250,
    lr: float = 1.0,
    weight_decay: float = 1e-3,
    batch_size: int = 8,
    tokenizer: Any = None,
    lens: Any = None,
    progress: bool = True,
    seed: int = 0,
) -> Any:
    """Return a ``tuned_lens.nn.TunedLens`` trained on ``texts_or_batches`` for ``model``.

    Args:
        texts_or_batches: texts (with ``tokenizer``), token ids ``[n, pos]``, or an iterable
            of tokenizer outputs / id tensors; batches are reused in order when there are
            fewer than ``steps``.
        steps: optimiser steps (one batch each).
        lr: learning rate scale (the package's ``lr_scale``: 1.0 is its default for SGD).
        weight_decay: pulls translators towards the identity.
        batch_size: rows per batch when texts or one id tensor are given.
        lens: a ``TunedLens`` to continue training (default: a fresh one, identity translators).
        progress: show a tqdm progress bar with the loss.
        seed: seeds torch's generator first, for reproducible training.

    The model is used as is (call ``model.eval()`` first for deterministic activations); its
    parameters are never changed.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LensError(f"{name} must be a positive integer, got {value!r}")
    if not lr > 0:
        raise LensError(f"lr must be positive, got {lr}")
    lm = lens_model(model, tokenizer)
    batches = _batches(texts_or_batches, lm.tokenizer, batch_size)
    torch.manual_seed(seed)
    lens = new_tuned_lens(lm.module) if lens is None else lens
    check_lens(lens, lm)
    readout = Readout(lm.module, lm.anatomy)
    params = [p for p in lens.layer_translators.parameters() if p.requires_grad]
    opt = torch.optim.SGD(
        params, lr=lr * (1 - MOMENTUM), momentum=MOMENTUM, nesterov=True, weight_decay=weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1 - step / steps))
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, disable=not progress, desc="training the tuned lens")
    try:
        for batch in itertools.islice(_cycle(batches), steps):
            loss = _step(lm, lens, readout, batch, params)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            bar.update(1)
            bar.set_postfix(kl=f"{loss:.4f}")
    finally:
        bar.close()
    return lens


def _cycle(batches: list[Batch]) -> Iterator[Batch]:
    while True:
        yield from batches


def _step(lm: LensModel, lens: Any, readout: Readout, batch: Batch, params: list[Any]) -> float:
    """Set the translators' gradients of one batch's loss; return the loss (nats per token,
    summed over layers).

    The streams come from ``output_hidden_states`` (as in the package's training loop), not a
    capture: a training run is one analysis, not one capture per step in the ledger.
    """
    n = lm.n_layers
    device = input_device(lm.module)
    with torch.no_grad():
        out = call_model(
            lm.module, {**{k: v.to(device) for k, v in batch.items()}, "output_hidden_states": True}
        )
    hidden = getattr(out, "hidden_states", None)
    if hidden is None or len(hidden) != n + 1:
        raise LensError(f"{lm.name} did not return its {n + 1} hidden states")
    target = out.logits.detach().float().log_softmax(-1)
    mask = batch["attention_mask"].to(target.device).bool()
    p = target.exp()[mask]
    target = target[mask]
    param = params[0]
    total = torch.zeros((), device=target.device)
    for layer in range(n):
        h = hidden[layer].detach().to(param.device, param.dtype)
        logp = readout.logits(lens.transform_hidden(h, layer)).float().log_softmax(-1)[mask]
        gap = torch.where(p > 0, target - logp.to(target.device), torch.zeros_like(target))
        total = total + (p * gap).sum(-1).mean()
    # Only the translators: the readout's weights are the model's and stay untouched.
    grads = torch.autograd.grad(total, params)
    for p_, g in zip(params, grads, strict=True):
        p_.grad = g
    return float(total.detach())
