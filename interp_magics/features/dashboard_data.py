"""The data behind a feature dashboard: every feature's density, maximum, top examples,
activation histogram and the logits its decoder direction promotes.

:func:`dashboard_data` reads the features of an attached SAE over a dataset in two streaming
passes (:mod:`.passes`; each runs the model over the data, since the second needs every
feature's maximum), keeping memory bounded by the number of features, never the activations:

1. per feature, the number of real tokens where it fires, its maximum, and its top-k
   (activation, token) pairs, kept by a running ``torch.topk`` over the concatenation of the
   best so far and the batch;
2. per feature, a histogram of its nonzero activations on ``bins`` equal bins from 0 to its
   maximum (which the first pass found), and the activations of the window around each of its
   top-k tokens.

Token ids of the data are kept (one int32 per token) so a feature's example windows are
labelled on demand. Promoted and suppressed tokens are the largest and smallest entries of
``W_dec[f] @ W_U.T``: the feature's decoder direction read by the unembedding directly,
*ignoring the final norm* (its scale and, for LayerNorm, centring), as is usual for SAE
dashboards; they exist only for SAEs whose decoder writes to the residual stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..core.anatomy import anatomy
from ..core.display import WidgetDisplay
from ..core.errors import CaptureError
from ..core.placement import input_device
from ..core.traced import is_nnsight, unwrap
from ..lens.inputs import token_labels
from ..patching.inputs import model_tokenizer
from .inputs import FeatureError, data_batches, positive_int
from .passes import FirstPass, SecondPass, stream
from .sites import FeatureSite, feature_site

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class FeatureExamples:
    """One feature's detail: its top examples (windows of tokens around the max token, at
    index ``before`` of each window), histogram, promoted and suppressed tokens, density."""

    feature: int
    tokens: list[list[str]]  # [k][window] token strings; "" for padding
    activations: np.ndarray  # float32 [k, window]; 0 for padding
    histogram: tuple[np.ndarray, np.ndarray]  # counts [bins], edges [bins + 1]; nonzero acts
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    density: float
    sources: list[tuple[int, int]] = field(default_factory=list)  # (example, position) of each
    before: int = 0  # index of the max token in each window


@dataclass(repr=False)
class FeatureSet(WidgetDisplay):
    """What a feature dashboard browses: one row per feature, detail on demand.

    In a notebook it shows as :class:`~interp_magics.widgets.FeatureDashboard` (with PNG and
    text fallbacks); ``widget(selected=i)`` opens it at feature ``i``.
    """

    WIDGET: ClassVar[str] = "FeatureDashboard"

    site: str
    n_features: int
    density: np.ndarray  # float32 [n]
    max_activation: np.ndarray  # float32 [n]
    labels: list[str]  # [n]
    n_tokens: int
    k: int
    window: tuple[int, int]
    notes: list[str]
    _top_values: np.ndarray = field(repr=False)  # float32 [k, n], descending
    _top_tokens: np.ndarray = field(repr=False)  # int64 [k, n] global token index (-1: none)
    _windows: np.ndarray = field(repr=False)  # float32 [k, n, window]
    _hist: np.ndarray = field(repr=False)  # int64 [n, bins]
    _promoted: tuple[np.ndarray, np.ndarray] | None = field(repr=False)  # ids, values [n, t]
    _suppressed: tuple[np.ndarray, np.ndarray] | None = field(repr=False)
    _ids: list[np.ndarray] = field(repr=False)  # per batch: int32 [B, T] token ids
    _masks: list[np.ndarray] = field(repr=False)  # per batch: bool [B, T]
    _tokens: Callable[[list[int]], list[str]] = field(repr=False)

    def detail(self, feature: int) -> FeatureExamples:
        """Return feature ``feature``'s top examples, histogram and logit effects."""
        if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)):
            raise FeatureError(f"feature must be an int index, got {feature!r}")
        f = int(feature)
        if not 0 <= f < self.n_features:
            raise FeatureError(f"feature {f} is out of range: there are {self.n_features}")
        fires = self._top_values[:, f] > 0
        tokens_at = self._top_tokens[fires, f]
        before, after = self.window
        offsets = np.cumsum([0] + [ids.size for ids in self._ids])
        rows: list[list[str]] = []
        sources: list[tuple[int, int]] = []
        example_base = np.cumsum([0] + [ids.shape[0] for ids in self._ids])
        for g in tokens_at.tolist():
            b = int(np.searchsorted(offsets, g, side="right") - 1)
            ids, mask = self._ids[b], self._masks[b]
            e, p = divmod(g - int(offsets[b]), ids.shape[1])
            span = range(p - before, p + after + 1)
            real = [0 <= q < ids.shape[1] and bool(mask[e, q]) for q in span]
            labels = self._tokens([int(ids[e, q]) for q, r in zip(span, real, strict=True) if r])
            it = iter(labels)
            rows.append([next(it) if r else "" for r in real])
            sources.append((int(example_base[b]) + e, p))
        top = float(self.max_activation[f])
        edges = np.linspace(0.0, top if top > 0 else 1.0, self._hist.shape[1] + 1)
        return FeatureExamples(
            feature=f,
            tokens=rows,
            activations=self._windows[fires, f].astype(np.float32),
            histogram=(self._hist[f].copy(), edges.astype(np.float32)),
            promoted=self._pairs(self._promoted, f),
            suppressed=self._pairs(self._suppressed, f),
            density=float(self.density[f]),
            sources=sources,
            before=before,
        )

    def _pairs(
        self, table: tuple[np.ndarray, np.ndarray] | None, f: int
    ) -> list[tuple[str, float]]:
        if table is None:
            return []
        ids, values = table
        return list(zip(self._tokens(ids[f].tolist()), values[f].tolist(), strict=True))

    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per feature: feature, label, density, max_activation."""
        import pandas as pd

        return pd.DataFrame(
            {
                "feature": np.arange(self.n_features),
                "label": self.labels,
                "density": self.density,
                "max_activation": self.max_activation,
            }
        )

    def describe(self) -> str:
        """Return a short text summary: how many features fire, and the strongest ones."""
        dead = int((self.density == 0).sum())
        alive = self.density[self.density > 0]
        median = float(np.median(alive)) if alive.size else 0.0
        strongest = np.argsort(-self.max_activation, kind="stable")[:5]
        top = "; ".join(
            f"{i} {self.labels[i]!r} max {self.max_activation[i]:.3g}" for i in strongest
        )
        lines = [
            f"FeatureSet: {self.n_features} features at {self.site} over {self.n_tokens} "
            f"tokens: {self.n_features - dead} fire, {dead} never do; median density of those "
            f"that fire {median:.3g}",
            f"strongest: {top}",
            f"detail(i): top {self.k} examples (window {self.window[0]} before, "
            f"{self.window[1]} after the max token), histogram, promoted/suppressed tokens",
        ]
        return "\n".join(lines + self.notes)

    def __repr__(self) -> str:
        return self.describe()

    def density_plot(self) -> Any:
        """Return a matplotlib figure: the histogram of the features' firing densities."""
        from .plots import density_figure

        return density_figure(self)


