"""What ``set`` from a cache and ``mean`` read: a site's tensor by absolute position.

A source holds ``[batch or 1, pos, ...]`` in the layout of the site's tensor (a cached
``head_out``, stored per head as ``[batch, pos, head, d_head]``, is flattened back) and the
absolute token position of each of its columns (a cache captured with ``positions=`` holds only
those). An edited forward reads the columns at the positions it edits, so a cached run patches
the same tokens however the forward is split by a KV cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.adapters import Target
from ..core.sites import closest_names
from .edits import Edit
from .errors import InterventionError


@dataclass(frozen=True)
class Source:
    """Values ``[batch or 1, pos, ...]`` and the absolute position of each ``pos`` column."""

    values: torch.Tensor
    positions: tuple[int, ...]
    valid: torch.Tensor | None = None  # [pos] bool: columns a mean had real tokens for
    _lookup: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._lookup.update({p: i for i, p in enumerate(self.positions)})

    def columns(self, absolute: tuple[int, ...], where: str) -> torch.Tensor:
        """Return the source columns of the absolute positions an edit writes."""
        missing = [a for a in absolute if a not in self._lookup]
        if missing:
            held = _span(self.positions)
            raise InterventionError(
                f"{where}: the source holds positions {held}, but position {missing[0]} is "
                "edited; restrict the edit with positions= (or during='prompt' while "
                "generating), or give a source that covers it"
            )
        cols = [self._lookup[a] for a in absolute]
        if self.valid is not None and not bool(self.valid[cols].all()):
            bad = next(a for a, c in zip(absolute, cols, strict=True) if not bool(self.valid[c]))
            raise InterventionError(
                f"{where}: no example of the mean's source has a real token at position {bad} "
                "(its mask is 0 there for every example), so it has no mean"
            )
        return torch.tensor(cols, dtype=torch.long, device=self.values.device)


def _span(positions: tuple[int, ...]) -> str:
    if positions and positions == tuple(range(positions[0], positions[-1] + 1)):
        return f"{positions[0]}..{positions[-1]}"
    return str(list(positions))


def prepare_source(edit: Edit, target: Target, width: int | None, where: str) -> Source | None:
    """Return what ``edit`` reads at ``target`` (None for edits that read nothing)."""
    if edit.op not in ("set", "mean"):
        return None
    value = edit.value
    positions: tuple[int, ...] | None = None
    mask = edit.mask
    if isinstance(value, Mapping):
        tensor = _from_mapping(value, target.key, where)
        kept = getattr(value, "positions", None)
        positions = tuple(kept) if kept is not None else None
        cached_mask = getattr(value, "attention_mask", None)
        if mask is None and edit.op == "mean" and isinstance(cached_mask, torch.Tensor):
            mask = cached_mask.bool()
            if positions is not None and mask.shape[-1] != len(positions):
                mask = mask[:, list(positions)]
    elif edit.op == "set":
        return None  # a tensor broadcast to the selection, not indexed by position
    else:
        tensor = value
    if target.heads is not None and tensor.ndim >= 4 and tensor.shape[-2] == target.heads:
        tensor = tensor.flatten(-2)  # a per-head cache back to the site's [.., heads * d_head]
    if tensor.ndim < 3:
        raise InterventionError(
            f"{where}: the source must be [batch, pos, d], got shape {tuple(tensor.shape)}"
        )
    if width is not None and tensor.shape[-1] != width:
        raise InterventionError(
            f"{where}: the source's last dimension is {tensor.shape[-1]}, but the site's "
            f"activations have {width}; take the source from the same site of the same model"
        )
    length = int(tensor.shape[1])
    if positions is None or len(positions) != length:
        positions = tuple(range(length))
    if edit.op == "set":
        return Source(tensor.detach(), positions)
    return _mean(tensor.detach(), mask, positions, where)


def _from_mapping(value: Mapping[str, Any], key: str, where: str) -> torch.Tensor:
    if key not in value:
        names = [str(k) for k in value]
        near = closest_names(key, names)
        hint = f" Close keys: {', '.join(near)}." if near else ""
        raise InterventionError(
            f"{where}: the cache has no {key!r} ({len(names)} keys).{hint} Capture the same "
            "site from the source run first"
        )
    tensor = value[key]
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        raise InterventionError(f"{where}: the cache's {key!r} is not a floating tensor")
    return tensor


def _mean(
    tensor: torch.Tensor, mask: torch.Tensor | None, positions: tuple[int, ...], where: str
) -> Source:
    """Return the mean over examples at each position (over real tokens when masked)."""
    batch, length = int(tensor.shape[0]), int(tensor.shape[1])
    if mask is None:
        real = torch.ones(batch, length, dtype=torch.float64)
    else:
        if tuple(mask.shape) != (batch, length):
            raise InterventionError(
                f"{where}: the mask is {tuple(mask.shape)} but the source is [batch {batch}, "
                f"pos {length}, ...]"
            )
        real = mask.to(torch.float64).cpu()
    counts = real.sum(0)  # [pos]
    weights = real.view(batch, length, *([1] * (tensor.ndim - 2))).to(tensor.device)
    total = (tensor.to(torch.float64) * weights).sum(0)
    denom = counts.clamp(min=1).view(length, *([1] * (tensor.ndim - 2))).to(tensor.device)
    mean = (total / denom).to(tensor.dtype).unsqueeze(0)
    return Source(mean, positions, valid=(counts > 0))
