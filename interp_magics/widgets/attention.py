"""AttentionView: the attention viewer widget.

The browser gets, for the sequence on show: a thumbnail of every head (block maxima, at most
64 x 64, one byte a weight), the selected head at full resolution (one byte a weight, scaled to
its own maximum), and token labels. Other heads, other sequences of a batch and the focus-token
rows are sent when asked for; a hovered weight is first shown from its byte and then replaced
by the exact float, asked of the kernel. Nothing travels as JSON lists of numbers.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import traitlets

from ..attention import AttentionInputError, AttentionPatterns, entropy
from . import colors
from .base import FallbackWidget
from .encoding import pooled_pad, quantize, thumbnail_size, thumbnails
from .labels import LITERAL_TEXT

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class AttentionView(FallbackWidget):
    """An interactive view of attention patterns: overview of heads, one head in detail.

    Args:
        pattern: weights ``[batch, layer, head, query, key]`` (or fewer leading axes, or a list
            of per-layer ``[batch, head, query, key]`` tensors as ``output_attentions`` gives).
        tokens: the token strings, one list per sequence (or one list for all).
        attention_mask: ``[batch, seq]`` with 0 at pad positions, which are greyed out.
        layers: the model layer of each entry of the layer axis (for labels).
        selected: the ``(layer index, head)`` shown in detail; it follows clicks in the view
            and can be set from Python.
        batch_index: which sequence of the batch is shown.
        focus: a query position for the focus-token mode, or -1 for none.
        colormap: a matplotlib sequential colormap name.
        title: heading of the view.
    """

    _bundle = "attention"

    meta = traitlets.Dict().tag(sync=True)
    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    pad = traitlets.Bytes().tag(sync=True)
    thumbs = traitlets.Bytes().tag(sync=True)
    thumb_pad = traitlets.Bytes().tag(sync=True)
    lut = traitlets.Bytes().tag(sync=True)
    detail = traitlets.Bytes().tag(sync=True)
    detail_key = traitlets.List(traitlets.Int()).tag(sync=True)
    detail_scale = traitlets.Float(1.0).tag(sync=True)
    focus_rows = traitlets.Bytes().tag(sync=True)
    focus_key = traitlets.List(traitlets.Int()).tag(sync=True)
    selected = traitlets.Tuple(traitlets.Int(), traitlets.Int(), default_value=(0, 0)).tag(
        sync=True
    )
    batch_index = traitlets.Int(0).tag(sync=True)
    focus = traitlets.Int(-1).tag(sync=True)

    def __init__(
        self,
        pattern: Any,
        tokens: Any = None,
        *,
        attention_mask: Any = None,
        layers: list[int] | None = None,
        selected: tuple[int, int] = (0, 0),
        batch_index: int = 0,
        focus: int = -1,
        colormap: str = colors.SEQUENTIAL,
        title: str | None = None,
        notes: list[str] | None = None,
        model_name: str = "",
    ) -> None:
        data = (
            pattern
            if isinstance(pattern, AttentionPatterns)
            else AttentionPatterns(
                pattern=pattern,
                tokens=tokens,
                attention_mask=attention_mask,
                layers=list(layers or []),
                model_name=model_name,
                notes=list(notes or []),
            )
        )
        self.data = data
        self.colormap = colormap
        b, n_layers, n_heads, seq, _ = data.shape
        self._vmax = max(1.0, float(data.pattern.max()))
        self._causal = data.is_causal()
        self._title = title or (
            f"Attention · {data.model_name + ' · ' if data.model_name else ''}"
            f"{n_layers} layers × {n_heads} heads × {seq} tokens"
        )
        self._ready = False  # observers stay quiet until the initial state is in place
        _check_index("batch_index", batch_index, b)
        self._check_selected(tuple(selected))
        if focus != -1:
            _check_index("focus", focus, seq)
        state = self._sequence_state(batch_index, (int(selected[0]), int(selected[1])), focus)
        # All data goes into the initial state, so the view opens with one message.
        super().__init__(
            lut=colors.lut(colormap),
            batch_index=batch_index,
            selected=tuple(selected),
            focus=focus,
            **state,
        )
        self._ready = True
        self.on_msg(self._on_message)

    @classmethod
    def for_result(cls, result: Any, **kwargs: Any) -> AttentionView:
        """Return a view of an :class:`AttentionPatterns` result (the results' seam)."""
        return cls.from_patterns(result, **kwargs)

    @classmethod
    def from_patterns(cls, patterns: AttentionPatterns, **kwargs: Any) -> AttentionView:
        """Return a view of an :class:`~interp_magics.attention.AttentionPatterns` result."""
        return cls(patterns, **kwargs)

    # -- what the browser receives ------------------------------------------------------------
    def _sequence_state(self, b: int, selected: tuple[int, int], focus: int) -> dict[str, Any]:
        """Return the trait values that depend on the sequence on show."""
        data = self.data
        p = data.pattern[b]  # [L, H, Q, K]
        n_layers, n_heads, seq, _ = p.shape
        size = thumbnail_size(seq)
        pad = self._pad(b)
        state: dict[str, Any] = {
            "meta": {
                "layers": n_layers,
                "heads": n_heads,
                "seq": seq,
                "batch": data.shape[0],
                "thumb": size,
                "vmax": self._vmax,
                "causal": self._causal,
                "layer_labels": list(data.layers),
                "batch_labels": [_label(t, self._pad(i)) for i, t in enumerate(data.tokens)],
                "title": self._title,
                "notes": list(data.notes),
            },
            "tokens": list(data.tokens[b]),
            "pad": pad.to(torch.uint8).numpy().tobytes(),
            "thumbs": quantize(thumbnails(p, size), scale=self._vmax)[0],
            "thumb_pad": pooled_pad(pad, size).to(torch.uint8).numpy().tobytes(),
            **self._detail_state(b, selected),
        }
        if focus >= 0:
            state.update(self._focus_state(b, focus))
        return state

    def _detail_state(self, b: int, selected: tuple[int, int]) -> dict[str, Any]:
        layer, head = selected
        codes, scale = quantize(self.data.pattern[b, layer, head])
        return {"detail": codes, "detail_scale": scale, "detail_key": [b, layer, head]}

    def _focus_state(self, b: int, q: int) -> dict[str, Any]:
        rows = self.data.pattern[b, :, :, q, :]  # [L, H, K]
        return {"focus_rows": quantize(rows, scale=self._vmax)[0], "focus_key": [b, q]}

    def _update(self, state: dict[str, Any]) -> None:
        """Send ``state`` to the browser as one update."""
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)

    def _pad(self, b: int) -> torch.Tensor:
        mask = self.data.attention_mask
        seq = self.data.shape[3]
        return torch.zeros(seq, dtype=torch.bool) if mask is None else mask[b] == 0

    def payload_bytes(self) -> dict[str, int]:
        """Return the bytes each binary trait sends now, and their total."""
        sizes = {
            name: len(getattr(self, name))
            for name in ("thumbs", "thumb_pad", "detail", "focus_rows", "pad", "lut")
        }
        sizes["total"] = sum(sizes.values())
        return sizes

    # -- reacting to the browser (and to Python) ----------------------------------------------
    def _check_selected(self, value: tuple[int, ...]) -> None:
        if len(value) != 2:
            raise AttentionInputError(f"selected must be (layer index, head), got {value!r}")
        _, n_layers, n_heads, _, _ = self.data.shape
        _check_index("selected layer index", value[0], n_layers)
        _check_index("selected head", value[1], n_heads)

    @traitlets.validate("selected")
    def _valid_selected(self, proposal: Any) -> tuple[int, int]:
        value = tuple(int(v) for v in proposal["value"])
        self._check_selected(value)
        return value  # type: ignore[return-value]

    @traitlets.validate("batch_index")
    def _valid_batch(self, proposal: Any) -> int:
        _check_index("batch_index", proposal["value"], self.data.shape[0])
        return int(proposal["value"])

    @traitlets.validate("focus")
    def _valid_focus(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value != -1:
            _check_index("focus", value, self.data.shape[3])
        return value

    @traitlets.observe("selected")
    def _on_selected(self, change: Any) -> None:
        if self._ready:
            self._update(self._detail_state(self.batch_index, self.selected))

    @traitlets.observe("batch_index")
    def _on_batch(self, change: Any) -> None:
        if self._ready:
            self._update(self._sequence_state(self.batch_index, self.selected, self.focus))

    @traitlets.observe("focus")
    def _on_focus(self, change: Any) -> None:
        if self._ready and change["new"] >= 0:
            self._update(self._focus_state(self.batch_index, change["new"]))

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "value":
            return
        reply: dict[str, Any] = {"type": "value", "id": content.get("id")}
        try:
            b, layer, head, q, k = (int(content[x]) for x in ("b", "l", "h", "q", "k"))
            reply.update(b=b, l=layer, h=head, q=q, k=k, value=self.weight(b, layer, head, q, k))
        except (KeyError, TypeError, ValueError, IndexError, AttentionInputError) as exc:
            reply["error"] = str(exc)
        self.send(reply)

    def weight(self, batch: int, layer: int, head: int, query: int, key: int) -> float:
        """Return the exact weight (float) at one cell; indices are positions on each axis."""
        b, n_layers, n_heads, seq, _ = self.data.shape
        for name, value, limit in (
            ("batch", batch, b),
            ("layer index", layer, n_layers),
            ("head", head, n_heads),
            ("query", query, seq),
            ("key", key, seq),
        ):
            _check_index(name, value, limit)
        return float(self.data.pattern[batch, layer, head, query, key])

    # -- static fallbacks -----------------------------------------------------------------
    def fallback_text(self) -> str:
        b, n_layers, n_heads, seq, _ = self.data.shape
        layer, head = self.selected
        label = self.data.layers[layer]
        toks = self.data.tokens[self.batch_index]
        p = self.data.pattern[self.batch_index, layer, head]
        valid = ~self._pad(self.batch_index)
        masked = p * valid[:, None] * valid[None, :]
        top = torch.topk(masked.flatten(), k=min(5, masked.numel()))
        pairs = ", ".join(
            f"{toks[i // seq]!r}->{toks[i % seq]!r} {v:.3f}"
            for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        )
        ent = float(entropy(p)[valid].mean()) if bool(valid.any()) else float("nan")
        lines = [
            f"AttentionView: {self.data.model_name or 'attention'}, {n_layers} layers x {n_heads} "
            f"heads x {seq} tokens{f', sequence {self.batch_index + 1} of {b}' if b > 1 else ''}"
            f"{', causal' if self._causal else ''}",
            f"selected layer {label} head {head}: mean row entropy {ent:.3f} nats; "
            f"strongest query->key weights: {pairs}",
        ]
        lines.extend(self.data.notes)
        return "\n".join(lines)

    def fallback_figure(self) -> Figure:
        """Return the static picture: the overview of heads and the selected head, labelled."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        data = self.data
        p = data.pattern[self.batch_index]
        n_layers, n_heads, seq, _ = p.shape
        size = thumbnail_size(seq, 32)
        thumbs = thumbnails(p, size).numpy()
        gap = max(1, size // 8)
        grid = np.full((n_layers * (size + gap), n_heads * (size + gap)), np.nan)
        for layer in range(n_layers):
            for head in range(n_heads):
                y, x = layer * (size + gap), head * (size + gap)
                grid[y : y + size, x : x + size] = thumbs[layer, head]
        layer, head = self.selected
        detail = p[layer, head].numpy()
        cmap = colors._cmap(self.colormap).with_extremes(bad=(1, 1, 1, 0))
        fig = Figure(figsize=(10, 4.6), dpi=72)
        # Fixed margins instead of tight_layout: a third of the rendering time for big views.
        fig.subplots_adjust(left=0.06, right=0.93, bottom=0.16, top=0.92, wspace=0.25)
        ax_grid, ax_detail = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1]})
        ax_grid.imshow(grid, cmap=cmap, vmin=0, vmax=self._vmax, interpolation="nearest")
        ax_grid.set_title(f"{n_layers} layers x {n_heads} heads", fontsize=10)
        ax_grid.set_xlabel("head")
        ax_grid.set_ylabel("layer")
        ticks = range(n_heads)
        ax_grid.set_xticks(
            [h * (size + gap) + size / 2 for h in ticks], [str(h) for h in ticks], fontsize=7
        )
        ax_grid.set_yticks(
            [i * (size + gap) + size / 2 for i in range(n_layers)],
            [str(x) for x in data.layers],
            fontsize=7,
        )
        image = ax_detail.imshow(
            detail, cmap=cmap, vmin=0, vmax=self._vmax, interpolation="nearest"
        )
        ax_detail.set_title(
            f"layer {data.layers[layer]} head {head} (rows: query, columns: key)", fontsize=10
        )
        # Token labels at any length: every k-th one when there are more than fit (never none).
        labelled = token_ticks(seq)
        toks = [data.tokens[self.batch_index][i] for i in labelled]
        toks = [t if len(t) <= 12 else t[:11] + "…" for t in toks]
        # Tokens are data: "$$" or "${{x}}$" must not be parsed as math.
        ax_detail.set_xticks(labelled, toks, rotation=90, fontsize=7, **LITERAL_TEXT)
        ax_detail.set_yticks(labelled, toks, fontsize=7, **LITERAL_TEXT)
        ax_detail.set_xlabel("key")
        ax_detail.set_ylabel("query")
        fig.colorbar(image, ax=ax_detail, fraction=0.046, pad=0.04, label="attention weight")
        return fig

    def fallback_png(self) -> bytes:
        buf = io.BytesIO()
        self.fallback_figure().savefig(buf, format="png")
        return buf.getvalue()


#: The static picture's detail has room for about this many token labels on each axis.
STATIC_LABELS = 40


def token_ticks(length: int, room: int = STATIC_LABELS) -> list[int]:
    """Return the positions that get a token label: every k-th, k as small as fits ``room``."""
    step = max(1, -(-length // room))
    return list(range(0, length, step))


def _check_index(name: str, value: int, limit: int) -> None:
    if (
        not isinstance(value, (int, np.integer))
        or isinstance(value, bool)
        or not 0 <= int(value) < limit
    ):
        raise AttentionInputError(f"{name} must be an integer in 0..{limit - 1}, got {value!r}")


def _label(tokens: list[str], pad: torch.Tensor, words: int = 6) -> str:
    real = [t for t, is_pad in zip(tokens, pad.tolist(), strict=True) if not is_pad]
    text = " ".join(real[:words])
    return text + (" …" if len(real) > words else "")
