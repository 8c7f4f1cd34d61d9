"""FeatureDashboard: browse the features of one sparse autoencoder (or transcoder) layer.

A searchable, sortable list of every feature (index, label, density, max activation) beside the
selected feature's detail: its top-activating examples with each token highlighted by its
activation, a histogram of its nonzero activations, and the logits its decoder promotes and
suppresses. The front end is ``widgets/src/features`` (anywidget).

What travels, and why the first view of 16,000 features stays near 200 KB: the list once, as
bytes (density and max activation as little-endian float32, the labels as one UTF-8 buffer with
uint32 offsets: 12 bytes a feature plus the labels' text), and one feature's detail, packed
(:func:`pack_detail`: activations as uint8 codes of the feature's max, tokens as a table of the
distinct strings with a uint16 index each). Any other feature's detail is asked of the kernel by
a custom message when the reader selects it, answered with the same packed bytes and kept by
the browser. :meth:`FeatureDashboard.payload_bytes` measures it.

The data contract is :class:`FeatureSet` (what the dashboard browses) and
:class:`FeatureExamples` (one feature's detail), structural types that the SAE analyses in
``interp_magics.features`` produce; this module never imports them.

The module is past 400 lines because the bytes the browser reads and the static fallbacks (PNG,
table, text) must agree on what a feature's examples are; one file keeps them together.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import struct
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import traitlets

from .base import FallbackWidget
from .circuit import float32_bytes, sign_colours
from .encoding import quantize
from .labels import LITERAL_TEXT

#: How the list can be ordered (the first two largest first, the index from 0).
SORTS = ("max_activation", "density", "index")
#: The colour of a token at its feature's max activation on light backgrounds: an orange dark
#: enough to stand 3:1 off white (Okabe & Ito's #E69F00 reaches 2.3) under dark text at 6.7:1.
#: A token at fraction ``a`` of the max is this colour laid over the background, opacity ``a``.
HIGHLIGHT = "#D27D00"
#: The same on dark backgrounds: a deeper amber, so that every step from the background to it
#: keeps light text at 5:1 or more (a bright orange's middle steps, near luminance 0.18, allow
#: neither dark nor light text much above 4.5:1) while the max stands 3:1 off the page.
HIGHLIGHT_DARK = "#A05A00"
#: Version of the packed detail format (widgets/src/features/decode.ts reads it).
DETAIL_VERSION = 1
#: Feature details kept by the kernel for repeated requests (the browser keeps its own).
CACHE_SIZE = 64
#: Examples drawn in the PNG fallback, and characters of one example in the text fallbacks.
PNG_EXAMPLES, TEXT_CHARS = 10, 80


@runtime_checkable
class FeatureExamples(Protocol):
    """One feature's detail: its top-activating examples, activation histogram and logits."""

    feature: int
    tokens: list[list[str]]  # k examples, each a window of token strings
    activations: np.ndarray  # float32 [k, window]; 0 for padding
    histogram: tuple[np.ndarray, np.ndarray]  # counts [bins], bin edges [bins + 1]
    promoted: list[tuple[str, float]]  # top tokens the feature's decoder raises
    suppressed: list[tuple[str, float]]
    density: float


@runtime_checkable
class FeatureSet(Protocol):
    """What the dashboard browses: every feature of one SAE (or transcoder) site."""

    site: str  # e.g. "sae:resid_post.1"
    n_features: int
    density: np.ndarray  # float32 [n]: fraction of tokens where the feature fires
    max_activation: np.ndarray  # float32 [n]
    labels: list[str]  # [n]

    def detail(self, feature: int) -> FeatureExamples:
        """Return the detail of ``feature``."""
        ...


# -- encodings (widgets/src/features/decode.ts reads them) --------------------------------------


