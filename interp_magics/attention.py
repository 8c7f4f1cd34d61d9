"""Attention patterns as data: extraction from a model or a cache, and validation.

:func:`attention_patterns` runs a model with attention capture and returns an
:class:`AttentionPatterns` result; :func:`patterns_from_cache` builds one from an
:class:`~interp_magics.core.cache.ActivationCache` that holds ``pattern.*`` entries. The result
holds the weights as one ``[batch, layer, head, query, key]`` tensor with token labels and the
padding mask, converts to a tidy DataFrame, and displays as an attention viewer in a notebook.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .core.adapters import call_model
from .core.cache import ActivationCache
from .core.capturing import capture
from .core.display import WidgetDisplay
from .core.errors import ShortTraceback
from .core.traced import is_nnsight, unwrap

if TYPE_CHECKING:
    import pandas as pd


#: How far a row of attention weights may be from summing to 1 before it is reported.
ROW_SUM_TOLERANCE = 1e-3


class AttentionInputError(ShortTraceback, ValueError):
    """Attention weights, tokens or mask that cannot be shown; the message says what to fix."""


@dataclass(repr=False)
class AttentionPatterns(WidgetDisplay):
    """Attention weights of one or more sequences, with their tokens.

    Attributes:
        pattern: float tensor ``[batch, layer, head, query, key]``.
        tokens: one list of token strings per sequence, each of length ``query``.
        attention_mask: ``[batch, key]`` with 0 at pad positions, or None.
        layers: the model layer each entry of the layer axis came from.
        model_name: where the weights came from, for titles.
        notes: anything a reader should know (e.g. the attention kernel was switched).
    """

    WIDGET = "AttentionView"

    pattern: torch.Tensor
    tokens: list[list[str]]
    attention_mask: torch.Tensor | None = None
    layers: list[int] = field(default_factory=list)
    model_name: str = ""
    notes: list[str] = field(default_factory=list)

    _causal: bool | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.pattern, self.tokens, self.attention_mask = validate_patterns(
            self.pattern, self.tokens, self.attention_mask
        )
        if not self.layers:
            self.layers = list(range(self.pattern.shape[1]))
        if len(self.layers) != self.pattern.shape[1]:
            raise AttentionInputError(
                f"layers has {len(self.layers)} entries but the pattern has "
                f"{self.pattern.shape[1]} layers"
            )

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """Return ``(batch, layers, heads, query, key)``."""
        b, n_layers, h, q, k = self.pattern.shape
        return int(b), int(n_layers), int(h), int(q), int(k)

    def is_causal(self) -> bool:
        """Return True when no query attends to a later key in any head (a causal model)."""
        if self._causal is None:
            b, n_layers = self.pattern.shape[:2]
            # Head by head: a bidirectional model is recognised at its first head, and no
            # full-size temporary is made.
            self._causal = self.pattern.shape[-1] > 1 and not any(
                bool(self.pattern[i, j].triu(1).any()) for i in range(b) for j in range(n_layers)
            )
        return self._causal

    def to_dataframe(self, *, max_rows: int = 2_000_000) -> pd.DataFrame:
        """Return one row per weight: batch, layer, head, query, key, tokens, weight.

        Refuses (with the size) beyond ``max_rows`` rows; select layers or sequences first.
        """
        import pandas as pd

        b, n_layers, h, q, k = self.shape
        rows = b * n_layers * h * q * k
        if rows > max_rows:
            raise ValueError(
                f"{rows:,} weights exceed max_rows={max_rows:,}; index the pattern first "
                "(e.g. AttentionPatterns(p.pattern[:1, :2], p.tokens[:1])) or raise max_rows"
            )
        idx = torch.cartesian_prod(
            torch.arange(b),
            torch.arange(n_layers),
            torch.arange(h),
            torch.arange(q),
            torch.arange(k),
        )
        bi, li, hi, qi, ki = (idx[:, i].numpy() for i in range(5))
        return pd.DataFrame(
            {
                "batch": bi,
                "layer": [self.layers[i] for i in li],
                "head": hi,
                "query": qi,
                "key": ki,
                "query_token": [self.tokens[x][y] for x, y in zip(bi, qi, strict=True)],
                "key_token": [self.tokens[x][y] for x, y in zip(bi, ki, strict=True)],
                "weight": self.pattern.reshape(-1).float().numpy(),
            }
        )

    def describe(self) -> str:
        """Return a one-line summary: sequences, layers, heads and tokens."""
        b, n_layers, h, q, _ = self.shape
        return (
            f"AttentionPatterns({self.model_name or 'attention'}: {b} sequence(s), {n_layers} "
            f"layers x {h} heads x {q} tokens)"
        )


def validate_patterns(
    pattern: Any,
    tokens: Any,
    attention_mask: Any = None,
) -> tuple[torch.Tensor, list[list[str]], torch.Tensor | None]:
    """Return ``(pattern [B, L, H, Q, K], tokens per sequence, mask [B, K] or None)``.

    Accepts a tensor or array of rank 2 (one head), 3 (heads), 4 (layers x heads) or 5
    (batch x layers x heads), or a list of per-layer ``[batch, heads, Q, K]`` tensors as
    HuggingFace's ``output_attentions`` returns. Tokens are one list of strings (one sequence)
    or one list per sequence. Raises :class:`AttentionInputError` for wrong ranks, shapes,
    empty input, NaNs or negative weights; warns when rows do not sum to 1.
    """
    p = _as_tensor(pattern)
    if p.ndim < 2 or p.ndim > 5:
        raise AttentionInputError(
            f"attention pattern has rank {p.ndim} (shape {tuple(p.shape)}); expected [query, key], "
            "[head, query, key], [layer, head, query, key] or [batch, layer, head, query, key]"
        )
    while p.ndim < 5:
        p = p.unsqueeze(0)
    if p.numel() == 0:
        raise AttentionInputError(f"attention pattern is empty (shape {tuple(p.shape)})")
    if not p.is_floating_point():
        raise AttentionInputError(f"attention weights must be floating point, not {p.dtype}")
    p = p.detach().to("cpu")
    b, _, _, q, k = p.shape
    if q != k:
        raise AttentionInputError(
            f"query and key lengths differ ({q} vs {k}); the viewer shows self-attention, where "
            "both are the token sequence"
        )
    lo, hi = (float(x) for x in torch.aminmax(p))  # one pass: NaN and inf show up in min or max
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = int((~torch.isfinite(p)).sum())
        raise AttentionInputError(f"attention pattern has {bad} NaN or infinite weights")
    if lo < 0:
        raise AttentionInputError(
            "attention pattern has negative weights; pass softmax-normalised attention "
            "probabilities, not scores or logits"
        )
    token_lists = _token_lists(tokens, b, q)
    mask = _mask(attention_mask, b, k)
    sums = p.sum(-1)
    valid_rows = torch.ones_like(sums, dtype=torch.bool)
    if mask is not None:
        valid_rows = mask.bool()[:, None, None, :].expand_as(sums)
    off = ((sums - 1).abs() > ROW_SUM_TOLERANCE) & valid_rows
    if off.any():
        worst = float((sums - 1).abs()[off].max())
        warnings.warn(
            f"{int(off.sum())} of {int(valid_rows.sum())} attention rows do not sum to 1 "
            f"(largest deviation {worst:.3g}); these may be scores rather than softmax "
            "probabilities, and colours will be scaled to the largest weight",
            UserWarning,
            stacklevel=3,
        )
    return p, token_lists, mask


def _as_tensor(pattern: Any) -> torch.Tensor:
    if isinstance(pattern, torch.Tensor):
        return pattern
    if (
        isinstance(pattern, (list, tuple))
        and pattern
        and all(isinstance(x, torch.Tensor) for x in pattern)
    ):
        shapes = {tuple(x.shape) for x in pattern}
        if len(shapes) != 1:
            raise AttentionInputError(
                f"per-layer attention tensors differ in shape: {sorted(shapes)}"
            )
        if pattern[0].ndim != 4:
            raise AttentionInputError(
                "a list of per-layer tensors must hold [batch, head, query, key] tensors "
                f"(as output_attentions returns), got rank {pattern[0].ndim}"
            )
        return torch.stack(list(pattern), dim=1)
    if isinstance(pattern, (list, tuple)) and not pattern:
        raise AttentionInputError(
            "no attention weights were given (an empty list); with HuggingFace models this "
            "means attention was computed by the 'sdpa' kernel: load the model with "
            "attn_implementation='eager'"
        )
    try:
        import numpy as np

        return torch.as_tensor(np.asarray(pattern))
    except (TypeError, ValueError) as exc:
        raise AttentionInputError(
            f"cannot read attention weights from {type(pattern).__name__}: pass a tensor"
        ) from exc


def _token_lists(tokens: Any, batch: int, length: int) -> list[list[str]]:
    if tokens is None:
        return [[str(i) for i in range(length)] for _ in range(batch)]
    if isinstance(tokens, str):
        raise AttentionInputError(
            "tokens must be a list of strings (one per position), not one string"
        )
    items = list(tokens)
    if not items:
        raise AttentionInputError("tokens is empty; give one string per position")
    nested = all(isinstance(t, (list, tuple)) for t in items)
    lists = [list(map(str, t)) for t in items] if nested else [list(map(str, items))]
    if len(lists) == 1 and batch > 1:
        lists = lists * batch
    if len(lists) != batch:
        raise AttentionInputError(f"got {len(lists)} token lists for a batch of {batch} sequences")
    for i, toks in enumerate(lists):
        if len(toks) != length:
            raise AttentionInputError(
                f"sequence {i} has {len(toks)} tokens but the pattern covers {length} positions; "
                "pass the tokens the model saw (including special and pad tokens)"
            )
    return lists


def _mask(mask: Any, batch: int, length: int) -> torch.Tensor | None:
    if mask is None:
        return None
    m = torch.as_tensor(mask).detach().to("cpu")
    if m.ndim == 1:
        m = m.unsqueeze(0)
    if m.ndim != 2 or m.shape[1] != length or m.shape[0] not in (1, batch):
        raise AttentionInputError(
            f"attention_mask has shape {tuple(m.shape)}; expected [batch={batch}, {length}]"
        )
    return m.expand(batch, length).to(torch.int64).clone()


def attention_patterns(
    model: nn.Module,
    inputs: Any,
    *,
    tokenizer: Any = None,
    layers: str | None = None,
    trace: bool = False,
    remote: bool = False,
) -> AttentionPatterns:
    """Return the attention patterns of ``model`` on ``inputs`` (one forward, no gradients).

    ``inputs`` is a tokenizer output (a mapping with ``input_ids`` and optionally
    ``attention_mask``), a tensor of token ids, or text (a string or list of strings, which
    needs ``tokenizer``). Token labels come from ``tokenizer`` (or ``model.tokenizer``); without
    one they are the token ids. ``layers`` selects layers with the site grammar
    (``"{0-3}"``, ``"-1"``); default every layer. Attention runs with the eager kernel for this
    one forward when the model's kernel does not return weights.

    An nnsight model runs its wrapped module here, or, with ``trace`` (or ``remote``, on NDIF),
    inside one trace that saves each layer's queries and keys; the weights are then computed
    here exactly as the eager kernel does (:mod:`~interp_magics.core.traced_patterns`).
    """
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    batch = _model_inputs(inputs, tokenizer)
    site = "pattern" if layers in (None, "", "*") else f"pattern.{layers}"
    if trace or remote:
        if not is_nnsight(model):
            raise AttentionInputError(
                "trace=True and remote=True need an nnsight model (nnsight.LanguageModel or "
                f"NNsight(module)); {type(model).__name__} runs here: leave them off"
            )
        acts = capture(model, site).run(batch, remote=remote)
        return patterns_from_cache(acts, tokenizer=tokenizer)
    model = unwrap(model)  # an nnsight model runs its wrapped module here
    with torch.no_grad(), capture(model, site) as acts:
        call_model(model, batch)
    return patterns_from_cache(acts, tokenizer=tokenizer)


def _model_inputs(inputs: Any, tokenizer: Any) -> dict[str, Any]:
    if isinstance(inputs, str) or (
        isinstance(inputs, (list, tuple)) and inputs and all(isinstance(x, str) for x in inputs)
    ):
        if tokenizer is None:
            raise AttentionInputError(
                "text input needs a tokenizer: pass tokenizer=... (in the magic: --tokenizer NAME)"
            )
        enc = tokenizer(
            inputs if isinstance(inputs, list) else [inputs], return_tensors="pt", padding=True
        )
        return dict(enc)
    if isinstance(inputs, Mapping):
        if "input_ids" not in inputs and "inputs_embeds" not in inputs:
            raise AttentionInputError(
                f"inputs has keys {sorted(inputs)} but no input_ids; pass a tokenizer output"
            )
        return dict(inputs)
    if isinstance(inputs, torch.Tensor):
        if inputs.dtype not in (torch.int64, torch.int32):
            raise AttentionInputError(
                f"a tensor input must hold token ids (integers), not {inputs.dtype}"
            )
        return {"input_ids": inputs if inputs.ndim == 2 else inputs.unsqueeze(0)}
    raise AttentionInputError(
        f"cannot run the model on a {type(inputs).__name__}; pass a tokenizer output, a tensor "
        "of token ids, or text with a tokenizer"
    )


def patterns_from_cache(cache: ActivationCache, *, tokenizer: Any = None) -> AttentionPatterns:
    """Return the attention patterns stored in ``cache`` (its ``pattern.N`` entries)."""
    keys = [k for k in cache.match("pattern.*")]
    if not keys:
        raise AttentionInputError(
            f"the cache has no attention patterns (keys: {list(cache)[:5]}); capture with "
            "-m pattern (or capture(model, 'pattern'))"
        )
    layers = [int(k.split(".")[1]) for k in keys]
    pattern = torch.stack([cache[k] for k in keys], dim=1).float()
    if cache.positions is not None and pattern.shape[-2] != pattern.shape[-1]:
        raise AttentionInputError(
            "this cache kept only some query positions (positions=...), so its patterns are "
            "not square; capture again without positions to view them"
        )
    ids = cache.input_ids
    tokens: list[list[str]] | None = None
    if ids is not None and ids.ndim == 2 and ids.shape[1] == pattern.shape[-1]:
        if tokenizer is not None:
            tokens = [
                [
                    t if t is not None else str(i)
                    for t, i in zip(
                        tokenizer.convert_ids_to_tokens(row.tolist()), row.tolist(), strict=True
                    )
                ]
                for row in ids
            ]
        else:
            tokens = [[str(int(i)) for i in row] for row in ids]
    return AttentionPatterns(
        pattern=pattern,
        tokens=tokens
        if tokens is not None
        else [[str(i) for i in range(pattern.shape[-1])]] * pattern.shape[0],
        attention_mask=cache.attention_mask,
        layers=layers,
        model_name=cache.model_name,
        notes=list(cache.notes),
    )


def entropy(pattern: torch.Tensor) -> torch.Tensor:
    """Return the entropy (nats) of each attention row: ``pattern[..., q, :]`` -> ``[..., q]``."""
    p = pattern.clamp_min(0)
    return -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)


__all__ = [
    "AttentionInputError",
    "AttentionPatterns",
    "attention_patterns",
    "entropy",
    "patterns_from_cache",
    "validate_patterns",
]
