"""What the user passed, checked before any model runs: data batches and feature indices.

Every function of the package refuses bad input here with a message that says what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

import torch

from ..core.errors import CaptureError
from ..patching.inputs import as_batch

Batch = dict[str, torch.Tensor]


class FeatureError(CaptureError):
    """Input the features package cannot use; the message says what to fix."""


def _is_texts(data: Any) -> bool:
    return isinstance(data, str) or (
        isinstance(data, Sequence)
        and not isinstance(data, torch.Tensor)
        and bool(data)
        and all(isinstance(t, str) for t in data)
    )


def data_batches(data: Any, tokenizer: Any, batch_size: int) -> list[Batch]:
    """Return ``data`` as checked batches with attention masks.

    ``data`` is token ids (``[examples, tokens]``, split into ``batch_size`` rows), a
    tokenizer's output (one batch), texts (tokenised ``batch_size`` at a time, padded), or a
    list of token-id tensors or tokenizer outputs (each one batch).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1:
        raise FeatureError(f"batch_size must be a positive number of examples, got {batch_size!r}")
    if _is_texts(data):
        texts = [data] if isinstance(data, str) else list(data)
        if tokenizer is None:
            raise FeatureError(
                "texts need a tokenizer: pass tokenizer=... (or give token ids / batches)"
            )
        out = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            try:
                encoded = tokenizer(chunk, return_tensors="pt", padding=len(chunk) > 1)
            except ValueError as exc:
                raise FeatureError(
                    f"the tokenizer could not batch these texts ({exc}); give it a pad token "
                    "(tokenizer.pad_token = tokenizer.eos_token) or pass texts of equal length"
                ) from None
            out.append(_checked(dict(encoded), "texts"))
        return out
    if isinstance(data, torch.Tensor):
        ids = data if data.ndim == 2 else data.unsqueeze(0)
        return [_checked(ids[s : s + batch_size], "data") for s in range(0, len(ids), batch_size)]
    if isinstance(data, Mapping):
        return [_checked(data, "data")]
    if isinstance(data, Sequence) and data:
        return [_checked(item, f"data[{i}]") for i, item in enumerate(data)]
    raise FeatureError(
        "data must be token ids [examples, tokens], a tokenizer's output, texts (with a "
        f"tokenizer), or a list of batches; got {type(data).__name__}"
        + (" (empty)" if isinstance(data, Sequence) else "")
    )


def _checked(inputs: Any, name: str) -> Batch:
    try:
        batch = as_batch(inputs, name)
    except CaptureError as exc:
        raise FeatureError(str(exc)) from None
    if batch["input_ids"].numel() == 0:
        raise FeatureError(f"{name} holds no tokens")
    return batch


def feature_indices(features: Any, n_features: int) -> torch.Tensor:
    """Return ``features`` (ints in ``0..n_features-1``) as a 1-D long tensor, checked."""
    if isinstance(features, Integral) and not isinstance(features, bool):
        features = [int(features)]
    try:
        idx = torch.as_tensor(features)
    except (TypeError, ValueError):
        raise FeatureError(
            f"features must be feature indices (ints), got {type(features).__name__}"
        ) from None
    if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.ndim > 1:
        raise FeatureError(f"features must be a list of feature indices (ints), got {features!r}")
    idx = idx.long().reshape(-1)
    if idx.numel() == 0:
        raise FeatureError("features is empty; give feature indices, or None for every feature")
    bad = sorted({int(i) for i in idx.tolist() if not 0 <= i < n_features})
    if bad:
        raise FeatureError(
            f"features {bad[:8]} are out of range: this SAE has {n_features} features "
            f"(0..{n_features - 1})"
        )
    if len(set(idx.tolist())) != idx.numel():
        raise FeatureError("features lists a feature twice; give each index once")
    return idx


def positive_int(value: Any, name: str) -> int:
    """Return ``value`` once it is a positive int."""
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < 1:
        raise FeatureError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