def joined_utf8(strings: Sequence[str]) -> tuple[bytes, bytes]:
    """Return ``(the strings' UTF-8 bytes one after another, uint32 offsets [n + 1])``:
    string ``i`` is ``data[offsets[i]:offsets[i + 1]]``."""
    parts = [str(s).encode("utf-8") for s in strings]
    offsets = np.zeros(len(parts) + 1, dtype="<u4")
    offsets[1:] = np.cumsum([len(p) for p in parts], dtype=np.int64)
    return b"".join(parts), offsets.tobytes()


def split_utf8(data: bytes, offsets: bytes) -> list[str]:
    """Return the strings :func:`joined_utf8` joined."""
    ends = np.frombuffer(bytes(offsets), dtype="<u4").tolist()
    raw = bytes(data)
    return [raw[a:b].decode("utf-8") for a, b in itertools.pairwise(ends)]


def token_table(tokens: Sequence[Sequence[str]], window: int) -> tuple[list[str], np.ndarray]:
    """Return the distinct tokens (in order of first use) and an index into them per slot
    ``[k, window]`` (uint16 when there are at most 65,536, else uint32; padding slots 0)."""
    vocab: dict[str, int] = {}
    index = np.zeros((len(tokens), window), dtype=np.int64)
    for i, row in enumerate(tokens):
        for j, tok in enumerate(row):
            index[i, j] = vocab.setdefault(str(tok), len(vocab))
    dtype = "<u2" if len(vocab) <= 1 << 16 else "<u4"
    return list(vocab), index.astype(dtype)


def detail_scale(detail: FeatureExamples, max_activation: float) -> float:
    """Return the scale of a detail's uint8 codes: the feature's max activation (or its examples'
    largest, should that be higher), 1 when the feature never fired."""
    acts = np.asarray(detail.activations, dtype=np.float64)
    top = float(np.nanmax(acts)) if acts.size else 0.0
    scale = max(_finite(max_activation), _finite(top))
    return scale if scale > 0 else 1.0


def pack_detail(detail: FeatureExamples, *, max_activation: float, label: str = "") -> bytes:
    """Return one feature's detail as the bytes the browser reads.

    Little-endian: uint32 header length and uint32 format version; the header (UTF-8 JSON,
    then zeros to 8 bytes: feature, label, k, window, each example's length, the codes'
    scale, index width, bins, the token table, promoted, suppressed, density); then uint8 codes
    ``[k, window]`` (``round(activation / scale * 255)``), the token indices ``[k, window]``,
    the histogram's counts (float64 ``[bins]``) and edges (float64 ``[bins + 1]``), each section
    padded with zeros to 8 bytes.
    """
    acts = np.asarray(detail.activations, dtype=np.float32)
    k = len(detail.tokens)
    window = int(acts.shape[1]) if acts.ndim == 2 else 0
    scale = detail_scale(detail, max_activation)
    codes, _ = quantize(torch.from_numpy(np.nan_to_num(acts.reshape(k, window), nan=0.0)), scale)
    vocab, index = token_table(detail.tokens, window)
    counts, edges = (np.asarray(a, dtype="<f8").reshape(-1) for a in detail.histogram)
    edges = edges if counts.size else edges[:0]
    header = {
        "feature": int(detail.feature),
        "label": str(label),
        "k": k,
        "window": window,
        "lengths": [len(row) for row in detail.tokens],
        "scale": scale,
        "index_bytes": index.dtype.itemsize,
        "bins": int(counts.size),
        "vocab": vocab,
        "promoted": [[str(t), _finite(v)] for t, v in detail.promoted],
        "suppressed": [[str(t), _finite(v)] for t, v in detail.suppressed],
        "density": _finite(detail.density),
    }
    head = json.dumps(header, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    raw = head.encode("utf-8")
    parts = [raw, codes, index.tobytes(), counts.tobytes(), edges.tobytes()]
    return struct.pack("<II", len(raw), DETAIL_VERSION) + b"".join(_pad8(p) for p in parts)


def unpack_detail(blob: bytes) -> dict[str, Any]:
    """Return the header of :func:`pack_detail`'s bytes with ``codes`` and ``index`` (``[k,
    window]``), ``tokens`` (each example's strings), ``activations`` (the codes decoded,
    float32), ``counts`` and ``edges`` added (for tests and fallbacks)."""
    data = bytes(blob)
    size, version = struct.unpack_from("<II", data, 0)
    if version != DETAIL_VERSION:
        raise ValueError(f"packed detail version {version}, expected {DETAIL_VERSION}")
    out: dict[str, Any] = json.loads(data[8 : 8 + size].decode("utf-8"))
    at = 8 + size + (-size % 8)
    k, window = out["k"], out["window"]

    def take(dtype: str, count: int) -> np.ndarray:
        nonlocal at
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=at)
        at += arr.nbytes + (-arr.nbytes % 8)
        return arr

    codes = take("u1", k * window).reshape(k, window)
    index = take(f"<u{out['index_bytes']}", k * window).reshape(k, window)
    out["counts"] = take("<f8", out["bins"])
    out["edges"] = take("<f8", out["bins"] + 1 if out["bins"] else 0)
    out["codes"], out["index"] = codes, index
    out["activations"] = (codes.astype(np.float32) / 255 * out["scale"]).astype(np.float32)
    vocab = out["vocab"]
    out["tokens"] = [
        [vocab[i] for i in index[r, :n].tolist()] for r, n in enumerate(out["lengths"])
    ]
    return out


