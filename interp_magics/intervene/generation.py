"""The forwards of ``generate``: which phase each is in and where its tokens sit.

With a KV cache, ``generate`` runs the whole prompt once (the *prompt* forward) and then one
forward per new token (the *new* forwards), each seeing only its own token. An intervention
tells them apart by the cache the model is called with: a forward that continues ``p`` cached
tokens covers absolute positions ``p ..``; a forward with nothing cached (any plain forward, and
the first forward of ``generate``) is a prompt forward. The cache is read from the model call's
arguments: ``cache`` (transformers 5), ``past_key_values`` (a ``Cache`` or the legacy tuple of
per-layer key/value pairs), else the attention mask being longer than the new ids.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

PROMPT = "prompt"
NEW = "new"

_CACHE_KEYS = ("cache", "past_key_values", "past_key_value")


def past_length(module: torch.nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """Return how many tokens a model call continues from its KV cache (0 when none)."""
    bound: Mapping[str, Any] = kwargs
    if len(args) > 1:
        # Positional caches are rare; only then is the (slow) signature read.
        try:
            bound = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments
        except (TypeError, ValueError):
            bound = kwargs
    for key in _CACHE_KEYS:
        length = _cached_tokens(bound.get(key))
        if length is not None:
            return length
    ids = bound.get("input_ids", args[0] if args else None)
    if ids is None:
        ids = bound.get("inputs_embeds")
    mask = bound.get("attention_mask")
    if isinstance(ids, torch.Tensor) and isinstance(mask, torch.Tensor) and mask.ndim == 2:
        return max(0, int(mask.shape[-1]) - int(ids.shape[1]))
    return 0


def _cached_tokens(cache: Any) -> int | None:
    if cache is None:
        return None
    get = getattr(cache, "get_seq_length", None)
    if callable(get):
        return int(get())
    if isinstance(cache, (tuple, list)) and cache:
        first = cache[0]
        if isinstance(first, (tuple, list)) and first and isinstance(first[0], torch.Tensor):
            return int(first[0].shape[-2])  # legacy [batch, heads, seq, d_head]
    return None


def phase(offset: int) -> str:
    """Return ``"prompt"`` for a forward with nothing cached, else ``"new"``."""
    return PROMPT if offset == 0 else NEW


def applies(during: str, current: str) -> bool:
    """Return whether an edit active ``during`` applies to a forward in phase ``current``."""
    return during == "all" or during == current
