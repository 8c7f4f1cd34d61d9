"""The layout of an activation store, its metadata, and the checks before anything is written.

A store is a zarr v3 group:

- one array per captured tensor (``resid_post.3``), ``[examples, ...]``, chunked along examples;
- ``input_ids`` and ``attention_mask`` ``[examples, tokens]``, and ``labels`` when the data has
  them;
- the group's ``interp_magics`` attribute: what was harvested (model, config hash, sites,
  positions, dtype, tokenizer, batch size, package version) and how far: ``examples_done``
  (the commit point: rows past it are a write that was cut short) and one fingerprint per
  written batch, so a resumed harvest proves it is reading the same data in the same order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..core.errors import CaptureError

#: The attribute of the group that holds the store's metadata.
META = "interp_magics"
#: Arrays that are not captured tensors.
INPUT_ARRAYS = ("input_ids", "attention_mask", "labels")


class StoreError(CaptureError):
    """An activation store that cannot be written or read as asked (what to fix is said)."""


@dataclass(frozen=True)
class Recipe:
    """What a store holds: a harvest that resumes it must ask for exactly the same."""

    model: str
    config_hash: str
    sites: list[str]
    positions: str | None
    dtype: str
    tokenizer: str | None
    batch_size: int
    tokens: int  # sequence length of every example (fixed, so arrays have one shape)
    version: str


@dataclass
class Progress:
    """How far a harvest got: the commit point and a fingerprint per written batch."""

    examples_done: int = 0
    batches: list[str] = field(default_factory=list)
    complete: bool = False


def config_hash(model: Any) -> str:
    """Return a short hash of the model's config (its class name when it has none)."""
    to_json = getattr(getattr(model, "config", None), "to_json_string", None)
    text = to_json() if callable(to_json) else type(model).__name__
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def batch_fingerprint(input_ids: np.ndarray, labels: np.ndarray | None) -> str:
    """Return the fingerprint of one batch: its token ids and labels."""
    digest = hashlib.sha256(np.ascontiguousarray(input_ids).tobytes())
    if labels is not None:
        digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()[:16]


def read_meta(group: Any) -> tuple[Recipe, Progress] | None:
    """Return the recipe and progress a store records, or None for an empty group."""
    meta = group.attrs.asdict().get(META)
    if meta is None:
        return None
    try:
        recipe = Recipe(**meta["recipe"])
        progress = Progress(**meta["progress"])
    except (KeyError, TypeError) as exc:
        raise StoreError(
            f"the store's {META!r} metadata is damaged ({exc}); harvest into a new path"
        ) from None
    return recipe, progress


def write_meta(group: Any, recipe: Recipe, progress: Progress) -> None:
    """Record ``recipe`` and ``progress`` on the group (the commit point of each batch)."""
    group.attrs[META] = {"recipe": asdict(recipe), "progress": asdict(progress)}


def check_same(stored: Recipe, asked: Recipe, where: str) -> None:
    """Raise StoreError naming every field where the store differs from this harvest."""
    a, b = asdict(stored), asdict(asked)
    diff = [
        f"{k}: store has {json.dumps(a[k])}, this call {json.dumps(b[k])}"
        for k in a
        if a[k] != b[k] and k != "version"
    ]
    if diff:
        raise StoreError(
            f"{where} holds a different harvest; nothing was written. Differences: "
            + "; ".join(diff)
            + ". Harvest into a new path, or call again with the store's settings"
        )