def dashboard_data(
    model: Any,
    site_or_key: Any,
    texts_or_batches: Any,
    *,
    tokenizer: Any = None,
    k: int = 20,
    window: tuple[int, int] = (8, 4),
    bins: int = 30,
    top_logits: int = 10,
    labels: list[str] | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> FeatureSet:
    """Return the :class:`FeatureSet` of the SAE attached at ``site_or_key`` over the data.

    Args:
        model: the model with the SAE attached (:func:`~.sites.attach_sae`).
        site_or_key: the SAE's key (``"sae:resid_post.1"``), its site, or its FeatureSite.
        texts_or_batches: texts (with ``tokenizer``, default ``model.tokenizer``), token ids
            ``[examples, tokens]``, a tokenizer's output, or a list of batches.
        k: top examples kept per feature; ``window``: tokens shown before and after the max.
        bins: histogram bins; ``top_logits``: promoted and suppressed tokens per feature.
        labels: one label per feature (default: its top promoted token, or "" when the SAE
            does not write to the residual stream).
        batch_size: examples per forward.
    """
    module: nn.Module = unwrap(model) if is_nnsight(model) else model
    fs = feature_site(module, site_or_key)
    k = positive_int(k, "k")
    bins = positive_int(bins, "bins")
    top_logits = positive_int(top_logits, "top_logits")
    before, after = _window(window)
    n = fs.n_features
    if labels is not None and (len(labels) != n or not all(isinstance(x, str) for x in labels)):
        raise FeatureError(f"labels must be {n} strings, one per feature")
    tokenizer = model_tokenizer(module, tokenizer)
    batches = data_batches(texts_or_batches, tokenizer, positive_int(batch_size, "batch_size"))
    notes: list[str] = []
    logit_tables = _logit_effects(module, fs, top_logits, notes)  # refuses before the passes
    device = input_device(module)
    first = FirstPass(n, k, device)
    stream(module, fs, batches, device, first.add, progress, "features: top examples")
    second = SecondPass(first, bins, before, after)
    stream(module, fs, batches, device, second.add, progress, "features: histograms")

    def tokens(ids: list[int]) -> list[str]:
        return token_labels(tokenizer, ids)

    if labels is None:
        labels = tokens(logit_tables[0][0][:, 0].tolist()) if logit_tables else [""] * n
    return FeatureSet(
        site=fs.key,
        n_features=n,
        density=(first.counts.double() / max(first.offset_real, 1)).float().cpu().numpy(),
        max_activation=first.maxes.float().cpu().numpy(),
        labels=list(labels),
        n_tokens=first.offset_real,
        k=k,
        window=(before, after),
        notes=notes,
        _top_values=first.values.float().cpu().numpy(),
        _top_tokens=first.tokens.cpu().numpy(),
        _windows=second.windows.cpu().numpy(),
        _hist=second.hist.cpu().numpy(),
        _promoted=logit_tables[0] if logit_tables else None,
        _suppressed=logit_tables[1] if logit_tables else None,
        _ids=[b["input_ids"].to(torch.int32).numpy() for b in batches],
        _masks=[b["attention_mask"].bool().numpy() for b in batches],
        _tokens=tokens,
    )


def _window(window: Any) -> tuple[int, int]:
    ok = (
        isinstance(window, (tuple, list))
        and len(window) == 2
        and all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in window)
    )
    if not ok:
        raise FeatureError(
            "window must be (tokens before, tokens after) the max token, e.g. (8, 4); "
            f"got {window!r}"
        )
    return int(window[0]), int(window[1])