def _pad8(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


def _finite(value: Any) -> float:
    v = float(value)
    return v if math.isfinite(v) else 0.0


# -- checking what the analyses give ------------------------------------------------------------


def _check_features(features: Any) -> tuple[int, np.ndarray, np.ndarray, list[str]]:
    """Return ``(n, density, max_activation, labels)`` of a feature set, or raise saying what
    is wrong with it."""
    needed = ("site", "n_features", "density", "max_activation", "labels", "detail")
    missing = [a for a in needed if not hasattr(features, a)]
    if missing:
        raise TypeError(
            f"FeatureDashboard shows a FeatureSet (site, n_features, density, max_activation, "
            f"labels, detail(i)); {type(features).__name__} lacks {', '.join(missing)}"
        )
    n = int(features.n_features)
    if n < 1:
        raise ValueError("the feature set has no features (n_features must be >= 1)")
    density = np.asarray(features.density, dtype=np.float32).reshape(-1)
    top = np.asarray(features.max_activation, dtype=np.float32).reshape(-1)
    labels = [str(s) for s in features.labels]
    for name, size in (("density", density.size), ("max_activation", top.size)):
        if size != n:
            raise ValueError(f"{name} has {size} values for {n} features: give one per feature")
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries for {n} features: give one each")
    return n, density, top, labels


def _check_detail(detail: Any, feature: int) -> FeatureExamples:
    """Return ``detail`` after checking that its arrays agree, or raise saying how they differ."""
    acts = np.asarray(detail.activations)
    k = len(detail.tokens)
    if acts.size and (acts.ndim != 2 or acts.shape[0] != k):
        raise ValueError(
            f"feature {feature}: activations must be [k examples, window] for {k} examples, "
            f"got shape {tuple(acts.shape)}"
        )
    window = acts.shape[1] if acts.ndim == 2 else 0
    long = [i for i, row in enumerate(detail.tokens) if len(row) > window]
    if long:
        raise ValueError(
            f"feature {feature}: example {long[0]} has {len(detail.tokens[long[0]])} tokens "
            f"but the activations have a window of {window}"
        )
    counts, edges = (np.asarray(a).reshape(-1) for a in detail.histogram)
    if counts.size and edges.size != counts.size + 1:
        raise ValueError(
            f"feature {feature}: a histogram of {counts.size} bins needs {counts.size + 1} "
            f"edges, got {edges.size}"
        )
    return detail  # type: ignore[no-any-return]  # checked structurally above


def _check_index(value: Any, n: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"selected must be a feature index in 0..{n - 1}, got {value!r}")
    if not 0 <= int(value) < n:
        raise ValueError(f"feature {value} is out of range: choose 0..{n - 1}")
    return int(value)


# -- the widget ----------------------------------------------------------------------------------


class FeatureDashboard(FallbackWidget):
    """An interactive dashboard of a :class:`FeatureSet`: the list of features and one
    feature's examples, activation histogram and logits.

    ``view.selected`` is the feature on show (it follows clicks, and can be set from Python);
    ``view.query`` and ``view.sort`` are the list's search text and order;
    :meth:`visible` gives the features the list shows.
    """

    _bundle = "features"

    meta = traitlets.Dict().tag(sync=True)
    density = traitlets.Bytes().tag(sync=True)  # float32 [n]
    max_activation = traitlets.Bytes().tag(sync=True)  # float32 [n]
    labels = traitlets.Bytes().tag(sync=True)  # UTF-8, joined
    label_offsets = traitlets.Bytes().tag(sync=True)  # uint32 [n + 1]
    detail = traitlets.Bytes().tag(sync=True)  # the first view's feature (pack_detail)
    selected = traitlets.Int(0).tag(sync=True)
    sort = traitlets.Unicode(SORTS[0]).tag(sync=True)
    query = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self, features: FeatureSet, *, selected: int | None = None, sort: str = SORTS[0]
    ) -> None:
        """Show ``features`` with ``selected`` in detail (default: the feature with the highest
        max activation), the list ordered by ``sort`` (one of :data:`SORTS`)."""
        n, density, top, labels = _check_features(features)
        self.features = features
        self._n, self._density, self._top, self._labels = n, density, top, labels
        self._cache: OrderedDict[int, tuple[FeatureExamples, bytes]] = OrderedDict()
        self._lock = threading.Lock()  # comm messages may arrive on another thread
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
        first = int(np.argmax(np.nan_to_num(top, nan=-np.inf))) if selected is None else selected
        first = _check_index(first, n)
        text, offsets = joined_utf8(labels)
        super().__init__(
            meta={
                "title": f"Features of {features.site}",
                "site": str(features.site),
                "n_features": n,
                "highlight": {"light": HIGHLIGHT, "dark": HIGHLIGHT_DARK},
                "colours": sign_colours(),
            },
            density=float32_bytes(density),
            max_activation=float32_bytes(top),
            labels=text,
            label_offsets=offsets,
            detail=self.packed(first),
            selected=first,
            sort=sort,
        )
        self.on_msg(self._on_message)

    # -- details, asked for ------------------------------------------------------------------
    def _entry(self, feature: int) -> tuple[FeatureExamples, bytes]:
        with self._lock:
            hit = self._cache.get(feature)
            if hit is not None:
                self._cache.move_to_end(feature)
                return hit
        detail = _check_detail(self.features.detail(feature), feature)
        blob = pack_detail(
            detail, max_activation=float(self._top[feature]), label=self._labels[feature]
        )
        with self._lock:
            self._cache[feature] = (detail, blob)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return detail, blob

    def examples(self, feature: int) -> FeatureExamples:
        """Return the detail of ``feature`` (asked of the feature set once, then kept)."""
        return self._entry(_check_index(feature, self._n))[0]

    def packed(self, feature: int) -> bytes:
        """Return the bytes of ``feature``'s detail as the browser receives them."""
        return self._entry(_check_index(feature, self._n))[1]

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "detail":
            return
        reply: dict[str, Any] = {"type": "detail", "id": content.get("id")}
        try:
            feature = _check_index(content.get("feature"), self._n)
        except ValueError as exc:
            self.send({**reply, "error": str(exc)})
            return
        reply["feature"] = feature
        try:
            blob = self.packed(feature)
        except Exception as exc:  # the feature set's own failure: the view says it, not a log
            self.send({**reply, "error": f"{type(exc).__name__}: {exc}"})
            return
        self.send(reply, buffers=[blob])

    # -- what the list shows, and what it costs --------------------------------------------
    def visible(self) -> list[int]:
        """Return the features the list shows: those whose index or label contains ``query``
        (ignoring case), in the order of ``sort`` (ties by index)."""
        q = self.query.strip().lower()
        keep = [i for i in range(self._n) if not q or q in str(i) or q in self._labels[i].lower()]
        if self.sort == "index":
            return keep
        values = self._density if self.sort == "density" else self._top
        key = np.nan_to_num(values.astype(np.float64), nan=-np.inf)
        return sorted(keep, key=lambda i: (-key[i], i))

    def payload_bytes(self) -> dict[str, int]:
        """Return what the first view costs on the comm, in bytes: ``list`` (density, max
        activation, labels and their offsets), ``detail`` (one feature's), ``total`` (every
        synced trait but the ES module and stylesheet, as the comm carries it)."""
        from .lens import wire_bytes

        state = {k: v for k, v in self.get_state().items() if k not in ("_esm", "_css")}
        listed = sum(len(state[k]) for k in ("density", "max_activation", "labels"))
        listed += len(state["label_offsets"])
        return {"list": listed, "detail": len(state["detail"]), "total": wire_bytes(state)}

    @traitlets.validate("selected")
    def _valid_selected(self, proposal: Any) -> int:
        try:
            return _check_index(proposal["value"], self._n)
        except ValueError as exc:
            raise traitlets.TraitError(str(exc)) from None

    @traitlets.validate("sort")
    def _valid_sort(self, proposal: Any) -> str:
        if proposal["value"] not in SORTS:
            raise traitlets.TraitError(f"sort must be one of {', '.join(SORTS)}")
        return str(proposal["value"])

    # -- static fallbacks ---------------------------------------------------------------------
    def _heading(self) -> str:
        f = self.selected
        label = self._labels[f]
        named = f" “{label}”" if label else ""
        return (
            f"feature {f}{named}: density {fmt_density(float(self._density[f]))} of tokens, "
            f"max activation {_fmt(float(self._top[f]))}"
        )

    def fallback_text(self) -> str:
        d = self.examples(self.selected)
        lines = [
            f"FeatureDashboard of {self.features.site}: {self._n} features",
            self._heading(),
        ]
        if d.tokens:
            lines.append("top examples (activation, the strongest token in [brackets]):")
            acts = np.asarray(d.activations, dtype=np.float64)
            for i, row in enumerate(d.tokens):
                top = float(acts[i, : len(row)].max()) if row else 0.0
                lines.append(f"{i + 1:>4}. {_fmt(top):>7}  {example_text(row, acts[i])}")
        else:
            lines.append("no examples: the feature never fired on the data")
        lines.append("promoted: " + _logit_list(d.promoted))
        lines.append("suppressed: " + _logit_list(d.suppressed))
        return "\n".join(lines)

    def fallback_html(self, png: bytes | None = None) -> str:
        """Return the PNG and the text, then tables: the selected feature's top examples
        (activation, text with the strongest token bracketed) and its promoted and suppressed
        logits."""
        base = super().fallback_html(png)
        d = self.examples(self.selected)
        acts = np.asarray(d.activations, dtype=np.float64)
        rows = []
        for i, row in enumerate(d.tokens):
            top = float(acts[i, : len(row)].max()) if row else 0.0
            cells = [str(i + 1), _fmt(top), example_text(row, acts[i])]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        caption = html.escape(self._heading())
        examples = (
            f"<table><caption>{caption}: top examples</caption><thead><tr><th>rank</th>"
            f"<th>activation</th><th>text (strongest token in [brackets])</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        logit_rows = [
            f"<tr><td>{kind}</td><td>{html.escape(str(t))}</td><td>{_fmt(float(v))}</td></tr>"
            for kind, pairs in (("promoted", d.promoted), ("suppressed", d.suppressed))
            for t, v in pairs
        ]
        logits = (
            "<table><caption>logits</caption><thead><tr><th>effect</th><th>token</th>"
            f"<th>value</th></tr></thead><tbody>{''.join(logit_rows)}</tbody></table>"
        )
        return base.replace("</div>", examples + logits + "</div>", 1)

    def fallback_png(self) -> bytes:
        d = self.examples(self.selected)
        return detail_png(
            d, heading=self._heading(), scale=detail_scale(d, self._top[self.selected])
        )


