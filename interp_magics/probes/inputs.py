"""A probe's inputs, checked and converted before any fit: clear errors before long work starts.

Features become float32 ``[examples, features]`` arrays, labels become class codes, folds are
stratified (and grouped when asked); for :func:`~interp_magics.probes.probe_layers`, layer keys
are resolved in the cache and token-level labels are flattened to the tokens they label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..core.errors import CaptureError
from ..stats import CORRECTIONS

if TYPE_CHECKING:
    from ..core.cache import ActivationCache
    from .fits import Estimator

Folds = list[tuple[np.ndarray, np.ndarray]]
"""Train and test indices of each cross-validation fold."""

Tokens = tuple[np.ndarray, np.ndarray]
"""The (rows, cols) of labelled tokens in ``[batch, pos]`` activations."""


@dataclass(frozen=True)
class ProbeInputs:
    """A probe's inputs once every check has passed: what its fits and controls need."""

    x: np.ndarray  # float32 [examples, features]
    codes: np.ndarray  # class code per example
    classes: list[str]
    splits: Folds
    estimator: Estimator
    task: np.ndarray | None  # the control task's label codes
    others: dict[str, np.ndarray]  # control representations, by name
    cv: int
    seed: int
    groups: Any

    @property
    def k(self) -> int:
        """Return the number of classes."""
        return len(self.classes)


class ProbeError(CaptureError):
    """Inputs a probe cannot use; the message says what to fix."""


def check_settings(n_permutations: Any, alpha: float) -> None:
    """Return nothing; raise :class:`ProbeError` for a permutation count or penalty out of range."""
    if not isinstance(n_permutations, int) or n_permutations < 0:
        raise ProbeError(f"n_permutations must be a non-negative integer, got {n_permutations!r}")
    if alpha < 0:
        raise ProbeError(f"alpha must be non-negative, got {alpha}")


def features(x: Any, name: str = "X") -> np.ndarray:
    """Return activations as a finite float32 ``[examples, features]`` array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise ProbeError(f"{name} must be numeric activations, not {arr.dtype}")
    if arr.ndim != 2:
        raise ProbeError(
            f"{name} has shape {arr.shape}; a probe needs [examples, features]: pick a position "
            "(e.g. acts[:, -1]) or use probe_layers(cache, y, position='last')"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ProbeError(f"{name} is empty (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise ProbeError(
            f"{name} has {int(bad.sum())} NaN or infinite values in {len(rows)} examples (e.g. row "
            f"{int(rows[0])}); drop those examples or fix the activations (float16 overflow?)"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def other_features(named: Mapping[str, Any] | None, n: int) -> dict[str, np.ndarray]:
    """Return other representations of the same ``n`` examples (control features), checked."""
    found = {key: features(f, key) for key, f in (named or {}).items()}
    for key, f in found.items():
        if len(f) != n:
            raise ProbeError(f"control features {key!r} have {len(f)} examples, X has {n}")
    return found


def labels(y: Any, n: int, name: str = "y") -> tuple[np.ndarray, list[str]]:
    """Return class codes ``0..k-1`` for ``n`` labels and the class names they stand for."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ProbeError(f"{name} must be one label per example (1-D), got shape {arr.shape}")
    if len(arr) != n:
        raise ProbeError(
            f"{name} has {len(arr)} labels but there are {n} examples; give one label per example"
        )
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ProbeError(
                f"{name} looks continuous (e.g. {_example_value(arr)}); a probe classifies: pass "
                "class labels (integers, strings or booleans), or bin the values first"
            )
        arr = arr.astype(np.int64)
    classes, codes = np.unique(arr, return_inverse=True)
    if len(classes) < 2:
        raise ProbeError(
            f"{name} has a single class ({classes[0]!r}); a probe needs at least two classes "
            "to tell apart"
        )
    return codes.astype(np.int64), [str(c) for c in classes]


def _example_value(arr: np.ndarray) -> Any:
    bad = arr[~(arr == np.round(arr))]
    return (bad[:1] if len(bad) else arr[:1]).tolist()[0]


