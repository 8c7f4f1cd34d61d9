"""The logit lens: every residual stream read through the model's final norm and unembedding.

nostalgebraist (2020): decoding intermediate residual streams as if they were the last shows
when a prediction forms. Early layers of many models decode poorly (the tuned lens,
:mod:`.tuned`, corrects that with a learned translator per layer); the last stream decodes to
exactly the model's own output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..core import events
from ..core.options import Positions
from ..core.records import LensRecord
from .engine import Transform, decode, kept_positions, read_residuals
from .inputs import (
    LensModel,
    answer_ids,
    check_k,
    layer_labels,
    lens_batch,
    lens_layers,
    lens_model,
)
from .readout import Readout
from .result import LensResult


def logit_lens(
    model: Any,
    inputs: Any,
    *,
    layers: int | Sequence[int] | None = None,
    positions: Positions | str | None = None,
    k: int = 5,
    answer: Any = None,
    tokenizer: Any = None,
    remote: bool = False,
) -> LensResult:
    """Return each residual stream decoded by the model's final norm and unembedding.

    Args:
        model: a HuggingFace GPT-2, GPT-NeoX/Pythia or Llama-family causal LM, plain,
            dispatched by accelerate (offloaded weights included) or wrapped by nnsight (run
            in this process).
        inputs: token ids ``[batch, pos]``, a tokenizer's output, or texts (with
            ``tokenizer``).
        layers: residual streams to read, ``0`` (embeddings) to ``n_layers`` (the last block's
            output); negative indices count from the end. Default: all.
        positions: token positions to keep (an int, a slice, a list, or ``"0:10"``); default all.
        k: how many top tokens to keep per layer, example and position.
        answer: token id(s) whose probability, log-probability and rank are tracked at every
            layer: one id, or one per example.
        tokenizer: for texts and token labels (default: ``model.tokenizer`` if it has one).
        remote: not supported (lenses run here); True raises :class:`~.inputs.LensError`.

    Memory: one forward keeps the residual streams at the kept positions; logits exist for one
    layer at a time (plus the final layer's distribution, for the KL column).
    """
    lm = lens_model(model, tokenizer, remote=remote)
    return run_lens(lm, inputs, layers, positions, k, answer, None, "logit lens")


def run_lens(
    lm: LensModel,
    inputs: Any,
    layers: int | Sequence[int] | None,
    positions: Positions | str | None,
    k: int,
    answer: Any,
    transform: Transform | None,
    method: str,
) -> LensResult:
    """Return the lens result of ``lm`` on ``inputs``, every argument checked before the run."""
    batch = lens_batch(inputs, lm.tokenizer)
    n_ex, length = (int(s) for s in batch["input_ids"].shape)
    chosen = lens_layers(layers, lm.n_layers)
    vocab = lm.vocab_size
    k = check_k(k, vocab)
    answers = None if answer is None else answer_ids(answer, n_ex, vocab)
    kept = kept_positions(positions, length)
    resid = read_residuals(lm, batch, chosen, kept)
    with torch.no_grad():
        decoded = decode(
            Readout(lm.module, lm.anatomy), resid, chosen, lm.n_layers, k, answers, transform
        )
    events.emit(LensRecord(lens=method.split()[0], layers=len(chosen)))
    return LensResult(
        method=method,
        model=lm.name,
        n_layers=lm.n_layers,
        layers=chosen,
        layer_labels=layer_labels(chosen),
        positions=kept if kept is not None else tuple(range(length)),
        top_ids=decoded.top_ids,
        top_probs=decoded.top_probs,
        entropy=decoded.entropy,
        kl_to_final=decoded.kl_to_final,
        input_ids=batch["input_ids"].cpu(),
        attention_mask=batch["attention_mask"].cpu(),
        answer=answers,
        answer_logprob=decoded.answer_logprob,
        answer_rank=decoded.answer_rank,
        tokenizer=lm.tokenizer,
    )