# -- words and pictures for the fallbacks -------------------------------------------------------


def fmt_density(value: float) -> str:
    """Return a density (a fraction) as a percentage with three significant digits."""
    if value == 0:
        return "0%"
    return f"{float(f'{value * 100:.3g}'):g}%"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _logit_list(pairs: Sequence[tuple[str, float]]) -> str:
    return ", ".join(f"{_show(t)!r} {float(v):+.3g}" for t, v in pairs) or "(none)"


def _show(token: str) -> str:
    return str(token).replace("\n", "⏎").replace("\t", "⇥")


def example_text(tokens: Sequence[str], acts: np.ndarray, chars: int = TEXT_CHARS) -> str:
    """Return an example's text with its strongest token in [brackets], cut to about ``chars``
    characters around that token (``…`` where cut)."""
    if not tokens:
        return ""
    values = np.nan_to_num(np.asarray(acts, dtype=np.float64)[: len(tokens)], nan=0.0)
    peak = int(values.argmax())
    start, end = _around(tokens, peak, chars)
    parts = [_show(t) if i != peak else f"[{_show(t)}]" for i, t in enumerate(tokens)]
    return ("…" if start else "") + "".join(parts[start:end]) + ("…" if end < len(tokens) else "")


def _around(tokens: Sequence[str], peak: int, chars: int) -> tuple[int, int]:
    """Return the token range ``[start, end)`` around ``peak`` that fits ``chars``."""
    start, end = peak, peak + 1
    used = len(_show(tokens[peak])) + 2
    while True:
        grew = False
        for side in (-1, 1):
            i = start - 1 if side < 0 else end
            if 0 <= i < len(tokens) and used + len(_show(tokens[i])) <= chars:
                used += len(_show(tokens[i]))
                start, end = (i, end) if side < 0 else (start, i + 1)
                grew = True
        if not grew:
            return start, end


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)