def _logit_effects(
    model: nn.Module, fs: FeatureSite, top: int, notes: list[str]
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    """Return per feature the ``top`` promoted and suppressed token ids and values
    (``W_dec[f] @ W_U.T``, final norm ignored), or None where they have no meaning."""
    if not fs.residual:
        notes.append(
            f"no promoted/suppressed tokens: {fs.site} is not on the residual stream, where the "
            "unembedding reads"
        )
        return None
    try:
        parts = anatomy(model)
    except CaptureError as exc:
        notes.append(f"no promoted/suppressed tokens: {exc}")
        return None
    weight = None
    if parts.unembed is not None:
        weight = getattr(model.get_submodule(parts.unembed), "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.device.type == "meta":
        notes.append("no promoted/suppressed tokens: the unembedding's weights are not loaded here")
        return None
    top = min(top, int(weight.shape[0]))
    w_dec = fs.sae.W_dec.detach()
    n = w_dec.shape[0]
    step = max(1, (1 << 24) // int(weight.shape[0]))  # about 64 MiB of logits per chunk
    out = [np.zeros((n, top), dtype=np.int64), np.zeros((n, top), dtype=np.float32)]
    low = [np.zeros((n, top), dtype=np.int64), np.zeros((n, top), dtype=np.float32)]
    with torch.inference_mode():
        for lo in range(0, n, step):
            logits = w_dec[lo : lo + step].to(weight.device, weight.dtype) @ weight.T
            up = logits.float().topk(top, dim=1)
            down = (-logits.float()).topk(top, dim=1)
            out[0][lo : lo + step] = up.indices.cpu().numpy()
            out[1][lo : lo + step] = up.values.cpu().numpy()
            low[0][lo : lo + step] = down.indices.cpu().numpy()
            low[1][lo : lo + step] = (-down.values).cpu().numpy()
    notes.append(
        "promoted/suppressed tokens: W_dec[f] @ W_U.T, the final norm ignored (its scale and "
        "centring would change the values, not usually the order)"
    )
    return (out[0], out[1]), (low[0], low[1])
