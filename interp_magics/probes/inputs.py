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

    x: Any  # float32 [examples, features], or streaming.Rows kept elsewhere (read in chunks)
    codes: np.ndarray  # class code per example
    classes: list[str]
    splits: Folds
    estimator: Estimator
    task: np.ndarray | None  # the control task's label codes
    others: dict[str, np.ndarray]  # control representations, by name
    cv: Any  # what the caller gave: a number of folds, a splitter or explicit folds
    seed: int
    groups: Any
    types: np.ndarray | None = None  # the control task's word types, when given

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
    _not_a_cache(x, name)
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


def _not_a_cache(x: Any, name: str) -> None:
    """Return nothing; raise :class:`ProbeError` when ``x`` is a whole cache, not one array."""
    from ..core.cache import ActivationCache

    if isinstance(x, ActivationCache):
        keys = list(x)[:3]
        raise ProbeError(
            f"{name} is an ActivationCache; probe() needs one array [examples, features]: take a "
            f"layer and a position, e.g. {name} = cache[{keys[0] if keys else 'key'!r}][:, -1] "
            "(or .mean(1)), or call probe_layers(cache, y) to probe every layer"
        )


def check_not_constant(x: np.ndarray, name: str = "X") -> None:
    """Return nothing; raise :class:`ProbeError` when every example has the same vector.

    Such features (e.g. the ``<bos>`` position, identical in every sequence) carry no information
    about anything; a probe on them measures only the cross-validation's class balance.
    """
    spread = float(np.abs(x - x[:1]).max()) if len(x) > 1 else 0.0
    if spread <= 1e-6 * max(1.0, float(np.abs(x).max())):
        raise ProbeError(
            f"{name} is the same vector in every example (e.g. the first, <bos> position, which "
            "every sequence shares); nothing can be decoded from it. Probe another position "
            "(position='last' or 'mean', or an index past the first token)"
        )


def other_features(named: Mapping[str, Any] | None, n: int) -> dict[str, np.ndarray]:
    """Return other representations of the same ``n`` examples (control features), checked."""
    found = {key: features(f, key) for key, f in (named or {}).items()}
    for key, f in found.items():
        if len(f) != n:
            raise ProbeError(f"control features {key!r} have {len(f)} examples, X has {n}")
    return found


def labels(y: Any, n: int, name: str = "y") -> tuple[np.ndarray, list[str]]:
    """Return class codes ``0..k-1`` for ``n`` labels and the class names they stand for."""
    _not_a_cache(y, name)
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    _no_missing(arr, name)
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


def _no_missing(arr: np.ndarray, name: str) -> None:
    """Return nothing; raise :class:`ProbeError` for labels that are None or NaN."""
    flat = arr.reshape(-1)
    if arr.dtype == object:
        missing = np.array([v is None or (isinstance(v, float) and v != v) for v in flat])
    elif np.issubdtype(arr.dtype, np.floating):
        missing = np.isnan(flat)
    else:
        return
    if missing.any():
        where = np.nonzero(missing)[0]
        raise ProbeError(
            f"{name} has {len(where)} missing labels (None or NaN), e.g. at index "
            f"{int(where[0])}; drop those examples from X and {name} (X[keep], {name}[keep]) or "
            "give them a label"
        )
    strings = [isinstance(v, str) for v in flat] if arr.dtype == object else []
    if any(strings) and not all(strings):
        raise ProbeError(
            f"{name} mixes strings and other values (e.g. {flat[strings.index(False)]!r}); "
            "use one kind of label"
        )


def _example_value(arr: np.ndarray) -> Any:
    bad = arr[~(arr == np.round(arr))]
    return (bad[:1] if len(bad) else arr[:1]).tolist()[0]


def folds(codes: np.ndarray, cv: Any, seed: int, groups: Any) -> Folds:
    """Return cross-validation splits whose test folds hold every example exactly once.

    ``cv`` is a number of folds (stratified, and each group in one fold when groups are given),
    a scikit-learn splitter (anything with ``split(X, y, groups)``) or explicit folds: a list
    of ``(train indices, test indices)`` pairs.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    g = None if groups is None else np.asarray(groups)
    if g is not None and len(g) != len(codes):
        raise ProbeError(f"groups has {len(g)} entries for {len(codes)} examples")
    if hasattr(cv, "split"):
        try:
            given = list(cv.split(np.zeros((len(codes), 1)), codes, g))
        except ValueError as err:
            raise ProbeError(f"the cv splitter {cv!r} could not split these labels: {err}") from err
        return _checked_folds(given, len(codes), f"the cv splitter {type(cv).__name__}")
    if isinstance(cv, (list, tuple)):
        return _checked_folds(list(cv), len(codes), "cv")
    if not isinstance(cv, (int, np.integer)) or isinstance(cv, bool) or cv < 2:
        raise ProbeError(
            "cv must be a number of folds (at least 2), a scikit-learn splitter or a list of "
            f"(train, test) index pairs, got {cv!r}"
        )
    cv = int(cv)
    counts = np.bincount(codes)
    if counts.min() < cv:
        raise ProbeError(
            f"a class has only {int(counts.min())} examples but cv={cv} folds need at least {cv} "
            "per class; lower cv or add examples of the rare class"
        )
    if g is None:
        splitter = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(codes)), codes))
    if len(np.unique(g)) < cv:
        raise ProbeError(
            f"groups has {len(np.unique(g))} distinct groups; cv={cv} needs at least {cv}"
        )
    splitter_g = StratifiedGroupKFold(n_splits=cv, shuffle=True, random_state=seed)
    return list(splitter_g.split(np.zeros(len(codes)), codes, g))


def _checked_folds(given: list[Any], n: int, what: str) -> Folds:
    """Return explicit folds as index arrays; raise unless the test folds partition the examples.

    Every example needs exactly one out-of-fold prediction, and the permutation test permutes
    labels within test folds, so overlapping or missing test folds are refused.
    """
    out: Folds = []
    seen = np.zeros(n, dtype=np.int64)
    for i, pair in enumerate(given):
        try:
            tr, te = (np.asarray(a, dtype=np.int64).reshape(-1) for a in pair)
        except (TypeError, ValueError) as err:
            raise ProbeError(
                f"{what}: fold {i} is not a (train indices, test indices) pair"
            ) from err
        if len(tr) == 0 or len(te) == 0:
            raise ProbeError(f"{what}: fold {i} has an empty train or test set")
        if min(tr.min(), te.min()) < 0 or max(tr.max(), te.max()) >= n:
            raise ProbeError(f"{what}: fold {i} has indices outside 0..{n - 1}")
        if np.intersect1d(tr, te).size:
            raise ProbeError(f"{what}: fold {i} tests examples it also trains on")
        np.add.at(seen, te, 1)
        out.append((tr, te))
    if len(out) < 2 or not np.all(seen == 1):
        raise ProbeError(
            f"{what}: the test folds must hold every example exactly once (k-fold style); "
            f"{int((seen == 0).sum())} examples are never tested and {int((seen > 1).sum())} "
            "more than once. Use KFold-like splitters (not ShuffleSplit or repeated folds)"
        )
    return out


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
        length = t.shape[1]
        if not -length <= position < length:
            raise ProbeError(
                f"position {position} is outside the {length} positions of these activations "
                f"(valid: {-length} to {length - 1}); use position='last' for each example's last "
                "real token"
            )
        return t[:, position]
    raise ProbeError(f"position must be 'last', 'first', 'mean' or an index, not {position!r}")