def folds(codes: np.ndarray, cv: int, seed: int, groups: Any) -> Folds:
    """Return stratified ``cv``-fold splits, each group in one fold when groups are given."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if not isinstance(cv, int) or cv < 2:
        raise ProbeError(f"cv must be an integer of at least 2 folds, got {cv!r}")
    counts = np.bincount(codes)
    if counts.min() < cv:
        raise ProbeError(
            f"a class has only {int(counts.min())} examples but cv={cv} folds need at least {cv} "
            "per class; lower cv or add examples of the rare class"
        )
    if groups is None:
        splitter = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(codes)), codes))
    g = np.asarray(groups)
    if len(g) != len(codes):
        raise ProbeError(f"groups has {len(g)} entries for {len(codes)} examples")
    if len(np.unique(g)) < cv:
        raise ProbeError(
            f"groups has {len(np.unique(g))} distinct groups; cv={cv} needs at least {cv}"
        )
    splitter_g = StratifiedGroupKFold(n_splits=cv, shuffle=True, random_state=seed)
    return list(splitter_g.split(np.zeros(len(codes)), codes, g))


# -- probe_layers: from a cache to one feature matrix per layer ---------------------------------


def check_correction(correction: str) -> None:
    """Return nothing; raise :class:`ProbeError` for an unknown multiple-comparison correction."""
    if correction not in CORRECTIONS:
        raise ProbeError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")


def layer_keys(cache: ActivationCache, layers: str | Sequence[str] | None) -> list[str]:
    """Return the cache keys to probe: ``layers`` (keys or a pattern) or every residual stream."""
    if layers is None:
        keys = cache.match("resid_post.*") or [
            k for k in cache.match("**") if ":" not in k and "#" not in k
        ]
    elif isinstance(layers, str):
        keys = cache.match(layers)
    else:
        keys = list(layers)
    missing = [k for k in keys if k not in cache]
    if not keys or missing:
        raise ProbeError(
            f"no activations for {missing or layers!r} in this cache; its keys are e.g. "
            f"{list(cache)[:4]}"
        )
    return keys


def token_labels(
    y: Any, first: torch.Tensor, mask: torch.Tensor | None
) -> tuple[np.ndarray, np.ndarray | None, Tokens | None]:
    """Return the probe's labels, their sentences and tokens when ``y`` labels tokens.

    Per-sequence labels ``[batch]`` come back as they are (no sentences, no tokens); per-token
    labels ``[batch, pos]`` are flattened to the tokens that have one (not ``None``/``-1``, not
    padding), with the sentence (row) of each and the ``(rows, cols)`` of those tokens.
    """
    raw = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y
    arr = np.asarray(raw, dtype=object)
    if arr.ndim != 2:
        return np.asarray(raw), None, None
    if first.ndim != 3 or arr.shape != tuple(first.shape[:2]):
        raise ProbeError(
            f"token labels have shape {arr.shape} but activations {tuple(first.shape[:2])}"
        )
    keep = np.array([[v is not None and v != -1 for v in row] for row in arr])
    if mask is not None:
        keep &= mask.numpy().astype(bool)
    rows, cols = np.nonzero(keep)
    found = np.array([arr[r, c] for r, c in zip(rows, cols, strict=True)])
    if found.dtype == object:
        found = (
            found.astype(str) if any(isinstance(v, str) for v in found) else found.astype(np.int64)
        )
    return found, rows, (rows, cols)


@dataclass(frozen=True)
class LayerExamples:
    """Which vectors of a layer's ``[batch, pos, d]`` activations are the probe's examples."""

    position: int | str  # for per-sequence labels: "last", "first", "mean" or an index
    mask: torch.Tensor | None  # the attention mask: padding is never "last" nor in the "mean"
    tokens: Tokens | None  # for per-token labels: the (rows, cols) of the labelled tokens

    def features(self, t: torch.Tensor) -> torch.Tensor:
        """Return one float feature vector per example (per labelled token for token labels)."""
        if self.tokens is not None:
            rows, cols = self.tokens
            return t[torch.as_tensor(rows), torch.as_tensor(cols)].float()
        return _reduce(t, self.position, self.mask).float()


def _reduce(t: torch.Tensor, position: int | str, mask: torch.Tensor | None) -> torch.Tensor:
    """Return one feature vector per example from ``[batch, pos, d]`` activations."""
    if t.ndim == 2:
        return t
    if t.ndim != 3:
        raise ProbeError(
            f"cannot probe activations of shape {tuple(t.shape)}; expected [batch, pos, d]"
        )
    m = torch.ones(t.shape[:2]) if mask is None else mask.to(torch.float32)
    if position == "mean":
        return (t.float() * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)
    if position == "last":
        idx = (m * torch.arange(t.shape[1])).argmax(1)
        return t[torch.arange(t.shape[0]), idx]
    if position == "first":
        return t[:, 0]
    if isinstance(position, int):
        return t[:, position]
    raise ProbeError(f"position must be 'last', 'first', 'mean' or an index, not {position!r}")
