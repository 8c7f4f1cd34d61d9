"""Static pictures of lens results (matplotlib, no pyplot state): what notebooks exported to
GitHub or nbviewer show, and what a console user saves."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

from .inputs import token_labels

if TYPE_CHECKING:
    from .dla_result import DLAResult
    from .result import LensResult


def png(fig: Any) -> bytes:
    """Return ``fig`` rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _short(text: str, width: int = 8) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def lens_figure(result: LensResult, example: int, max_positions: int) -> Any:
    """Return a grid of layers (rows, embeddings at the bottom) x positions: each cell the
    top-1 token, coloured by its probability (sequential map, 0 to 1)."""
    from matplotlib.figure import Figure

    cols = list(range(len(result.positions)))[-max_positions:]
    probs = result.top_probs[:, example, cols, 0].numpy()
    ids = result.top_ids[:, example, cols, 0]
    text = [token_labels(result.tokenizer, row) for row in ids.tolist()]
    n_layer, n_pos = probs.shape
    fig = Figure(figsize=(1.5 + 0.5 * n_pos, 1.2 + 0.35 * n_layer))
    ax = fig.subplots()
    image = ax.imshow(probs, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", origin="lower")
    for i in range(n_layer):
        for j in range(n_pos):
            colour = "white" if probs[i, j] > 0.6 else "black"
            ax.text(j, i, _short(text[i][j]), ha="center", va="center", fontsize=7, color=colour)
    inputs = result.input_tokens(example)
    ax.set_xticks(range(n_pos), [_short(inputs[c]) for c in cols], rotation=60, fontsize=7)
    ax.set_yticks(range(n_layer), result.layer_labels, fontsize=7)
    ax.set_xlabel("input token (position)")
    ax.set_ylabel("residual stream")
    ax.set_title(f"{result.method} of {result.model}, example {example}: top-1 token", fontsize=9)
    fig.colorbar(image, ax=ax, label="probability")
    return fig


def dla_figure(result: DLAResult, top: int = 20) -> Any:
    """Return a bar chart of the largest components (mean, t-interval) beside a layer x head
    heatmap of the heads' mean contributions (diverging, centred on 0)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, max(3.5, 0.25 * min(top, len(result.components)) + 1.5)))
    bars, heat = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    frame = result.top(top)
    y = np.arange(len(frame))[::-1]
    err = np.vstack([frame["mean"] - frame["ci_low"], frame["ci_high"] - frame["mean"]])
    colours = ["#2166ac" if v >= 0 else "#b2182b" for v in frame["mean"]]
    bars.barh(y, frame["mean"], xerr=np.nan_to_num(err, posinf=0.0), color=colours)
    bars.set_yticks(y, list(frame["component"]), fontsize=7)
    bars.axvline(0, color="grey", linewidth=0.8)
    bars.set_xlabel(f"contribution to {result.metric} (mean over {result.n_examples} examples)")
    bars.set_title(
        f"direct logit attribution: total {result.total.mean().item():.3g}; "
        f"{int(result.level * 100)}% t-intervals",
        fontsize=9,
    )
    grid = result.heads().numpy()
    bound = float(np.abs(grid).max()) or 1.0
    image = heat.imshow(grid, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    heat.set_xlabel("head")
    heat.set_ylabel("layer")
    heat.set_xticks(range(grid.shape[1]))
    heat.set_yticks(range(grid.shape[0]))
    heat.set_title("heads (mean contribution)", fontsize=9)
    fig.colorbar(image, ax=heat)
    fig.tight_layout()
    return fig
