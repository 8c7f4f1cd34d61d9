"""What the user passed, turned into a checked model, batch, layers and answers before any work.

Every lens refuses bad input here, in a second, with a message that says what to fix: a family
without a known final norm and unembedding, a remote model, layers outside the model, ``k < 1``,
answer ids outside the vocabulary or one per example of the wrong count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import torch
from torch import nn

from ..core.anatomy import Anatomy, anatomy
from ..core.errors import CaptureError
from ..core.placement import placement
from ..core.traced import is_nnsight, unwrap
from ..patching.inputs import as_batch, model_tokenizer

Batch = dict[str, torch.Tensor]


class LensError(CaptureError):
    """Input a lens cannot use; the message says what to fix."""


@dataclass(frozen=True)
class LensModel:
    """The torch module a lens runs, where its parts live, and the tokenizer for labels."""

    module: nn.Module
    anatomy: Anatomy
    tokenizer: Any
    name: str

    @property
    def n_layers(self) -> int:
        return self.anatomy.n_layers

    @property
    def vocab_size(self) -> int:
        assert self.anatomy.unembed is not None
        weight = getattr(self.module.get_submodule(self.anatomy.unembed), "weight", None)
        if isinstance(weight, torch.Tensor):
            return int(weight.shape[0])
        return int(getattr(getattr(self.module, "config", None), "vocab_size", 0))


def lens_model(model: Any, tokenizer: Any = None, *, remote: bool = False) -> LensModel:
    """Return the checked model a lens runs on (an nnsight model's wrapped module, run here).

    Raises:
        LensError: for a remote model, a family whose final norm and unembedding are not known
            (BERT, TransformerLens bridges, unknown modules), a model without an LM head, or
            weights left on the meta device.
    """
    if remote:
        raise LensError(
            "lenses run the model in this process; remote=True (NDIF) is not supported. Run a "
            "local copy of the model (nnsight.LanguageModel(name) without remote, or the "
            "HuggingFace model itself)"
        )
    tokenizer = model_tokenizer(model, tokenizer)
    module = unwrap(model) if is_nnsight(model) else model
    if not isinstance(module, nn.Module):
        raise LensError(f"a lens needs a torch model, not {type(model).__name__}")
    try:
        anat = anatomy(module)
    except CaptureError as exc:
        raise LensError(f"no lens for this model: {exc}") from None
    if anat.unembed is None:
        raise LensError(
            f"{type(module).__name__} has no unembedding (language-model head); load it with its "
            "head, e.g. AutoModelForCausalLM"
        )
    placement(module)  # weights left on the meta device: say so before any forward
    return LensModel(module, anat, tokenizer, type(module).__name__)


def lens_batch(inputs: Any, tokenizer: Any) -> Batch:
    """Return ``inputs`` (token ids, a tokenizer's output, or texts) as a batch with a mask."""
    if isinstance(inputs, str) or (
        isinstance(inputs, Sequence)
        and not isinstance(inputs, torch.Tensor)
        and inputs
        and all(isinstance(t, str) for t in inputs)
    ):
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if tokenizer is None:
            raise LensError(
                "texts need a tokenizer: pass tokenizer=... (or token ids / a tokenizer's output)"
            )
        try:
            encoded = tokenizer(texts, return_tensors="pt", padding=len(texts) > 1)
        except ValueError as exc:
            raise LensError(
                f"the tokenizer could not batch these texts ({exc}); give it a pad token "
                "(tokenizer.pad_token = tokenizer.eos_token) or pass texts of equal length"
            ) from None
        inputs = dict(encoded) if isinstance(encoded, Mapping) else encoded
    try:
        batch = as_batch(inputs, "inputs")
    except CaptureError as exc:
        raise LensError(str(exc)) from None
    if batch["input_ids"].numel() == 0:
        raise LensError("inputs hold no tokens")
    return batch


def lens_layers(layers: Any, n_layers: int) -> tuple[int, ...]:
    """Return the residual streams to read, as indices ``0..n_layers`` (sorted, unique).

    Index 0 is the embeddings (the first block's input), ``l`` the input of block ``l`` and
    ``n_layers`` the last block's output; negative indices count from the end (-1 is the last).
    """
    total = n_layers + 1
    if layers is None:
        return tuple(range(total))
    items = [layers] if isinstance(layers, Integral) else list(layers)
    if not items:
        raise LensError("layers is empty; give residual-stream indices or None for all")
    bad = [
        x
        for x in items
        if isinstance(x, bool) or not isinstance(x, Integral) or not -total <= int(x) < total
    ]
    if bad:
        raise LensError(
            f"layers {bad} are out of range: this model has {total} residual streams, 0 "
            f"(embeddings) to {n_layers} (the last block's output); negative indices count "
            "from the end"
        )
    return tuple(sorted({int(x) % total for x in items}))


def check_k(k: Any, vocab: int) -> int:
    """Return ``k`` (the number of top tokens kept) once it is an int in ``1..vocab``."""
    if isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= int(k) <= vocab:
        raise LensError(f"k must be an integer from 1 to the vocabulary size ({vocab}); got {k!r}")
    return int(k)


def answer_ids(answer: Any, batch: int, vocab: int, name: str = "answer") -> torch.Tensor:
    """Return answer token ids as one id per example (``[batch]``), checked.

    One id is used for every example; otherwise there must be exactly one per example.
    """
    ids = torch.as_tensor(answer)
    if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
        raise LensError(f"{name} must be token ids (integers), got {ids.dtype}")
    ids = ids.long().reshape(-1)
    if ids.numel() not in (1, batch):
        raise LensError(
            f"{ids.numel()} {name} ids for a batch of {batch} examples; give one id for every "
            f"example, or one per example ({batch})"
        )
    bad = sorted({int(i) for i in ids.tolist() if not 0 <= i < vocab})
    if bad:
        raise LensError(
            f"{name} ids {bad} are outside the model's vocabulary (0..{vocab - 1}); check the "
            "tokenizer that produced them"
        )
    return ids.expand(batch).clone() if ids.numel() == 1 else ids


def layer_labels(layers: Sequence[int]) -> list[str]:
    """Return each residual stream's label: ``embed``, then ``L0``.. (the output of block 0..)."""
    return ["embed" if i == 0 else f"L{i - 1}" for i in layers]


def token_labels(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """Return the tokenizer's label of each id (the ids themselves without a tokenizer)."""
    if tokenizer is None:
        return [str(i) for i in ids]
    tokens = tokenizer.convert_ids_to_tokens(list(ids))
    return [str(t if t is not None else i) for t, i in zip(tokens, ids, strict=True)]