def highlight_rgb(fraction: float, background: str = "#ffffff") -> tuple[int, int, int]:
    """Return the colour of a token at ``fraction`` of its feature's max activation:
    :data:`HIGHLIGHT` over ``background`` with that opacity (what the browser paints)."""
    a = min(1.0, max(0.0, float(fraction)))
    mixed = _rgb(HIGHLIGHT) * a + _rgb(background) * (1 - a)
    r, g, b = np.rint(mixed).astype(int).tolist()
    return r, g, b


def _luminance(rgb: Sequence[float]) -> float:
    v = np.asarray(rgb, dtype=np.float64) / 255
    lin = np.where(v <= 0.03928, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return float(lin @ np.array([0.2126, 0.7152, 0.0722]))


def ink_on(rgb: Sequence[float]) -> str:
    """Return black or white, whichever has the higher WCAG contrast on ``rgb``."""
    lum = _luminance(rgb)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


#: Inches per character of DejaVu Sans Mono at 9 pt (advance 0.602 em): tokens are placed by
#: their character count, so each one's highlight box ends where its text does.
_CHAR_IN, _FONT = 9 * 0.6021 / 72, {"family": "DejaVu Sans Mono", "size": 9}


def detail_png(detail: FeatureExamples, *, heading: str, scale: float) -> bytes:
    """Return a PNG of a feature: its top examples as highlighted text rows (at most
    :data:`PNG_EXAMPLES`), the histogram of its nonzero activations, its promoted and suppressed
    logits."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = min(PNG_EXAMPLES, len(detail.tokens))
    width, row_h, charts_h = 10.0, 0.27, 2.6
    text_h = 0.55 + row_h * max(k, 1)
    height = text_h + charts_h
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, charts_h / height, 0.96, (text_h - 0.45) / height))
    _draw_examples(ax, detail, k, 0.96 * width, scale)
    ax.set_title(heading, fontsize=10, loc="left", **LITERAL_TEXT)
    hist = fig.add_axes((0.07, 0.5 / height, 0.4, (charts_h - 1.0) / height))
    counts, edges = (np.asarray(a, dtype=np.float64) for a in detail.histogram)
    if counts.size:
        hist.stairs(counts, edges, fill=True, color="#56B4E9", edgecolor="#0072B2")
    hist.set_xlabel("activation")
    hist.set_ylabel("count")
    hist.set_title("nonzero activations", fontsize=9)
    sides = (
        (detail.promoted, "promoted logits", "#2166ac"),
        (detail.suppressed, "suppressed logits", "#b2182b"),
    )
    for pos, (pairs, title, colour) in enumerate(sides):
        bar = fig.add_axes((0.6 + 0.21 * pos, 0.5 / height, 0.13, (charts_h - 1.0) / height))
        shown = list(pairs)[:8]
        y = np.arange(len(shown))[::-1]
        bar.barh(y, [float(v) for _, v in shown], color=colour)
        bar.set_yticks(y, [_show(t) for t, _ in shown], fontsize=7, **LITERAL_TEXT)
        bar.set_title(title, fontsize=9)
        bar.tick_params(axis="x", labelsize=7)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph.*missing")
        fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _draw_examples(ax: Any, detail: FeatureExamples, k: int, width_in: float, scale: float) -> None:
    """Draw ``k`` examples as rows of tokens, each on its highlight, ``scale`` = full colour."""
    from matplotlib.patches import Rectangle

    chars = int(width_in / _CHAR_IN)
    ax.set_xlim(0, chars)
    ax.set_ylim(max(k, 1), 0)
    ax.axis("off")
    if not k:
        ax.text(0, 0.5, "no examples: the feature never fired", va="center", **_FONT)
        return
    acts = np.nan_to_num(np.asarray(detail.activations, dtype=np.float64), nan=0.0)
    lead = 8  # characters of the example's max activation
    for r in range(k):
        row = [_show(t) for t in detail.tokens[r]]
        if not row:
            continue
        values = acts[r, : len(row)]
        ax.text(lead - 1, r + 0.5, _fmt(float(values.max())), ha="right", va="center", **_FONT)
        start, end = _around(row, int(values.argmax()), chars - lead - 2)
        x = float(lead)
        for j in range(start, end):
            if not row[j]:  # padding: a window past its text's start or end
                continue
            colour = highlight_rgb(values[j] / scale)
            n = len(row[j])
            if values[j] > 0:
                face = tuple(c / 255 for c in colour)
                ax.add_patch(Rectangle((x, r + 0.08), n, 0.84, facecolor=face, linewidth=0))
            ax.text(x, r + 0.5, row[j], va="center", color=ink_on(colour), **_FONT, **LITERAL_TEXT)
            x += n


__all__ = [
    "HIGHLIGHT",
    "HIGHLIGHT_DARK",
    "SORTS",
    "FeatureDashboard",
    "FeatureExamples",
    "FeatureSet",
    "detail_png",
    "example_text",
    "fmt_density",
    "highlight_rgb",
    "ink_on",
    "joined_utf8",
    "pack_detail",
    "split_utf8",
    "token_table",
    "unpack_detail",
]
